"""Rollouts end to end on the real BentoML service of `python run.py serve --stage production`, with wine
versions registered and promoted in the session's store: `rollout set --canary` and `--shadow` reach the
running service, each answer is the named version's own prediction, a promotion swaps production in the
running service, `rollout rollback` sends everything back to production, the inference log records the
variants, and `rollout report` counts them."""

import re
import subprocess
import time

import numpy as np
import onnx
import pytest

from headliner.governance import promotion as governance
from headliner.labels import Artifact, Step
from headliner.model.onnx_packaging import OnnxPredictor
from headliner.serving.inference_log import read_inference_log
from tests.helpers.cli import run_cli
from tests.helpers.models import packaged_linear_model
from tests.helpers.payloads import WINE
from tests.helpers.ports import refused_url
from tests.helpers.service import launch_wine_production

MODEL = "wine"


@pytest.fixture(scope="module")
def wine_versions(wine_training, wine_spec):
    """Two new wine versions, each with its own ONNX model (fitted on different rows, so they disagree on
    some wines) carrying its registry number; the first promoted to production, the second to staging."""
    from zenml import save_artifact
    from zenml.client import Client
    from zenml.model.utils import link_artifact_version_to_model_version

    client = Client()
    source = wine_training[0].steps[Step.REGISTER_MODEL].model_version
    numbers, files = [], {}
    for rows in (None, 60):
        version = client.create_model_version(MODEL)
        data = packaged_linear_model(wine_spec, rows=rows, version=str(version.number))
        link_artifact_version_to_model_version(
            save_artifact(onnx.load_from_string(data), name=Artifact.ONNX_MODEL), version
        )
        for name in (Artifact.TEST_SPLIT, Artifact.EVALUATION_REPORT):
            link_artifact_version_to_model_version(client.get_artifact_version(source.get_artifact(name).id), version)
        numbers.append(version.number)
        files[str(version.number)] = data
    production, candidate = numbers
    for number, stage in ((production, "staging"), (production, "production"), (candidate, "staging")):
        request = governance.request_promotion(MODEL, number, stage, "rollout test", "alice")
        governance.approve(request.id, "bob", override="rollout test: models are compared by the rollout")
    return str(production), str(candidate), files


@pytest.fixture(scope="module")
def rollout_service(wine_versions, isolated_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("rollout")
    running = launch_wine_production(isolated_env, folder)
    try:
        yield running
    finally:
        running.stop()


def _rollout(service, *args) -> subprocess.CompletedProcess:
    return run_cli(["rollout", *args, "--config", "configs/use_cases/wine.yaml", "--url", service.url], service.env)


def _wines(n: int) -> list[dict]:
    rng = np.random.default_rng(5)
    return [{name: round(value * float(rng.uniform(0.8, 1.2)), 3) for name, value in WINE.items()} for _ in range(n)]


def _predict(service, wines) -> list[tuple[str, str, list[str]]]:
    """(version, request id, top codes) per wine, one request each."""
    answers = []
    for wine in wines:
        response = service.client.post("/predict", json=wine)
        assert response.status_code == 200, response.text
        body = response.json()
        assert response.headers["x-model-version"] == body["model_version"]
        answers.append((body["model_version"], body["request_id"], [c["code"] for c in body["predictions"][0]["top"]]))
    return answers


def _top(data: bytes, wines: list[dict]) -> list[list[str]]:
    """The version's top codes for each wine, scored alone as a one-wine request is (ONNX Runtime's last
    digits depend on the batch a row is scored in)."""
    predictor = OnnxPredictor(data)
    tops = []
    for wine in wines:
        row = np.array([[wine[name] for name in predictor.feature_names]], dtype=np.float64)
        order, _ = predictor.top_classes(predictor.probabilities(row))
        tops.append(np.asarray(predictor.classes, dtype=object)[order][0].tolist())
    return tops


def test_canary_shadow_promotion_and_rollback_on_the_running_service(rollout_service, wine_versions):
    service = rollout_service
    production, candidate, files = wine_versions
    wines = _wines(300)
    expected = {version: _top(data, wines) for version, data in files.items()}
    assert expected[production] != expected[candidate]
    assert service.client.get("/rollout").json()["production_version"] == production

    canary = _rollout(service, "set", "--canary", "50", "--reason", "try it", "--as", "alice")
    assert canary.returncode == 0, canary.stdout + canary.stderr
    assert f"(production v{production}, candidate v{candidate}), set by alice: canary: 50% of requests" in canary.stdout
    assert f"Applied by the service at {service.url}: production v{production}, candidate v{candidate}" in canary.stdout
    answers = _predict(service, wines[:200])
    assert all(top == expected[version][i] for i, (version, _, top) in enumerate(answers))
    to_candidate = sum(version == candidate for version, _, _ in answers)
    assert 60 <= to_candidate <= 140  # 50% of 200

    shadow = _rollout(service, "set", "--shadow")
    assert shadow.returncode == 0 and "Applied by the service" in shadow.stdout, shadow.stdout + shadow.stderr
    shadowed = _predict(service, wines[200:250])
    assert {version for version, _, _ in shadowed} == {production}
    assert [top for _, _, top in shadowed] == expected[production][200:250]

    asked = run_cli(
        [
            "promote",
            "request",
            "--model",
            MODEL,
            "--version",
            candidate,
            "--to",
            "production",
            "--reason",
            "the canary went well",
            "--as",
            "alice",
        ],
        service.env,
    )
    assert asked.returncode == 0, asked.stderr
    approved = run_cli(
        ["promote", "approve", "--model", MODEL, "--version", candidate, "--override", "rollout test", "--as", "bob"],
        service.env,
    )
    assert approved.returncode == 0 and f"{MODEL} v{candidate} is now in production" in approved.stdout, approved.stderr
    for _ in range(100):  # the service polls the registry every 0.5 s
        if service.client.get("/rollout").json()["production_version"] == candidate:
            break
        time.sleep(0.1)
    promoted = _predict(service, wines[250:270])
    assert {version for version, _, _ in promoted} == {candidate}  # no candidate left: staging is empty

    back = _rollout(service, "rollback", "--reason", "done", "--as", "bob")
    assert back.returncode == 0 and f"production v{candidate}; off: production answers every request" in back.stdout
    status = _rollout(service, "status")
    assert re.search(
        r"in force\s+policy \d+ set .* by bob: off: production answers every request \(done\)", status.stdout
    ), status.stdout
    assert "earlier   policy" in status.stdout and f"Service at {service.url}: production v{candidate}" in status.stdout

    assert service.stop() == 0
    logged = read_inference_log(service.log_url)
    by_variant = logged.groupby(["variant", "model_version"]).size().to_dict()
    assert by_variant[("candidate", candidate)] == to_candidate
    assert by_variant[("production", production)] == 200 - to_candidate + 50
    assert by_variant[("shadow", candidate)] == 50
    assert by_variant[("production", candidate)] == 20
    shadow_ids = set(logged.loc[logged["variant"] == "shadow", "request_id"])
    assert shadow_ids == {request_id for _, request_id, _ in shadowed}

    report = run_cli(
        ["rollout", "report", "--config", "configs/use_cases/wine.yaml", "--inference-log", service.log_url],
        service.env,
    )
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    lines = report.stdout.splitlines()
    assert any(
        re.match(rf"\s+candidate\s+{candidate}\s+{to_candidate}\s+0\s+{to_candidate}\s", line) for line in lines
    ), report.stdout
    assert any(re.match(rf"\s+shadow\s+{candidate}\s+50\s+0\s+50\s", line) for line in lines), report.stdout
    from zenml.client import Client

    run = Client().get_pipeline_run(re.search(r"Run '(rollout_report-[^']+)' finished", report.stdout).group(1))
    artifact = run.steps[Step.REPORT_ROLLOUT].outputs[Artifact.ROLLOUT_REPORT][0]
    assert [v.type.value for v in artifact.visualizations] == ["html"]
    assert {(v.variant, v.version, v.requests) for v in artifact.load().variants} >= {("shadow", candidate, 50)}
    agreement = re.search(r"top-1 agreement of v(\d+) and v(\d+): ([\d.]+)% of ([\d,]+) songs", report.stdout)
    assert agreement, report.stdout
    assert agreement.group(1, 2) == (production, candidate) and float(agreement.group(3)) < 100.0


def test_rollout_commands_refuse_what_cannot_be_rolled_out(rollout_service, wine_versions, isolated_env):
    service = rollout_service
    archived, _, _ = wine_versions
    same = _rollout(service, "set", "--canary", "10", "--candidate", "production")
    assert same.returncode == 1 and "error: the candidate 'production' is version" in same.stderr
    unknown = _rollout(service, "set", "--ab", "10", "--candidate", "99")
    assert unknown.returncode == 1 and "error: model 'wine' has no version '99'" in unknown.stderr
    none = _rollout(service, "set", "--shadow", "--canary", "5")
    assert none.returncode == 2 and "give one of --canary PERCENT, --ab PERCENT or --shadow" in none.stderr
    neither = run_cli(["promote", "approve", "--model", MODEL], service.env)
    assert neither.returncode == 2 and "give REQUEST_ID, or --model and --version" in neither.stderr
    with refused_url() as closed:
        nobody = run_cli(
            [
                "rollout",
                "set",
                "--shadow",
                "--candidate",
                archived,
                "--config",
                "configs/use_cases/wine.yaml",
                "--url",
                closed,
            ],
            service.env,
        )
    assert nobody.returncode == 0 and "No service answers at" in nobody.stdout
