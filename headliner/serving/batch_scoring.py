"""Batch scoring: a table of items (CSV or Parquet) gets the predictions of an ONNX model (a classifier's top-k
classes, a regressor's `prediction` in the target's unit), scored chunk by chunk with ONNX Runtime, checked
with the same feature rules as the service, and recorded in the inference log like requests, so monitoring
sees batch traffic too.

Rows with an invalid feature value (missing, not a number, out of range, not whole) are not scored: their
prediction columns stay empty and the `error` column says why. Columns that are not features (ids, names,
labels) are passed through in front of the predictions, so every output row can be traced to its input.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel, computed_field

from headliner.data.features import coerce_feature
from headliner.data.sources import parse_table
from headliner.errors import DataValidationError
from headliner.model.onnx_packaging import PREDICTION, OnnxPredictor
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.serving.inference_log import InferenceLog, InferenceRecord
from headliner.serving.payloads import FeatureRules
from headliner.serving.settings import url_without_password
from headliner.spec import Feature

ERROR_COLUMN = "error"
DEFAULT_CHUNK_ROWS = 10_000
REJECTED_EXAMPLES = 10  # rejected rows shown in the report


def prediction_columns(predictor: OnnxPredictor) -> list[str]:
    """The columns scoring adds, in order: a classifier's code, name and probability per rank, a regressor's
    `prediction`; then `error`."""
    if not predictor.is_classification:
        return [PREDICTION, ERROR_COLUMN]
    columns = []
    for rank in range(1, predictor.top_k + 1):
        columns += [f"top_{rank}_code", f"top_{rank}_name", f"top_{rank}_probability"]
    return [*columns, ERROR_COLUMN]


class RejectedRow(BaseModel):
    """A row that was not scored, by position in the input (0 is the first data row)."""

    row: int
    error: str


class BatchScoringReport(HtmlReport):
    """What one batch scoring run read, scored, rejected and wrote."""

    model_name: str
    model_version: str
    batch_id: str
    source: str
    rows_in: int
    rows_scored: int
    rows_rejected: int
    rejected_by_feature: dict[str, int]  # rejected rows with a problem in that feature
    rejected_examples: list[RejectedRow]
    top_k: int  # a classifier's classes per row; 0 for a regressor
    chunks: int
    chunk_rows: int
    seconds: float
    passthrough_columns: list[str]
    inference_log: str | None = None  # URL, password hidden
    log_records: int = 0  # one per chunk
    output_file: str | None = None
    unit: str | None = None  # a regressor's: the unit of its `prediction` column

    @property
    def predictions_described(self) -> str:
        return f"top {self.top_k}" if self.top_k else f"prediction in {self.unit or 'the target unit'}"

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented way; mypy rejects decorated properties
    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {
            "model_version": self.model_version,
            "rows_in": self.rows_in,
            "rows_scored": self.rows_scored,
            "rows_rejected": self.rows_rejected,
            "rows_per_second": round(self.rows_per_second, 1),
            "output_file": self.output_file or "",
        }

    def summary_lines(self) -> list[str]:
        """What a person running the batch wants to read at the end, one fact per line."""
        lines = [
            f"Scored {self.rows_scored:,} of {self.rows_in:,} rows with model '{self.model_name}' version "
            f"{self.model_version} in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s, "
            f"{self.chunks} chunk{'s' if self.chunks != 1 else ''})"
        ]
        if self.rows_rejected:
            by_feature = ", ".join(f"{name} {count:,}" for name, count in self.rejected_by_feature.items())
            lines.append(
                f"  rejected {self.rows_rejected:,} rows with invalid features ({by_feature}); see the 'error' column"
            )
        if self.output_file:
            lines.append(f"  predictions ({self.predictions_described}): {self.output_file}")
        if self.inference_log:
            lines.append(f"  inference log: {self.log_records} records ({self.batch_id}-*) in {self.inference_log}")
        return lines

    def to_html(self) -> str:
        summary = [
            ["model", f"{self.model_name} version {self.model_version}"],
            ["source", self.source],
            ["rows in", f"{self.rows_in:,}"],
            ["rows scored", f"{self.rows_scored:,}"],
            ["rows rejected", f"{self.rows_rejected:,}"],
            ["predictions", self.predictions_described],
            ["output file", self.output_file or "(not written)"],
        ]
        sections = [("Summary", html_table(["item", "value"], summary))]
        if self.rejected_by_feature:
            rejected = [[name, f"{count:,}"] for name, count in self.rejected_by_feature.items()]
            sections.append(("Rejected rows by feature", html_table(["feature", "rows"], rejected)))
            examples = [[example.row, example.error] for example in self.rejected_examples]
            sections.append(("First rejected rows", html_table(["row (0 = first data row)", "error"], examples)))
        else:
            sections.append(("Rejected rows", "<p class='ok'>Every row was scored.</p>"))
        details = [
            ["batch id", self.batch_id],
            ["chunks", f"{self.chunks:,} of at most {self.chunk_rows:,} rows"],
            ["time", f"{self.seconds:.2f} s ({self.rows_per_second:,.0f} rows/s)"],
            ["passed-through columns", ", ".join(self.passthrough_columns) or "(none)"],
            [
                "inference log",
                f"{self.log_records} records in {self.inference_log}" if self.inference_log else "(none)",
            ],
        ]
        sections.append(("Details", html_table(["item", "value"], details)))
        return html_page(f"Batch scoring: {self.model_name} version {self.model_version}", sections)


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _class_labels(indices: np.ndarray, labels: list[str]) -> pd.Categorical:
    """Class indices (-1: not scored) as a categorical of their labels; display names may repeat."""
    categories, positions = np.unique(labels, return_inverse=True)
    codes = np.where(indices >= 0, positions[indices], -1)
    # pandas takes any array-like of codes; its stubs ask for a Sequence
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories))  # type: ignore[arg-type]


class _ChunkChecker:
    """A chunk's feature columns as the model's input matrix, and why its invalid rows are invalid."""

    def __init__(self, predictor: OnnxPredictor):
        self.rules = FeatureRules(predictor.feature_schema)
        self.features = [Feature.model_validate(entry) for entry in predictor.feature_schema]
        self.positions = {name: position for position, name in enumerate(self.rules.names)}

    def matrix(self, chunk: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """[n, F] float64 values (NaN where missing or not a number) and a [n, F] mask of present
        values that are not numbers of the feature's type."""
        coerced = [coerce_feature(chunk[feature.name], feature) for feature in self.features]
        values = np.column_stack([column.to_numpy(dtype=np.float64) for column, _ in coerced])
        not_of_type = np.column_stack([mask.to_numpy(dtype=bool) for _, mask in coerced])
        return values, not_of_type

    def problems(
        self, chunk: pd.DataFrame, offset: int, row: np.ndarray, not_of_type: np.ndarray
    ) -> list[tuple[str, str]]:
        """(feature, why) for each invalid value of one row, showing the raw value that was given."""
        found = []
        for name, why in self.rules.row_problems(row):
            position = self.positions[name]
            if not_of_type[position]:
                why = f"expected {self.rules.expected(position)}, got {_shown(chunk[name].iat[offset])}"
            elif math.isnan(row[position]):
                why = f"missing value; expected {self.rules.expected(position)}"
            found.append((name, why))
        return found


def require_features(frame: pd.DataFrame, feature_names: list[str], source: str) -> None:
    """Refuse a table that lacks a feature column, naming what is missing and what is expected."""
    missing = [name for name in feature_names if name not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{source}: missing feature column(s) {_quoted(missing)}; "
            f"the model expects all of: {', '.join(feature_names)}"
        )


def score_frame(
    predictor: OnnxPredictor,
    frame: pd.DataFrame,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
    log: InferenceLog | None = None,
    batch_id: str | None = None,
    source: str = "batch data",
) -> tuple[pd.DataFrame, BatchScoringReport]:
    """Predictions (top-k classes, or a regressor's value) for every valid row of `frame`, `chunk_rows` rows
    at a time.

    Returns one output row per input row: the non-feature columns, then `prediction_columns(predictor)`; a
    regressor's frame names the unit of its predictions in `attrs["units"]` ({"prediction": unit}).
    `progress` is called with the rows done after each chunk. With a `log`, each chunk is appended as
    one record (endpoint 'batch', request id '<batch_id>-<chunk>') holding the rows it scored.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    require_features(frame, predictor.feature_names, source)
    feature_set = set(predictor.feature_names)
    passthrough = [column for column in frame.columns if column not in feature_set]
    classification = predictor.is_classification
    top_k = predictor.top_k if classification else 0
    clashing = [str(column) for column in passthrough if column in prediction_columns(predictor)]
    if clashing:
        raise DataValidationError(
            f"{source}: column(s) {_quoted(clashing)} would be overwritten by the predictions; rename them"
        )
    batch_id = batch_id or uuid.uuid4().hex
    checker = _ChunkChecker(predictor)
    classes = np.array(predictor.classes, dtype=object)

    rows = len(frame)
    top_indices = np.full((rows, top_k), -1, dtype=np.int32)  # class index per rank; -1: not scored
    top_probabilities = np.full((rows, top_k), np.nan, dtype=np.float32)
    values_predicted = np.full(rows, np.nan, dtype=np.float32)  # a regressor's; NaN: not scored
    errors = np.full(rows, None, dtype=object)
    rejected_by_feature: Counter[str] = Counter()
    rejected_examples: list[RejectedRow] = []
    chunks = 0
    started = time.perf_counter()
    for chunk_start in range(0, rows, chunk_rows):
        received_at, chunk_started = time.time(), time.perf_counter()
        chunk = frame.iloc[chunk_start : chunk_start + chunk_rows]
        values, not_of_type = checker.matrix(chunk)
        invalid = checker.rules.invalid_rows(values)
        inputs = values[~invalid]
        scores = predictor.scores(inputs)
        scored = chunk_start + np.flatnonzero(~invalid)
        logged: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]  # as InferenceRecord's outputs
        if classification:
            order, chunk_probabilities = predictor.top_classes(scores)  # as the service ranks classes
            top_indices[scored] = order
            top_probabilities[scored] = chunk_probabilities
            logged = (classes[order], chunk_probabilities, None)
        else:
            values_predicted[scored] = scores[:, 0]
            logged = (None, None, scores)
        for offset in np.flatnonzero(invalid).tolist():
            problems = checker.problems(chunk, offset, values[offset], not_of_type[offset])
            error = "; ".join(f"{name}: {why}" for name, why in problems)
            errors[chunk_start + offset] = error
            rejected_by_feature.update(name for name, _ in problems)
            if len(rejected_examples) < REJECTED_EXAMPLES:
                rejected_examples.append(RejectedRow(row=chunk_start + int(offset), error=error))
        if log is not None:
            log.append(
                InferenceRecord(
                    received_at=received_at,
                    request_id=f"{batch_id}-{chunks:05d}",
                    endpoint="batch",
                    model_name=predictor.model_name,
                    model_version=predictor.model_version,
                    status=200,
                    latency_ms=(time.perf_counter() - chunk_started) * 1000.0,
                    rows=len(inputs),
                    inputs=inputs,
                    top_labels=logged[0],
                    top_probabilities=logged[1],
                    error=None,
                    predictions=logged[2],
                )
            )
        chunks += 1
        if progress is not None:
            progress(len(chunk))
    seconds = time.perf_counter() - started

    predicted: dict[str, pd.Categorical | np.ndarray] = {}
    for rank in range(top_k):
        predicted[f"top_{rank + 1}_code"] = _class_labels(top_indices[:, rank], predictor.classes)
        predicted[f"top_{rank + 1}_name"] = _class_labels(top_indices[:, rank], predictor.class_names)
        predicted[f"top_{rank + 1}_probability"] = top_probabilities[:, rank]
    if not classification:
        predicted[PREDICTION] = values_predicted
    predicted[ERROR_COLUMN] = errors
    predictions = pd.concat([frame[passthrough].reset_index(drop=True), pd.DataFrame(predicted)], axis=1)
    unit = None if predictor.target is None else predictor.target.get("unit")
    if unit:
        predictions.attrs["units"] = {PREDICTION: unit}  # pandas keeps attrs in a Parquet file's metadata

    rows_rejected = int(pd.notna(errors).sum())
    report = BatchScoringReport(
        model_name=predictor.model_name,
        model_version=predictor.model_version,
        batch_id=batch_id,
        source=source,
        rows_in=rows,
        rows_scored=rows - rows_rejected,
        rows_rejected=rows_rejected,
        rejected_by_feature=dict(rejected_by_feature.most_common()),
        rejected_examples=rejected_examples,
        top_k=top_k,
        chunks=chunks,
        chunk_rows=chunk_rows,
        seconds=seconds,
        passthrough_columns=[str(column) for column in passthrough],
        inference_log=url_without_password(log.url) if log is not None else None,
        log_records=chunks if log is not None else 0,
        unit=unit,
    )
    return predictions, report


def score_csv(
    predictor: OnnxPredictor,
    content: bytes,
    max_rows: int,
    log: InferenceLog | None,
    batch_id: str,
    source: str = "the uploaded file",
) -> tuple[bytes, BatchScoringReport]:
    """A CSV file's bytes scored as `score_frame` scores a table (the service's `POST /batch`): the
    predictions as CSV bytes, and the report. Refuses a file that is not CSV, lacks a feature column or
    has more than `max_rows` rows."""
    frame = parse_table(content, "csv", source)
    if len(frame) > max_rows:
        raise DataValidationError(f"{source}: {len(frame):,} rows; at most {max_rows:,} are scored in one upload")
    predictions, report = score_frame(predictor, frame, log=log, batch_id=batch_id, source=source)
    return predictions.to_csv(index=False).encode(), report
