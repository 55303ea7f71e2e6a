"""The inference ASGI app in-process (httpx over ASGI, no sockets): answers equal the ONNX model's own
predictions on both protocols, every bad request is a 4xx naming the field and leaves the app serving,
auth guards everything but health and the page, a CSV file sent to /batch is scored by the batch path,
and the metrics and the inference log count what was served."""

import asyncio
import io
import json
import re

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from headliner.labels import class_display_names
from headliner.model.onnx_packaging import PARITY_TOLERANCE, OnnxPredictor
from headliner.serving.app import InferenceApp
from headliner.serving.batch_scoring import prediction_columns, score_frame
from headliner.serving.inference_log import read_inference_log
from headliner.serving.server import ModelServer
from tests.helpers.payloads import SONG, SONG_ROW, WINE, v2_request
from tests.helpers.serving import Client, Served

TOKEN = "s3cret-token"


SERVER_OPTIONS = {"max_rows": 5, "max_body_bytes": 64 * 1024, "max_upload_rows": 4}


@pytest.fixture
def served(predictor, tmp_path):
    """An app of the test's own, for tests that read its metrics or inference log."""
    served = Served(predictor, tmp_path, **SERVER_OPTIONS)
    yield served
    served.close()


@pytest.fixture(scope="module")
def one_app(predictor, tmp_path_factory):
    """One app for the tests that look only at its answers: whatever a test sent, it serves the next."""
    served = Served(predictor, tmp_path_factory.mktemp("one_app"), **SERVER_OPTIONS)
    yield served
    assert served.close() == 0


def song(**changes) -> dict:
    return {**SONG, **changes}


def expected_top(predictor: OnnxPredictor, rows, k: int = 5) -> list[list[tuple[str, float]]]:
    """The top classes and rounded probabilities straight from the ONNX model."""
    _, probabilities = predictor.predict_matrix(np.array(rows, dtype=np.float64))
    result = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")[:k]
        result.append([(predictor.classes[i], round(float(row[i]), 6)) for i in order])
    return result


def assert_good_predict(client: Client, **kwargs) -> dict:
    response = client.post("/predict", json=SONG, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


# -- answers equal the model's -----------------------------------------------------------------------


def test_predict_one_song_answers_the_models_top_5_with_country_names(one_app, predictor, jukebox_spec):
    response = one_app.client.post("/predict", json=SONG)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"model_name", "model_version", "request_id", "predictions"}
    assert (body["model_name"], body["model_version"]) == ("jukebox", "1")
    assert body["request_id"] == response.headers["x-request-id"] and re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    [prediction] = body["predictions"]
    top = prediction["top"]
    assert len(top) == 5
    names = dict(zip(jukebox_spec.target.classes, class_display_names(jukebox_spec), strict=True))
    assert names["US"] == "United States" and names["GB"] == "United Kingdom"
    for entry in top:
        assert set(entry) == {"code", "name", "probability"}
        assert entry["code"] in jukebox_spec.target.classes
        assert entry["name"] == names[entry["code"]]
    probabilities = [entry["probability"] for entry in top]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[-1] <= probabilities[0] < 1
    assert [(entry["code"], entry["probability"]) for entry in top] == expected_top(predictor, [SONG_ROW])[0]


def test_predict_many_songs_answers_each_in_order_and_echoes_the_clients_request_id(served, predictor):
    songs = [
        song(),
        song(tempo=75.0, energy=0.2, is_explicit=False),
        song(key=11, mode=0, loudness=-20.0, danceability=0.3),
    ]
    response = served.client.post("/predict", json=songs, headers={"X-Request-ID": "client-id-42"})
    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"] == "client-id-42"
    rows = [[float(value) for value in s.values()] for s in songs]
    answered = [[(entry["code"], entry["probability"]) for entry in p["top"]] for p in body["predictions"]]
    assert answered == expected_top(predictor, rows)
    assert answered[0] != answered[1]  # different songs, different answers
    assert served.close() == 0
    [logged] = read_inference_log(served.url).itertuples()
    assert (logged.request_id, logged.rows, logged.status) == ("client-id-42", 3, 200)


def test_a_request_over_256_rows_is_scored_off_the_event_loop_with_the_same_answers(predictor, tmp_path):
    served = Served(predictor, tmp_path, max_rows=1000)
    try:
        rng = np.random.default_rng(7)
        songs = [
            song(tempo=float(t), energy=float(e))
            for t, e in zip(rng.uniform(40, 240, 300), rng.uniform(0, 1, 300), strict=True)
        ]
        response = served.client.post("/predict", json=songs)
        assert response.status_code == 200
        answered = [
            [(entry["code"], entry["probability"]) for entry in p["top"]] for p in response.json()["predictions"]
        ]
        assert answered == expected_top(predictor, [[float(v) for v in s.values()] for s in songs])
    finally:
        served.close()


def test_v2_request_like_the_workshop_notebook_answers_the_models_probabilities(one_app, predictor, jukebox_spec):
    request = v2_request()  # 13 inputs, one per feature, shape [1, 1], FP32
    assert len(request["inputs"]) == 13 and {(t["datatype"], tuple(t["shape"])) for t in request["inputs"]} == {
        ("FP32", (1, 1))
    }
    request["id"] = "notebook-1"
    response = one_app.client.post("/v2/models/jukebox/infer", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("jukebox", "1", "notebook-1")
    probabilities, label, classes = body["outputs"]
    assert (probabilities["name"], probabilities["datatype"], probabilities["shape"]) == (
        "probabilities",
        "FP32",
        [1, 72],
    )
    assert len(probabilities["data"]) == 72
    assert sum(probabilities["data"]) == pytest.approx(1.0, abs=1e-5)
    labels, expected = predictor.predict_matrix(np.array([SONG_ROW]))
    np.testing.assert_array_equal(np.array(probabilities["data"], dtype=np.float32), expected[0])
    assert (label["name"], label["datatype"], label["shape"], label["data"]) == ("label", "BYTES", [1], [labels[0]])
    assert label["data"][0] == predictor.classes[int(np.argmax(expected[0]))]
    assert (classes["name"], classes["datatype"], classes["shape"]) == ("classes", "BYTES", [72])
    assert classes["data"] == jukebox_spec.target.classes


def test_v2_single_input_batch_and_output_selection(one_app, predictor):
    rows = [SONG_ROW, [*SONG_ROW[:12], 70.0]]
    request = {
        "inputs": [{"name": "songs", "shape": [2, 13], "datatype": "FP64", "data": rows}],
        "outputs": [{"name": "label"}, {"name": "probabilities"}],
    }
    body = one_app.client.post("/v2/models/jukebox/versions/1/infer", json=request).json()
    assert [output["name"] for output in body["outputs"]] == ["label", "probabilities"]
    labels, expected = predictor.predict_matrix(np.array(rows))
    assert body["outputs"][0]["data"] == labels.tolist()
    assert body["outputs"][1]["shape"] == [2, 72]
    np.testing.assert_array_equal(np.array(body["outputs"][1]["data"], dtype=np.float32).reshape(2, 72), expected)
    assert re.fullmatch(r"[0-9a-f]{32}", body["id"])  # no id in the request: the generated one


def test_metadata_and_health_endpoints(one_app, jukebox_spec):
    client = one_app.client
    assert client.get("/v2").json() == {"name": "headliner", "version": "2", "extensions": []}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/jukebox/ready").json() == {"name": "jukebox", "ready": True}
    assert client.get("/v2/models/jukebox/versions/1/ready").json() == {"name": "jukebox", "ready": True}
    metadata = client.get("/v2/models/jukebox").json()
    assert client.get("/v2/models/jukebox/versions/1").json() == metadata
    assert (metadata["name"], metadata["versions"], metadata["platform"]) == ("jukebox", ["1"], "onnxruntime_onnx")
    assert [tensor["name"] for tensor in metadata["inputs"]] == list(SONG)
    assert {(tensor["datatype"], tuple(tensor["shape"])) for tensor in metadata["inputs"]} == {("FP32", (-1, 1))}
    assert [(o["name"], o["shape"]) for o in metadata["outputs"]] == [
        ("probabilities", [-1, 72]),
        ("label", [-1]),
        ("classes", [72]),
    ]
    parameters = metadata["parameters"]
    assert parameters["class_labels"] == jukebox_spec.target.classes
    assert parameters["class_names"] == class_display_names(jukebox_spec)
    assert (parameters["top_k"], parameters["single_input_shape"]) == (5, [-1, 13])
    assert [entry["name"] for entry in parameters["feature_schema"]] == list(SONG)


# -- bad requests ------------------------------------------------------------------------------------


def _without(name: str) -> dict:
    return {key: value for key, value in SONG.items() if key != name}


def _renamed(old: str, new: str) -> dict:
    return {new if key == old else key: value for key, value in SONG.items()}


def _v2(change) -> bytes:
    request = v2_request()
    change(request["inputs"])
    return orjson.dumps(request)


def _dumps(payload) -> bytes:
    return orjson.dumps(payload)


_TEMPO_NAN = orjson.dumps(SONG).replace(b'"tempo":121.5', b'"tempo":NaN')
_TEMPO_INFINITY = orjson.dumps(SONG).replace(b'"tempo":121.5', b'"tempo":Infinity')
assert b"NaN" in _TEMPO_NAN and b"Infinity" in _TEMPO_INFINITY

# (endpoint, body, status, field, words the message contains)
BAD_REQUESTS = {
    "missing field": ("predict", _dumps(_without("tempo")), 422, "song.tempo", "missing field 'tempo'"),
    "extra field": ("predict", _dumps(song(genre="pop")), 422, "song.genre", "unknown field 'genre'"),
    "misspelled field": ("predict", _dumps(_renamed("tempo", "tempoo")), 422, "song.tempoo", "did you mean 'tempo'"),
    "string value": ("predict", _dumps(song(tempo="120")), 422, "song.tempo", "got the string '120'"),
    "null value": ("predict", _dumps(song(energy=None)), 422, "song.energy", "got null"),
    "list value": ("predict", _dumps(song(energy=[0.5])), 422, "song.energy", "got list"),
    "bool for a number": ("predict", _dumps(song(tempo=True)), 422, "song.tempo", "got bool True"),
    "out of range": ("predict", _dumps(song(tempo=300)), 422, "song.tempo", "[30, 250] BPM, got 300"),
    "non-integer key": ("predict", _dumps(song(key=5.5)), 422, "song.key", "an integer in [0, 11], got 5.5"),
    "NaN": ("predict", _TEMPO_NAN, 422, "song.tempo", "got nan"),
    "Infinity": ("predict", _TEMPO_INFINITY, 422, "song.tempo", "got inf"),
    "empty body": ("predict", b"", 400, None, "empty request body"),
    "invalid JSON": ("predict", b'{"tempo": 12', 400, None, "invalid JSON"),
    "non-object song in a list": ("predict", _dumps([SONG, "song"]), 422, "songs[1]", "expected an object of features"),
    "bad song in a list": ("predict", _dumps([SONG, song(valence=2)]), 422, "songs[1].valence", "[0, 1], got 2"),
    "empty list": ("predict", b"[]", 422, None, "empty"),
    "over max rows": ("predict", _dumps([SONG] * 6), 422, None, "6 songs in one request; at most 5"),
    "v2 per-feature shape [1, 2]": (
        "v2",
        _v2(lambda inputs: inputs[3].update(shape=[1, 2], data=[0.5, 0.5])),
        400,
        "inputs[3].shape",
        "'energy': shape must be",
    ),
    "v2 single input [1, 12]": (
        "v2",
        _dumps({"inputs": [{"name": "x", "shape": [1, 12], "datatype": "FP32", "data": SONG_ROW[:12]}]}),
        400,
        "inputs[0].shape",
        "shape [N, 13], got [1, 12]",
    ),
    "v2 BYTES datatype": (
        "v2",
        _v2(lambda inputs: inputs[12].update(datatype="BYTES")),
        400,
        "inputs[12].datatype",
        "'BYTES' is not numeric",
    ),
    "v2 misspelled input": (
        "v2",
        _v2(lambda inputs: inputs[12].update(name="tempoo")),
        400,
        "inputs.tempoo",
        "did you mean 'tempo'",
    ),
    "v2 unknown input": (
        "v2",
        _v2(lambda inputs: inputs.append({"name": "genre", "shape": [1, 1], "datatype": "FP32", "data": [1]})),
        400,
        "inputs.genre",
        "unknown input 'genre'",
    ),
    "v2 duplicate input": (
        "v2",
        _v2(lambda inputs: inputs[12].update(name="key")),
        400,
        "inputs",
        "input 'key' is given twice",
    ),
    "v2 missing inputs": ("v2", _dumps({"id": "x"}), 400, "inputs", "'inputs' must be a non-empty list"),
    "v2 data length": (
        "v2",
        _v2(lambda inputs: inputs[5].update(data=[-5.5, -6.0])),
        400,
        "inputs[5].data",
        "needs 1 values, data has 2",
    ),
    "v2 string data": (
        "v2",
        _v2(lambda inputs: inputs[12].update(data=["120"])),
        400,
        "inputs[12].data",
        "'tempo': data must hold only numbers",
    ),
    "v2 rows differ": (
        "v2",
        _v2(lambda inputs: inputs[12].update(shape=[2, 1], data=[120.0, 130.0])),
        400,
        "inputs[12].shape",
        "2 rows, but the first input has 1",
    ),
    "v2 out of range": (
        "v2",
        _v2(lambda inputs: inputs[12].update(data=[300.0])),
        422,
        "tempo",
        "input 'tempo', row 0",
    ),
    "v2 unknown output": (
        "v2",
        _dumps({**v2_request(), "outputs": [{"name": "logits"}]}),
        400,
        "outputs",
        "unknown output 'logits'",
    ),
    "v2 over max rows": ("v2", _dumps(v2_request(rows=6)), 422, "inputs", "6 rows in one request; at most 5"),
}
PATHS = {"predict": "/predict", "v2": "/v2/models/jukebox/infer"}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_naming_the_field_and_the_app_keeps_serving(one_app, case):
    endpoint, body, status, field, words = BAD_REQUESTS[case]
    response = one_app.client.post(PATHS[endpoint], content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    answer = response.json()
    assert words in answer["error"]
    assert answer.get("field") == field
    assert response.headers["x-request-id"]
    assert_good_predict(one_app.client)
    assert one_app.client.post(PATHS["v2"], json=v2_request()).status_code == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_a_400(one_app, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = one_app.client.post("/predict", content=orjson.dumps(SONG), headers=headers)
    assert response.status_code == 400
    assert response.json() == {
        "error": f"Content-Type must be application/json, got {content_type or 'none'}",
        "field": "Content-Type",
    }
    assert_good_predict(one_app.client)
    ok = one_app.client.post(
        "/predict", content=orjson.dumps(SONG), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ok.status_code == 200


def test_body_over_max_body_bytes_is_a_413(one_app):
    songs = [SONG] * 400  # about 100 kB, over the 64 KiB limit (and over max_rows, never parsed)
    response = one_app.client.post("/predict", json=songs)
    assert response.status_code == 413
    assert response.json() == {"error": "request body over 65,536 bytes"}
    assert_good_predict(one_app.client)


@pytest.mark.parametrize("chunks", [1, 3], ids=["one message", "streamed in chunks"])
def test_body_over_max_body_bytes_is_a_413_however_it_arrives(predictor, tmp_path, chunks):
    """Servers deliver a body in one message or several; the limit holds for both (raw ASGI calls)."""
    served = Served(predictor, tmp_path, max_body_bytes=2048)
    body = orjson.dumps([SONG] * 12)
    assert len(body) > 2048
    size = -(-len(body) // chunks)
    messages = [
        {"type": "http.request", "body": body[i : i + size], "more_body": i + size < len(body)}
        for i in range(0, len(body), size)
    ]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"content-type", b"application/json")]}
    asyncio.run(served.app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert orjson.loads(sent[1]["body"]) == {"error": "request body over 2,048 bytes"}
    assert served.close() == 0
    assert read_inference_log(served.url)["status"].tolist() == [413]


def test_unknown_model_version_path_and_method_are_404_and_405(one_app):
    client = one_app.client
    cases = [
        ("POST", "/v2/models/wine/infer", 404, "unknown model 'wine'; this server serves 'jukebox'"),
        ("GET", "/v2/models/wine", 404, "unknown model 'wine'"),
        ("POST", "/v2/models/jukebox/versions/2/infer", 404, "unknown version '2' of 'jukebox'; served: 1"),
        ("GET", "/v2/models/jukebox/versions", 404, "unknown version ''"),
        ("GET", "/predict", 405, "method not allowed; use POST"),
        ("PUT", "/predict", 405, "method not allowed; use POST"),
        ("GET", "/v2/models/jukebox/infer", 405, "method not allowed; use POST"),
        ("POST", "/v2/models/jukebox", 405, "method not allowed; use GET"),
        ("GET", "/v2/models/jukebox/explain", 404, "no endpoint /v2/models/jukebox/explain"),
        ("GET", "/v2/models", 404, "no endpoint /v2/models"),
        ("GET", "/v2/repository/index", 404, "no endpoint"),
        ("POST", "/v1/models/jukebox:predict", 404, "no endpoint /v1/models/jukebox:predict"),
        ("POST", "/", 405, "method not allowed; use GET"),
        ("GET", "/batch", 405, "method not allowed; use POST"),
        ("GET", "/index.html", 404, "no endpoint /index.html; try GET / (the page)"),
    ]
    for method, path, status, words in cases:
        response = client.request(method, path, json=v2_request())
        assert response.status_code == status, (method, path, response.text)
        assert words in response.json()["error"], (method, path)
        assert_good_predict(client)


# -- the page and CSV files ---------------------------------------------------------------------------


def test_the_page_is_served_at_the_root_and_stays_open_when_a_token_guards_the_api(predictor, tmp_path):
    served = Served(predictor, tmp_path, token=TOKEN)
    client = served.client
    try:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"].startswith("default-src 'none'; script-src 'sha256-")
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<h1>The Headliner</h1>" in page.text and "version <strong>1</strong>" in page.text
        assert '<input type="password" id="token"' in page.text  # the page asks for the token its requests need
        assert client.get("/").content == page.content and "page" in vars(served.server)  # rendered once, kept
        assert client.post("/predict", json=SONG).status_code == 401
        assert client.post("/batch", content=b"x", headers={"Content-Type": "text/csv"}).status_code == 401
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    finally:
        assert served.close() == 0
    assert "headliner_requests_total{" not in metrics  # the page is neither counted nor logged
    assert read_inference_log(served.url).empty


def test_the_page_of_an_open_service_asks_for_no_token(one_app):
    assert 'id="token"' not in one_app.client.get("/").text


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def upload(client: Client, body: bytes, content_type: str = "text/csv") -> httpx.Response:
    return client.post("/batch", content=body, headers={"Content-Type": content_type})


def test_a_csv_file_is_scored_by_the_batch_path_and_logged_as_batch(served, predictor):
    songs = pd.DataFrame([SONG, song(tempo=300), song(key=0, energy=0.2)])
    songs.insert(0, "id", ["a", "b", "c"])
    response = upload(served.client, _csv(songs))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="predictions_jukebox_v1.csv"'
    assert (response.headers["x-rows-scored"], response.headers["x-rows-rejected"]) == ("2", "1")
    request_id = response.headers["x-request-id"]

    uploaded = pd.read_csv(io.BytesIO(_csv(songs)))
    assert (
        response.content == score_frame(predictor, uploaded)[0].to_csv(index=False).encode()
    )  # the batch path's answer
    answered = pd.read_csv(io.BytesIO(response.content))
    assert list(answered.columns) == ["id", *prediction_columns(predictor)]
    assert answered["id"].tolist() == ["a", "b", "c"]
    top = expected_top(predictor, [SONG_ROW])[0]
    assert answered.loc[0, [f"top_{rank}_code" for rank in range(1, 6)]].tolist() == [code for code, _ in top]
    assert answered.loc[0, "top_1_name"] == predictor.class_names[predictor.classes.index(top[0][0])]
    assert answered.loc[0, "top_1_probability"] == pytest.approx(top[0][1], abs=PARITY_TOLERANCE)  # another batch
    assert answered.loc[1, "error"] == "tempo: expected a number in [30, 250] BPM, got 300"
    assert answered.loc[1, ["top_1_code", "top_1_name"]].isna().all() and answered["error"][::2].isna().all()

    samples = served.client.get("/metrics").text
    assert 'headliner_requests_total{endpoint="batch",status="200"} 1' in samples
    assert 'headliner_rows_scored_total{endpoint="batch"} 2' in samples
    assert served.close() == 0
    [logged] = read_inference_log(served.url).itertuples()
    assert (logged.endpoint, logged.request_id, logged.status, logged.rows) == ("batch", f"{request_id}-00000", 200, 2)
    assert json.loads(logged.outputs)["top"][0] == [code for code, _ in top]


_SONGS = pd.DataFrame([SONG] * 2)
# (body, content type, status, words the message contains)
BAD_UPLOADS = {
    "not CSV content type": (
        _csv(_SONGS),
        "application/json",
        400,
        "Content-Type must be text/csv, got application/json",
    ),
    "empty file": (b"", "text/csv", 400, "the uploaded file: file is empty (0 bytes)"),
    "binary file": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "text/csv", 400, "not a readable CSV file"),
    "header only": (
        b",".join(name.encode() for name in SONG) + b"\n",
        "text/csv",
        400,
        "file has a header but no data rows",
    ),
    "missing column": (
        _csv(_SONGS.drop(columns="tempo")),
        "text/csv",
        422,
        "missing feature column(s) 'tempo'; the model expects all of: is_explicit",
    ),
    "semicolons": (
        _SONGS.to_csv(index=False, sep=";").encode(),
        "text/csv",
        422,
        "missing feature column(s) 'is_explicit', ",
    ),
    "too many rows": (_csv(pd.DataFrame([SONG] * 5)), "text/csv", 422, "5 rows; at most 4 are scored in one upload"),
    "a predictions file sent back": (
        _csv(_SONGS.assign(top_1_code="US")),
        "text/csv",
        422,
        "'top_1_code' would be overwritten",
    ),
    "over the body limit": (_csv(pd.DataFrame([SONG] * 2000)), "text/csv", 413, "request body over 65,536 bytes"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_a_bad_csv_file_is_a_4xx_naming_the_problem_and_is_logged(served, case):
    body, content_type, status, words = BAD_UPLOADS[case]
    response = upload(served.client, body, content_type)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert upload(served.client, _csv(_SONGS)).status_code == 200  # still serving
    assert_good_predict(served.client)
    assert served.close() == 0
    logged = read_inference_log(served.url)
    assert logged[["endpoint", "status", "rows"]].values.tolist() == [
        ["batch", status, 0],
        ["batch", 200, 2],
        ["predict", 200, 1],
    ]
    assert (
        logged.loc[0, "error"] == response.json()["error"]
        and logged.loc[0, "request_id"] == response.headers["x-request-id"]
    )


def test_a_failing_model_is_a_500_and_the_app_keeps_serving(served, monkeypatch):
    def broken(matrix):
        raise RuntimeError("onnxruntime exploded")

    monkeypatch.setattr(served.server.predictor, "scores", broken)
    response = served.client.post("/predict", json=SONG)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError"}  # no internals leak
    monkeypatch.undo()
    assert_good_predict(served.client)
    assert served.close() == 0
    assert read_inference_log(served.url)[["status", "error"]].values.tolist() == [
        [500, "internal error: RuntimeError"],
        [200, None],
    ]


def test_concurrent_requests_share_model_calls_and_get_their_own_answers(served, predictor):
    """Requests ready in the same pass of the event loop are scored in one call (RowBatcher); each gets
    exactly what the model gives its own rows."""
    songs = [{**SONG, "tempo": 60.0 + 10 * i, "energy": i / 20} for i in range(20)]

    async def concurrently() -> list[httpx.Response]:
        bodies = [song if i % 3 else [song, song] for i, song in enumerate(songs)]
        return await asyncio.gather(*(served.client.client.post("/predict", json=body) for body in bodies))

    responses = served.client.loop.run_until_complete(concurrently())
    batcher = served.server.batcher
    assert batcher.rows == 27 and batcher.calls < 20  # 20 requests, 7 of them with the song twice
    for i, (song, response) in enumerate(zip(songs, responses, strict=True)):
        assert response.status_code == 200
        answers = response.json()["predictions"]
        _, top_probabilities = predictor.top_classes(predictor.probabilities(np.array([[*song.values()]])))
        expected = [round(float(p), 6) for p in top_probabilities[0]]
        assert len(answers) == (1 if i % 3 else 2)
        for answer in answers:
            assert [entry["probability"] for entry in answer["top"]] == pytest.approx(expected, abs=1e-6)


def test_a_shared_model_call_that_fails_fails_only_the_request_that_fails_alone(served, monkeypatch):
    real = served.server.predictor.scores

    def fails_on_tempo_99(matrix):
        if (matrix[:, list(SONG).index("tempo")] == 99.0).any():
            raise RuntimeError("this row breaks the model")
        return real(matrix)

    monkeypatch.setattr(served.server.predictor, "scores", fails_on_tempo_99)

    async def concurrently() -> list[httpx.Response]:
        bodies = [{**SONG, "tempo": tempo} for tempo in (98.0, 99.0, 100.0)]
        return await asyncio.gather(*(served.client.client.post("/predict", json=body) for body in bodies))

    responses = served.client.loop.run_until_complete(concurrently())
    assert [response.status_code for response in responses] == [200, 500, 200]
    assert served.server.batcher.calls == 4  # the shared call, then each request alone


# -- auth, metrics, log ------------------------------------------------------------------------------


def test_bearer_token_guards_every_endpoint_but_health(predictor, tmp_path):
    served = Served(predictor, tmp_path, token=TOKEN)
    client = served.client
    try:
        for method, path in [
            ("POST", "/predict"),
            ("POST", "/v2/models/jukebox/infer"),
            ("GET", "/v2/models/jukebox"),
            ("GET", "/v2"),
            ("GET", "/metrics"),
            ("GET", "/v2/models/jukebox/ready"),
            ("GET", "/nowhere"),
        ]:
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": TOKEN},
                {"Authorization": f"Basic {TOKEN}"},
            ):
                response = client.request(method, path, json=SONG, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
                assert "missing or wrong bearer token" in response.json()["error"]
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200
        authorized = {"Authorization": f"Bearer {TOKEN}"}
        assert_good_predict(client, headers=authorized)
        assert client.post("/v2/models/jukebox/infer", json=v2_request(), headers=authorized).status_code == 200
        assert client.get("/v2/models/jukebox", headers=authorized).status_code == 200
        assert client.post("/predict", json=song(tempo=1), headers=authorized).status_code == 422
        metrics = client.get("/metrics", headers=authorized).text
    finally:
        assert served.close() == 0
    # refused requests never reach the endpoints: neither counted nor logged
    assert 'headliner_requests_total{endpoint="predict",status="200"} 1' in metrics
    assert 'status="401"' not in metrics
    assert read_inference_log(served.url)[["endpoint", "status"]].values.tolist() == [
        ["predict", 200],
        ["v2", 200],
        ["predict", 422],
    ]


def test_metrics_and_the_inference_log_count_every_request_served(served, predictor):
    client = served.client
    sent = []  # (endpoint, status, rows, response)
    for tempo in (90.0, 120.0, 150.0):
        sent.append(("predict", 200, 1, client.post("/predict", json=song(tempo=tempo))))
    sent.append(("predict", 200, 2, client.post("/predict", json=[SONG, song(key=0)])))
    sent.append(("predict", 422, 0, client.post("/predict", json=song(tempo=999))))
    sent.append(("predict", 422, 0, client.post("/predict", json=[])))
    sent.append(
        ("predict", 400, 0, client.post("/predict", content=b"{", headers={"Content-Type": "application/json"}))
    )
    sent.append(("predict", 400, 0, client.post("/predict", content=b"{}", headers={"Content-Type": "text/plain"})))
    sent.append(("v2", 200, 2, client.post("/v2/models/jukebox/infer", json=v2_request(rows=2))))
    sent.append(("v2", 400, 0, client.post("/v2/models/jukebox/infer", json={"inputs": []})))
    # answered without scoring: neither counted nor logged
    for path in ("/v2", "/v2/models/jukebox", "/v2/models/jukebox/ready", "/v2/health/ready", "/nowhere"):
        client.get(path)
    client.get("/predict")
    client.post("/v2/models/wine/infer", json=v2_request())
    for endpoint, status, _, response in sent:
        assert response.status_code == status, (endpoint, response.text)

    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = dict(line.rsplit(" ", 1) for line in metrics.text.splitlines() if line and not line.startswith("#"))
    requests = {key: int(value) for key, value in samples.items() if key.startswith("headliner_requests_total")}
    assert requests == {
        'headliner_requests_total{endpoint="predict",status="200"}': 4,
        'headliner_requests_total{endpoint="predict",status="400"}': 2,
        'headliner_requests_total{endpoint="predict",status="422"}': 2,
        'headliner_requests_total{endpoint="v2",status="200"}': 1,
        'headliner_requests_total{endpoint="v2",status="400"}': 1,
    }
    assert samples['headliner_rows_scored_total{endpoint="predict"}'] == "5"
    assert samples['headliner_rows_scored_total{endpoint="v2"}'] == "2"
    assert samples['headliner_request_latency_seconds_count{endpoint="predict"}'] == "8"
    assert samples['headliner_request_latency_seconds_bucket{endpoint="predict",le="+Inf"}'] == "8"
    assert samples['headliner_request_latency_seconds_count{endpoint="v2"}'] == "2"
    assert 0 < float(samples['headliner_request_latency_seconds_sum{endpoint="predict"}']) < 5
    assert samples["headliner_inference_log_rows_written_total"] == "0"  # flushes every 60 s
    assert samples["headliner_inference_log_rows_pending"] == "10"

    assert served.close() == 0
    frame = read_inference_log(served.url)
    assert len(frame) == len(sent) == 10
    assert frame["endpoint"].tolist() == [endpoint for endpoint, _, _, _ in sent]
    assert frame["status"].tolist() == [status for _, status, _, _ in sent]
    assert frame["rows"].tolist() == [rows for _, _, rows, _ in sent]
    assert frame["request_id"].tolist() == [response.headers["x-request-id"] for _, _, _, response in sent]
    assert (frame["model_name"] == "jukebox").all() and (frame["model_version"] == "1").all()
    assert (frame["latency_ms"] > 0).all()
    rejected = frame[frame["status"] != 200]
    assert rejected["inputs"].isna().all() and rejected["outputs"].isna().all()
    assert rejected["error"].tolist() == [response.json()["error"] for _, status, _, response in sent if status != 200]
    first = frame.iloc[0]
    assert json.loads(first["inputs"]) == {"columns": list(SONG), "data": [[*SONG_ROW[:12], 90.0]]}
    top = expected_top(predictor, [[*SONG_ROW[:12], 90.0]])[0]
    outputs = json.loads(first["outputs"])
    assert outputs["top"] == [[code for code, _ in top]]
    assert [round(p, 6) for p in outputs["probability"][0]] == [p for _, p in top]


def test_the_wine_model_is_served_by_the_same_code(wine_predictor, wine_spec, tmp_path):
    served = Served(wine_predictor, tmp_path)
    client = served.client
    try:
        metadata = client.get("/v2/models/wine").json()
        assert [tensor["name"] for tensor in metadata["inputs"]] == list(WINE)
        assert metadata["parameters"]["class_names"] == ["Cultivar 1", "Cultivar 2", "Cultivar 3"]
        request = {
            "inputs": [
                {"name": name, "shape": [1, 1], "datatype": "FP32", "data": [value]} for name, value in WINE.items()
            ]
        }
        body = client.post("/v2/models/wine/infer", json=request).json()
        probabilities, label, classes = body["outputs"]
        labels, expected = wine_predictor.predict_matrix(np.array([list(WINE.values())]))
        assert probabilities["shape"] == [1, 3]
        np.testing.assert_array_equal(np.array(probabilities["data"], dtype=np.float32), expected[0])
        assert label["data"] == [labels[0]] and classes["data"] == wine_spec.target.classes == [
            "class_0",
            "class_1",
            "class_2",
        ]
        predicted = client.post("/predict", json=WINE).json()
        assert predicted["model_name"] == "wine"
        top = predicted["predictions"][0]["top"]
        assert len(top) == wine_predictor.top_k == 3
        assert top[0]["code"] == labels[0]
        assert {entry["name"] for entry in top} == {"Cultivar 1", "Cultivar 2", "Cultivar 3"}
        bad = client.post("/predict", json={**WINE, "alcohol": 40})
        assert (
            bad.status_code == 422 and bad.json()["field"] == "song.alcohol" and "[0, 25] % vol" in bad.json()["error"]
        )
        assert client.post("/v2/models/jukebox/infer", json=v2_request()).status_code == 404
    finally:
        assert served.close() == 0
    assert read_inference_log(served.url)["status"].tolist() == [200, 200, 422]


def test_before_a_model_is_attached_only_liveness_answers(predictor, tmp_path):
    app = InferenceApp()
    client = Client(app)
    try:
        assert client.get("/v2/health/live").status_code == 200
        for method, path in [
            ("GET", "/v2/health/ready"),
            ("POST", "/predict"),
            ("GET", "/v2/models/jukebox"),
            ("GET", "/metrics"),
        ]:
            response = client.request(method, path, json=SONG)
            assert response.status_code == 503 and response.json() == {"error": "the model is still loading"}
        app.attach(ModelServer(predictor, log=None))  # a server without an inference log also works
        assert client.get("/v2/health/ready").status_code == 200
        assert_good_predict(client)
        assert "headliner_inference_log" not in client.get("/metrics").text
    finally:
        client.close()


def test_the_app_completes_the_asgi_lifespan_when_run_standalone():
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(InferenceApp()({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
