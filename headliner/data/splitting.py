"""Reproducible train/validation/test splits, grouped (no group, e.g. a song, in two splits) and
stratified by each group's dominant label, each split with a content fingerprint.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from headliner.reports.html import DataReport
from headliner.spec import UseCaseSpec

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
    """Train, validation and test splits of labelled examples, and a report with their fingerprints."""
    split = spec.split
    labels = frame[spec.target.column]
    groups = frame[split.group_column] if split.group_column else pd.Series(np.arange(len(frame)), index=frame.index)
    assignment = assign_splits(groups, labels, (split.train, split.validation, split.test), split.seed)
    parts = [frame[assignment == i].reset_index(drop=True) for i in range(3)]

    overall = class_distribution(labels, spec.target.classes)
    facts = {"seed": str(split.seed), "grouped by": split.group_column or "(row)"}
    for name, part in zip(SPLIT_NAMES, parts, strict=True):
        part_groups = part[split.group_column].nunique() if split.group_column else len(part)
        distance = 0.5 * np.abs(class_distribution(part[spec.target.column], spec.target.classes) - overall).sum()
        facts[f"{name} rows"] = f"{len(part):,} ({len(part) / max(len(frame), 1):.1%})"
        facts[f"{name} groups"] = f"{part_groups:,}"
        facts[f"{name} fingerprint"] = dataframe_fingerprint(part)
        facts[f"{name} label distance"] = f"{distance:.4f} (total variation vs all examples)"
    report = DataReport(
        title=f"Split of {spec.name} examples",
        source=source,
        rows_in=len(frame),
        rows_out=sum(len(p) for p in parts),
        facts=facts,
        label_counts={str(k): int(v) for k, v in labels.value_counts().items()},
    )
    return parts[0], parts[1], parts[2], report


def one_row_per_group(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """The first row of each group (`split.group_column`, e.g. one row per song): what a service sees, one
    request per song, where a split holds one example per (song, class). Without a group column: every row."""
    column = spec.split.group_column
    if column is None or column not in frame.columns:
        return frame
    return frame.drop_duplicates(column)
