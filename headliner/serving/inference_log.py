"""The inference log: every request the service answers, and every batch it scores, as one row of a SQL
table that monitoring reads. The request path only appends to an in-memory queue; a separate writer
process (see `InferenceLog`) writes queued rows in batches, retries when the database is unavailable,
and writes the rest on close, so no row is lost on a graceful stop (if the database is still down
then, rows go to a JSON-lines file).

Schema of table `inference_log` (one row per request):
  id             integer primary key
  received_at    timestamp (UTC) when the request arrived
  request_id     the request's id (returned to the client; `X-Request-ID` if the client sent one)
  endpoint       'predict', 'v2', 'explain' or 'batch'
  model_name     e.g. 'jukebox'
  model_version  e.g. '3'
  status         HTTP status answered (batch: 200)
  latency_ms     time from receiving the request to sending the answer
  rows           items (rows) in the request; 0 when it was rejected before parsing
  inputs         JSON {"columns": [feature names], "data": [[raw values] per row]} (pandas' "split"
                 layout: pd.DataFrame(**json.loads(inputs))); null when rejected
  outputs        JSON, a classifier's {"top": [[class code per rank] per row], "probability": [[...] per row]},
                 a regressor's {"prediction": [[value] per row]} (in the target's unit)
  error          the error message answered, for 4xx/5xx
  variant        under a rollout (see headliner/serving/rollout.py): 'production' or 'candidate' for the
                 version that answered, 'shadow' for a candidate's unreturned answer to the same request
                 (same request_id); null for a service without a rollout, and for batch scoring
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import marshal
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson

if TYPE_CHECKING:  # both loaded when first used: the serving process imports this module at start
    import pandas as pd
    from sqlalchemy import DateTime, Engine, MetaData, Table

logger = logging.getLogger(__name__)

TABLE_NAME = "inference_log"
COLUMNS = [  # every column but `id`, in table order
    "received_at",
    "request_id",
    "endpoint",
    "model_name",
    "model_version",
    "status",
    "latency_ms",
    "rows",
    "inputs",
    "outputs",
    "error",
    "variant",
]
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
PREDICTION = "prediction"  # a regressor's outputs (the ONNX output's name)


class InferenceRecord(NamedTuple):
    received_at: float  # epoch seconds
    request_id: str
    endpoint: str
    model_name: str
    model_version: str
    status: int
    latency_ms: float
    rows: int
    inputs: np.ndarray | None  # [N, F] raw feature values
    top_labels: np.ndarray | None  # [N, k] class codes (classification)
    top_probabilities: np.ndarray | None  # [N, k] (classification)
    error: str | None
    variant: str | None = None
    predictions: np.ndarray | None = None  # [N, 1] in the target's unit (regression)


def utc_timestamp() -> DateTime:
    """The column type of a UTC time, with microseconds on MySQL/MariaDB too (their DATETIME drops them)."""
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import mysql

    return DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _table(metadata: MetaData) -> Table:
    from sqlalchemy import Column, Float, Integer, String, Table, Text
    from sqlalchemy.dialects import mysql

    # MySQL/MariaDB: JSON of a 10,000-row batch chunk exceeds TEXT's 64 KB
    timestamp = utc_timestamp()
    long_text = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
    return Table(
        TABLE_NAME,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("received_at", timestamp, nullable=False, index=True),
        Column("request_id", String(64), nullable=False, index=True),
        Column("endpoint", String(16), nullable=False),
        Column("model_name", String(128), nullable=False),
        Column("model_version", String(32), nullable=False),
        Column("status", Integer, nullable=False),
        Column("latency_ms", Float, nullable=False),
        Column("rows", Integer, nullable=False),
        Column("inputs", long_text),
        Column("outputs", long_text),
        Column("error", Text),
        Column("variant", String(16)),
    )


def create_log_engine(url: str) -> Engine:
    """A SQLAlchemy engine for the log; SQLite files get their folder, WAL mode (readers never block the
    writer) and a busy timeout (several worker processes may write one file)."""
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:  # a DB-API connection
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def create_tables(metadata: MetaData, engine: Engine) -> None:
    """Create the tables of `metadata` that are missing. Worker processes of one service start together:
    another creating the same table at the same moment is no error."""
    from sqlalchemy import inspect

    try:
        metadata.create_all(engine, checkfirst=True)
    except Exception:
        if not all(inspect(engine).has_table(name) for name in metadata.tables):
            raise


def log_table(engine: Engine) -> Table:
    """The log table, created if missing; a table from before rollouts gets its `variant` column."""
    from sqlalchemy import MetaData, inspect, text

    metadata = MetaData()
    table = _table(metadata)
    create_tables(metadata, engine)

    def has_variant() -> bool:
        return "variant" in {column["name"] for column in inspect(engine).get_columns(TABLE_NAME)}

    if not has_variant():
        try:
            with engine.begin() as connection:
                connection.execute(text(f"ALTER TABLE {TABLE_NAME} ADD COLUMN variant VARCHAR(16)"))
        except Exception:
            if not has_variant():  # not another process adding it at the same time
                raise
    return table


class SideTable:
    """A table of its own beside the log, in the same database (feedback, rollout policies): an engine,
    and the table, created on first use."""

    def __init__(self, url: str, make_table: Callable[[MetaData], Table]):
        from sqlalchemy import MetaData

        self.url = url
        self.engine = create_log_engine(url)
        self.table = make_table(MetaData())
        self._table_ready = False

    def _ready(self) -> Table:
        if not self._table_ready:
            create_tables(self.table.metadata, self.engine)
            self._table_ready = True
        return self.table

    def close(self) -> None:
        self.engine.dispose()


def record_values(record: InferenceRecord, feature_names: Sequence[str]) -> list[Any]:
    """A record as the table's column values (all but `id`, in table order), inputs and outputs as JSON."""
    inputs = outputs = None
    if record.inputs is not None:
        inputs = orjson.dumps(
            {"columns": list(feature_names), "data": np.ascontiguousarray(record.inputs)}, option=_NUMPY
        ).decode()
    if record.top_labels is not None:
        outputs = orjson.dumps(
            {"top": record.top_labels.tolist(), "probability": np.ascontiguousarray(record.top_probabilities)},
            option=_NUMPY,
        ).decode()
    elif record.predictions is not None:
        outputs = orjson.dumps({PREDICTION: np.ascontiguousarray(record.predictions)}, option=_NUMPY).decode()
    return [
        datetime.fromtimestamp(record.received_at, tz=UTC),
        record.request_id,
        record.endpoint,
        record.model_name,
        record.model_version,
        record.status,
        record.latency_ms,
        record.rows,
        inputs,
        outputs,
        record.error,
        record.variant,
    ]


def spill_records(path: Path, records: Iterable[InferenceRecord], feature_names: Sequence[str]) -> int:
    """Append records as JSON lines (one table row each) when the database cannot take them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("ab") as out:
        for record in records:
            values = record_values(record, feature_names)
            values[0] = values[0].strftime("%Y-%m-%d %H:%M:%S.%f")  # UTC, as SQLite stores it
            out.write(orjson.dumps(dict(zip(COLUMNS, values, strict=True))) + b"\n")
            count += 1
    return count


class RowWriter:
    """Inserts queued records with one driver-level `executemany` (SQLAlchemy's per-row statement
    handling costs more than the request it logs), applying the dialect's own value conversions."""

    def __init__(self, engine: Engine, table: Table, feature_names: Sequence[str]):
        compiled = table.insert().compile(dialect=engine.dialect, column_keys=COLUMNS)
        self.sql = str(compiled)
        # positional parameter style (e.g. ?): the COLUMNS indices in the statement's order
        order = compiled.positiontup if compiled.positional else None
        self._order = None if order is None else [COLUMNS.index(name) for name in order]
        self._processors = [
            (index, processor)
            for index, name in enumerate(COLUMNS)
            if (processor := table.c[name].type.dialect_impl(engine.dialect).bind_processor(engine.dialect)) is not None
        ]
        self._feature_names = list(feature_names)

    def values(self, record: InferenceRecord) -> tuple[Any, ...]:
        """A record as column values in `COLUMNS` order, converted as the dialect wants them."""
        row = record_values(record, self._feature_names)
        for index, processor in self._processors:
            if row[index] is not None:
                row[index] = processor(row[index])
        return tuple(row)

    def parameters(self, records: Sequence[InferenceRecord]) -> list[tuple[Any, ...]] | list[dict[str, Any]]:
        rows = [self.values(record) for record in records]
        if self._order is not None:
            return [tuple(row[i] for i in self._order) for row in rows]
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


class InferenceLog:
    """Queue records with `append` (cheap, thread-safe). A separate writer process encodes and stores
    them: every `flush_seconds` a sender thread hands the queue over a pipe in one message, so the
    serving process spends no interpreter time on JSON or SQL (a writer thread sharing the interpreter
    lock with the event loop cost a third of the throughput and tripled the p99 latency). If the
    serving process dies, the writer still stores what it was given. `close()` hands over the rest and
    waits until it is stored, or spilled to a JSON-lines file if the database is down."""

    def __init__(self, url: str, feature_names: Sequence[str], flush_seconds: float = 0.2):
        self.url = url
        self.feature_names = list(feature_names)
        self.flush_seconds = flush_seconds
        self.written = 0
        self.spilled = 0
        self._handed_over = 0
        self._queue: collections.deque[Compact] = collections.deque()
        self._lock = threading.Lock()  # one conversation with the writer at a time
        self._connection, self._process = _start_writer(url, self.feature_names)
        self._receive("started")
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="inference-log-sender", daemon=True)
        self._thread.start()

    def append(self, record: InferenceRecord) -> None:
        self._queue.append(_compact(record))

    @property
    def pending(self) -> int:
        """Records appended and not yet written (queued here, or given to the writer)."""
        return len(self._queue) + self._handed_over - self.written - self.spilled

    def flush(self) -> int:
        """Write everything appended so far and wait for it; returns the rows written by this call.
        Raises InferenceLogError if the database refuses them (they stay pending)."""
        with self._lock:
            before = self.written
            self._hand_over()
            self._connection.send(("flush", None))
            error = self._receive("flushed")
        if error:
            raise InferenceLogError(error)
        return self.written - before

    def close(self, spill_path: Path | None = None) -> int:
        """Stop after writing everything appended; returns the rows that could not be written and went to
        `spill_path` (JSON lines; default inference_log_unwritten_<time>.jsonl here) instead."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=30)
        spill = Path(spill_path or _default_spill_path()).resolve()
        with self._lock:
            try:
                self._hand_over()
                self._connection.send(("close", str(spill)))
                self._receive("closed")
            except (OSError, InferenceLogError) as exc:  # the writer is gone: keep what is still here
                lost = self._handed_over - self.written - self.spilled
                kept = spill_records(spill, (_expand(item) for item in self._queue), self.feature_names)
                self._queue.clear()
                self.spilled += kept
                logger.error(
                    "inference log: writer unavailable (%s); %d rows saved to %s, %d lost", exc, kept, spill, lost
                )
            finally:
                self._connection.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
        return self.spilled

    def _hand_over(self) -> None:
        waiting = self.pending  # what the writer has yet to write, as far as this process knows
        batch = []
        while self._queue:
            batch.append(self._queue.popleft())
        if batch:
            try:
                self._connection.send(("rows", (batch, waiting)))
            except OSError:
                self._queue.extendleft(reversed(batch))  # still ours: close() keeps them
                raise
            self._handed_over += len(batch)

    def _receive(self, until: str) -> str | None:
        """Read the writer's reports up to the one named `until`; returns that report's error."""
        while True:
            try:
                report: tuple[str, int, int, str | None] = self._connection.recv()
            except EOFError:
                raise InferenceLogError(
                    f"the inference log writer stopped (exit code {self._process.poll()})"
                ) from None
            kind, self.written, self.spilled, error = report
            if error and kind == "started":
                logger.warning("inference log: database unavailable at start (%s); will retry", error)
            elif error and kind == "written":
                logger.warning("inference log: %d rows not written yet (%s); retrying", self.pending, error)
            if kind == until:
                return error

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)  # close() wakes it
            with self._lock:
                if self._closing:
                    return
                self._hand_over()
                while self._connection.poll():
                    self._receive("written")


def _default_spill_path() -> str:
    return f"inference_log_unwritten_{int(time.time())}.jsonl"


class InferenceLogError(RuntimeError):
    """The inference log's database refused rows (they stay queued), or its writer process is gone."""


# A record as `_compact` makes it: its fields, the arrays as (shape, bytes) / lists / (shape, dtype, bytes), in
# one `marshal` string
Compact = bytes


def _compact(record: InferenceRecord) -> Compact:
    """A record as one byte string (marshal: a microsecond, on the request path), so handing a queue of them
    to the writer pickles no structure: the sender thread holds the interpreter lock for a copy, not for
    encoding, and the event loop does not stall behind it."""
    inputs = top_labels = top_probabilities = predictions = None
    if record.inputs is not None:
        inputs = (record.inputs.shape, np.ascontiguousarray(record.inputs, dtype=np.float64).tobytes())
    if record.top_labels is not None:
        top_labels = record.top_labels.tolist()
        top_probabilities = _array_bytes(record.top_probabilities)
    if record.predictions is not None:
        predictions = _array_bytes(record.predictions)
    return marshal.dumps(
        (*record[:8], inputs, top_labels, top_probabilities, record.error, record.variant, predictions)
    )


def _array_bytes(array: Any) -> tuple[tuple[int, ...], str, bytes]:
    values = np.ascontiguousarray(array)
    return values.shape, values.dtype.str, values.tobytes()


def _array(packed: tuple[tuple[int, ...], str, bytes] | None) -> np.ndarray | None:
    return None if packed is None else np.frombuffer(packed[2], packed[1]).reshape(packed[0])


def _expand(compact: Compact) -> InferenceRecord:
    fields = marshal.loads(compact)  # written by `_compact` in this Python (the writer runs the same one)
    inputs, top_labels, top_probabilities = fields[8:11]
    return InferenceRecord._make(
        (
            *fields[:8],
            None if inputs is None else np.frombuffer(inputs[1], dtype=np.float64).reshape(inputs[0]),
            None if top_labels is None else np.array(top_labels, dtype=object),
            _array(top_probabilities),
            *fields[11:13],
            _array(fields[13]),
        )
    )


def _start_writer(url: str, feature_names: list[str]) -> tuple[Connection, subprocess.Popen[bytes]]:
    """The writer as `python -m headliner.serving.inference_log` (a fresh interpreter: nothing of the
    serving process is forked or re-imported), talking over a socket pair; the database URL, which may
    hold a password, goes over the socket, not the command line."""
    ours, theirs = socket.socketpair()
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    with theirs:
        process = subprocess.Popen(
            [sys.executable, "-m", "headliner.serving.inference_log", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
    connection = Connection(ours.detach())
    connection.send((url, list(feature_names)))
    return connection, process


class WriterPriority:
    """The writer's CPU priority: idle (Linux SCHED_IDLE: it runs only on a core nothing else wants, so it
    never delays a request) while it keeps up, back to a low ordinary priority (nice 10) while more than
    `backlog_rows` wait, so a service saturated for long does not pile its log up in memory. Where there is
    no SCHED_IDLE (macOS), always nice 10. It starts idle."""

    def __init__(self, backlog_rows: int = 50_000):
        self.backlog_rows = backlog_rows
        self.idle = False
        os.nice(10)
        self.update(0)

    def update(self, waiting: int) -> None:
        """Follow the number of rows waiting to be written."""
        idle = waiting <= self.backlog_rows
        if idle != self.idle and hasattr(os, "sched_setscheduler"):
            policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
            with contextlib.suppress(OSError):  # a system that refuses leaves the priority as it was
                os.sched_setscheduler(0, policy, os.sched_param(0))
                self.idle = idle


def _writer_main(connection: Connection) -> None:
    """The writer process: store what arrives, report progress, retry while the database is down, at the
    priority `WriterPriority` gives it: under full load it yields to the server and catches up after."""
    url, feature_names = connection.recv()
    priority = WriterPriority()
    # Ctrl+C and stop signals reach the whole process group: the writer stops only when the serving
    # process says so (close) or is gone (end of the pipe), so what it was given is never dropped.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pending: collections.deque[Compact] = collections.deque()
    written = spilled = 0
    engine = create_log_engine(url)
    from sqlalchemy import MetaData

    table = _table(MetaData())
    writer = RowWriter(engine, table, feature_names)
    table_ready = False

    def write() -> str | None:
        nonlocal written, table_ready
        try:
            if not table_ready:
                log_table(engine)  # created, or given the columns added since
                table_ready = True
            while pending:
                batch = list(itertools.islice(pending, 5000))
                parameters = writer.parameters([_expand(item) for item in batch])
                with engine.begin() as transaction:
                    transaction.exec_driver_sql(writer.sql, parameters)
                for _ in batch:
                    pending.popleft()
                written += len(batch)
        except Exception as exc:  # the database is down: keep the rows, try again later
            return f"{type(exc).__name__}: {exc}"
        return None

    def spill(path: str) -> None:
        nonlocal spilled
        spilled += spill_records(Path(path), (_expand(item) for item in pending), feature_names)
        pending.clear()

    error = write()
    connection.send(("started", written, spilled, error))
    retry_seconds = 1.0
    while True:
        if not connection.poll(retry_seconds if pending else None):
            error = write()  # a quiet spell with rows waiting: retry
            retry_seconds = min(retry_seconds * 2, 60) if error else 1.0
            continue
        try:
            kind, payload = connection.recv()
        except EOFError:  # the serving process is gone: store what it gave, or keep it in a file
            if write() and pending:
                spill(_default_spill_path())
            return
        if kind == "rows":
            rows, waiting = payload
            pending.extend(rows)
            priority.update(max(waiting, len(pending)))
            error = write()
            connection.send(("written", written, spilled, error))
        elif kind == "flush":
            connection.send(("flushed", written, spilled, write()))
        elif kind == "close":
            error = write()
            if error and pending:
                spill(payload)
                sys.stderr.write(
                    f"inference log: database unavailable at shutdown ({error}); {spilled} rows saved to {payload}\n"
                )
            connection.send(("closed", written, spilled, error))
            engine.dispose()
            return


def read_inference_log(url: str, endpoint: str | None = None, since: datetime | None = None) -> pd.DataFrame:
    """The log as a DataFrame, one row per request, oldest first."""
    import pandas as pd
    from sqlalchemy import select

    engine = create_log_engine(url)
    try:
        table = log_table(engine)
        query = select(table).order_by(table.c.id)
        if endpoint:
            query = query.where(table.c.endpoint == endpoint)
        if since is not None:
            query = query.where(table.c.received_at >= since)
        with engine.connect() as connection:
            frame = pd.read_sql(query, connection)
        frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)  # SQLite gives naive UTC values
        return frame
    finally:
        engine.dispose()


def logged_items(frame: pd.DataFrame) -> pd.DataFrame:
    """Requests -> one row per scored item: request_id, item, the raw features, received_at, model_version,
    then what was answered: a classifier's top class and its probability (`predicted`, `probability`), a
    regressor's forecast (`prediction`, float64) (what drift and live-performance checks read)."""
    import pandas as pd

    parts = []
    columns = ("inputs", "outputs", "request_id", "received_at", "model_version")
    for inputs, answer, request_id, received_at, model_version in zip(
        *(frame[column] for column in columns), strict=True
    ):
        if not inputs:
            continue
        features = pd.DataFrame(**orjson.loads(inputs))
        outputs = orjson.loads(answer) if answer else {"top": [], "probability": []}
        features.insert(0, "item", range(len(features)))
        features.insert(0, "request_id", request_id)
        features["received_at"] = received_at
        features["model_version"] = model_version
        if PREDICTION in outputs:
            features[PREDICTION] = np.array(outputs[PREDICTION], dtype=np.float64).reshape(-1)
        else:
            features["predicted"] = [top[0] for top in outputs["top"]] or None
            features["probability"] = [p[0] for p in outputs["probability"]] or None
        parts.append(features)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


if __name__ == "__main__":  # the writer process (see _start_writer)
    _writer_main(Connection(int(sys.argv[1])))
