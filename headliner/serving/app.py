"""The inference HTTP API as one plain ASGI app: friendly `POST /predict`, the Open Inference Protocol (KServe
v2) endpoints, `POST /explain` (each feature's contribution to the top classes, or to a regressor's forecast),
`POST /feedback` for true labels (classes, or numbers), `GET /rollout`, `GET /` (the page for people,
headliner/serving/page.py), `GET /model-card`, `POST /batch` (a CSV file scored through the batch path),
bearer-token auth, Prometheus metrics and the inference log. Which loaded version answers a request is the
`Routing`'s choice (headliner/serving/routing.py): one fixed model, or production and a candidate under a
rollout policy (/explain and /model-card: always production). The endpoints are one table, `ROUTES`, and
`MODEL_ROUTES` for the paths under /v2/models/{name}.

It is a raw ASGI callable rather than a framework app because one-row requests are tens of
microseconds of model work: routing, validation and JSON are kept to what the request needs. The
BentoML service (serving/service.py) runs it as middleware (`InferenceMiddleware`); tests and
benchmarks can run it on any ASGI server.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from headliner.errors import DataSourceError, HeadlinerError
from headliner.serving.feedback import parse_feedback
from headliner.serving.inference_log import InferenceRecord
from headliner.serving.openapi import SWAGGER_UI_FILES, openapi_document, swagger_page, swagger_ui_folder
from headliner.serving.payloads import RequestError, check_parameters, parse_json
from headliner.serving.routing import SHADOW, Routing
from headliner.serving.server import (
    HTML,
    JSON,
    NOTHING_LOGGED,
    Answer,
    Logged,
    ModelServer,
    Receive,
    Scope,
    Send,
    fixed_answer,
    json_bytes,
    respond,
)

if TYPE_CHECKING:
    from headliner.model.explanations import ForecastExplanation, SongExplanation
    from headliner.serving.batch_scoring import BatchScoringReport

logger = logging.getLogger(__name__)

CSV = b"text/csv; charset=utf-8"
PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"
PROTOCOL_NAME = "headliner"
LIVE_PATH = "/v2/health/live"  # answered even while the model loads, so it is not in `ROUTES`


class Request:
    """One HTTP request as the handlers need it: the ASGI channels, the headers the app reads, the
    routing read once for the whole request, and the version the path pins (/v2/models/{m}/versions/{v})."""

    __slots__ = (
        "ab_key",
        "authorization",
        "content_type",
        "method",
        "path",
        "pinned",
        "receive",
        "received_at",
        "request_id",
        "routing",
        "send",
        "started",
    )

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, routing: Routing, started: float, received_at: float
    ):
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.receive = receive
        self.send = send
        self.routing = routing
        self.started = started
        self.received_at = received_at
        self.pinned: ModelServer | None = None
        content_type = authorization = request_id = ab_key = None
        ab_header = routing.ab_header
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value
            elif key == b"authorization":
                authorization = value
            elif key == b"x-request-id" and len(value) <= 64:
                request_id = value.decode("latin-1")
            elif key == ab_header:
                ab_key = value
        self.content_type: bytes | None = content_type
        self.authorization: bytes | None = authorization
        self.ab_key: bytes | None = ab_key
        self.request_id: str = request_id or os.urandom(16).hex()

    def authorized(self) -> bool:
        token = self.routing.primary.token
        return token is None or (self.authorization is not None and hmac.compare_digest(self.authorization, token))


Handler = Callable[[Request], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    """An endpoint: its handler, the one method it takes (None: any), and whether it answers without the
    bearer token."""

    handler: Handler
    method: str | None = None
    open: bool = False


class InferenceApp:
    """The ASGI app. It answers 503 until `attach` (one fixed model) or `route` (a rollout's routing)
    gives it loaded models, so it can be created at import time (when BentoML builds its app) and the
    model loaded when the worker starts. Each request reads the routing once: a swap never mixes versions
    within a request."""

    def __init__(self, server: ModelServer | None = None):
        self.routing: Routing | None = Routing(server) if server is not None else None

    def attach(self, server: ModelServer) -> None:
        self.routing = Routing(server)

    def route(self, routing: Routing) -> None:
        self.routing = routing

    @staticmethod
    def handles(path: str) -> bool:
        """Whether a path belongs to this app (the rest is left to the server it runs in)."""
        return path in ROUTES or path.startswith("/v2/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # standalone use (tests, benchmarks); BentoML does not forward it
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        received_at = time.time()
        path = scope["path"]
        if path == LIVE_PATH:
            return await respond(send, 200, b'{"live":true}')
        routing = self.routing
        if routing is None:
            return await respond(send, 503, b'{"error":"the model is still loading"}')
        request = Request(scope, receive, send, routing, started, received_at)
        route = ROUTES.get(path)
        if (route is None or not route.open) and not request.authorized():
            body = b'{"error":"missing or wrong bearer token: send Authorization: Bearer <token>"}'
            return await respond(send, 401, body, extra_headers=((b"www-authenticate", b"Bearer"),))
        if route is None:
            route, request.pinned = _parsed_route(path, routing)
        if route.method is not None and request.method != route.method:
            return await _method_not_allowed(route.method)(send)
        await route.handler(request)


class InferenceMiddleware:
    """The app as ASGI middleware: its own paths are answered directly, everything else goes on to the
    wrapped app. Under BentoML this skips the framework's per-request context, routing and exception
    layers, which cost more than a one-row prediction (bench/serving_bench.py measures it)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], endpoints: InferenceApp):
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.endpoints.handles(scope["path"]):
            return await self.endpoints(scope, receive, send)
        return await self.app(scope, receive, send)


# -- the JSON scoring endpoints: /predict, /v2/models/{m}/infer, /feedback -----------------------------------

# (answer, the rows scored [N, F] or None, what the log keeps of the outputs)
Scored = tuple[dict[str, Any], np.ndarray | None, Logged]
Compute = Callable[[ModelServer, bytes, str], Awaitable[Scored]]  # (server, raw JSON body, request id)


class Scoring:
    """A JSON endpoint answered by the version the routing chooses (or the path pins; with `primary_only`,
    always the primary (production) version, logged without a variant so rollout reports leave it out): the
    body read, `compute` run on it (each parses what it needs), the answer sent with its request id and
    version, the request counted in the metrics and logged (feedback is stored by the feedback store
    instead), and the candidate's answer logged when it scores in the shadow."""

    __slots__ = ("compute", "endpoint", "primary_only")

    def __init__(self, endpoint: str, compute: Compute, primary_only: bool = False):
        self.endpoint = endpoint  # as the metrics and the inference log name it
        self.compute = compute
        self.primary_only = primary_only

    async def __call__(self, request: Request) -> None:
        endpoint, routing, request_id, content_type = (
            self.endpoint,
            request.routing,
            request.request_id,
            request.content_type,
        )
        server = routing.primary
        if request.pinned is not None:  # /v2/models/{m}/versions/{v}/infer: that version, whatever the policy
            answering, variant, shadow = request.pinned, routing.variant_of(request.pinned), None
        elif self.primary_only:
            answering, variant, shadow = server, None, None
        else:
            answering, variant, shadow = routing.choose(request.ab_key)
        status, rows, error = 200, 0, None
        matrix, logged = None, NOTHING_LOGGED
        try:
            if content_type is None or b"json" not in content_type:
                got = content_type.decode("latin-1") if content_type else "none"
                raise RequestError(400, f"Content-Type must be application/json, got {got}", "Content-Type")
            body = await read_body(request.receive, server.max_body_bytes)
            response, matrix, logged = await self.compute(answering, body, request_id)
            rows = 0 if matrix is None else len(matrix)
            answer = json_bytes(response)
        except RequestError as exc:
            status, error = exc.status, exc.message
            answer = json_bytes(exc.body())
        except Exception as exc:  # a bug, not bad input: answer 500, keep serving
            logger.exception("request %s to %s failed", request_id, request.path)
            status, error = 500, f"internal error: {type(exc).__name__}"
            answer = json_bytes({"error": error})
        headers = (
            (b"x-request-id", request_id.encode("latin-1")),
            (b"x-model-version", answering.version.encode("latin-1")),
        )
        await respond(request.send, status, answer, extra_headers=headers)
        elapsed = time.perf_counter() - request.started
        server.metrics.observe(endpoint, status, rows, elapsed)
        if server.log is None or endpoint == "feedback":  # labels are stored by the feedback store
            return
        server.log.append(
            answering.record(
                request.received_at, request_id, endpoint, status, elapsed * 1000.0, matrix, logged, error, variant
            )
        )
        if shadow is not None and status == 200 and matrix is not None:
            await _score_in_shadow(shadow, endpoint, request_id, matrix)


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request's whole body; RequestError 413 beyond `limit` bytes."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if message.get("more_body"):
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"request body over {limit:,} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
    elif len(body) > limit:
        raise RequestError(413, f"request body over {limit:,} bytes")
    return body


def requested_outputs(payload: dict[str, Any], known: tuple[str, ...]) -> list[str]:
    """The v2 request's `outputs` names, each one of the model's `known` outputs (all of them by default, in
    their order)."""
    outputs = payload.get("outputs")
    if outputs is None:
        return list(known)
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise RequestError(400, "'outputs' must be a list of objects with a 'name'", "outputs")
    for index, output in enumerate(outputs):
        check_parameters(output, f"outputs[{index}].parameters")
    names = [o["name"] for o in outputs]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise RequestError(400, f"unknown output '{unknown[0]}'; this model has {list(known)}", "outputs")
    return names


async def _predict(server: ModelServer, body: bytes, request_id: str) -> Scored:
    matrix = server.rules.songs_matrix_of(body, server.max_rows)
    scores = await server.score(matrix)
    return server.predict_response(request_id, scores), matrix, server.logged(scores)


async def _infer(server: ModelServer, body: bytes, request_id: str) -> Scored:
    decoded = server.rules.v2_request_of(body, server.max_rows)
    if decoded is not None and (decoded.outputs is None or set(decoded.outputs) <= server.v2_output_set):
        matrix, given_id = decoded.matrix, decoded.id
        wanted = list(server.v2_outputs) if decoded.outputs is None else decoded.outputs
    else:  # any other layout, or an error to name
        payload = parse_json(body)
        matrix = server.rules.v2_matrix(payload, server.max_rows)
        wanted = requested_outputs(payload, server.v2_outputs)
        given_id = payload.get("id")
        if given_id is not None and type(given_id) is not str:
            raise RequestError(400, f"'id' must be a string, got {type(given_id).__name__}", "id")
        check_parameters(payload, "parameters")
    scores = await server.score(matrix)
    if given_id is not None:
        request_id = given_id[:64]
    return server.v2_response(request_id, scores, wanted), matrix, server.logged(scores)


async def _explain(server: ModelServer, body: bytes, request_id: str) -> Scored:
    """`POST /explain`: the body of /predict, at most `max_explain` items, explained off the event loop. Logged
    with the explained classes (or forecasts) as its outputs, under endpoint 'explain', which monitoring windows
    leave out."""
    matrix = server.rules.songs_matrix_of(body, server.max_rows)
    if len(matrix) > server.max_explain:
        raise RequestError(
            422,
            f"{len(matrix)} {server.rules.items} in one request; /explain takes at most {server.max_explain} "
            "(HEADLINER_MAX_EXPLAIN): send fewer, or several requests",
        )
    explanations = await server.explanations(matrix)
    logged: Logged
    if server.is_classification:
        songs = cast("list[SongExplanation]", explanations)
        labels = np.array([[c.label for c in song.classes] for song in songs], dtype=object)
        probabilities = np.array([[c.probability for c in song.classes] for song in songs], dtype=np.float64)
        logged = labels, probabilities, None
    else:
        forecasts = cast("list[ForecastExplanation]", explanations)
        logged = None, None, np.array([[row.prediction] for row in forecasts], dtype=np.float64)
    return server.explain_response(request_id, explanations), matrix, logged


async def _feedback(server: ModelServer, body: bytes, request_id: str) -> Scored:
    """True labels for earlier predictions; stored (off the event loop) before the answer, so 200 means kept."""
    store = server.feedback
    if store is None:
        raise RequestError(503, "this server keeps no feedback (it has no inference log)")
    labels = parse_feedback(parse_json(body), server.predictor.classes, server.max_rows, server.predictor.target)
    try:
        accepted = await asyncio.get_running_loop().run_in_executor(None, store.write, labels, "api")
    except Exception as exc:  # the database is down: the client may send again
        logger.error("feedback %s not stored: %s", request_id, exc)
        raise RequestError(503, "the feedback store is unavailable; send the labels again later") from None
    return {"accepted": accepted, "request_id": request_id}, None, NOTHING_LOGGED


async def _score_in_shadow(shadow: ModelServer, endpoint: str, request_id: str, matrix: np.ndarray) -> None:
    """The candidate's answer to a request production answered: logged (variant 'shadow'), never sent."""
    started, received_at = time.perf_counter(), time.time()
    try:
        scores = await shadow.score(matrix)
    except Exception:  # the shadow must never hurt the answer already given
        logger.exception("shadow scoring of request %s by version %s failed", request_id, shadow.version)
        return
    if shadow.log is None:
        return
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    shadow.log.append(
        shadow.record(received_at, request_id, endpoint, 200, elapsed_ms, matrix, shadow.logged(scores), None, SHADOW)
    )


# -- POST /batch ---------------------------------------------------------------------------------------------


async def _upload(request: Request) -> None:
    """`POST /batch`: a CSV file scored by the batch path (headliner/serving/batch_scoring.py) with the primary
    version, answered as a CSV of predictions. The batch path logs the scored rows (endpoint 'batch', one
    record per chunk, ids '<request id>-<chunk>'); a refused file is logged here as one record."""
    server, request_id, content_type = request.routing.primary, request.request_id, request.content_type
    status, rows, error, answer_type = 200, 0, None, CSV
    headers = [(b"x-request-id", request_id.encode("latin-1")), (b"x-model-version", server.version.encode("latin-1"))]
    try:
        if content_type is None or b"csv" not in content_type:
            got = content_type.decode("latin-1") if content_type else "none"
            raise RequestError(400, f"Content-Type must be text/csv, got {got}", "Content-Type")
        body = await read_body(request.receive, server.max_body_bytes)
        answer, report = await asyncio.get_running_loop().run_in_executor(None, _score_upload, server, body, request_id)
        rows = report.rows_scored
        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", f"predictions_{server.name}_v{server.version}.csv")
        headers += [
            (b"content-disposition", f'attachment; filename="{filename}"'.encode()),
            (b"x-rows-scored", str(report.rows_scored).encode()),
            (b"x-rows-rejected", str(report.rows_rejected).encode()),
        ]
    except RequestError as exc:
        status, error, answer_type = exc.status, exc.message, JSON
        answer = json_bytes(exc.body())
    except Exception as exc:  # a bug, not a bad file: answer 500, keep serving
        logger.exception("request %s to /batch failed", request_id)
        status, error, answer_type = 500, f"internal error: {type(exc).__name__}", JSON
        answer = json_bytes({"error": error})
    await respond(request.send, status, answer, answer_type, tuple(headers))
    elapsed = time.perf_counter() - request.started
    server.metrics.observe("batch", status, rows, elapsed)
    if server.log is not None and status != 200:
        server.log.append(
            InferenceRecord(
                request.received_at,
                request_id,
                "batch",
                server.name,
                server.version,
                status,
                elapsed * 1000.0,
                0,
                None,
                None,
                None,
                error,
            )
        )


def _score_upload(server: ModelServer, body: bytes, request_id: str) -> tuple[bytes, BatchScoringReport]:
    """`score_csv` with its refusals as request errors: not a CSV file 400, a bad table 422."""
    from headliner.serving.batch_scoring import score_csv  # pandas: loaded with the first upload, not at start

    try:
        return score_csv(server.predictor, body, server.max_upload_rows, server.log, request_id)
    except DataSourceError as exc:
        raise RequestError(400, str(exc)) from None
    except HeadlinerError as exc:
        raise RequestError(422, str(exc)) from None


# -- the answers that need no body ---------------------------------------------------------------------------


async def _page(request: Request) -> None:
    await request.routing.primary.page(request.send)


CARD_HEADERS = (
    # the card is static HTML (tables, inline images and style): nothing in it may run or load
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-cache"),
)


async def _model_card(request: Request) -> None:
    """`GET /model-card`: the card of the primary version (HTML), or 404 saying how to get one."""
    server = request.routing.primary
    try:
        card = await asyncio.get_running_loop().run_in_executor(None, server.model_card)
    except Exception:  # a registry that cannot answer must not take the service down
        logger.exception("reading the model card of %s version %s failed", server.name, server.version)
        card = None
    if card is None:
        message = (
            f"no model card for '{server.name}' version {server.version} in this service: see it with "
            f"`python run.py model-card {server.name} --version {server.version}`, or deploy the version again "
            "(the deployment packs its card), or set HEADLINER_MODEL_CARD_FILE beside HEADLINER_MODEL_FILE"
        )
        return await respond(request.send, 404, json_bytes({"error": message}))
    await respond(request.send, 200, card.encode(), HTML, CARD_HEADERS)


async def _ready(request: Request) -> None:
    await respond(request.send, 200, b'{"ready":true}')


async def _metrics(request: Request) -> None:
    await respond(request.send, 200, request.routing.primary.metrics.text().encode(), PROMETHEUS)


async def _rollout_status(request: Request) -> None:
    await respond(request.send, 200, json_bytes(request.routing.status()))


_SERVER_METADATA = fixed_answer(200, {"name": PROTOCOL_NAME, "version": "2", "extensions": []})


async def _server_metadata(request: Request) -> None:
    await _SERVER_METADATA(request.send)


async def _model_metadata(request: Request) -> None:
    routing, pinned = request.routing, request.pinned
    metadata = (pinned or routing.primary).model_metadata
    if pinned is None and routing.candidate is not None:  # the production version first
        metadata = {**metadata, "versions": list(routing.by_version)}
    await respond(request.send, 200, json_bytes(metadata))


async def _model_ready(request: Request) -> None:
    await respond(request.send, 200, json_bytes({"name": request.routing.primary.name, "ready": True}))


def _answering(answer: Answer) -> Route:
    """A route that gives a fixed answer to any method."""

    async def handler(request: Request) -> None:
        await answer(request.send)

    return Route(handler)


def _not_found(path: str) -> Route:
    return _answering(
        fixed_answer(
            404,
            {
                "error": f"no endpoint {path}; try GET / (the page), POST /predict, POST /explain, "
                "POST /v2/models/<model>/infer, GET /v2/models/<model>, GET /model-card"
            },
        )
    )


def _method_not_allowed(allowed: str) -> Answer:
    return fixed_answer(405, {"error": f"method not allowed; use {allowed}"})


# -- the contract: GET /docs.json and Swagger UI at GET /docs (headliner/serving/openapi.py) ------------------


def _openapi() -> Route:
    """`GET /docs.json`: the document of the routing in use, built when first asked for it (a rollout, a swap or
    a promotion brings a new routing, and so a new document)."""
    built: dict[Routing, bytes] = {}

    async def handler(request: Request) -> None:
        body = built.get(request.routing)
        if body is None:
            built.clear()
            body = built[request.routing] = json_bytes(openapi_document(request.routing))
        await respond(request.send, 200, body)

    return Route(handler, "GET", open=True)


async def _swagger(request: Request) -> None:
    await respond(request.send, 200, swagger_page(request.routing.primary.name).encode(), HTML)


def _swagger_file(name: str, content_type: bytes) -> Route:
    """A Swagger UI file, read from its package when first asked."""
    body: list[bytes] = []

    async def handler(request: Request) -> None:
        if not body:
            body.append((swagger_ui_folder() / name).read_bytes())
        await respond(request.send, 200, body[0], content_type, ((b"cache-control", b"max-age=86400"),))

    return Route(handler, "GET", open=True)


# -- the route table -----------------------------------------------------------------------------------------

ROUTES: dict[str, Route] = {
    "/": Route(_page, "GET", open=True),  # open, so a browser can show it; its requests carry the typed token
    "/v2/health/ready": Route(_ready, open=True),
    "/predict": Route(Scoring("predict", _predict), "POST"),
    "/explain": Route(Scoring("explain", _explain, primary_only=True), "POST"),
    # open like the page, which links it: the card describes the model, not anyone's requests
    "/model-card": Route(_model_card, "GET", open=True),
    "/feedback": Route(Scoring("feedback", _feedback), "POST"),
    "/batch": Route(_upload, "POST"),
    "/metrics": Route(_metrics),
    "/rollout": Route(_rollout_status, "GET"),
    "/v2": Route(_server_metadata),
    # open like the page: the document holds only what the model's metadata says, and marks what needs the token
    "/docs.json": _openapi(),
    "/docs": Route(_swagger, "GET", open=True),
    **{f"/docs/{name}": _swagger_file(name, kind) for name, kind in SWAGGER_UI_FILES.items()},
}

# /v2/models/{name}[/versions/{version}] followed by these path segments
MODEL_ROUTES: dict[tuple[str, ...], Route] = {
    (): Route(_model_metadata, "GET"),
    ("ready",): Route(_model_ready),
    ("infer",): Route(Scoring("v2", _infer), "POST"),
}


def _parsed_route(path: str, routing: Routing) -> tuple[Route, ModelServer | None]:
    """A path not in `ROUTES`, parsed: (its route, `/v2` for /v2/ and one of `MODEL_ROUTES` for
    /v2/models/{name}[/versions/{version}]..., or one answering 404; the server of the version the path
    pins, if it does). Trailing slashes are tolerated."""
    if not path.startswith("/v2"):
        return _not_found(path), None
    parts = path.strip("/").split("/")
    if parts == ["v2"]:
        return ROUTES["/v2"], None
    if len(parts) < 3 or parts[1] != "models":
        return _not_found(path), None
    server = routing.primary
    name, rest = parts[2], parts[3:]
    if name != server.name:
        return _answering(
            fixed_answer(404, {"error": f"unknown model '{name}'; this server serves '{server.name}'"})
        ), None
    pinned = None
    if rest[:1] == ["versions"]:
        version = rest[1] if len(rest) > 1 else ""
        pinned = routing.by_version.get(version)
        if pinned is None:
            served = ", ".join(routing.by_version)
            message = f"unknown version '{version}' of '{name}'; served: {served}"
            return _answering(fixed_answer(404, {"error": message})), None
        rest = rest[2:]
    route = MODEL_ROUTES.get(tuple(rest))
    return (route, pinned) if route is not None else (_not_found(path), None)
