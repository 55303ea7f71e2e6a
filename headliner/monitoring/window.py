"""The current window of a monitoring run: the inference log of one served model version over a time span
(or its newest requests), one row per scored item, with the true labels that arrived for it.

Large windows are read in chunks and sampled uniformly (seeded) to `monitoring.max_analysis_rows` for
drift, quality and fairness, so memory stays bounded; every labelled item is kept, so live metrics use
all the labels there are.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import orjson
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from headliner.errors import MonitoringError
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import UseCaseSpec

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Connection, Engine, Table

CHUNK_ROWS = 20_000
ANALYSED = "analysed"  # column: the item is in the sample that drift, quality and fairness read
LABEL = "label"  # column: the true class or value, when feedback arrived
LABEL_RANK = "label_rank"  # column: rank of the true class in the logged top-k (0 = top-1), -1 if not in it
PREDICTED = "predicted"  # column: the top-1 class or the value the service answered
# the endpoints whose requests are predictions; 'explain' (POST /explain) is logged too, and left out
SCORING_ENDPOINTS = ("predict", "v2", "batch")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class WindowSelection(BaseModel):
    """Which requests of the log form the window: since a time, within a span before the window loads (a
    scheduled run's, fixed when the schedule is submitted), the newest N, or (none) all of them."""

    since: datetime | None = None
    within: timedelta | None = Field(default=None, gt=timedelta(0), description="The span before the load.")
    last: int | None = Field(default=None, ge=1, description="The newest N requests.")

    @model_validator(mode="after")
    def _one_way(self) -> WindowSelection:
        if sum(way is not None for way in (self.since, self.within, self.last)) > 1:
            raise ValueError("give one of since, within and last")
        return self

    def start(self, now: datetime | None = None) -> datetime | None:
        """The earliest request time of the window, if it has one."""
        if self.within is not None:
            return (now or datetime.now(UTC)) - self.within
        return self.since

    def describe(self) -> str:
        if self.since is not None:
            return f"since {self.since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        if self.within is not None:
            return f"the {duration_text(self.within)} before the run"
        if self.last is not None:
            return f"the newest {self.last:,} requests"
        return "every logged request"


def parse_duration(text: str) -> timedelta | None:
    """`30m`, `24h`, `7d`, `2w` as a timedelta; None when the text is not a duration."""
    match = _DURATION.match(text.strip().lower())
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))}) if match else None


def duration_text(span: timedelta) -> str:
    """A timedelta in the largest unit that divides it: 1h, 90m, 7d."""
    seconds = span.total_seconds()
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`--since`: a duration back from now (`30m`, `24h`, `7d`, `2w`) or an ISO date/time (UTC unless it
    says otherwise)."""
    span = parse_duration(text)
    if span is not None:
        return (now or datetime.now(UTC)) - span
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MonitoringError(
            f"--since '{text}': expected a duration such as 30m, 24h, 7d, or an ISO time such as 2026-11-22T08:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class WindowReport(HtmlReport):
    """What the window holds: requests, rejections, scored items, the sample analysed, the labels."""

    model_name: str
    model_version: str
    selection: str
    log: str
    first_at: datetime | None = None
    last_at: datetime | None = None
    requests: int = 0
    rejected_requests: int = 0
    top_errors: dict[str, int] = Field(default_factory=dict)
    items: int = 0
    analysed_items: int = 0
    labelled_items: int = 0

    @property
    def rejected_share(self) -> float:
        return self.rejected_requests / self.requests if self.requests else 0.0

    @property
    def sample_rate(self) -> float:
        return self.analysed_items / self.items if self.items else 0.0

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {
            "requests": self.requests,
            "rejected_requests": self.rejected_requests,
            "items": self.items,
            "analysed_items": self.analysed_items,
            "labelled_items": self.labelled_items,
        }

    def to_html(self) -> str:
        span = f"{self.first_at:%Y-%m-%d %H:%M:%S} to {self.last_at:%Y-%m-%d %H:%M:%S} UTC" if self.first_at else "-"
        rows = [
            ["model", f"{self.model_name} version {self.model_version}"],
            ["window", self.selection],
            ["span", span],
            ["inference log", self.log],
            ["requests", f"{self.requests:,}"],
            ["rejected (4xx/5xx)", f"{self.rejected_requests:,} ({self.rejected_share:.1%})"],
            ["scored items", f"{self.items:,}"],
            ["analysed (drift, quality, fairness)", f"{self.analysed_items:,} ({self.sample_rate:.1%})"],
            ["with a true label", f"{self.labelled_items:,}"],
        ]
        sections = [("Window", html_table(["", ""], rows))]
        if self.top_errors:
            sections.append(("Most frequent errors", html_table(["error", "requests"], list(self.top_errors.items()))))
        return html_page(f"Monitoring window of {self.model_name} v{self.model_version}", sections)


def _naive_utc(moment: datetime) -> datetime:
    """The log stores UTC without a zone (SQLite) or as DATETIME (MySQL): compare with naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _window_condition(
    connection: Connection, table: Table, spec: UseCaseSpec, model_version: str, selection: WindowSelection
) -> ColumnElement[bool]:
    """The SQL condition of the window's requests."""
    from sqlalchemy import and_, select

    of_version = and_(
        table.c.model_name == spec.name,
        table.c.model_version == str(model_version),
        table.c.endpoint.in_(SCORING_ENDPOINTS),
    )
    conditions = [of_version]
    start = selection.start()
    if start is not None:
        conditions.append(table.c.received_at >= _naive_utc(start))
    if selection.last is not None:
        newest = select(table.c.id).where(of_version).order_by(table.c.id.desc()).limit(1).offset(selection.last - 1)
        first_id = connection.execute(newest).scalar()
        if first_id is not None:
            conditions.append(table.c.id >= first_id)
    return and_(*conditions)


def _measured_window(
    connection: Connection,
    table: Table,
    spec: UseCaseSpec,
    model_version: str,
    selection: WindowSelection,
    display: str,
) -> tuple[WindowReport, ColumnElement[bool]]:
    """The window's counts and its SQL condition; raises MonitoringError for an empty or too small window."""
    from sqlalchemy import and_, case, func, select

    where = _window_condition(connection, table, spec, model_version, selection)
    ok = table.c.status == 200
    requests, rejected, items, first_at, last_at = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((table.c.status >= 400, 1), else_=0)), 0),
            func.coalesce(func.sum(table.c.rows).filter(ok), 0),
            func.min(table.c.received_at),
            func.max(table.c.received_at),
        ).where(where)
    ).one()
    report = WindowReport(
        model_name=spec.name,
        model_version=str(model_version),
        selection=selection.describe(),
        log=display,
        first_at=first_at,
        last_at=last_at,
        requests=requests,
        rejected_requests=rejected,
        items=items,
    )
    if requests == 0:
        raise MonitoringError(_empty_window_message(connection, table, spec, model_version, selection, display))
    errors = connection.execute(
        select(table.c.error, func.count().label("n"))
        .where(and_(where, table.c.status >= 400))
        .group_by(table.c.error)
        .order_by(func.count().desc())
        .limit(5)
    ).all()
    report.top_errors = {str(error): n for error, n in errors}
    if items < spec.monitoring.min_window_rows:
        raise MonitoringError(
            f"the window ({selection.describe()}) of {spec.name} version {model_version} holds "
            f"{items:,} scored rows; at least {spec.monitoring.min_window_rows:,} are needed "
            "(monitoring.min_window_rows): send more traffic (python run.py simulate-traffic) "
            "or widen the window (--since / --last)"
        )
    return report, where


def _open_log(url: str, display: str) -> tuple[Engine, Table]:
    from sqlalchemy import inspect

    from headliner.serving.inference_log import TABLE_NAME, create_log_engine, log_table

    engine = create_log_engine(url)
    if not inspect(engine).has_table(TABLE_NAME):
        engine.dispose()
        raise MonitoringError(
            f"no inference log at {display}: serve the model (python run.py serve) and send it requests "
            "(python run.py simulate-traffic --requests 500)"
        )
    return engine, log_table(engine)


def window_report(
    url: str, spec: UseCaseSpec, model_version: str, selection: WindowSelection, log_display: str | None = None
) -> WindowReport:
    """What the window holds, from counts alone (no row is read: a cheap check before a run). Raises
    MonitoringError when there is no log, nothing of this version, or fewer scored items than
    `monitoring.min_window_rows`."""
    engine, table = _open_log(url, log_display or url)
    try:
        with engine.connect() as connection:
            report, _ = _measured_window(connection, table, spec, model_version, selection, log_display or url)
    finally:
        engine.dispose()
    return report


def load_window(
    url: str, spec: UseCaseSpec, model_version: str, selection: WindowSelection, log_display: str | None = None
) -> tuple[pd.DataFrame, WindowReport]:
    """The window's scored items (features, predicted, probability, request_id, item, received_at, label,
    label_rank, analysed) and what it holds; raises as `window_report` does."""
    from sqlalchemy import and_

    from headliner.serving.feedback import FeedbackStore

    engine, table = _open_log(url, log_display or url)
    try:
        with engine.connect() as connection:
            report, where = _measured_window(connection, table, spec, model_version, selection, log_display or url)
            store = FeedbackStore(url)
            try:
                labels = store.read()
            finally:
                store.close()
            frame = _read_items(connection, table, and_(where, table.c.status == 200), spec, report.items, labels)
    finally:
        engine.dispose()
    report.analysed_items = int(frame[ANALYSED].sum())
    report.labelled_items = int(frame[LABEL].notna().sum())
    return frame, report


def _empty_window_message(
    connection: Connection,
    table: Table,
    spec: UseCaseSpec,
    model_version: str,
    selection: WindowSelection,
    display: str,
) -> str:
    from sqlalchemy import func, select

    logged = connection.execute(
        select(table.c.model_version, func.count())
        .where(table.c.model_name == spec.name)
        .group_by(table.c.model_version)
    ).all()
    if not logged:
        return (
            f"the inference log at {display} holds no requests to '{spec.name}': "
            "send some (python run.py simulate-traffic --requests 500)"
        )
    versions = ", ".join(
        f"v{version} ({count:,} requests)" for version, count in sorted(logged, key=lambda r: str(r[0]))
    )
    return (
        f"no requests to {spec.name} version {model_version} in the window ({selection.describe()}); "
        f"the log at {display} holds {versions}"
    )


def _read_items(
    connection: Connection,
    table: Table,
    where: ColumnElement[bool],
    spec: UseCaseSpec,
    items: int,
    labels: pd.DataFrame,
) -> pd.DataFrame:
    """Scored items in chunks: every labelled one, and a seeded uniform sample of the rest. Which items
    are kept is decided from the `rows` column, so only requests holding a kept item have their JSON
    parsed (parsing is most of the cost of a large window)."""
    from sqlalchemy import select

    from headliner.serving.inference_log import PREDICTION

    rate = min(1.0, spec.monitoring.max_analysis_rows / items)
    rng = np.random.default_rng(spec.split.seed)
    labelled = {
        (rid, item): label for rid, item, label in zip(labels["request_id"], labels["item"], labels[LABEL], strict=True)
    }
    features = spec.feature_names
    query = (
        select(table.c.request_id, table.c.received_at, table.c.rows, table.c.inputs, table.c.outputs)
        .where(where)
        .order_by(table.c.id)
    )
    parts = []
    result = connection.execution_options(stream_results=True).execute(query)
    while chunk := result.fetchmany(CHUNK_ROWS):
        request_ids, received, logged_counts, inputs, outputs = zip(*chunk, strict=True)
        counts = np.asarray(logged_counts, dtype=np.int64)
        starts = np.cumsum(counts) - counts  # first item of each request
        item_position = np.repeat(np.arange(len(chunk)), counts)  # the request of each item
        item_index = np.arange(int(counts.sum())) - starts[item_position]
        keep = rng.random(len(item_index)) < rate
        if labelled:
            item_labels = [
                labelled.get((request_ids[p], i))
                for p, i in zip(item_position.tolist(), item_index.tolist(), strict=True)
            ]
            has_label = np.fromiter((label is not None for label in item_labels), dtype=bool, count=len(item_labels))
        else:
            item_labels, has_label = None, np.zeros(len(item_index), dtype=bool)
        selected = np.flatnonzero(keep | has_label)
        if len(selected) == 0:
            continue
        parsed = np.unique(item_position[selected])  # requests to parse
        parsed_inputs = orjson.loads(b"[" + b",".join(inputs[p].encode() for p in parsed) + b"]")
        parsed_outputs = orjson.loads(b"[" + b",".join(outputs[p].encode() for p in parsed) + b"]")
        if parsed_inputs[0]["columns"] != features:
            raise MonitoringError(
                f"the logged inputs have columns {parsed_inputs[0]['columns']}; the spec's features are {features}"
            )
        if any(len(entry["data"]) != counts[p] for entry, p in zip(parsed_inputs, parsed.tolist(), strict=True)):
            raise MonitoringError(
                "the inference log is inconsistent: a request's 'rows' differs from the rows in its inputs"
            )
        # items of the parsed requests, in order, and where each selected item sits among them
        parsed_items = np.concatenate([np.arange(starts[p], starts[p] + counts[p]) for p in parsed])
        at = np.searchsorted(parsed_items, selected)
        values = np.array([row for entry in parsed_inputs for row in entry["data"]], dtype=np.float64)[at]
        chosen_labels = [item_labels[i] for i in selected] if item_labels is not None else [None] * len(selected)
        part = pd.DataFrame(values, columns=features)
        part.insert(0, "item", item_index[selected])
        part.insert(0, "request_id", np.array(request_ids, dtype=object)[item_position[selected]])
        part["received_at"] = pd.to_datetime(list(received), utc=True)[item_position[selected]]  # naive = UTC
        if spec.is_classification:
            tops = [top for entry in parsed_outputs for top in entry["top"]]
            part[PREDICTED] = [tops[i][0] for i in at]
            part["probability"] = np.array([p[0] for entry in parsed_outputs for p in entry["probability"]])[at]
            part[LABEL] = chosen_labels
            part[LABEL_RANK] = [_rank(tops[i], label) for i, label in zip(at, chosen_labels, strict=True)]
        else:  # a forecast per item; the true values arrive as text of numbers
            forecasts = np.array([row[0] for entry in parsed_outputs for row in entry[PREDICTION]], dtype=np.float64)
            part[PREDICTED] = forecasts[at]
            part[LABEL] = pd.to_numeric(pd.Series(chosen_labels, dtype=object), errors="coerce").to_numpy()
            part[LABEL_RANK] = -1
        part[ANALYSED] = keep[selected]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _rank(top: list[str], label: str | None) -> int:
    """Where the true class sits in the answered top-k (0 = first), -1 if absent or unlabelled."""
    if label is None:
        return -1
    try:
        return top.index(label)
    except ValueError:
        return -1


def reference_rows(split: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """A split as traffic sends it: one row per song or other group of the spec, sampled (seeded) like the
    window to `monitoring.max_analysis_rows`; every column kept."""
    from headliner.data.splitting import one_row_per_group

    frame = one_row_per_group(split, spec)
    if len(frame) > spec.monitoring.max_analysis_rows:
        frame = frame.sample(n=spec.monitoring.max_analysis_rows, random_state=spec.split.seed)
    return frame.reset_index(drop=True)


def reference_data(split: pd.DataFrame, model_bytes: bytes, spec: UseCaseSpec) -> pd.DataFrame:
    """The reference of a monitoring run: a split of the served version (its features, as `reference_rows`
    gives them), with what the version predicts for each row (PREDICTED: the top class, or the forecast);
    a regression reference also keeps the true values (LABEL), which target drift compares with."""
    from headliner.model.onnx_packaging import OnnxPredictor

    rows = reference_rows(split, spec)
    frame = rows[spec.feature_names].astype(np.float64)
    predictor = OnnxPredictor(model_bytes)
    if predictor.is_classification:
        order, _ = predictor.top_classes(predictor.probabilities(frame.to_numpy()))
        frame[PREDICTED] = np.asarray(predictor.classes, dtype=object)[order[:, 0]]
    else:
        frame[PREDICTED] = predictor.scores(frame.to_numpy())[:, 0].astype(np.float64)
        frame[LABEL] = rows[spec.target.column].to_numpy(dtype=np.float64)
    return frame


def newest_logged_version(url: str, model_name: str) -> str | None:
    """The version that answered the newest logged request to `model_name` as production (the one being
    served; a rollout's candidate and shadow answers do not count), or None."""
    from sqlalchemy import inspect, or_, select

    from headliner.serving.inference_log import TABLE_NAME, create_log_engine, log_table

    engine = create_log_engine(url)
    try:
        if not inspect(engine).has_table(TABLE_NAME):
            return None
        table = log_table(engine)
        served = or_(table.c.variant.is_(None), table.c.variant == "production")
        query = (
            select(table.c.model_version)
            .where(table.c.model_name == model_name, served)
            .order_by(table.c.id.desc())
            .limit(1)
        )
        with engine.connect() as connection:
            version: str | None = connection.execute(query).scalar()
            return version
    finally:
        engine.dispose()
