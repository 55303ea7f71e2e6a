"""The service's contract for integrators: `GET /docs.json` is an OpenAPI 3.1 document generated from pydantic
models built from the served model's own feature schema, classes or target, and limits (the data `FeatureRules`
and `parse_feedback` validate with), its answers those of the model's task (a classifier's top classes, a
regressor's forecast), and `GET /docs` is Swagger UI for it, from files a pip package installs (no CDN).

The /v2 part follows the KServe Open Inference Protocol REST schema. Examples are the use case's first preset
(a real song for jukebox, a real wine for wine), carried in the model's metadata. tests/services/test_openapi.py
fuzzes the service against this document with schemathesis.
"""

from __future__ import annotations

import html
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model

from headliner.model.explanations import ForecastExplanation, SongExplanation
from headliner.model.onnx_packaging import DECISION, PRESETS, example_inputs
from headliner.serving.feedback import MAX_REQUEST_ID
from headliner.serving.payloads import NUMERIC_DATATYPES
from headliner.serving.routing import RolloutPolicy

if TYPE_CHECKING:
    from headliner.serving.routing import Routing
    from headliner.serving.server import ModelServer

OPENAPI_VERSION = "3.1.0"
SWAGGER_UI_PACKAGE = "fastapi_offline"  # Swagger UI 5 (OpenAPI 3.1); swagger-ui-bundle 1.1.0 ships 4.15 (3.0 only)
SWAGGER_UI_FILES = {"swagger-ui-bundle.js": b"text/javascript; charset=utf-8", "swagger-ui.css": b"text/css"}
REF = "#/components/schemas/"


# -- the models that do not depend on the served model ---------------------------------------------------------


class Error(BaseModel):
    """Every refusal: what is wrong, and the offending field's path when there is one."""

    error: str
    field: str | None = Field(default=None, description="e.g. `songs[2].tempo`, `inputs[0].shape`")


class Top(BaseModel):
    code: str = Field(description="class code")
    name: str = Field(description="class name, for people")
    probability: float = Field(ge=0, le=1)


class Prediction(BaseModel):
    top: list[Top] = Field(description="the top-k classes, most likely first")


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    request_id: str = Field(description="also the `x-request-id` header; send it back with `POST /feedback`")
    predictions: list[Prediction] = Field(description="one per item sent, in order")


class Forecast(BaseModel):
    prediction: float = Field(description="the forecast, in the target's unit")
    unit: str = Field(description="the target's unit")
    answer: str = Field(description="the forecast in words, rounded for people: 'About 1,240 units'")


class ForecastResponse(BaseModel):
    """The answer of a regression model."""

    model_name: str
    model_version: str
    request_id: str = Field(description="also the `x-request-id` header; send it back with `POST /feedback`")
    predictions: list[Forecast] = Field(description="one per item sent, in order")


class ExplainResponse(BaseModel):
    model_name: str
    model_version: str = Field(description="the primary (production) version: it explains, whatever a rollout routes")
    request_id: str
    explanations: list[SongExplanation] = Field(
        description="one per item sent, in order: its top-k classes, each with every feature's contribution to its "
        "probability (largest first); base_probability + the contributions = probability"
    )


class ForecastExplainResponse(BaseModel):
    """The explanations of a regression model."""

    model_name: str
    model_version: str = Field(description="the primary (production) version: it explains, whatever a rollout routes")
    request_id: str
    explanations: list[ForecastExplanation] = Field(
        description="one per item sent, in order: the forecast, the mean forecast over typical items (base_value) "
        "and every feature's contribution in the target's unit (largest first); base_value + the contributions = "
        "prediction"
    )


class FeedbackResponse(BaseModel):
    accepted: int = Field(ge=0, description="labels stored")
    request_id: str


class ServerMetadata(BaseModel):
    """OIP `GET /v2`."""

    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    """OIP `GET /v2/models/{model}/ready`."""

    name: str
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """OIP `GET /v2/models/{model}`; `parameters` holds the feature schema, class codes and names, top_k."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any]


Parameters = Annotated[dict[str, Any], Field(description="OIP parameters (accepted, not used)")]
TensorData = list[Annotated[float | bool | list[Any], Field(description="a number, or a nested row-major list")]]


class ResponseOutput(BaseModel):
    """An OIP output tensor: `probabilities` FP32 [N, C], `label` BYTES [N], `classes` BYTES [C]."""

    name: Literal["probabilities", "label", "classes"]
    shape: list[int]
    datatype: Literal["FP32", "BYTES"]
    data: list[float | str]
    parameters: Parameters | None = None


class InferenceResponse(BaseModel):
    """OIP infer response."""

    model_name: str
    model_version: str
    id: str = Field(description="the request's `id`, or the request id given to it")
    outputs: list[ResponseOutput]
    parameters: Parameters | None = None


class ForecastOutput(BaseModel):
    """A regression model's OIP output tensor: `prediction` FP32 [N, 1], in the target's unit."""

    name: Literal["prediction"]
    shape: list[int]
    datatype: Literal["FP32"]
    data: list[float]
    parameters: Parameters | None = None


class ForecastInferenceResponse(BaseModel):
    """A regression model's OIP infer response."""

    model_name: str
    model_version: str
    id: str = Field(description="the request's `id`, or the request id given to it")
    outputs: list[ForecastOutput]
    parameters: Parameters | None = None


class RolloutStatus(BaseModel):
    model_name: str
    rollouts: bool = Field(description="whether this service follows a rollout policy")
    mode: str
    policy_id: int | None
    policy: RolloutPolicy | None
    production_version: str
    candidate_version: str | None
    describe: str


# -- the models built from the served model ------------------------------------------------------------------


def _feature_type(entry: dict[str, Any]) -> Any:
    """The JSON a feature takes, as `FeatureRules.songs_matrix` checks it."""
    bounds: dict[str, Any] = {"description": entry.get("description") or None}
    if entry.get("dtype") == "bool":
        return Annotated[Annotated[int, Field(ge=0, le=1)] | bool, Field(**bounds)]
    if entry.get("min") is not None:
        bounds["ge"] = entry["min"]
    if entry.get("max") is not None:
        bounds["le"] = entry["max"]
    kind = int if entry.get("dtype") == "int" else float
    return Annotated[kind, Field(allow_inf_nan=False, **bounds)]


def _true_label(server: ModelServer) -> Any:
    """What /feedback takes as `label`, as `parse_feedback` checks it: a class, or a number in the target's range."""
    target = server.predictor.target
    if target is None:
        return Literal[tuple(server.predictor.classes)]
    bounds = {key: target[bound] for key, bound in (("ge", "min"), ("le", "max")) if target.get(bound) is not None}
    description = f"the true {target['column']}, in {target.get('unit') or 'its unit'}"
    return Annotated[float, Field(allow_inf_nan=False, description=description, **bounds)]


def request_models(server: ModelServer) -> dict[str, type[BaseModel]]:
    """The request bodies of the served model: its item (a song, a wine, a store-week), /predict, /explain (the
    same body, fewer items), /feedback, OIP infer."""
    noun: str = json.loads(server.predictor.metadata.get(DECISION, "{}")).get("item_noun", "item")
    strict = ConfigDict(extra="forbid")
    features: dict[str, Any] = {entry["name"]: (_feature_type(entry), ...) for entry in server.rules.schema}
    item: Any = create_model(
        noun.capitalize(),
        __config__=strict,
        __doc__=f"One {noun}: every feature of the model's schema, nothing else.",
        **features,
    )
    items: Any = Annotated[list[item], Field(min_length=1, max_length=server.max_rows)]
    explained: Any = Annotated[list[item], Field(min_length=1, max_length=min(server.max_explain, server.max_rows))]
    label: Any = create_model(
        "FeedbackLabel",
        __config__=strict,
        __doc__="The true label of item `item` of an answered request.",
        request_id=(Annotated[str, Field(min_length=1, max_length=MAX_REQUEST_ID)], ...),
        label=(_true_label(server), ...),
        item=(Annotated[int, Field(ge=0)], 0),
    )
    labels: Any = Annotated[list[label], Field(min_length=1, max_length=server.max_rows)]
    datatype: Any = Literal[tuple(sorted(NUMERIC_DATATYPES))]
    request_input: Any = create_model(
        "RequestInput",
        __doc__="An OIP input tensor: one per feature (shape [N, 1] or [N]), or one of shape [N, F].",
        name=(str, ...),
        shape=(Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)], ...),
        datatype=(datatype, ...),
        data=(TensorData, ...),
        parameters=(Parameters | None, None),
    )
    request_output: Any = create_model(
        "RequestOutput",
        name=(Literal[server.v2_outputs], ...),
        parameters=(Parameters | None, None),
    )
    infer: Any = create_model(
        "InferenceRequest",
        __doc__="OIP infer request.",
        id=(Annotated[str | None, Field(description="echoed in the answer (64 characters at most)")], None),
        inputs=(Annotated[list[request_input], Field(min_length=1)], ...),
        outputs=(list[request_output] | None, None),
        parameters=(Parameters | None, None),
    )
    return {
        "PredictRequest": _root("PredictRequest", item | items, f"One {noun} or a non-empty list of them."),
        "ExplainRequest": _root(
            "ExplainRequest", item | explained, f"The body of /predict with at most {server.max_explain} {noun}s."
        ),
        "FeedbackRequest": _root("FeedbackRequest", label | labels, "One label or a non-empty list of them."),
        "InferenceRequest": infer,
    }


def _root(name: str, annotation: Any, doc: str) -> type[BaseModel]:
    """A named pydantic root model (its name is the document's schema name)."""
    return type(name, (RootModel[annotation],), {"__doc__": doc, "__module__": __name__})


# the answers of every model, and those of each task: (predict, explain, infer) by is_classification
RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    FeedbackResponse,
    ServerMetadata,
    Live,
    Ready,
    ModelReady,
    ModelMetadata,
    RolloutStatus,
)
TASK_RESPONSES: dict[bool, tuple[type[BaseModel], type[BaseModel], type[BaseModel]]] = {
    True: (PredictResponse, ExplainResponse, InferenceResponse),
    False: (ForecastResponse, ForecastExplainResponse, ForecastInferenceResponse),
}


def _schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    """The models' JSON schemas as OpenAPI components (nested models become components too)."""
    from pydantic.json_schema import models_json_schema

    _, top = models_json_schema([(model, "validation") for model in models], ref_template=REF + "{model}")
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


# -- the document ------------------------------------------------------------------------------------------------


def _example(server: ModelServer) -> dict[str, Any]:
    """The use case's first preset (every feature set), or the schema's typical values without presets."""
    presets = json.loads(server.predictor.metadata.get(PRESETS, "[]"))
    values: dict[str, Any] = presets[0]["values"] if presets else example_inputs(server.rules.schema)
    return values


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


ERROR_REASONS = {
    400: "malformed: empty or invalid JSON, wrong Content-Type, a v2 tensor's structure",
    401: "missing or wrong bearer token",
    404: "unknown model or version; no model card",
    409: "the model file carries no explanation background (packaged before explanations existed)",
    413: "request body over HEADLINER_MAX_BODY_BYTES",
    422: "invalid values: a missing, extra or out-of-range field, too many items (/explain: HEADLINER_MAX_EXPLAIN)",
    500: "a bug: the request is logged and the service goes on",
    503: "the model is still loading, or the feedback store is unavailable",
}


def _responses(ok: dict[str, Any], errors: tuple[int, ...], auth: bool) -> dict[str, Any]:
    codes = sorted({*errors, 503, *((401,) if auth else ())})
    error = _json(_ref("Error"))
    return {"200": ok, **{str(code): {"description": ERROR_REASONS[code], "content": error} for code in codes}}


def _ok(description: str, schema_name: str, example: Any = None) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref(schema_name), example)}


def openapi_document(routing: Routing) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service as `routing` serves it (its model, versions and auth)."""
    server = routing.primary
    auth = server.token is not None
    responses = TASK_RESPONSES[server.is_classification]
    if server.is_classification:
        answered, explained, answered_columns = "the top-k classes of each item", "top classes", "top-k classes"
        explained_answer = "the top-k classes of each item with every feature's contribution"
        true_label: Any = server.predictor.classes[0]
    else:
        unit = server.unit or "the target's unit"
        answered = f"the forecast of each item in {unit}, and in words"
        explained, answered_columns = "forecast", f"`prediction` ({unit})"
        explained_answer = f"the forecast of each item with every feature's contribution, in {unit}"
        true_label = float((server.predictor.target or {}).get("min") or 0.0)
    example = _example(server)
    requests = request_models(server)
    predict_response, explain_response, infer_response = (model.__name__ for model in responses)
    schemas = _schemas([*requests.values(), *RESPONSE_MODELS, *responses])
    v2_example = {
        "id": "my-request-1",
        "inputs": [
            {"name": name, "shape": [1, 1], "datatype": "FP32", "data": [value]} for name, value in example.items()
        ],
    }
    feedback_example = {"request_id": "4c1e542e6dcd6af7b835c05bb1b8f77a", "label": true_label}
    scoring = (400, 413, 422, 500)
    open_op: dict[str, Any] = {"security": []} if auth else {}

    def get(
        summary: str, ok: dict[str, Any], errors: tuple[int, ...] = (), tag: str = "service", *, open_: bool = False
    ) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "tags": [tag],
                "responses": _responses(ok, errors, auth and not open_),
                **(open_op if open_ else {}),
            }
        }

    def post(
        summary: str, body: dict[str, Any], ok: dict[str, Any], tag: str, errors: tuple[int, ...] = scoring
    ) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "tags": [tag],
                "requestBody": {"required": True, "content": body},
                "responses": _responses(ok, errors, auth),
            }
        }

    model_param = {
        "name": "model",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [server.name]},
        "description": "the served model's name",
    }
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": list(routing.by_version)},
        "description": "a served version (production, or the rollout's candidate)",
    }
    infer = post(
        "Open Inference Protocol infer",
        _json(_ref("InferenceRequest"), v2_example),
        _ok("the outputs asked for (all of them by default)", infer_response),
        "v2",
        (*scoring, 404),
    )
    metadata = get(
        "Model metadata", _ok("inputs, outputs, feature schema, classes or target", "ModelMetadata"), (404,), "v2"
    )
    model_ready = get("Model readiness", _ok("ready", "ModelReady"), (404,), "v2")
    paths: dict[str, Any] = {
        "/predict": post(
            f"Score one {server.name} or a list of them",
            _json(_ref("PredictRequest"), example),
            _ok(answered, predict_response),
            "predict",
        ),
        "/explain": post(
            f"Why: each feature's contribution to the {explained} of one {server.name} item or a few "
            f"(at most {server.max_explain})",
            _json(_ref("ExplainRequest"), example),
            _ok(explained_answer, explain_response),
            "predict",
            (*scoring, 409),
        ),
        "/model-card": get(
            "The model card of the version served (HTML)",
            {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
            (404,),
            open_=True,
        ),
        "/feedback": post(
            "True labels (classes, or a regression model's true values) for earlier answers",
            _json(_ref("FeedbackRequest"), feedback_example),
            _ok("the labels are stored", "FeedbackResponse"),
            "predict",
            (*scoring, 503),
        ),
        "/batch": post(
            "Score a CSV file (a header naming the features; other columns are copied)",
            {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": ",".join(example) + "\n" + ",".join(map(str, example.values())) + "\n",
                }
            },
            {
                "description": f"a CSV of the {answered_columns} per row and an `error` column",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            "predict",
        ),
        "/metrics": get(
            "Prometheus metrics",
            {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}},
        ),
        "/rollout": get("The rollout in force", _ok("versions and policy", "RolloutStatus")),
        "/": get(
            "The page for people",
            {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
            open_=True,
        ),
        "/docs": get(
            "This document in Swagger UI",
            {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
            open_=True,
        ),
        **{
            f"/docs/{name}": get(
                f"Swagger UI's {name}",
                {"description": name, "content": {kind.decode(): {"schema": {"type": "string"}}}},
                open_=True,
            )
            for name, kind in SWAGGER_UI_FILES.items()
        },
        "/docs.json": get(
            "This document", {"description": "OpenAPI 3.1", "content": _json({"type": "object"})}, open_=True
        ),
        "/v2": get("Server metadata", _ok("name, version, extensions", "ServerMetadata"), tag="v2"),
        "/v2/health/live": get("Liveness", _ok("live", "Live"), tag="v2", open_=True),
        "/v2/health/ready": get("Readiness", _ok("ready", "Ready"), tag="v2", open_=True),
        "/v2/models/{model}": {**metadata, "parameters": [model_param]},
        "/v2/models/{model}/ready": {**model_ready, "parameters": [model_param]},
        "/v2/models/{model}/infer": {**infer, "parameters": [model_param]},
        "/v2/models/{model}/versions/{version}": {**metadata, "parameters": [model_param, version_param]},
        "/v2/models/{model}/versions/{version}/ready": {**model_ready, "parameters": [model_param, version_param]},
        "/v2/models/{model}/versions/{version}/infer": {**infer, "parameters": [model_param, version_param]},
    }
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": f"Headliner: {server.name}",
            "version": server.version,
            "description": (
                f"Serves model '{server.name}' version {server.version}. Every request is checked against the "
                "model's feature schema; a refusal is a JSON `Error` naming the field. A wrong method gets 405."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document


# -- Swagger UI ------------------------------------------------------------------------------------------------


def swagger_ui_folder() -> Path:
    """The Swagger UI files the pip package installs (found without importing it: it imports FastAPI)."""
    spec = importlib.util.find_spec(SWAGGER_UI_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"Swagger UI needs the '{SWAGGER_UI_PACKAGE}' package: pip install -r serving/requirements.txt"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def swagger_page(title: str) -> str:
    """Swagger UI's page for /docs.json, its script and style from /docs/<file>."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} · API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "/docs.json", dom_id: "#swagger-ui", deepLinking: true}});</script>
</body></html>
"""
