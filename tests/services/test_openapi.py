"""The service's contract over real HTTP: `/docs.json` is valid OpenAPI 3.1 listing every endpoint, schemathesis
fuzzes the real BentoML service from it (auth on and off) with 0 failures, a prediction's request id takes
feedback that the metrics count, and `/docs` renders offline in Chromium."""

import time

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate

from headliner.serving.app import LIVE_PATH, MODEL_ROUTES, ROUTES
from tests.helpers.browser import chromium
from tests.helpers.payloads import SONG
from tests.helpers.service import RunningService, bentoml_command

TOKEN = "openapi-test-token"
EXAMPLES_PER_OPERATION = 80  # per generation mode (valid and invalid data): over 1,000 cases a service


def start(model_file, isolated_env, folder, token: str | None) -> RunningService:
    env = {key: value for key, value in isolated_env.items() if not key.startswith("HEADLINER_")}
    env.update(
        HEADLINER_MODEL_FILE=str(model_file),
        HEADLINER_INFERENCE_LOG=str(folder / "inference.sqlite"),
        HEADLINER_LOG_FLUSH_SECONDS="1",
        HEADLINER_MAX_EXPLAIN="3",  # the fuzzer's /explain requests stay a few milliseconds each
    )
    if token:
        env["HEADLINER_API_TOKEN"] = token
    return RunningService.launch(bentoml_command, env, folder, f"sqlite:///{folder / 'inference.sqlite'}", token=token)


@pytest.fixture(scope="module")
def open_service(jukebox_onnx_file, isolated_env, tmp_path_factory):
    service = start(jukebox_onnx_file, isolated_env, tmp_path_factory.mktemp("openapi-open"), None)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def token_service(jukebox_onnx_file, isolated_env, tmp_path_factory):
    service = start(jukebox_onnx_file, isolated_env, tmp_path_factory.mktemp("openapi-token"), TOKEN)
    yield service
    service.stop()


def test_docs_json_is_valid_openapi_3_1_listing_every_endpoint(token_service, open_service, predictor):
    document = token_service.client.get("/docs.json").json()  # open without the token, like the page
    validate(document)
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    model_paths = {"/v2/models/{model}" + "".join(f"/{part}" for part in parts) for parts in MODEL_ROUTES}
    versioned = {path.replace("{model}", "{model}/versions/{version}") for path in model_paths}
    assert set(paths) == {*ROUTES, LIVE_PATH, *model_paths, *versioned}
    assert document["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert document["security"] == [{"bearer": []}]
    assert paths["/"]["get"]["security"] == [] and "401" not in paths["/"]["get"]["responses"]
    predict = paths["/predict"]["post"]
    assert set(predict["responses"]) == {"200", "400", "401", "413", "422", "500", "503"}
    assert predict["requestBody"]["content"]["application/json"]["example"]["tempo"] == 96  # the reggaeton preset
    song = document["components"]["schemas"]["Song"]
    assert song["additionalProperties"] is False and set(song["required"]) == set(SONG)
    assert song["properties"]["tempo"]["minimum"] == 30 and song["properties"]["tempo"]["maximum"] == 250
    label = document["components"]["schemas"]["FeedbackLabel"]["properties"]["label"]
    assert label["enum"] == predictor.classes
    tensor = document["components"]["schemas"]["RequestInput"]
    assert {"name", "shape", "datatype", "data", "parameters"} <= set(tensor["properties"])
    explain = paths["/explain"]["post"]
    assert set(explain["responses"]) == {"200", "400", "401", "409", "413", "422", "500", "503"}
    assert explain["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ExplainResponse")
    assert paths["/model-card"]["get"]["security"] == []  # open, like the page that links it

    plain = open_service.client.get("/docs.json").json()
    validate(plain)
    assert "security" not in plain and "securitySchemes" not in plain["components"]
    assert "401" not in plain["paths"]["/predict"]["post"]["responses"]


def fuzz(service: RunningService, headers: dict[str, str]) -> tuple[int, int, list[str]]:
    """schemathesis on every operation of the service's /docs.json, valid and invalid data: (cases,
    operations, failures)."""
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]
    schema = schemathesis.openapi.from_url(f"{service.url}/docs.json")
    session = requests.Session()
    session.trust_env = False
    cases, failures, operations = 0, [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                nonlocal cases
                cases += 1
                try:
                    case.call_and_validate(base_url=service.url, session=session, headers=headers, checks=checks)
                except Exception as failure:  # every failure is listed, not only the first
                    label = f"{case.operation.label} ({case.meta.generation.mode.value})"
                    failures.append(f"{label}: {str(failure)[:1500]}")

            try:
                run()
            except Unsatisfiable:  # a GET without parameters has no invalid data
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    return cases, operations, failures


@pytest.mark.parametrize("auth", ["token", "no-token"])
def test_schemathesis_finds_no_failure_with_auth_on_and_off(auth, token_service, open_service):
    service, headers = (token_service, {"Authorization": f"Bearer {TOKEN}"}) if auth == "token" else (open_service, {})
    started = time.monotonic()
    cases, operations, failures = fuzz(service, headers)
    print(
        f"schemathesis, auth {auth}: {cases} cases over {operations} operations in {time.monotonic() - started:.1f} s"
    )
    assert failures == []
    assert operations == 20 and cases >= 1000  # every operation but /docs.json, which schemathesis reads


def test_a_prediction_takes_feedback_by_its_request_id_and_the_metrics_count_it(open_service):
    client = open_service.client
    before = client.get("/metrics").text.splitlines()
    predicted = client.post("/predict", json=[SONG, SONG])
    assert predicted.status_code == 200
    request_id = predicted.json()["request_id"]
    top = predicted.json()["predictions"][1]["top"][0]["code"]
    stored = client.post("/feedback", json=[{"request_id": request_id, "label": top, "item": 1}])
    assert stored.json() == {"accepted": 1, "request_id": stored.headers["x-request-id"]}
    after = client.get("/metrics").text.splitlines()

    def count(lines: list[str], endpoint: str) -> int:
        prefix = f'headliner_requests_total{{endpoint="{endpoint}",status="200"}} '
        return next((int(line.removeprefix(prefix)) for line in lines if line.startswith(prefix)), 0)

    assert count(after, "predict") == count(before, "predict") + 1
    assert count(after, "feedback") == count(before, "feedback") + 1
    missing = client.get("/model-card")  # a model file served without HEADLINER_MODEL_CARD_FILE
    assert missing.status_code == 404 and "python run.py model-card jukebox --version 1" in missing.json()["error"]


def test_docs_renders_offline_in_chromium_and_lists_the_paths(token_service):
    origin = token_service.url
    elsewhere: list[str] = []
    with chromium() as browser:
        page = browser.new_page()
        page.on("request", lambda request: None if request.url.startswith(origin) else elsewhere.append(request.url))
        page.goto(f"{origin}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=15_000)
        shown = set(page.locator(".opblock-summary-path").all_inner_texts())
        assert page.locator("button.authorize").is_visible()  # the bearer scheme
        browser.close()
    assert {"/predict", "/feedback", "/v2/models/{model}/infer", "/metrics"} <= {path.strip() for path in shown}
    assert elsewhere == []
