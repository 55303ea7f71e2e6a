"""The last monitoring run's figures where the service can read them, so Prometheus scrapes them from
`/metrics` beside the serving metrics and its alert rules (deploy/prometheus/) judge them. The monitoring
pipeline publishes a run's figures (steps/monitoring/publish_figures.py) into table `monitoring_figures`
of the inference log's database; the service reads them back at scrape time, at most every few seconds
and never on the request path (`MonitoringGauges`).

Schema of table `monitoring_figures` (one row per model, version and figure or limit; a run replaces its
model version's rows):
  id             integer primary key
  model_name     e.g. 'jukebox'
  model_version  e.g. '3'
  kind           'figure' (of MonitoringSummary.figures) or 'limit' (of MonitoringSummary.thresholds)
  figure         its name, e.g. 'drifted_feature_share'; a limit's is the threshold's key ('<figure>' for
                 a figure's limit, '<figure>_max' for the upper one of a range)
  value          the number; null when the run could not compute it
  decision       the run's verdict: 'ok', 'warn' or 'retrain'
  checked_at     timestamp (UTC) of the run

On `/metrics` each figure is a gauge of its own, `headliner_monitoring_<figure>{model, version}`, and each
limit `headliner_monitoring_<key>_limit{model, version}`, so alert rules compare a figure with the limit
of the spec the run applied (a null has no sample); with `headliner_monitoring_decision` (0 ok, 1 warn,
2 retrain) and `headliner_monitoring_last_run_timestamp_seconds`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from headliner.serving.inference_log import SideTable, utc_timestamp
from headliner.serving.settings import url_without_password

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table

logger = logging.getLogger(__name__)

TABLE_NAME = "monitoring_figures"
PREFIX = "headliner_monitoring_"
DECISION_VALUES = {"ok": 0, "warn": 1, "retrain": 2}
FIGURE, LIMIT = "figure", "limit"
DECISION_GAUGE = f"{PREFIX}decision"
LAST_RUN_GAUGE = f"{PREFIX}last_run_timestamp_seconds"
_NOT_IN_A_NAME = re.compile(r"[^a-zA-Z0-9_]")


class PublishedFigures(NamedTuple):
    """One model version's figures and the limits they were judged by, from its last monitoring run."""

    model_name: str
    model_version: str
    decision: str
    checked_at: datetime
    figures: dict[str, float | None]
    limits: dict[str, float | None]


def _table(metadata: MetaData) -> Table:
    from sqlalchemy import Column, Float, Integer, String, Table

    return Table(
        TABLE_NAME,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model_name", String(128), nullable=False, index=True),
        Column("model_version", String(32), nullable=False),
        Column("kind", String(8), nullable=False),
        Column("figure", String(128), nullable=False),
        Column("value", Float),
        Column("decision", String(16), nullable=False),
        Column("checked_at", utc_timestamp(), nullable=False),
    )


def gauge_name(figure: str, kind: str = FIGURE) -> str:
    """The Prometheus metric name of a figure (`headliner_monitoring_<figure>`) or a limit
    (`headliner_monitoring_<key>_limit`), any character a metric name cannot hold replaced by `_`."""
    return PREFIX + _NOT_IN_A_NAME.sub("_", figure) + ("_limit" if kind == LIMIT else "")


def _numbers(published: PublishedFigures) -> list[tuple[str, str, float | None]]:
    """(kind, name, value) of every figure and limit."""
    return [(FIGURE, name, value) for name, value in published.figures.items()] + [
        (LIMIT, name, value) for name, value in published.limits.items()
    ]


class MonitoringFiguresStore(SideTable):
    """Writes and reads the published figures in the inference log's database."""

    def __init__(self, url: str):
        super().__init__(url, _table)

    def publish(self, published: PublishedFigures) -> int:
        """Replace the figures and limits of `published`'s model version with these, in one transaction;
        returns how many rows were written. Raises ValueError naming the decision or a figure or limit that
        cannot be a gauge."""
        if published.decision not in DECISION_VALUES:
            raise ValueError(f"decision '{published.decision}' is not one of {', '.join(DECISION_VALUES)}")
        names: dict[str, str] = {}
        for kind, figure, _ in _numbers(published):
            name = gauge_name(figure, kind)
            if name in (DECISION_GAUGE, LAST_RUN_GAUGE) or name in names:
                taken = names.get(name, "the run's decision and time")
                raise ValueError(f"{kind} '{figure}' would be gauge {name}, the gauge of {taken}")
            names[name] = f"{kind} '{figure}'"
        table = self._ready()
        checked_at = published.checked_at.astimezone(UTC)
        rows = [
            {
                "model_name": published.model_name,
                "model_version": published.model_version,
                "kind": kind,
                "figure": figure,
                "value": None if value is None or math.isnan(value) else float(value),
                "decision": published.decision,
                "checked_at": checked_at,
            }
            for kind, figure, value in _numbers(published)
        ]
        with self.engine.begin() as connection:
            connection.execute(
                table.delete().where(
                    (table.c.model_name == published.model_name) & (table.c.model_version == published.model_version)
                )
            )
            if rows:
                connection.execute(table.insert(), rows)
        return len(rows)

    def read(self, model_name: str | None = None) -> list[PublishedFigures]:
        """Every published model version (of `model_name`, if given), by model and version; none before
        the first run published (the table is not created by reading)."""
        from sqlalchemy import inspect, select

        if not self._table_ready and not inspect(self.engine).has_table(TABLE_NAME):
            return []
        self._table_ready = True
        table = self.table
        query = select(table).order_by(table.c.model_name, table.c.model_version, table.c.id)
        if model_name is not None:
            query = query.where(table.c.model_name == model_name)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        published: dict[tuple[str, str], PublishedFigures] = {}
        for row in rows:
            key = (row.model_name, row.model_version)
            if key not in published:
                checked_at = row.checked_at.replace(tzinfo=row.checked_at.tzinfo or UTC)
                published[key] = PublishedFigures(row.model_name, row.model_version, row.decision, checked_at, {}, {})
            (published[key].limits if row.kind == LIMIT else published[key].figures)[row.figure] = row.value
        return list(published.values())


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(published: list[PublishedFigures]) -> str:
    """The gauges of `published` in the Prometheus text format: one family per figure and per limit, each
    with a sample per model version that has a value."""
    families: dict[str, list[tuple[PublishedFigures, float]]] = {DECISION_GAUGE: [], LAST_RUN_GAUGE: []}
    helps = {
        DECISION_GAUGE: "Verdict of the last monitoring run: 0 ok, 1 warn, 2 retrain",
        LAST_RUN_GAUGE: "When the last monitoring run judged its window (Unix time)",
    }
    for run in published:
        families[DECISION_GAUGE].append((run, DECISION_VALUES[run.decision]))
        families[LAST_RUN_GAUGE].append((run, run.checked_at.timestamp()))
        for kind, figure, value in _numbers(run):
            name = gauge_name(figure, kind)
            helps.setdefault(
                name,
                f"Monitoring figure '{figure}' of the last monitoring run"
                if kind == FIGURE
                else f"Limit '{figure}' of the spec the last monitoring run applied",
            )
            samples = families.setdefault(name, [])
            if value is not None:
                samples.append((run, value))
    lines = []
    for name, samples in families.items():
        if not samples:
            continue
        lines += [f"# HELP {name} {helps[name]}", f"# TYPE {name} gauge"]
        lines += [
            f'{name}{{model="{_label_value(run.model_name)}",version="{_label_value(run.model_version)}"}} '
            f"{float(value)!r}"
            for run, value in samples
        ]
    return "".join(line + "\n" for line in lines)


class MonitoringGauges:
    """The published figures of one model as Prometheus text for `/metrics`. `text()` answers from what
    was last read and, when that is older than `max_age_seconds`, reads again in a thread of its own: a
    scrape never waits on the database (the first scrape after start shows no figures yet). A failed
    read keeps the last figures and is logged."""

    def __init__(self, url: str, model_name: str, max_age_seconds: float = 5.0):
        self.url = url
        self.model_name = model_name
        self.max_age_seconds = max_age_seconds
        self._store: MonitoringFiguresStore | None = None
        self._text = ""
        self._read_at = -math.inf
        self._reading = threading.Lock()

    def text(self) -> str:
        if time.monotonic() - self._read_at >= self.max_age_seconds and not self._reading.locked():
            threading.Thread(target=self.refresh, name="monitoring-figures", daemon=True).start()
        return self._text

    def refresh(self) -> None:
        """Read the figures now, in the calling thread (after a read already in progress)."""
        with self._reading:
            try:
                if self._store is None:
                    self._store = MonitoringFiguresStore(self.url)
                self._text = prometheus_text(self._store.read(self.model_name))
            except Exception as exc:  # a database that is down must not break /metrics
                logger.warning("monitoring figures from %s: %s", url_without_password(self.url), exc)
            finally:
                self._read_at = time.monotonic()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
