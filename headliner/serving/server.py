"""One loaded model version and what answering with it takes (`ModelServer`: validation rules, scoring
with the model calls of concurrent requests shared (`RowBatcher`), the answers' JSON for the model's task
(a classifier's top classes, a regressor's forecast in the target's unit), the log, auth, limits), the
process's Prometheus counters (`Metrics`), what the
worker processes of one service show each other (`WorkerBoard`) and the few ASGI answer helpers both
the app and the server use. The bottom of the serving stack: routing
(headliner/serving/routing.py) chooses among servers, the app (headliner/serving/app.py) answers with them.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from headliner.model.explanations import explanation_answer, rounded_amount
from headliner.model.onnx_packaging import DECISION, PREDICTION, OnnxPredictor
from headliner.serving.feedback import FeedbackStore
from headliner.serving.inference_log import InferenceLog, InferenceRecord
from headliner.serving.monitoring_figures import MonitoringGauges
from headliner.serving.payloads import FeatureRules, RequestError

if TYPE_CHECKING:
    from headliner.model.explanations import ForecastExplanation, LocalExplainer, SongExplanation

logger = logging.getLogger(__name__)

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
CardSource = Callable[[str, str], str | None]  # (model name, version) -> its model card's HTML, or None


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


class WorkerBoard:
    """What the worker processes of one service show each other: a folder where each worker keeps one
    JSON file of its own (its counters and its routing), replaced whole every `publish_seconds` by a
    thread, so a worker answering /metrics or /rollout speaks for the whole service. The request path
    never touches it. A worker that died leaves its file: its counters still count, its routing no more."""

    def __init__(self, folder: Path, publish_seconds: float = 0.25):
        self.folder = folder
        self.pid = os.getpid()
        self.path = folder / f"worker-{self.pid}.json"
        self.publish_seconds = publish_seconds
        self._state: Callable[[], dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def of_this_service(cls) -> WorkerBoard:
        """The board of the service this worker belongs to: BentoML's arbiter (the parent process) starts
        every worker, so its pid and start time name the folder (a later service never reads old files)."""
        import psutil

        parent = psutil.Process(os.getppid())
        started = int(parent.create_time() * 1000)
        return cls(Path(tempfile.gettempdir()) / f"headliner-workers-{parent.pid}-{started}")

    def start(self, state: Callable[[], dict[str, Any]]) -> None:
        """Publish `state()` now and every `publish_seconds` until `close`."""
        self._state = state
        self.publish()
        self._thread = threading.Thread(target=self._run, name="worker-board", daemon=True)
        self._thread.start()

    def publish(self) -> None:
        if self._state is None:
            return
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps({"pid": self.pid, **self._state()}))
        os.replace(temporary, self.path)  # readers see the old file or the new one, never half of one

    def others(self) -> list[dict[str, Any]]:
        """The other workers' last published states, oldest process first, each with `live`: whether
        that process still runs."""
        import psutil

        states = []
        for path in self.folder.glob("worker-*.json"):
            if path == self.path:
                continue
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                state = orjson.loads(path.read_bytes())
                states.append({**state, "live": psutil.pid_exists(state["pid"])})
        return sorted(states, key=lambda state: int(state["pid"]))

    def _run(self) -> None:
        while not self._stop.wait(self.publish_seconds):
            try:
                self.publish()
            except OSError as exc:  # a full or vanished /tmp must not stop the worker
                logger.warning("worker board %s: %s", self.folder, exc)

    def close(self) -> None:
        """Stop publishing and leave the board; the last worker to leave removes the folder."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.path.unlink(missing_ok=True)
        if not any(state["live"] for state in self.others()):
            shutil.rmtree(self.folder, ignore_errors=True)


class Metrics:
    """Request counters and a latency histogram of this process, kept as plain numbers (a metrics
    library's locks and, under BentoML, its multiprocess files cost more than a one-row prediction)
    and written in the Prometheus text format when scraped. With a `WorkerBoard` the text sums every
    worker of the service: this one's counters as they are, the others' as last published. With
    `MonitoringGauges` the last monitoring run's figures follow (headliner/serving/monitoring_figures.py)."""

    BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

    def __init__(
        self,
        log: InferenceLog | None = None,
        board: WorkerBoard | None = None,
        monitoring: MonitoringGauges | None = None,
    ):
        self._requests: dict[tuple[str, int], int] = {}
        self._rows: dict[str, int] = {}
        self._histograms: dict[str, _Histogram] = {}
        self._log = log
        self.board = board
        self.monitoring = monitoring

    def observe(self, endpoint: str, status: int, rows: int, seconds: float) -> None:
        key = (endpoint, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        self._rows[endpoint] = self._rows.get(endpoint, 0) + rows
        histogram = self._histograms.get(endpoint)
        if histogram is None:
            histogram = self._histograms[endpoint] = _Histogram(len(self.BUCKETS))
        histogram.counts[bisect.bisect_left(self.BUCKETS, seconds)] += 1
        histogram.total += seconds

    def snapshot(self) -> dict[str, Any]:
        """This process's numbers as JSON-ready values (what it publishes on the board)."""
        return {
            "requests": [[endpoint, status, n] for (endpoint, status), n in list(self._requests.items())],
            "rows": dict(self._rows),
            "histograms": {e: [list(h.counts), h.total] for e, h in list(self._histograms.items())},
            "log_written": self._log.written if self._log is not None else 0,
            "log_pending": self._log.pending if self._log is not None else 0,
        }

    def text(self) -> str:
        workers = [{"pid": os.getpid(), "live": True, "metrics": self.snapshot()}]
        if self.board is not None:
            workers += self.board.others()
        text = _prometheus_text(workers, self.BUCKETS, self._log is not None, self.board is not None)
        return text + self.monitoring.text() if self.monitoring is not None else text


def _prometheus_text(workers: list[dict[str, Any]], buckets: tuple[float, ...], logged: bool, by_worker: bool) -> str:
    """The Prometheus text of the summed snapshots of `workers` (each {"pid", "live", "metrics"})."""
    snapshots = [worker["metrics"] for worker in workers]
    requests: dict[tuple[str, int], int] = {}
    rows: dict[str, int] = {}
    histograms: dict[str, tuple[list[int], float]] = {}
    for snapshot in snapshots:
        for endpoint, status, n in snapshot["requests"]:
            requests[(endpoint, status)] = requests.get((endpoint, status), 0) + n
        for endpoint, n in snapshot["rows"].items():
            rows[endpoint] = rows.get(endpoint, 0) + n
        for endpoint, (counts, total) in snapshot["histograms"].items():
            summed, summed_total = histograms.get(endpoint, ([0] * len(counts), 0.0))
            histograms[endpoint] = ([a + b for a, b in zip(summed, counts, strict=True)], summed_total + total)
    lines = ["# HELP headliner_requests_total Requests answered", "# TYPE headliner_requests_total counter"]
    lines += [f'headliner_requests_total{{endpoint="{e}",status="{s}"}} {n}' for (e, s), n in sorted(requests.items())]
    lines += ["# HELP headliner_rows_scored_total Rows (songs) scored", "# TYPE headliner_rows_scored_total counter"]
    lines += [f'headliner_rows_scored_total{{endpoint="{e}"}} {n}' for e, n in sorted(rows.items())]
    name = "headliner_request_latency_seconds"
    lines += [f"# HELP {name} Time from receiving a request to answering it", f"# TYPE {name} histogram"]
    for endpoint, (counts, total) in sorted(histograms.items()):
        cumulative = 0
        for bound, count in zip((*buckets, "+Inf"), counts, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{endpoint="{endpoint}",le="{bound}"}} {cumulative}')
        lines.append(f'{name}_count{{endpoint="{endpoint}"}} {cumulative}')
        lines.append(f'{name}_sum{{endpoint="{endpoint}"}} {total}')
    if logged:
        lines += [
            "# HELP headliner_inference_log_rows_written_total Inference log rows written",
            "# TYPE headliner_inference_log_rows_written_total counter",
            f"headliner_inference_log_rows_written_total {sum(s['log_written'] for s in snapshots)}",
            "# HELP headliner_inference_log_rows_pending Inference log rows queued, not yet written",
            "# TYPE headliner_inference_log_rows_pending gauge",
            f"headliner_inference_log_rows_pending {sum(s['log_pending'] for s in snapshots)}",
        ]
    if by_worker:
        lines += [
            "# HELP headliner_workers Worker processes serving",
            "# TYPE headliner_workers gauge",
            f"headliner_workers {sum(1 for worker in workers if worker['live'])}",
            "# HELP headliner_worker_requests_total Requests answered, by worker process",
            "# TYPE headliner_worker_requests_total counter",
        ]
        lines += [
            f'headliner_worker_requests_total{{pid="{worker["pid"]}"}} '
            f"{sum(n for _, _, n in worker['metrics']['requests'])}"
            for worker in sorted(workers, key=lambda worker: int(worker["pid"]))
        ]
    return "\n".join(lines) + "\n"


# a model call's results: a classifier's (probabilities [N, C], top labels [N, k], top probabilities [N, k]), a
# regressor's (predictions [N, 1],)
Scores = tuple[np.ndarray, ...]
# what the log keeps of an answer: (top labels [N, k], top probabilities [N, k], predictions [N, 1]), None where
# the task has none
Logged = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]
NOTHING_LOGGED: Logged = (None, None, None)
V2_OUTPUTS_BY_TASK = {True: ("probabilities", "label", "classes"), False: (PREDICTION,)}  # by is_classification
CLASSIFICATION_ITEM = "song"  # the item key of a classifier's request paths (songs[2].tempo), as its clients know it
ITEM = "item"  # of the other tasks' (items[2].price)


class RowBatcher:
    """Concurrent requests share one model call: a request's rows wait until the event loop has run every
    request that was ready in the same pass (no timer, no added wait when alone), then the rows of all of them
    are scored together and each gets its slice. One ONNX Runtime call of a few rows costs about what a
    call of one row costs, so under load most of that fixed cost is paid once per pass instead of once per
    request. If a shared call fails, each request is scored alone, so only a request that fails by itself
    gets the error."""

    def __init__(self, score: Callable[[np.ndarray], Scores]):
        self._score = score
        self._waiting: list[tuple[np.ndarray, asyncio.Future[Scores]]] = []
        self.calls = 0  # model calls made, and rows scored through them (what batching saves, for tests)
        self.rows = 0

    async def scores(self, matrix: np.ndarray) -> Scores:
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._score_waiting)  # after the handles ready in this pass
        future: asyncio.Future[Scores] = loop.create_future()
        self._waiting.append((matrix, future))
        return await future

    def _score_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        if len(waiting) == 1:
            self._score_alone(*waiting[0])
            return
        matrices = [matrix for matrix, _ in waiting]
        try:
            scores = self._count(np.concatenate(matrices))
        except Exception:
            for matrix, future in waiting:
                self._score_alone(matrix, future)
            return
        start = 0
        for matrix, future in waiting:
            end = start + len(matrix)
            if not future.done():  # its request may have been cancelled meanwhile
                future.set_result(tuple([part[start:end] for part in scores]))
            start = end

    def _score_alone(self, matrix: np.ndarray, future: asyncio.Future[Scores]) -> None:
        try:
            result = self._count(matrix)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    def _count(self, matrix: np.ndarray) -> Scores:
        self.calls += 1
        self.rows += len(matrix)
        return self._score(matrix)


class ModelServer:
    """One loaded model and everything a request needs: validation rules, the answers of its task (a
    classifier's top-k classes, a regressor's forecast in the target's unit: the methods are chosen once, from
    `OnnxPredictor.task`), the log, auth, and for POST /explain its explainer (built when first asked, run on a
    thread of its own) and GET /model-card its card (`card_source`, see headliner/serving/model_source.py)."""

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
        board: WorkerBoard | None = None,
        max_explain: int = 20,
        card_source: CardSource | None = None,
    ):
        self.predictor = predictor
        self.is_classification = classification = predictor.is_classification
        self.rules = FeatureRules(predictor.feature_schema, CLASSIFICATION_ITEM if classification else ITEM)
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
        self.unit = str((predictor.target or {}).get("unit") or "")
        self.answer_template: str = json.loads(predictor.metadata.get(DECISION, "{}")).get(
            "answer_template", "About {value} {unit}"
        )
        self.v2_outputs = V2_OUTPUTS_BY_TASK[classification]
        self.v2_output_set = frozenset(self.v2_outputs)
        # the task's own ways, chosen here once
        self.scores: Callable[[np.ndarray], Scores] = self._class_scores if classification else self._value_scores
        self.predict_response: Callable[[str, Scores], dict[str, Any]] = (
            self._classes_response if classification else self._values_response
        )
        self.logged: Callable[[Scores], Logged] = self._logged_classes if classification else self._logged_values
        self.board = board  # the service's other workers, when it has a board
        self.metrics = metrics or Metrics(log, board, MonitoringGauges(log.url, self.name) if log is not None else None)
        self.model_metadata = self._model_metadata()
        self.batcher = RowBatcher(self.scores)
        self.max_explain = max_explain
        self.card_source = card_source
        self._explainer: LocalExplainer | None = None
        self._explainer_lock = threading.Lock()
        self._explain_pool: ThreadPoolExecutor | None = None

    def sibling(self, predictor: OnnxPredictor) -> ModelServer:
        """A server of another version of the model, sharing this one's log, auth, limits, metrics and board."""
        server = ModelServer(
            predictor,
            self.log,
            None,
            self.max_rows,
            self.max_body_bytes,
            self.feedback,
            self.metrics,
            self.max_upload_rows,
            self.board,
            self.max_explain,
            self.card_source,
        )
        server.token = self.token
        return server

    @functools.cached_property
    def page(self) -> Answer:
        """The answer to `GET /`: the page for people, rendered from this model's metadata when first asked."""
        from headliner.serving.page import PAGE_HEADERS, page_data, render_page

        html = render_page(page_data(self.predictor), auth=self.token is not None, max_upload_rows=self.max_upload_rows)
        return fixed_answer(200, html.encode(), HTML, PAGE_HEADERS)

    # -- POST /explain and GET /model-card ----------------------------------------------------------------------

    def explainer(self) -> LocalExplainer:
        """This version's explainer, built when first asked (once, whichever thread asks); RequestError 409
        when the model file carries no explanation background."""
        with self._explainer_lock:
            if self._explainer is None:
                from headliner.errors import HeadlinerError
                from headliner.model.explanations import LocalExplainer

                try:
                    self._explainer = LocalExplainer(self.predictor)
                except HeadlinerError as exc:  # it names the model, its version and what to do
                    raise RequestError(409, str(exc)) from None
            return self._explainer

    def explain(self, matrix: np.ndarray) -> list[SongExplanation] | list[ForecastExplanation]:
        """The explanations of [N, F] raw rows (a classifier's top classes, a regressor's forecast), in the
        calling thread (the CPU-bound SHAP work: 15-50 ms a row; the first call of a process, which also builds
        the explainer, about as long: no warm-up is needed)."""
        explainer = self.explainer()
        return explainer.explain(matrix) if self.is_classification else explainer.explain_forecasts(matrix)

    async def explanations(self, matrix: np.ndarray) -> list[SongExplanation] | list[ForecastExplanation]:
        """`explain` off the event loop, on this version's one explanation thread: explanations queue there
        rather than take every core from the predictions."""
        if self._explain_pool is None:
            self._explain_pool = ThreadPoolExecutor(1, thread_name_prefix=f"explain-v{self.version}")
        return await asyncio.get_running_loop().run_in_executor(self._explain_pool, self.explain, matrix)

    def explain_response(
        self, request_id: str, explanations: list[SongExplanation] | list[ForecastExplanation]
    ) -> dict[str, Any]:
        return explanation_answer(self.name, self.version, request_id, explanations)

    def model_card(self) -> str | None:
        """The model card (HTML) of this version, if the service has one (may ask the registry: call it off
        the event loop)."""
        return self.card_source(self.name, self.version) if self.card_source is not None else None

    def _model_metadata(self) -> dict[str, Any]:
        width = self.rules.width
        metadata = {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": name, "datatype": "FP32", "shape": [-1, 1]} for name in self.rules.names],
        }
        if not self.is_classification:
            return {
                **metadata,
                "outputs": [{"name": PREDICTION, "datatype": "FP32", "shape": [-1, 1]}],
                "parameters": {
                    "feature_schema": self.rules.schema,
                    "task": self.predictor.task.value,
                    "target": self.predictor.target,
                    "single_input_shape": [-1, width],
                },
            }
        return {
            **metadata,
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

    async def score(self, matrix: np.ndarray) -> Scores:
        """[N, F] raw values -> the model's `Scores`. Small requests share a model call with the others that
        reach this point in the same pass of the event loop (`RowBatcher`); big ones run alone, off the event
        loop."""
        if len(matrix) > ROWS_RUN_IN_THREAD:
            return await asyncio.get_running_loop().run_in_executor(None, self.scores, matrix)
        return await self.batcher.scores(matrix)

    # `scores` (in the calling thread), `predict_response` (the answer of POST /predict) and `logged` (what the
    # log keeps of scores) of each task

    def _class_scores(self, matrix: np.ndarray) -> Scores:
        probabilities = self.predictor.scores(matrix)
        order, top_probabilities = self.predictor.top_classes(probabilities)
        return probabilities, self.classes[order], top_probabilities

    def _value_scores(self, matrix: np.ndarray) -> Scores:
        return (self.predictor.scores(matrix),)

    def _classes_response(self, request_id: str, scores: Scores) -> dict[str, Any]:
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
                for codes, probabilities in zip(scores[1].tolist(), scores[2].tolist(), strict=True)
            ],
        }

    def _values_response(self, request_id: str, scores: Scores) -> dict[str, Any]:
        unit = self.unit
        return {
            "model_name": self.name,
            "model_version": self.version,
            "request_id": request_id,
            # float32 scalars: the JSON holds the model's number in its shortest form (1238.6)
            "predictions": [
                {"prediction": value, "unit": unit, "answer": self.answer(float(value))} for value in scores[0][:, 0]
            ],
        }

    def answer(self, value: float) -> str:
        """A forecast in the decision's words: "About 1,240 units"."""
        return self.answer_template.replace("{value}", rounded_amount(value)).replace("{unit}", self.unit)

    @staticmethod
    def _logged_classes(scores: Scores) -> Logged:
        return scores[1], scores[2], None

    @staticmethod
    def _logged_values(scores: Scores) -> Logged:
        return None, None, scores[0]

    def v2_response(self, request_id: str, scores: Scores, wanted: list[str]) -> dict[str, Any]:
        rows = len(scores[0])
        if self.is_classification:
            probabilities, top_labels = scores[0], scores[1]
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
        else:
            tensors = {
                PREDICTION: {
                    "name": PREDICTION,
                    "datatype": "FP32",
                    "shape": [rows, 1],
                    "data": np.ascontiguousarray(scores[0], dtype=np.float32).reshape(-1),
                }
            }
        return {
            "model_name": self.name,
            "model_version": self.version,
            "id": request_id,
            "outputs": [tensors[name] for name in wanted],
        }

    def record(
        self,
        received_at: float,
        request_id: str,
        endpoint: str,
        status: int,
        latency_ms: float,
        matrix: np.ndarray | None,
        logged: Logged,
        error: str | None,
        variant: str | None,
    ) -> InferenceRecord:
        """The log's record of a request this version answered."""
        top_labels, top_probabilities, predictions = logged
        return InferenceRecord(
            received_at,
            request_id,
            endpoint,
            self.name,
            self.version,
            status,
            latency_ms,
            0 if matrix is None else len(matrix),
            matrix,
            top_labels,
            top_probabilities,
            error,
            variant,
            predictions,
        )
