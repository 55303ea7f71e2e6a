"""Deploying a model version as the BentoML service: pack its ONNX file as a BentoML model, build a bento
around serving/ (bentofile), ask the active stack's model deployer for a service in no deployer's terms
(DeploymentRequest; headliner.deploy.deployers turns it into that deployer's own), and prove with real requests
that the service answers; the deployment pipeline's steps are thin wrappers over these functions."""

from __future__ import annotations

import html
import json
import math
import shlex
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from headliner.errors import DeploymentError
from headliner.model.onnx_packaging import example_inputs
from headliner.reports.html import Check, HtmlReport, html_page, html_table
from headliner.serving.model_source import BENTO_CARD_FILE, BENTO_MODEL_FILE
from headliner.spec import PROJECT_ROOT

if TYPE_CHECKING:
    from bentoml import Bento
    from zenml.services.service import BaseDeploymentService

    from headliner.model.onnx_packaging import OnnxPredictor

BENTOFILE = PROJECT_ROOT / "serving" / "bentofile.yaml"
DEFAULT_PORT = 3000


def save_bento_model(model_bytes: bytes, model_card_html: str | None = None) -> str:
    """Store the ONNX file as the BentoML model `<model>:v<version>`, with the version's model card beside it
    (`model_card.html`, which the service shows at GET /model-card) when given one; reused when the same
    files are already stored. Returns its tag."""
    import bentoml

    from headliner.model.onnx_packaging import OnnxPredictor

    predictor = OnnxPredictor(model_bytes)
    tag = f"{predictor.model_name}:v{predictor.model_version}"
    try:
        stored = bentoml.models.get(tag)
        card = Path(stored.path_of(BENTO_CARD_FILE))
        stored_card = card.read_text(encoding="utf-8") if card.is_file() else None
        if Path(stored.path_of(BENTO_MODEL_FILE)).read_bytes() == model_bytes and stored_card == model_card_html:
            return tag
        bentoml.models.delete(tag)
    except bentoml.exceptions.NotFound:
        pass
    labels = {"project": "headliner", "model": predictor.model_name, "model_version": predictor.model_version}
    with bentoml.models.create(
        tag, labels=labels, metadata={"use_case": predictor.metadata.get("use_case", "")}
    ) as model:
        Path(model.path_of(BENTO_MODEL_FILE)).write_bytes(model_bytes)
        if model_card_html is not None:
            Path(model.path_of(BENTO_CARD_FILE)).write_text(model_card_html, encoding="utf-8")
    return tag


def registered_model_card(model_bytes: bytes) -> str | None:
    """The HTML of the newest model card of the registered version this ONNX file is (None, and a warning,
    when it has none: a version trained before model cards is still deployed)."""
    import logging

    from headliner.model.onnx_packaging import OnnxPredictor
    from headliner.serving.model_source import registry_card  # logs why a version has none

    predictor = OnnxPredictor(model_bytes)
    card = registry_card(predictor.model_name, predictor.model_version)
    if card is None:
        logging.getLogger(__name__).warning(
            "deploying %s version %s without its model card (GET /model-card will answer 404)",
            predictor.model_name,
            predictor.model_version,
        )
    return card


def build_bento(model_tag: str) -> Bento:
    """A bento of the service (serving/bentofile.yaml) with the model packed in; the service finds it
    through the bento argument `bento_model`."""
    import bentoml

    name, version = model_tag.split(":")
    return bentoml.bentos.build_bentofile(
        str(BENTOFILE),
        build_ctx=str(PROJECT_ROOT),
        labels={"model": name, "model_version": version.lstrip("v")},
        args={"bento_model": model_tag},
    )


class DeploymentRequest(BaseModel):
    """What the deployment pipeline asks a model deployer for. A deployer that runs the service on this
    machine serves the bento on host:port; one that runs it elsewhere serves the registered version and
    uses neither."""

    model_name: str
    model_version: str  # the registered version's number
    bento_tag: str
    bento_path: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    pipeline_name: str
    step_name: str  # a redeploy from the same pipeline step replaces the service it deployed before

    @classmethod
    def for_bento(cls, bento: Bento, port: int, pipeline_name: str, step_name: str) -> DeploymentRequest:
        """The request for the model version packed into `bento` (build_bento labels it)."""
        labels = bento.info.labels
        return cls(
            model_name=labels["model"],
            model_version=labels["model_version"],
            bento_tag=str(bento.tag),
            bento_path=str(bento.path),
            port=port,
            pipeline_name=pipeline_name,
            step_name=step_name,
        )


def service_url(service: BaseDeploymentService) -> str:
    """Where the service answers (/predict, /v2/... below it): its prediction URL, which every supported
    deployer's service sets to the service's root, as ZenML's BentoML services do."""
    url = service.prediction_url
    if not url:
        status = service.status.last_error or service.status.state.value
        raise DeploymentError(f"the service {service.config.service_name or service.uuid} is not running: {status}")
    return url.rstrip("/")


def curl_command(url: str, example: dict[str, Any], token: str | None) -> str:
    auth = " -H 'Authorization: Bearer $HEADLINER_API_TOKEN'" if token else ""
    return f"curl -s {url}/predict -H 'Content-Type: application/json'{auth} -d {shlex.quote(json.dumps(example))}"


def _post(url: str, payload: Any, token: str | None, timeout: float = 10.0) -> tuple[int, Any, float]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:
        raise DeploymentError(f"smoke test: no answer from {url}: {exc}") from None
    return status, json.loads(body or b"null"), (time.perf_counter() - started) * 1000


class SmokeTestReport(HtmlReport):
    """What the deployed service answered to real requests, and how to call it; after a dry run (the
    deployer rendered the service and applied nothing), where it would answer."""

    url: str
    model_name: str
    model_version: str
    curl: str
    checks: list[Check]
    applied: bool = True

    def to_html(self) -> str:
        what = f"{html.escape(self.model_name)} version {html.escape(self.model_version)}"
        served = (
            f"<p>{html.escape(self.url)} serves {what}</p>"
            if self.applied
            else f"<p>dry run: not applied; {what} would be at {html.escape(self.url)}</p>"
        )
        rows = [[c.name, "passed" if c.passed else "FAILED", c.detail] for c in self.checks]
        return html_page(
            "Deployment smoke test",
            [
                ("Service", served),
                ("Requests", html_table(["request", "result", "detail"], rows)),
                ("Try it", f"<pre>{html.escape(self.curl)}</pre>"),
            ],
        )

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {
            "url": self.url,
            "model_version": self.model_version,
            "checks_passed": sum(c.passed for c in self.checks),
            "applied": "yes" if self.applied else "dry run: not applied",
        }


def _predict_check(status: int, body: Any, ms: float, predictor: OnnxPredictor) -> Check:
    """POST /predict answered the deployed version with a ranked top-k or a finite forecast."""
    first = ((body or {}).get("predictions") or [{}])[0] if status == 200 else {}
    served = (body or {}).get("model_version")
    if predictor.is_classification:
        top = first.get("top", [])
        answered, answer = bool(top), "top: " + ", ".join(f"{t['name']} {t['probability']:.3f}" for t in top)
    else:
        value = first.get("prediction")
        answered = isinstance(value, int | float) and math.isfinite(value)
        answer = f"answer: {first.get('answer')}"
    return Check(
        name="POST /predict",
        passed=status == 200 and answered and served == predictor.model_version,
        detail=f"HTTP {status} in {ms:.0f} ms, version {served}, {answer}",
    )


def _v2_check(status: int, body: Any, ms: float, predictor: OnnxPredictor) -> Check:
    """The Open Inference Protocol answer: probabilities summing to 1, or one FP32 [1, 1] forecast."""
    outputs = (body or {}).get("outputs", []) if status == 200 else []
    data = outputs[0]["data"] if outputs else []
    if predictor.is_classification:
        passed = abs(sum(data) - 1) < 1e-3
        answer = f"{len(data)} probabilities summing to {sum(data):.4f}"
    else:
        shape, datatype = (outputs[0].get("shape"), outputs[0].get("datatype")) if outputs else (None, None)
        passed = shape == [1, 1] and datatype == "FP32" and all(math.isfinite(value) for value in data)
        answer = f"{outputs[0].get('name') if outputs else 'no output'} {datatype} {shape}: {data}"
    return Check(
        name=f"POST /v2/models/{predictor.model_name}/infer",
        passed=status == 200 and passed,
        detail=f"HTTP {status} in {ms:.0f} ms, {answer}",
    )


def smoke_test(url: str, predictor: OnnxPredictor, token: str | None) -> SmokeTestReport:
    """One friendly and one Open Inference Protocol request with the model's example input; raises
    DeploymentError when either is wrong or the service serves another version than `predictor`'s."""
    example = example_inputs(predictor.feature_schema)
    checks = [_predict_check(*_post(f"{url}/predict", example, token), predictor)]
    v2_request = {"inputs": [{"name": n, "shape": [1, 1], "datatype": "FP32", "data": [v]} for n, v in example.items()]}
    checks.append(_v2_check(*_post(f"{url}/v2/models/{predictor.model_name}/infer", v2_request, token), predictor))
    report = SmokeTestReport(
        url=url,
        model_name=predictor.model_name,
        model_version=predictor.model_version,
        curl=curl_command(url, example, token),
        checks=checks,
    )
    failed = [c for c in checks if not c.passed]
    if failed:
        raise DeploymentError("smoke test failed: " + "; ".join(f"{c.name}: {c.detail}" for c in failed))
    return report


def smoke_test_deployment(
    service: BaseDeploymentService, predictor: OnnxPredictor, token: str | None
) -> SmokeTestReport:
    """smoke_test at the service's URL. A service its deployer only rendered (`dry_run` in its config)
    gets no request: the report says so, and where it would answer."""
    url = service_url(service)
    if getattr(service.config, "dry_run", False):
        curl = curl_command(url, example_inputs(predictor.feature_schema), token)
        return SmokeTestReport(
            url=url,
            model_name=predictor.model_name,
            model_version=predictor.model_version,
            curl=curl,
            checks=[],
            applied=False,
        )
    return smoke_test(url, predictor, token)
