"""Reproducible train/validation/test splits, each with a content fingerprint: grouped (no group, e.g. a
song, in two splits) and stratified by each group's dominant label, or by time (a model is judged on
periods after every one it learnt from).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from headliner.data.features import amount
from headliner.errors import DataValidationError
from headliner.reports.html import DataReport
from headliner.spec import UseCaseSpec, parse_period_span

SPLIT_NAMES = ("train", "validation", "test")


def dataframe_fingerprint(frame: pd.DataFrame) -> str:
    """A short content hash of a table: same columns, dtypes and rows in the same order, same hash."""
    digest = hashlib.sha256()
    digest.update("|".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def class_distribution(labels: pd.Series, classes: list[str]) -> NDArray[np.float64]:
    """Share of each class (in the spec's order) in a label column."""
    counts = labels.value_counts().reindex(classes, fill_value=0).to_numpy(dtype=np.float64)
    shares: NDArray[np.float64] = counts / max(counts.sum(), 1.0)
    return shares


def assign_splits(
    groups: pd.Series, labels: pd.Series, fractions: tuple[float, float, float], seed: int
) -> NDArray[np.intp]:
    """Split index (0 train, 1 validation, 2 test) per row, equal for all rows of a group.

    Groups are stratified by their most frequent label: inside each stratum they are shuffled and
    spread over the splits by position, with a random rotation per stratum so small strata do not all
    land in the training split.
    """
    rng = np.random.default_rng(seed)
    per_group = pd.DataFrame({"group": groups.to_numpy(), "label": labels.to_numpy()})
    dominant = (
        per_group.groupby(["group", "label"], sort=True)
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["group", "n", "label"], ascending=[True, False, True])
        .drop_duplicates("group")
    )
    dominant["order"] = rng.permutation(len(dominant))
    dominant = dominant.sort_values(["label", "order"])
    position = dominant.groupby("label").cumcount().to_numpy()
    size = dominant.groupby("label")["group"].transform("size").to_numpy()
    strata = dominant["label"].astype("category").cat.codes.to_numpy()
    rotation = rng.random(strata.max() + 1)[strata]
    quantile = ((position + 0.5) / size + rotation) % 1.0
    bounds = np.cumsum(fractions)[:-1]
    group_split = pd.Series(np.searchsorted(bounds, quantile, side="right"), index=dominant["group"].to_numpy())
    split_index: NDArray[np.intp] = group_split.reindex(groups.to_numpy()).to_numpy()
    return split_index


def split_examples(
    frame: pd.DataFrame, spec: UseCaseSpec, source: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, DataReport]:
    """Train, validation and test splits of labelled examples, and a report with their fingerprints.

    By group: seeded random fractions, no group in two splits, stratified by label (regression: by the
    target's quintile). By time: the last `test_last` of the data tests, the `validation_last` before it
    validates, everything earlier trains.
    """
    split = spec.split
    if split.by == "time":
        assignment, facts = _time_assignment(frame, spec, source)
    else:
        groups = (
            frame[split.group_column] if split.group_column else pd.Series(np.arange(len(frame)), index=frame.index)
        )
        assignment = assign_splits(groups, _strata(frame, spec), split.fractions, split.seed)
        facts = {"seed": str(split.seed), "grouped by": split.group_column or "(row)"}
    parts = [frame[assignment == i].reset_index(drop=True) for i in range(3)]

    labels = frame[spec.target.column]
    overall = class_distribution(labels, spec.target.classes) if spec.is_classification else None
    for name, part in zip(SPLIT_NAMES, parts, strict=True):
        facts[f"{name} rows"] = f"{len(part):,} ({len(part) / max(len(frame), 1):.1%})"
        if split.group_column:
            facts[f"{name} groups"] = f"{part[split.group_column].nunique():,}"
        elif split.by == "group":
            facts[f"{name} groups"] = f"{len(part):,}"
        facts[f"{name} fingerprint"] = dataframe_fingerprint(part)
        if split.column:
            facts[f"{name} date range"] = _dates(part[split.column])
        if overall is not None:
            shares = class_distribution(part[spec.target.column], spec.target.classes)
            distance = 0.5 * np.abs(shares - overall).sum()
            facts[f"{name} label distance"] = f"{distance:.4f} (total variation vs all examples)"
        else:
            unit = f" {spec.target.unit}" if spec.target.unit else ""
            facts[f"{name} mean target"] = f"{amount(part[spec.target.column].mean())}{unit}"
    report = DataReport(
        title=f"Split of {spec.name} examples",
        source=source,
        rows_in=len(frame),
        rows_out=sum(len(p) for p in parts),
        facts=facts,
        label_counts={str(k): int(v) for k, v in labels.value_counts().items()} if spec.is_classification else {},
    )
    return parts[0], parts[1], parts[2], report


def _strata(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.Series:
    """What a grouped split stratifies by: the class, or a regression target's quintile."""
    target = frame[spec.target.column]
    if spec.is_classification:
        return target
    return pd.Series(pd.qcut(target.rank(method="first"), 5, labels=False, duplicates="drop"), index=frame.index)


def _dates(times: pd.Series) -> str:
    if times.empty:
        return "(none)"
    return f"{times.min().date()} to {times.max().date()}"


def _time_assignment(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> tuple[NDArray[np.intp], dict[str, str]]:
    """Split index per row by time (0 train, 1 validation, 2 test) and the split's facts; a split left
    empty is an error naming the spans and the data's date range."""
    split = spec.split
    assert split.column and split.test_last and split.validation_last  # the spec requires them by time
    if split.column not in frame.columns or not pd.api.types.is_datetime64_any_dtype(frame[split.column]):
        raise DataValidationError(
            f"{source}: a split by time needs column '{split.column}' (split.column) holding dates; "
            f"{'found ' + str(frame[split.column].dtype) if split.column in frame.columns else 'not in the data'}"
        )
    times = frame[split.column]
    if times.isna().all():
        raise DataValidationError(f"{source}: column '{split.column}' holds no date to split by")
    last = times.max()
    test_start = last - _span(split.test_last)
    validation_start = test_start - _span(split.validation_last)
    assignment: NDArray[np.intp] = np.select(
        [(times > test_start).to_numpy(), (times > validation_start).to_numpy()], [2, 1], default=0
    ).astype(np.intp)
    counts = np.bincount(assignment, minlength=3)
    if (counts == 0).any():
        empty = [name for name, count in zip(SPLIT_NAMES, counts, strict=True) if count == 0]
        raise DataValidationError(
            f"{source}: a split by time leaves the {' and '.join(empty)} split empty: test_last "
            f"'{split.test_last}' and validation_last '{split.validation_last}' before it, counted back from "
            f"the data's last date; the data spans {_dates(times)} ({split.column}): expected more history or "
            "shorter spans"
        )
    facts = {
        "split by": f"time ({split.column})",
        "test": f"the last {split.test_last}: after {test_start.date()}",
        "validation": f"the {split.validation_last} before: after {validation_start.date()}",
    }
    return assignment, facts


def _span(value: str) -> pd.Timedelta:
    count, unit = parse_period_span(value)
    return pd.Timedelta(weeks=count) if unit == "W" else pd.Timedelta(days=count)


def one_row_per_group(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """The first row of each group (`split.group_column`, e.g. one row per song): what a service sees, one
    request per song, where a split holds one example per (song, class). Without a group column (e.g. a
    time series, where each row is one request: a store's family in one week): every row."""
    column = spec.split.group_column
    if column is None or column not in frame.columns:
        return frame
    return frame.drop_duplicates(column)
