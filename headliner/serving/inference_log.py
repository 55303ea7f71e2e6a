"""The inference log: every request the service answers, and every batch it scores, as one row of a SQL
table that monitoring reads. The request path only appends to an in-memory queue; a background thread
writes queued rows in batches, retries when the database is unavailable, and flushes on close, so no
row is lost on a graceful stop (if the database is still down then, rows go to a JSON-lines file).

Schema of table `inference_log` (one row per request):
  id             integer primary key
  received_at    timestamp (UTC) when the request arrived
  request_id     the request's id (returned to the client; `X-Request-ID` if the client sent one)
  endpoint       'predict', 'v2' or 'batch'
  model_name     e.g. 'jukebox'
  model_version  e.g. '3'
  status         HTTP status answered (batch: 200)
  latency_ms     time from receiving the request to sending the answer
  rows           songs (rows) in the request; 0 when it was rejected before parsing
  inputs         JSON {"columns": [feature names], "data": [[raw values] per row]} (pandas' "split"
                 layout: pd.DataFrame(**json.loads(inputs))); null when rejected
  outputs        JSON {"top": [[class code per rank] per row], "probability": [[...] per row]}
  error          the error message answered, for 4xx/5xx
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
import orjson

logger = logging.getLogger(__name__)

TABLE_NAME = "inference_log"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


class InferenceRecord(NamedTuple):
    received_at: float  # epoch seconds
    request_id: str
    endpoint: str
    model_name: str
    model_version: str
    status: int
    latency_ms: float
    rows: int
    inputs: Optional[np.ndarray]  # [N, F] raw feature values
    top_labels: Optional[np.ndarray]  # [N, k] class codes
    top_probabilities: Optional[np.ndarray]  # [N, k]
    error: Optional[str]


def _table(metadata):
    from sqlalchemy import Column, DateTime, Float, Integer, String, Table, Text

    return Table(
        TABLE_NAME,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("received_at", DateTime(timezone=True), nullable=False, index=True),
        Column("request_id", String(64), nullable=False, index=True),
        Column("endpoint", String(16), nullable=False),
        Column("model_name", String(128), nullable=False),
        Column("model_version", String(32), nullable=False),
        Column("status", Integer, nullable=False),
        Column("latency_ms", Float, nullable=False),
        Column("rows", Integer, nullable=False),
        Column("inputs", Text),
        Column("outputs", Text),
        Column("error", Text),
    )


def create_log_engine(url: str):
    """A SQLAlchemy engine for the log; SQLite files get their folder, WAL mode (readers never block the
    writer) and a busy timeout (several worker processes may write one file)."""
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def log_table(engine):
    """The log table, created if missing."""
    from sqlalchemy import MetaData

    metadata = MetaData()
    table = _table(metadata)
    metadata.create_all(engine, checkfirst=True)
    return table


class RowWriter:
    """Inserts queued records with one driver-level `executemany` (SQLAlchemy's per-row statement
    handling costs more than the request it logs), applying the dialect's own value conversions."""

    def __init__(self, engine, table, feature_names: Sequence[str]):
        self.columns = [str(column.name) for column in table.columns if column.name != "id"]  # plain str: JSON keys
        compiled = table.insert().compile(dialect=engine.dialect, column_keys=self.columns)
        self.sql = str(compiled)
        self.positional = compiled.positional
        if self.positional:
            order = list(compiled.positiontup)
            self._order = [self.columns.index(name) for name in order]
        self._processors = [
            (index, processor)
            for index, name in enumerate(self.columns)
            if (processor := table.c[name].type.dialect_impl(engine.dialect).bind_processor(engine.dialect)) is not None
        ]
        self._feature_names = list(feature_names)

    def values(self, record: InferenceRecord) -> tuple:
        """A record as column values in `self.columns` order (JSON encoding happens here, in the writer)."""
        inputs = outputs = None
        if record.inputs is not None:
            inputs = orjson.dumps({"columns": self._feature_names, "data": np.ascontiguousarray(record.inputs)}, option=_NUMPY).decode()
        if record.top_labels is not None:
            outputs = orjson.dumps(
                {"top": record.top_labels.tolist(), "probability": np.ascontiguousarray(record.top_probabilities)}, option=_NUMPY
            ).decode()
        row = [
            datetime.fromtimestamp(record.received_at, tz=timezone.utc),
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
        ]
        for index, processor in self._processors:
            if row[index] is not None:
                row[index] = processor(row[index])
        return tuple(row)

    def parameters(self, records: Sequence[InferenceRecord]) -> list:
        rows = [self.values(record) for record in records]
        if self.positional:
            return [tuple(row[i] for i in self._order) for row in rows]
        return [dict(zip(self.columns, row)) for row in rows]


class InferenceLog:
    """Queue records with `append` (cheap, thread-safe); a writer thread stores them every
    `flush_seconds`. `close()` stops the thread after writing everything queued."""

    def __init__(self, url: str, feature_names: Sequence[str], flush_seconds: float = 0.5, max_rows_per_write: int = 5000):
        self.url = url
        self.feature_names = list(feature_names)
        self.flush_seconds = flush_seconds
        self.max_rows_per_write = max_rows_per_write
        self.written = 0
        self._engine = create_log_engine(url)
        from sqlalchemy import MetaData

        self._table = _table(MetaData())
        self._writer = RowWriter(self._engine, self._table, feature_names)
        self._table_ready = False
        try:
            self._ensure_table()
        except Exception as exc:  # the database is down: serve anyway, rows wait in the queue
            logger.warning("inference log: database unavailable at start (%s); will retry", exc)
        self._queue: collections.deque[InferenceRecord] = collections.deque()
        self._wake = threading.Event()
        self._closing = False
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="inference-log-writer", daemon=True)
        self._thread.start()

    def _ensure_table(self) -> None:
        if not self._table_ready:
            self._table.metadata.create_all(self._engine, checkfirst=True)
            self._table_ready = True

    def append(self, record: InferenceRecord) -> None:
        self._queue.append(record)

    @property
    def pending(self) -> int:
        return len(self._queue)

    def flush(self) -> int:
        """Write everything queued now; returns the rows written. Raises if the database refuses."""
        total = 0
        with self._write_lock:
            while self._queue:
                batch = []
                while self._queue and len(batch) < self.max_rows_per_write:
                    batch.append(self._queue.popleft())
                try:
                    self._ensure_table()
                    parameters = self._writer.parameters(batch)
                    with self._engine.begin() as connection:
                        connection.exec_driver_sql(self._writer.sql, parameters)
                except Exception:
                    self._queue.extendleft(reversed(batch))  # keep order; retried on the next flush
                    raise
                total += len(batch)
                self.written += len(batch)
        return total

    def _run(self) -> None:
        failures = 0
        while not self._closing:
            self._wake.wait(self.flush_seconds * min(2**failures, 60))
            self._wake.clear()
            try:
                self.flush()
                failures = 0
            except Exception as exc:  # the database is down: keep rows, back off, retry
                failures += 1
                logger.warning("inference log: %d rows not written yet (%s); retrying", self.pending, exc)

    def close(self, spill_path: Optional[Path] = None) -> int:
        """Stop the writer and write what is queued; returns the rows that could not be written and
        went to `spill_path` (JSON lines) instead."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout=30)
        try:
            self.flush()
        except Exception as exc:
            spill = Path(spill_path or f"inference_log_unwritten_{int(time.time())}.jsonl")
            spill.parent.mkdir(parents=True, exist_ok=True)
            with spill.open("ab") as out:
                count = 0
                while self._queue:
                    row = dict(zip(self._writer.columns, self._writer.values(self._queue.popleft())))
                    out.write(orjson.dumps(row, default=str) + b"\n")
                    count += 1
            logger.error("inference log: database unavailable at shutdown (%s); %d rows saved to %s", exc, count, spill)
            return count
        finally:
            self._engine.dispose()
        return 0


def read_inference_log(url: str, endpoint: Optional[str] = None, since: Optional[datetime] = None):
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


def logged_items(frame) -> "Any":
    """Requests -> one row per scored item: request_id, item, received_at, model_version, the raw
    features, the top class and its probability (what drift and live-performance checks read)."""
    import pandas as pd

    parts = []
    for row in frame.itertuples(index=False):
        if not row.inputs:
            continue
        features = pd.DataFrame(**orjson.loads(row.inputs))
        outputs = orjson.loads(row.outputs) if row.outputs else {"top": [], "probability": []}
        features.insert(0, "item", range(len(features)))
        features.insert(0, "request_id", row.request_id)
        features["received_at"] = row.received_at
        features["model_version"] = row.model_version
        features["predicted"] = [top[0] for top in outputs["top"]] or None
        features["probability"] = [p[0] for p in outputs["probability"]] or None
        parts.append(features)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
