"""Mixed traffic against a running jukebox service and the inference-log audit that follows it: the soak and
stop-under-load tests (tests/services/test_soak.py) and bench/soak.py drive a service with `MixedTraffic`
and judge it with `audit`.

Every request carries its own X-Request-ID, so each answer the client saw can be matched with its log row:
after the run the log must hold exactly one row per answered /predict and v2 request (good or bad), with
the status the client got, and none for a request that got no answer."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from tests.helpers.payloads import SONG, v2_request

if TYPE_CHECKING:
    from tests.helpers.service import RunningService

V2_PATH = "/v2/models/jukebox/infer"
POSTGRESQL_SERVER = "postgresql://postgres@127.0.0.1:5432"  # the `servers` stack's, on every test machine
# kind -> (path, body, the endpoint it is logged as or None, the status a right answer has)
REQUESTS: dict[str, tuple[str, Any, str | None, int]] = {
    "predict": ("/predict", SONG, "predict", 200),
    "v2": (V2_PATH, v2_request(), "v2", 200),
    "bad value": ("/predict", {**SONG, "tempo": 300.0}, "predict", 422),
    "bad json": ("/predict", b'{"tempo": ', "predict", 400),
    "bad tensor": (V2_PATH, {"inputs": [{"name": "tempo", "shape": [1], "datatype": "FP32"}]}, "v2", 400),
    "unknown path": ("/predictions", SONG, None, 404),
}
WEIGHTS = {"predict": 45, "v2": 25, "feedback": 15, "bad value": 5, "bad json": 4, "bad tensor": 4, "unknown path": 2}
# What a request the stopping service no longer takes may get: its connection refused, or a kept-alive one closed
# before any byte of an answer. Never a timeout: nothing hangs.
REFUSALS = frozenset({"ConnectError", "RemoteProtocolError", "ReadError"})
FEEDBACK = "feedback"  # labels an answered /predict request with its own top country: 200, stored


@dataclass(frozen=True)
class Outcome:
    kind: str  # a key of WEIGHTS
    request_id: str
    status: int | None  # None: no answer
    error: str | None  # the client's error (its class name) when there was no answer
    sent: float  # seconds since the traffic started
    seconds: float  # until the answer or the error


@dataclass
class Traffic:
    """What `MixedTraffic.run` sent and got."""

    outcomes: list[Outcome] = field(default_factory=list)
    labelled: set[str] = field(default_factory=set)  # request ids whose feedback was answered 200
    seconds: float = 0.0

    @property
    def answered(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status is not None]

    def statuses(self) -> Counter[tuple[str, int | None]]:
        return Counter((outcome.kind, outcome.status) for outcome in self.outcomes)

    def errors(self) -> Counter[str]:
        return Counter(outcome.error for outcome in self.outcomes if outcome.error is not None)

    def server_errors(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status is not None and outcome.status >= 500]

    def wrong_answers(self) -> list[Outcome]:
        """Answers other than the one the kind must get (feedback: 200)."""
        return [
            outcome
            for outcome in self.answered
            if outcome.status != (200 if outcome.kind == FEEDBACK else REQUESTS[outcome.kind][3])
        ]

    def latency_ms(self, quantile: float) -> float:
        answered = sorted(outcome.seconds for outcome in self.answered)
        return 1000 * answered[min(len(answered) - 1, int(quantile * len(answered)))] if answered else 0.0


class MixedTraffic:
    """`connections` concurrent clients (asyncio tasks over one httpx client), each sending requests of random
    kinds (`WEIGHTS`) one after the other until `run`'s time is up or its `stop` event is set; request ids are
    `id_prefix`-<n>. A client whose request got no answer (the service
    stopping) waits `retry_seconds` before its next one."""

    def __init__(
        self,
        url: str,
        connections: int = 8,
        seed: int = 0,
        token: str | None = None,
        retry_seconds: float = 0.05,
        id_prefix: str = "soak",
    ):
        self.url = url
        self.id_prefix = id_prefix
        self.connections = connections
        self.random = random.Random(seed)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retry_seconds = retry_seconds
        self._ids = itertools.count()
        self._labels: list[tuple[str, str]] = []  # (request id, its top country) of answered /predict requests
        self._kinds = list(WEIGHTS)
        self._weights = list(WEIGHTS.values())

    def run(self, seconds: float, stop: threading.Event | None = None) -> Traffic:
        return asyncio.run(self.run_async(seconds, stop))

    async def run_async(self, seconds: float, stop: threading.Event | None = None) -> Traffic:
        traffic = Traffic()
        started = time.monotonic()
        deadline = started + seconds
        limits = httpx.Limits(max_connections=self.connections, max_keepalive_connections=self.connections)
        timeout = httpx.Timeout(30.0)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=timeout, trust_env=False) as client:

            async def one_client() -> None:
                while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
                    outcome = await self._send(client, started, traffic)
                    traffic.outcomes.append(outcome)
                    if outcome.status is None:
                        await asyncio.sleep(self.retry_seconds)

            await asyncio.gather(*(one_client() for _ in range(self.connections)))
        traffic.seconds = time.monotonic() - started
        return traffic

    async def _send(self, client: httpx.AsyncClient, started: float, traffic: Traffic) -> Outcome:
        kind = self.random.choices(self._kinds, self._weights)[0]
        if kind == FEEDBACK and not self._labels:
            kind = "predict"
        request_id = f"{self.id_prefix}-{next(self._ids)}"
        headers = {**self.headers, "X-Request-ID": request_id, "Content-Type": "application/json"}
        body: Any
        if kind == FEEDBACK:
            labelled, label = self._labels[self.random.randrange(len(self._labels))]
            path, body = "/feedback", {"request_id": labelled, "label": label}
        else:
            path, body = REQUESTS[kind][0], REQUESTS[kind][1]
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = time.monotonic()
        try:
            response = await client.post(path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            return Outcome(kind, request_id, None, type(exc).__name__, sent - started, time.monotonic() - sent)
        if kind == "predict" and response.status_code == 200:
            self._labels.append((request_id, response.json()["predictions"][0]["top"][0]["code"]))
        elif kind == FEEDBACK and response.status_code == 200:
            traffic.labelled.add(body["request_id"])
        return Outcome(kind, request_id, response.status_code, None, sent - started, time.monotonic() - sent)


@dataclass(frozen=True)
class StoppedUnderLoad:
    """`soak_then_stop`'s run: the traffic, when the stop signal went (in the traffic's seconds), the service's
    exit code and the seconds from the signal to its exit."""

    traffic: Traffic
    signalled: float
    exit_code: int
    stop_seconds: float

    def before_stop(self) -> list[Outcome]:
        """The requests sent before the signal (less 0.2 s: the ones in flight at the signal are not judged)."""
        return [outcome for outcome in self.traffic.outcomes if outcome.sent < self.signalled - 0.2]

    def after_stop(self) -> list[Outcome]:
        return [outcome for outcome in self.traffic.outcomes if outcome.sent >= self.signalled]


def soak_then_stop(
    service: RunningService, seconds: float, connections: int = 8, seed: int = 0, stop_timeout: float = 120
) -> StoppedUnderLoad:
    """Mixed traffic for `seconds`, then SIGTERM to the service while the traffic goes on until half a second
    after it exited."""
    stop_traffic = threading.Event()
    results: list[Traffic] = []
    traffic = MixedTraffic(service.url, connections=connections, seed=seed)
    driver = threading.Thread(target=lambda: results.append(traffic.run(seconds + stop_timeout, stop=stop_traffic)))
    started = time.monotonic()
    driver.start()
    time.sleep(seconds)
    signalled = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    exit_code = service.process.wait(stop_timeout)
    exited = time.monotonic()
    time.sleep(0.5)  # requests sent after the exit: refused
    stop_traffic.set()
    driver.join(60)
    service.client.close()
    return StoppedUnderLoad(results[0], signalled - started, exit_code, exited - signalled)


@dataclass(frozen=True)
class Audit:
    """The inference log against the answers the client saw."""

    expected_rows: int  # answered requests of the logged kinds
    rows: int  # log rows of this traffic's request ids
    missing: list[str]  # answered, no row
    duplicated: list[str]  # answered, more than one row
    unanswered_logged: list[str]  # no answer, yet a row
    status_mismatch: list[str]  # the row's status is not the one answered

    @property
    def lost(self) -> int:
        return len(self.missing)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.duplicated or self.unanswered_logged or self.status_mismatch)


def audit(traffic: Traffic, log_rows: list[tuple[str, int]]) -> Audit:
    """`log_rows`: (request_id, status) of every row of the inference log."""
    rows_by_id: dict[str, list[int]] = {}
    for request_id, status in log_rows:
        rows_by_id.setdefault(request_id, []).append(status)
    logged = [outcome for outcome in traffic.outcomes if outcome.kind != FEEDBACK and REQUESTS[outcome.kind][2]]
    answered = [outcome for outcome in logged if outcome.status is not None]
    return Audit(
        expected_rows=len(answered),
        rows=sum(len(rows_by_id.get(outcome.request_id, [])) for outcome in logged),
        missing=[o.request_id for o in answered if o.request_id not in rows_by_id],
        duplicated=[o.request_id for o in answered if len(rows_by_id.get(o.request_id, [])) > 1],
        unanswered_logged=[o.request_id for o in logged if o.status is None and o.request_id in rows_by_id],
        status_mismatch=[
            o.request_id for o in answered if o.request_id in rows_by_id and rows_by_id[o.request_id][0] != o.status
        ],
    )


def log_rows(url: str) -> list[tuple[str, int]]:
    """(request_id, status) of every row of the inference log at `url`."""
    from sqlalchemy import text

    from headliner.serving.inference_log import create_log_engine

    engine = create_log_engine(url)
    try:
        with engine.connect() as connection:
            return [
                (row[0], row[1]) for row in connection.execute(text("SELECT request_id, status FROM inference_log"))
            ]
    finally:
        engine.dispose()


def serve_command(model_file: str, workers: int, port: int) -> list[str]:
    """`python run.py serve` of an ONNX file with `workers` worker processes on 127.0.0.1:`port`."""
    return [
        sys.executable,
        "run.py",
        "serve",
        "--model-file",
        model_file,
        "--workers",
        str(workers),
        "--port",
        str(port),
    ]


@contextmanager
def postgresql_database() -> Iterator[str]:
    """The URL of a fresh database on the PostgreSQL server the `servers` stack logs to, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"headliner_soak_{uuid.uuid4().hex[:12]}"
    server = create_engine(f"{POSTGRESQL_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield f"{POSTGRESQL_SERVER}/{name}"
    finally:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        server.dispose()
