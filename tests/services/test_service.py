"""The real BentoML service (`bentoml serve serving.service:Headliner`) over real HTTP: it loads the
model from HEADLINER_MODEL_FILE, answers every endpoint with the model's own predictions, enforces
the bearer token, and on a graceful stop (Ctrl+C) writes every request it scored to the inference log.
One server process per test session: starting BentoML takes seconds."""

import numpy as np
import pytest

from headliner.model.onnx_packaging import PARITY_TOLERANCE, OnnxPredictor
from headliner.serving.inference_log import read_inference_log
from tests.helpers.payloads import SONG, SONG_ROW, v2_request
from tests.helpers.service import RunningService, bentoml_command

TOKEN = "service-test-token"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def service(jukebox_onnx_file, isolated_env, tmp_path_factory):
    folder = tmp_path_factory.mktemp("service")
    log_file = folder / "inference.sqlite"
    env = {key: value for key, value in isolated_env.items() if not key.startswith("HEADLINER_")}
    env.update(
        HEADLINER_MODEL_FILE=str(jukebox_onnx_file),
        HEADLINER_INFERENCE_LOG=str(log_file),
        HEADLINER_API_TOKEN=TOKEN,
        HEADLINER_LOG_FLUSH_SECONDS="60",  # only the shutdown flush writes rows
    )
    running = RunningService.launch(bentoml_command, env, folder, f"sqlite:///{log_file}", token=TOKEN)
    try:
        yield running
    finally:
        running.stop()


def top_of(predictor: OnnxPredictor, rows) -> list[list[str]]:
    _, probabilities = predictor.predict_matrix(np.array(rows, dtype=np.float64))
    return [[predictor.classes[i] for i in np.argsort(-row)[:5]] for row in probabilities]


def test_the_service_answers_every_endpoint_over_http(service, predictor, jukebox_spec):
    client = service.client
    # health stays open; everything else needs the token
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/livez").status_code == 200 and client.get("/readyz").status_code == 200  # BentoML's own
    assert client.get("/v2").status_code == 401
    assert client.get("/v2", headers=AUTHORIZED).json() == {"name": "headliner", "version": "2", "extensions": []}
    metadata = client.get("/v2/models/jukebox", headers=AUTHORIZED).json()
    assert (metadata["name"], metadata["versions"]) == ("jukebox", ["1"])
    assert [tensor["name"] for tensor in metadata["inputs"]] == list(SONG)
    assert client.get("/v2/models/jukebox/versions/1", headers=AUTHORIZED).json() == metadata
    assert client.get("/v2/models/jukebox/ready", headers=AUTHORIZED).json() == {"name": "jukebox", "ready": True}

    refused = client.post("/predict", json=SONG, headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert client.post("/v2/models/jukebox/infer", json=v2_request()).status_code == 401

    one = service.score("predict", "/predict", json=SONG)
    assert one.status_code == 200
    body = one.json()
    assert (body["model_name"], body["model_version"], body["request_id"]) == (
        "jukebox",
        "1",
        one.headers["x-request-id"],
    )
    assert [entry["code"] for entry in body["predictions"][0]["top"]] == top_of(predictor, [SONG_ROW])[0]
    assert all(entry["code"] in jukebox_spec.target.classes for entry in body["predictions"][0]["top"])

    songs = [SONG, {**SONG, "tempo": 70.0, "is_explicit": False}]
    many = service.score("predict", "/predict", json=songs, headers={"X-Request-ID": "batch-of-two"})
    assert many.status_code == 200 and many.json()["request_id"] == "batch-of-two"
    rows = [SONG_ROW, [*SONG_ROW[:12], 70.0]]
    rows[1][0] = 0.0
    assert [[entry["code"] for entry in p["top"]] for p in many.json()["predictions"]] == top_of(predictor, rows)

    workshop = service.score("v2", "/v2/models/jukebox/infer", json={**v2_request(), "id": "workshop"})
    assert workshop.status_code == 200
    answer = workshop.json()
    assert answer["id"] == "workshop"
    probabilities, label, classes = answer["outputs"]
    labels, expected = predictor.predict_matrix(np.array([SONG_ROW]))
    assert probabilities["shape"] == [1, 72] and sum(probabilities["data"]) == pytest.approx(1.0, abs=1e-5)
    # another process's ONNX Runtime: the model contract's tolerance, not the last bit
    np.testing.assert_allclose(
        np.array(probabilities["data"], dtype=np.float32), expected[0], rtol=0, atol=PARITY_TOLERANCE
    )
    assert label["data"] == [labels[0]] and classes["data"] == jukebox_spec.target.classes

    versioned = service.score("v2", "/v2/models/jukebox/versions/1/infer", json=v2_request(rows=3))
    assert versioned.status_code == 200 and versioned.json()["outputs"][0]["shape"] == [3, 72]

    bad = service.score("predict", "/predict", json={**SONG, "tempo": 300})
    assert bad.status_code == 422
    assert bad.json() == {"error": "song.tempo: expected a number in [30, 250] BPM, got 300", "field": "song.tempo"}
    bad_v2 = service.score(
        "v2",
        "/v2/models/jukebox/infer",
        json={"inputs": [{"name": "tempo", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
    )
    assert bad_v2.status_code == 400 and bad_v2.json()["field"] == "inputs[0].datatype"
    assert client.get("/predict", headers=AUTHORIZED).status_code == 405
    assert client.get("/v2/models/wine", headers=AUTHORIZED).status_code == 404

    metrics = client.get("/metrics", headers=AUTHORIZED)
    assert metrics.status_code == 200 and client.get("/metrics").status_code == 401
    lines = metrics.text.splitlines()
    assert 'headliner_requests_total{endpoint="predict",status="200"} 2' in lines
    assert 'headliner_requests_total{endpoint="predict",status="422"} 1' in lines
    assert 'headliner_requests_total{endpoint="v2",status="200"} 2' in lines
    assert 'headliner_requests_total{endpoint="v2",status="400"} 1' in lines
    assert 'headliner_rows_scored_total{endpoint="v2"} 4' in lines
    assert "headliner_inference_log_rows_written_total 0" in lines  # flushes every 60 s: nothing yet
    assert f"headliner_inference_log_rows_pending {len(service.scored)}" in lines
    assert read_inference_log(service.log_url).empty


def test_a_graceful_stop_writes_every_scored_request_to_the_inference_log(service):
    """Runs after the endpoint test in the same server; alone, it scores its own two requests."""
    assert service.score("predict", "/predict", json=SONG).status_code == 200
    assert service.score("v2", "/v2/models/jukebox/infer", json={"inputs": []}).status_code == 400
    assert service.client.post("/predict", json=SONG).status_code == 401  # refused before the app: not logged

    returncode = service.stop()
    assert service.process.poll() is not None
    assert returncode == 0, service.text()[-4000:]
    output = service.text()
    assert "Running cleanup hook: close_inference_log" in output
    assert f"inference log closed: {len(service.scored)} rows written" in output

    frame = read_inference_log(service.log_url)
    assert len(frame) == len(service.scored)
    assert list(zip(frame["endpoint"], frame["status"], frame["request_id"], strict=True)) == service.scored
    assert (frame["model_name"] == "jukebox").all() and (frame["model_version"] == "1").all()
    assert frame.loc[frame["status"] != 200, "inputs"].isna().all()
    assert frame.loc[frame["status"] == 200, "rows"].min() >= 1
