"""One loaded model version and what answering with it takes (`ModelServer`: validation rules, scoring,
the answers' JSON, the log, auth, limits), the process's Prometheus counters (`Metrics`) and the few ASGI
answer helpers both the app and the server use. The bottom of the serving stack: routing
(headliner/serving/routing.py) chooses among servers, the app (headliner/serving/app.py) answers with them.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson

from headliner.model.onnx_packaging import OnnxPredictor
from headliner.serving.feedback import FeedbackStore
from headliner.serving.inference_log import InferenceLog
from headliner.serving.payloads import FeatureRules

JSON = b"application/json"
HTML = b"text/html; charset=utf-8"
ROWS_RUN_IN_THREAD = 256  # bigger requests run the model off the event loop

# ASGI, as far as this package uses it
Message = dict[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]
Answer = Callable[[Send], Awaitable[None]]  # an answer fixed in advance, sent when asked


def json_bytes(payload: Any) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


async def respond(
    send: Send, status: int, body: bytes, content_type: bytes = JSON, extra_headers: Headers = ()
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def fixed_answer(status: int, payload: Any, content_type: bytes = JSON, extra_headers: Headers = ()) -> Answer:
    """An answer whose body (bytes, or a payload for JSON) is encoded once, here."""
    body = payload if isinstance(payload, bytes) else json_bytes(payload)

    async def answer(send: Send) -> None:
        await respond(send, status, body, content_type, extra_headers)

    return answer


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self, buckets: int):
        self.counts = [0] * (buckets + 1)  # per bucket, then above the last bound (+Inf)
        self.total = 0.0


class Metrics:
    """Request counters and a latency histogram of this process, kept as plain numbers (a metrics
    library's locks and, under BentoML, its multiprocess files cost more than a one-row prediction)
    and written in the Prometheus text format when scraped."""

    BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

    def __init__(self, log: InferenceLog | None = None):
        self._requests: dict[tuple[str, int], int] = {}
        self._rows: dict[str, int] = {}
        self._histograms: dict[str, _Histogram] = {}
        self._log = log

    def observe(self, endpoint: str, status: int, rows: int, seconds: float) -> None:
        key = (endpoint, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        self._rows[endpoint] = self._rows.get(endpoint, 0) + rows
        histogram = self._histograms.get(endpoint)
        if histogram is None:
            histogram = self._histograms[endpoint] = _Histogram(len(self.BUCKETS))
        histogram.counts[bisect.bisect_left(self.BUCKETS, seconds)] += 1
        histogram.total += seconds

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
            for bound, count in zip((*self.BUCKETS, "+Inf"), histogram.counts, strict=True):
                cumulative += count
                lines.append(f'{name}_bucket{{endpoint="{endpoint}",le="{bound}"}} {cumulative}')
            lines.append(f'{name}_count{{endpoint="{endpoint}"}} {cumulative}')
            lines.append(f'{name}_sum{{endpoint="{endpoint}"}} {histogram.total}')
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
        self.names_by_code = dict(zip(predictor.classes, predictor.class_names, strict=True))
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
    def page(self) -> Answer:
        """The answer to `GET /`: the page for people, rendered from this model's metadata when first asked."""
        from headliner.serving.page import PAGE_HEADERS, page_data, render_page

        html = render_page(page_data(self.predictor), auth=self.token is not None, max_upload_rows=self.max_upload_rows)
        return fixed_answer(200, html.encode(), HTML, PAGE_HEADERS)

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

    def predict_response(
        self, request_id: str, top_labels: np.ndarray, top_probabilities: np.ndarray
    ) -> dict[str, Any]:
        names = self.names_by_code
        return {
            "model_name": self.name,
            "model_version": self.version,
            "request_id": request_id,
            "predictions": [
                {
                    "top": [
                        {"code": code, "name": names[code], "probability": round(p, 6)}
                        for code, p in zip(codes, probabilities, strict=True)
                    ]
                }
                for codes, probabilities in zip(top_labels.tolist(), top_probabilities.tolist(), strict=True)
            ],
        }

    def v2_response(
        self, request_id: str, probabilities: np.ndarray, top_labels: np.ndarray, wanted: list[str]
    ) -> dict[str, Any]:
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
