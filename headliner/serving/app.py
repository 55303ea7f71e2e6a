"""The inference HTTP API as one plain ASGI app: friendly `POST /predict`, the Open Inference Protocol
(KServe v2) endpoints, `POST /feedback` for true labels, `GET /rollout`, `GET /` (the page for people,
headliner/serving/page.py), `POST /batch` (a CSV file scored through the batch path), bearer-token auth,
Prometheus metrics and the inference log. Which loaded version answers a request is the `Routing`'s
choice (headliner/serving/rollout.py): one fixed model, or production and a candidate under a rollout
policy.

It is a raw ASGI callable rather than a framework app because one-row requests are tens of
microseconds of model work: routing, validation and JSON are kept to what the request needs. The
BentoML service (serving/service.py) runs it as middleware (`InferenceMiddleware`); tests and
benchmarks can run it on any ASGI server.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from headliner.errors import DataSourceError, HeadlinerError
from headliner.model.onnx_packaging import OnnxPredictor
from headliner.serving.feedback import FeedbackStore, parse_feedback
from headliner.serving.inference_log import InferenceLog, InferenceRecord
from headliner.serving.payloads import FeatureRules, RequestError, parse_json
from headliner.serving.rollout import SHADOW, Routing

if TYPE_CHECKING:
    from headliner.serving.batch_scoring import BatchScoringReport

logger = logging.getLogger(__name__)

JSON = b"application/json"
HTML = b"text/html; charset=utf-8"
CSV = b"text/csv; charset=utf-8"
PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"
ROWS_RUN_IN_THREAD = 256  # bigger requests run the model off the event loop
PROTOCOL_NAME = "headliner"
V2_OUTPUTS = ("probabilities", "label", "classes")


def _json(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


class Metrics:
    """Request counters and a latency histogram of this process, kept as plain numbers (a metrics
    library's locks and, under BentoML, its multiprocess files cost more than a one-row prediction)
    and written in the Prometheus text format when scraped."""

    BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

    def __init__(self, log: InferenceLog | None = None):
        self._requests: dict[tuple[str, int], int] = {}
        self._rows: dict[str, int] = {}
        self._histograms: dict[str, list] = {}  # endpoint -> [bucket counts..., +Inf count, sum]
        self._log = log

    def observe(self, endpoint: str, status: int, rows: int, seconds: float) -> None:
        key = (endpoint, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        self._rows[endpoint] = self._rows.get(endpoint, 0) + rows
        histogram = self._histograms.get(endpoint)
        if histogram is None:
            histogram = self._histograms[endpoint] = [0] * (len(self.BUCKETS) + 1) + [0.0]
        histogram[bisect.bisect_left(self.BUCKETS, seconds)] += 1
        histogram[-1] += seconds

    def text(self) -> str:
        lines = ["# HELP headliner_requests_total Requests answered", "# TYPE headliner_requests_total counter"]
        lines += [
            f'headliner_requests_total{{endpoint="{e}",status="{s}"}} {n}'
            for (e, s), n in sorted(self._requests.items())
        ]
        lines += [
            "# HELP headliner_rows_scored_total Rows (songs) scored",
            "# TYPE headliner_rows_scored_total counter",
        ]
        lines += [f'headliner_rows_scored_total{{endpoint="{e}"}} {n}' for e, n in sorted(self._rows.items())]
        name = "headliner_request_latency_seconds"
        lines += [f"# HELP {name} Time from receiving a request to answering it", f"# TYPE {name} histogram"]
        for endpoint, histogram in sorted(self._histograms.items()):
            cumulative = 0
            for bound, count in zip((*self.BUCKETS, "+Inf"), histogram[:-1]):
                cumulative += count
                lines.append(f'{name}_bucket{{endpoint="{endpoint}",le="{bound}"}} {cumulative}')
            lines.append(f'{name}_count{{endpoint="{endpoint}"}} {cumulative}')
            lines.append(f'{name}_sum{{endpoint="{endpoint}"}} {histogram[-1]}')
        if self._log is not None:
            lines += [
                "# HELP headliner_inference_log_rows_written_total Inference log rows written",
                "# TYPE headliner_inference_log_rows_written_total counter",
                f"headliner_inference_log_rows_written_total {self._log.written}",
                "# HELP headliner_inference_log_rows_pending Inference log rows queued, not yet written",
                "# TYPE headliner_inference_log_rows_pending gauge",
                f"headliner_inference_log_rows_pending {self._log.pending}",
            ]
        return "\n".join(lines) + "\n"


class ModelServer:
    """One loaded model and everything a request needs: validation rules, top-k, the log, auth."""

    def __init__(
        self,
        predictor: OnnxPredictor,
        log: InferenceLog | None,
        token: str | None = None,
        max_rows: int = 1000,
        max_body_bytes: int = 16 * 1024 * 1024,
        feedback: FeedbackStore | None = None,
        metrics: Metrics | None = None,
        max_upload_rows: int = 100_000,
    ):
        self.predictor = predictor
        self.rules = FeatureRules(predictor.feature_schema)
        self.log = log
        self.feedback = feedback
        self.token = f"Bearer {token}".encode() if token else None
        self.max_rows = max_rows
        self.max_body_bytes = max_body_bytes
        self.max_upload_rows = max_upload_rows
        self.name = predictor.model_name
        self.version = predictor.model_version
        self.classes = np.array(predictor.classes, dtype=object)
        self.names_by_code = dict(zip(predictor.classes, predictor.class_names))
        self.metrics = metrics or Metrics(log)
        self.model_metadata = self._model_metadata()

    def sibling(self, predictor: OnnxPredictor) -> ModelServer:
        """A server of another version of the model, sharing this one's log, auth, limits and metrics."""
        server = ModelServer(
            predictor,
            self.log,
            None,
            self.max_rows,
            self.max_body_bytes,
            self.feedback,
            self.metrics,
            self.max_upload_rows,
        )
        server.token = self.token
        return server

    @functools.cached_property
    def page(self) -> Callable[[Send], Awaitable[None]]:
        """The answer to `GET /`: the page for people, rendered from this model's metadata when first asked."""
        from headliner.serving.page import PAGE_HEADERS, page_data, render_page

        html = render_page(page_data(self.predictor), auth=self.token is not None, max_upload_rows=self.max_upload_rows)
        return _ready(200, html.encode(), HTML, PAGE_HEADERS)

    def _model_metadata(self) -> dict[str, Any]:
        width = self.rules.width
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": name, "datatype": "FP32", "shape": [-1, 1]} for name in self.rules.names],
            "outputs": [
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(self.classes)]},
                {"name": "label", "datatype": "BYTES", "shape": [-1]},
                {"name": "classes", "datatype": "BYTES", "shape": [len(self.classes)]},
            ],
            "parameters": {
                "feature_schema": self.rules.schema,
                "class_labels": list(self.predictor.classes),
                "class_names": list(self.predictor.class_names),
                "top_k": self.predictor.top_k,
                "single_input_shape": [-1, width],
            },
        }

    async def score(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """[N, F] raw values -> (probabilities [N, C], top labels [N, k], top probabilities [N, k])."""
        if len(matrix) > ROWS_RUN_IN_THREAD:
            probabilities = await asyncio.get_running_loop().run_in_executor(None, self.predictor.probabilities, matrix)
        else:
            probabilities = self.predictor.probabilities(matrix)
        order, top_probabilities = self.predictor.top_classes(probabilities)
        return probabilities, self.classes[order], top_probabilities

    def predict_response(self, request_id: str, top_labels: np.ndarray, top_probabilities: np.ndarray) -> dict:
        names = self.names_by_code
        return {
            "model_name": self.name,
            "model_version": self.version,
            "request_id": request_id,
            "predictions": [
                {
                    "top": [
                        {"code": code, "name": names[code], "probability": round(p, 6)}
                        for code, p in zip(codes, probabilities)
                    ]
                }
                for codes, probabilities in zip(top_labels.tolist(), top_probabilities.tolist())
            ],
        }

    def v2_response(
        self, request_id: str, probabilities: np.ndarray, top_labels: np.ndarray, wanted: list[str]
    ) -> dict:
        rows = len(probabilities)
        tensors = {
            "probabilities": {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [rows, probabilities.shape[1]],
                "data": np.ascontiguousarray(probabilities, dtype=np.float32).reshape(-1),
            },
            "label": {"name": "label", "datatype": "BYTES", "shape": [rows], "data": top_labels[:, 0].tolist()},
            "classes": {
                "name": "classes",
                "datatype": "BYTES",
                "shape": [len(self.classes)],
                "data": self.predictor.classes,
            },
        }
        return {
            "model_name": self.name,
            "model_version": self.version,
            "id": request_id,
            "outputs": [tensors[name] for name in wanted],
        }


def requested_outputs(payload: dict) -> list[str]:
    """The v2 request's `outputs` names (all three by default, probabilities first)."""
    outputs = payload.get("outputs")
    if outputs is None:
        return list(V2_OUTPUTS)
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise RequestError(400, "'outputs' must be a list of objects with a 'name'", "outputs")
    names = [o["name"] for o in outputs]
    unknown = [name for name in names if name not in V2_OUTPUTS]
    if unknown:
        raise RequestError(400, f"unknown output '{unknown[0]}'; this model has {list(V2_OUTPUTS)}", "outputs")
    return names


Send = Callable[[dict], Awaitable[None]]


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = JSON, extra_headers: tuple = ()) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
        return path in ("/", "/predict", "/batch", "/feedback", "/metrics", "/rollout", "/v2") or path.startswith(
            "/v2/"
        )

    async def __call__(self, scope: dict, receive: Callable, send: Send) -> None:
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
        method, path = scope["method"], scope["path"]
        routing = self.routing
        content_type = authorization = request_id = ab_key = None
        ab_header = routing.ab_header if routing is not None else None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value
            elif key == b"authorization":
                authorization = value
            elif key == b"x-request-id" and len(value) <= 64:
                request_id = value.decode("latin-1")
            elif key == ab_header:
                ab_key = value
        request_id = request_id or os.urandom(16).hex()

        if path == "/v2/health/live":
            return await _respond(send, 200, b'{"live":true}')
        if routing is None:
            return await _respond(send, 503, b'{"error":"the model is still loading"}')
        server = routing.primary
        if path == "/v2/health/ready":
            return await _respond(send, 200, b'{"ready":true}')
        if path == "/":  # open, so a browser can show it; what it sends carries the token the person types
            return await (server.page if method == "GET" else _method_not_allowed("GET"))(send)
        if server.token is not None and not (authorization and hmac.compare_digest(authorization, server.token)):
            body = b'{"error":"missing or wrong bearer token: send Authorization: Bearer <token>"}'
            return await _respond(send, 401, body, extra_headers=((b"www-authenticate", b"Bearer"),))

        if path == "/batch":
            return await _upload(server, method, content_type, receive, send, request_id, received_at, started)
        endpoint, handler, pinned = self._route(method, path, routing)
        if handler is None:
            return await endpoint(send)  # a ready answer: metadata, 404, 405
        if pinned is not None:  # /v2/models/{m}/versions/{v}/infer: that version, whatever the policy
            answering, variant, shadow = pinned, routing.variant_of(pinned), None
        else:
            answering, variant, shadow = routing.choose(ab_key)
        status, rows, matrix, top_labels, top_probabilities, error = 200, 0, None, None, None, None
        try:
            if content_type is None or b"json" not in content_type:
                raise RequestError(
                    400,
                    f"Content-Type must be application/json, got {content_type.decode('latin-1') if content_type else 'none'}",
                    "Content-Type",
                )
            body = await self._read_body(receive, server.max_body_bytes)
            payload = parse_json(body)
            response, matrix, top_labels, top_probabilities = await handler(answering, payload, request_id)
            rows = 0 if matrix is None else len(matrix)
            answer = _json(response)
        except RequestError as exc:
            status, error = exc.status, exc.message
            answer = _json(exc.body())
        except Exception as exc:  # a bug, not bad input: answer 500, keep serving
            logger.exception("request %s to %s failed", request_id, path)
            status, error = 500, f"internal error: {type(exc).__name__}"
            answer = _json({"error": error})
        headers = (
            (b"x-request-id", request_id.encode("latin-1")),
            (b"x-model-version", answering.version.encode("latin-1")),
        )
        await _respond(send, status, answer, extra_headers=headers)
        elapsed = time.perf_counter() - started
        server.metrics.observe(endpoint, status, rows, elapsed)
        if server.log is None or endpoint == "feedback":  # labels are stored by the feedback store
            return
        server.log.append(
            InferenceRecord(
                received_at,
                request_id,
                endpoint,
                answering.name,
                answering.version,
                status,
                elapsed * 1000.0,
                rows,
                matrix,
                top_labels,
                top_probabilities,
                error,
                variant,
            )
        )
        if shadow is not None and status == 200 and matrix is not None:
            await _score_in_shadow(shadow, endpoint, request_id, matrix)

    @staticmethod
    async def _read_body(receive: Callable, limit: int) -> bytes:
        message = await receive()
        body = message.get("body", b"")
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

    def _route(self, method: str, path: str, routing: Routing) -> tuple[Any, Any, ModelServer | None]:
        """(endpoint name, handler, pinned version's server or None) for a scoring request, or
        (ready answer, None, None)."""
        server = routing.primary
        if path == "/predict":
            return ("predict", _predict, None) if method == "POST" else (_method_not_allowed("POST"), None, None)
        if path == "/feedback":
            return ("feedback", _feedback, None) if method == "POST" else (_method_not_allowed("POST"), None, None)
        if path.startswith("/v2"):
            return _route_v2(method, path, routing)
        if path == "/metrics":
            return _ready(200, server.metrics.text().encode(), PROMETHEUS), None, None
        if path == "/rollout":
            return (
                (_ready(200, routing.status()), None, None)
                if method == "GET"
                else (_method_not_allowed("GET"), None, None)
            )
        return _not_found(path), None, None


class InferenceMiddleware:
    """The app as ASGI middleware: its own paths are answered directly, everything else goes on to the
    wrapped app. Under BentoML this skips the framework's per-request context, routing and exception
    layers, which cost more than a one-row prediction (bench/serving_bench.py measures it)."""

    def __init__(self, app: Callable, endpoints: InferenceApp):
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: dict, receive: Callable, send: Send) -> None:
        if scope["type"] == "http" and self.endpoints.handles(scope["path"]):
            return await self.endpoints(scope, receive, send)
        return await self.app(scope, receive, send)


async def _predict(server: ModelServer, payload: Any, request_id: str):
    matrix = server.rules.songs_matrix(payload, server.max_rows)
    _, top_labels, top_probabilities = await server.score(matrix)
    return server.predict_response(request_id, top_labels, top_probabilities), matrix, top_labels, top_probabilities


async def _infer(server: ModelServer, payload: Any, request_id: str):
    matrix = server.rules.v2_matrix(payload, server.max_rows)
    wanted = requested_outputs(payload)
    probabilities, top_labels, top_probabilities = await server.score(matrix)
    if isinstance(payload.get("id"), str):
        request_id = payload["id"][:64]
    return server.v2_response(request_id, probabilities, top_labels, wanted), matrix, top_labels, top_probabilities


async def _feedback(server: ModelServer, payload: Any, request_id: str):
    """True labels for earlier predictions; stored (off the event loop) before the answer, so 200 means kept."""
    if server.feedback is None:
        raise RequestError(503, "this server keeps no feedback (it has no inference log)")
    labels = parse_feedback(payload, server.predictor.classes, server.max_rows)
    try:
        accepted = await asyncio.get_running_loop().run_in_executor(None, server.feedback.write, labels, "api")
    except Exception as exc:  # the database is down: the client may send again
        logger.error("feedback %s not stored: %s", request_id, exc)
        raise RequestError(503, "the feedback store is unavailable; send the labels again later") from None
    return {"accepted": accepted, "request_id": request_id}, None, None, None


async def _upload(
    server: ModelServer,
    method: str,
    content_type: bytes | None,
    receive: Callable,
    send: Send,
    request_id: str,
    received_at: float,
    started: float,
) -> None:
    """`POST /batch`: a CSV file scored by the batch path (headliner/serving/batch_scoring.py) with the primary
    version, answered as a CSV of predictions. The batch path logs the scored rows (endpoint 'batch', one
    record per chunk, ids '<request id>-<chunk>'); a refused file is logged here as one record."""
    if method != "POST":
        return await _method_not_allowed("POST")(send)
    status, rows, error, answer_type = 200, 0, None, CSV
    headers = [(b"x-request-id", request_id.encode("latin-1")), (b"x-model-version", server.version.encode("latin-1"))]
    try:
        if content_type is None or b"csv" not in content_type:
            got = content_type.decode("latin-1") if content_type else "none"
            raise RequestError(400, f"Content-Type must be text/csv, got {got}", "Content-Type")
        body = await InferenceApp._read_body(receive, server.max_body_bytes)
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
        answer = _json(exc.body())
    except Exception as exc:  # a bug, not a bad file: answer 500, keep serving
        logger.exception("request %s to /batch failed", request_id)
        status, error, answer_type = 500, f"internal error: {type(exc).__name__}", JSON
        answer = _json({"error": error})
    await _respond(send, status, answer, answer_type, tuple(headers))
    elapsed = time.perf_counter() - started
    server.metrics.observe("batch", status, rows, elapsed)
    if server.log is not None and status != 200:
        server.log.append(
            InferenceRecord(
                received_at,
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


async def _score_in_shadow(shadow: ModelServer, endpoint: str, request_id: str, matrix: np.ndarray) -> None:
    """The candidate's answer to a request production answered: logged (variant 'shadow'), never sent."""
    started, received_at = time.perf_counter(), time.time()
    try:
        _, top_labels, top_probabilities = await shadow.score(matrix)
    except Exception:  # the shadow must never hurt the answer already given
        logger.exception("shadow scoring of request %s by version %s failed", request_id, shadow.version)
        return
    shadow.log.append(
        InferenceRecord(
            received_at,
            request_id,
            endpoint,
            shadow.name,
            shadow.version,
            200,
            (time.perf_counter() - started) * 1000.0,
            len(matrix),
            matrix,
            top_labels,
            top_probabilities,
            None,
            SHADOW,
        )
    )


def _ready(status: int, payload: Any, content_type: bytes = JSON, extra_headers: tuple = ()):
    body = payload if isinstance(payload, bytes) else _json(payload)

    async def answer(send: Send) -> None:
        await _respond(send, status, body, content_type, extra_headers)

    return answer


def _not_found(path: str):
    return _ready(
        404,
        {
            "error": f"no endpoint {path}; try GET / (the page), POST /predict, POST /v2/models/<model>/infer, GET /v2/models/<model>"
        },
    )


def _method_not_allowed(allowed: str):
    return _ready(405, {"error": f"method not allowed; use {allowed}"})


def _route_v2(method: str, path: str, routing: Routing):
    server = routing.primary
    parts = path.strip("/").split("/")
    if parts == ["v2"]:
        return _ready(200, {"name": PROTOCOL_NAME, "version": "2", "extensions": []}), None, None
    if len(parts) < 3 or parts[1] != "models":
        return _not_found(path), None, None
    name, rest = parts[2], parts[3:]
    if name != server.name:
        return _ready(404, {"error": f"unknown model '{name}'; this server serves '{server.name}'"}), None, None
    pinned = None
    if rest[:1] == ["versions"]:
        version = rest[1] if len(rest) > 1 else ""
        pinned = routing.by_version.get(version)
        if pinned is None:
            served = ", ".join(routing.by_version)
            return _ready(404, {"error": f"unknown version '{version}' of '{name}'; served: {served}"}), None, None
        rest = rest[2:]
    if rest == []:
        if method != "GET":
            return _method_not_allowed("GET"), None, None
        metadata = (pinned or server).model_metadata
        if pinned is None and routing.candidate is not None:  # the production version first
            metadata = {**metadata, "versions": list(routing.by_version)}
        return _ready(200, metadata), None, None
    if rest == ["ready"]:
        return _ready(200, {"name": name, "ready": True}), None, None
    if rest == ["infer"]:
        return ("v2", _infer, pinned) if method == "POST" else (_method_not_allowed("POST"), None, None)
    return _not_found(path), None, None
