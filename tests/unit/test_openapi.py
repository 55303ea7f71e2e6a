"""The OpenAPI document in-process: generated from the served model (its item's schema, classes, presets, auth),
valid OpenAPI 3.1, its request schemas agreeing with the app's checks, and the regression examples of
invalid data the app accepted before (non-string `id`, non-object `parameters`)."""

import json

import jsonschema
import pytest
from openapi_spec_validator import validate

from headliner.serving.app import InferenceApp
from headliner.serving.openapi import openapi_document
from headliner.serving.payloads import FeatureRules, RequestError
from headliner.serving.routing import Routing
from headliner.serving.server import ModelServer
from tests.helpers.payloads import SONG, WINE, v2_request
from tests.helpers.serving import Client, Served


@pytest.fixture
def served(predictor, tmp_path):
    served = Served(predictor, tmp_path)
    yield served
    served.close()


def request_schema(document: dict, name: str) -> dict:
    """A component schema with the document's components, for jsonschema."""
    return {**document["components"]["schemas"][name], "components": document["components"]}


def test_the_wine_document_names_a_wine_and_uses_its_first_preset(wine_predictor):
    document = openapi_document(Routing(ModelServer(wine_predictor, None, token="secret")))
    validate(document)
    example = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert example["proline"] == 1116 and example["alcohol"] == 13.74  # "Like cultivar 1"
    wine = document["components"]["schemas"]["Wine"]
    assert set(wine["required"]) == set(WINE)
    assert document["paths"]["/v2/models/{model}/infer"]["parameters"][0]["schema"]["enum"] == ["wine"]
    assert document["security"] == [{"bearer": []}]


def test_the_request_schemas_agree_with_the_app_on_valid_and_invalid_bodies(served):
    document = served.client.get("/docs.json").json()
    predict = request_schema(document, "PredictRequest")
    for body, status in (
        (SONG, 200),
        ([SONG, {**SONG, "is_explicit": 0}], 200),
        ({**SONG, "tempo": 300}, 422),
        ({**SONG, "key": True}, 422),
        ({**SONG, "extra": 1}, 422),
        ([], 422),
    ):
        valid = jsonschema.Draft202012Validator(predict).is_valid(body)
        assert valid == (status == 200), body
        assert served.client.post("/predict", json=body).status_code == status
    infer = request_schema(document, "InferenceRequest")
    assert jsonschema.Draft202012Validator(infer).is_valid(v2_request())
    assert not jsonschema.Draft202012Validator(infer).is_valid({**v2_request(), "id": 5})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda body: {**body, "id": 5}, "id"),
        (lambda body: {**body, "parameters": "fast"}, "parameters"),
        (lambda body: {**body, "outputs": [{"name": "label", "parameters": []}]}, "outputs[0].parameters"),
        (
            lambda body: {"inputs": [{**body["inputs"][0], "parameters": 1}, *body["inputs"][1:]]},
            "inputs[0].parameters",
        ),
    ],
)
def test_a_v2_request_the_document_calls_invalid_is_refused(served, change, field):
    """These got 200 although the document forbids them: schemathesis's negative data would fail on them."""
    response = served.client.post("/v2/models/jukebox/infer", json=change(v2_request()))
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_a_string_id_and_object_parameters_are_still_accepted(served):
    body = {**v2_request(), "id": "mine", "parameters": {"x": 1}, "outputs": [{"name": "label", "parameters": {}}]}
    response = served.client.post("/v2/models/jukebox/infer", json=body)
    assert response.status_code == 200 and response.json()["id"] == "mine"


def test_docs_and_its_files_are_open_with_a_token(predictor):
    app = InferenceApp(ModelServer(predictor, None, token="secret"))
    client = Client(app)
    try:
        page = client.get("/docs")
        assert page.status_code == 200 and 'url: "/docs.json"' in page.text
        script = client.get("/docs/swagger-ui-bundle.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert b"SwaggerUIBundle" in script.content
        assert client.get("/docs.json").json()["openapi"] == "3.1.0"
        assert client.get("/predict").status_code == 401
    finally:
        client.close()


def test_the_document_is_built_once_per_routing_and_follows_a_new_one(predictor, monkeypatch):
    built = []

    def counted(routing):
        built.append(routing)
        return openapi_document(routing)

    monkeypatch.setattr("headliner.serving.app.openapi_document", counted)
    app = InferenceApp(ModelServer(predictor, None))
    client = Client(app)
    try:
        first = client.get("/docs.json")
        assert "security" not in first.json()
        assert client.get("/docs.json").content == first.content
        assert len(built) == 1
        app.attach(ModelServer(predictor, None, token="secret"))  # as a swap or a rollout change does
        assert client.get("/docs.json").json()["security"] == [{"bearer": []}]
        assert len(built) == 2
    finally:
        client.close()


# Bugs found probing the contract's edges (each answered 500 before): JSON allows integers of any size and
# any nesting depth, which no float or Python recursion can hold.

BIG = "1" + "0" * 400


def raw_post(served, path: str, text: str):
    return served.client.post(path, content=text, headers={"content-type": "application/json"})


def test_an_integer_beyond_a_float_in_a_tensor_is_refused_naming_the_input(served):
    body = json.dumps(v2_request()).replace('"data": [1.0]', f'"data": [{BIG}]', 1)
    response = raw_post(served, "/v2/models/jukebox/infer", body)
    assert response.status_code == 422
    assert response.json() == {"error": "input 'is_explicit': an integer beyond a 64-bit float", "field": "is_explicit"}


def test_an_integer_beyond_a_float_for_an_unbounded_feature_is_refused():
    rules = FeatureRules([{"name": "x", "dtype": "float"}])
    with pytest.raises(RequestError) as error:
        rules.songs_matrix({"x": int(BIG)}, 10)
    assert (error.value.status, error.value.field) == (422, "song.x")
    assert "got an integer beyond a 64-bit float" in error.value.message


@pytest.mark.parametrize("depth", [950, 1100, 100_000])
def test_json_nested_too_deep_is_a_client_error(served, depth):
    tensor = '{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ' + "[" * depth + "1" + "]" * depth
    assert raw_post(served, "/v2/models/jukebox/infer", tensor + "}]}").status_code == 400
    nested = raw_post(served, "/predict", "[" * depth + "]" * depth)
    assert nested.status_code in (400, 422)
    assert "got list [[[[[...]]]]]" in nested.json()["error"] or "invalid JSON" in nested.json()["error"]
