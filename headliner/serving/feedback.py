"""Ground truth for live performance: true labels that arrive after a prediction, keyed by the request id
the service answered (and the item's index in a multi-item request): a classifier's true class, a regressor's
true value. They sit in table `feedback` of the inference log's database, where the monitoring pipeline joins
them to the logged predictions.

Schema of table `feedback` (one row per labelled item; a later label for the same item wins):
  id           integer primary key
  received_at  timestamp (UTC) when the label arrived
  request_id   the id of the request that made the prediction
  item         index of the item within that request (0 for one-item requests)
  label        the true class code; for a regression model the true value as text (repr of a float, e.g.
               '1238.0': `pd.to_numeric` reads it back exactly)
  source       'api' (POST /feedback) or 'file' (python run.py feedback --data FILE)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from headliner.errors import FeedbackError
from headliner.serving.inference_log import SideTable, utc_timestamp
from headliner.serving.payloads import RequestError, number_text

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import MetaData, Table

TABLE_NAME = "feedback"
MAX_REQUEST_ID = 64


class Feedback(NamedTuple):
    request_id: str
    item: int
    label: str


def _table(metadata: MetaData) -> Table:
    from sqlalchemy import Column, Integer, String, Table

    return Table(
        TABLE_NAME,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("received_at", utc_timestamp(), nullable=False),
        Column("request_id", String(MAX_REQUEST_ID), nullable=False, index=True),
        Column("item", Integer, nullable=False),
        Column("label", String(128), nullable=False),
        Column("source", String(16), nullable=False),
    )


class FeedbackStore(SideTable):
    """Writes and reads labels in the inference log's database (the table is created when missing)."""

    def __init__(self, url: str):
        super().__init__(url, _table)

    def write(self, labels: Sequence[Feedback], source: str) -> int:
        """Store labels in one transaction; returns how many."""
        table = self._ready()
        now = datetime.now(UTC)
        rows = [
            {"received_at": now, "request_id": f.request_id, "item": f.item, "label": f.label, "source": source}
            for f in labels
        ]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(table.insert(), rows)
        return len(rows)

    def read(self) -> pd.DataFrame:
        """Every label as a DataFrame (request_id, item, label, received_at), the latest per item."""
        import pandas as pd
        from sqlalchemy import select

        table = self._ready()
        query = select(table.c.request_id, table.c.item, table.c.label, table.c.received_at).order_by(table.c.id)
        with self.engine.connect() as connection:
            frame = pd.read_sql(query, connection)
        frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True)
        return frame.drop_duplicates(["request_id", "item"], keep="last").reset_index(drop=True)


class TrueLabels:
    """What a true label of a model is: one of its `classes`, or, for a regression model (`target`: the model's
    target JSON, OnnxPredictor.target), a finite number within the target's min/max. `stored` gives the text the
    feedback table keeps, or None for a value that is not a label of the model."""

    def __init__(self, classes: Sequence[str], target: Mapping[str, Any] | None = None):
        self.known = frozenset(classes)
        self.target = target
        if target is None:
            self.what, self.expected = "a class", f"one of {sorted(self.known)}"
            return
        low, high = target.get("min"), target.get("max")
        bounds = ""
        if low is not None and high is not None:
            bounds = f" in [{number_text(low)}, {number_text(high)}]"
        elif low is not None:
            bounds = f" >= {number_text(low)}"
        elif high is not None:
            bounds = f" <= {number_text(high)}"
        unit = f" {target['unit']}" if target.get("unit") else ""
        self.what, self.expected = "a true value", f"a number{bounds}{unit} (the true {target['column']})"
        self._low = -math.inf if low is None else float(low)
        self._high = math.inf if high is None else float(high)

    def stored(self, value: Any) -> str | None:
        if self.target is None:
            return value if isinstance(value, str) and value in self.known else None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's numbers too (files)
            return None
        number = float(value)
        return repr(number) if math.isfinite(number) and self._low <= number <= self._high else None


def parse_feedback(
    payload: Any, classes: Sequence[str], max_items: int, target: Mapping[str, Any] | None = None
) -> list[Feedback]:
    """The body of POST /feedback: one object {"request_id", "label", "item"?} or a list of them; `label` is a
    class of the model, or with a regression model's `target` (OnnxPredictor.target) a number in its range.
    Raises RequestError (422) naming the field and the entry."""
    entries = payload if isinstance(payload, list) else [payload]
    if not entries:
        raise RequestError(422, "send one label object or a non-empty list of them", "request_id")
    if len(entries) > max_items:
        raise RequestError(422, f"{len(entries):,} labels in one request; the limit is {max_items:,}")
    rule = TrueLabels(classes, target)
    labels = []
    for index, entry in enumerate(entries):
        where = "" if len(entries) == 1 and not isinstance(payload, list) else f" (entry {index})"
        if not isinstance(entry, dict):
            raise RequestError(422, f'a label must be an object {{"request_id", "label"}}{where}', "request_id")
        extra = sorted(set(entry) - {"request_id", "item", "label"})
        if extra:
            raise RequestError(
                422, f"unknown field '{extra[0]}'{where}; expected request_id, label and optional item", extra[0]
            )
        request_id, label, item = entry.get("request_id"), entry.get("label"), entry.get("item", 0)
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
            raise RequestError(
                422,
                f"'request_id' must be the request id the prediction answered (1 to {MAX_REQUEST_ID} characters)"
                f"{where}",
                "request_id",
            )
        stored = rule.stored(label)
        if stored is None:
            raise RequestError(
                422, f"'label' {label!r} is not {rule.what} of this model{where}; expected {rule.expected}", "label"
            )
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise RequestError(422, f"'item' must be an item's index (an integer >= 0) in its request{where}", "item")
        labels.append(Feedback(request_id, item, stored))
    return labels


FILE_COLUMNS = ("request_id", "label")


def feedback_from_file(
    path: str | Path, classes: Sequence[str], target_column: str, target: Mapping[str, Any] | None = None
) -> list[Feedback]:
    """Labels from a CSV or Parquet file with columns request_id, label (or the target's own column name)
    and optional item; labels are classes, or with a regression model's `target` numbers (as `parse_feedback`).
    Every bad row is reported at once (file row numbers, header = row 1) and nothing is stored when one is bad."""
    import pandas as pd

    from headliner.data.sources import table_format

    path = Path(path)
    if not path.is_file():
        raise FeedbackError(f"feedback file {path}: no such file")
    fmt = table_format(str(path))
    try:
        frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path, dtype={"request_id": str})
    except Exception as exc:
        raise FeedbackError(f"feedback file {path}: cannot read it as {fmt} ({exc})") from None
    if "label" not in frame.columns and target_column in frame.columns:
        frame = frame.rename(columns={target_column: "label"})
    missing = [c for c in FILE_COLUMNS if c not in frame.columns]
    if missing:
        raise FeedbackError(
            f"feedback file {path}: missing column '{missing[0]}'; expected request_id, label (or {target_column}) "
            f"and optional item, got {list(frame.columns)}"
        )
    if frame.empty:
        raise FeedbackError(f"feedback file {path}: no rows")
    items = frame["item"] if "item" in frame.columns else pd.Series(0, index=frame.index)
    rule = TrueLabels(classes, target)
    problems, labels = [], []
    for position, (request_id, label, item) in enumerate(zip(frame["request_id"], frame["label"], items, strict=True)):
        row = position + 2
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
            problems.append(f"row {row}: request_id {request_id!r} is not a request id")
        elif (stored := rule.stored(label)) is None:
            problems.append(
                f"row {row}: label {label!r} is not {rule.what}"
                + ("" if target is None else f": expected {rule.expected}")
            )
        elif not _is_index(item):
            problems.append(f"row {row}: item {item!r} is not an integer >= 0")
        else:
            labels.append(Feedback(request_id, int(item), stored))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise FeedbackError(f"feedback file {path}: {len(problems)} bad row(s), nothing stored: {shown}")
    return labels


def _is_index(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return not math.isnan(number) and number >= 0 and number == int(number)
