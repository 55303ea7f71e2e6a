"""Wrangling and labelling: raw rows become clean, typed, labelled examples, with every repair and
every dropped row counted in a report (the rules come from the use-case spec).
"""

from __future__ import annotations

import pandas as pd

from headliner.data.features import coerce_feature, feature_problems, map_labels, raw_labels, unknown_label_finding
from headliner.reports.html import DataReport, Finding
from headliner.spec import OutOfRangeAction, UseCaseSpec


def wrangle(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> tuple[pd.DataFrame, DataReport]:
    """Drop duplicates and unlabelled rows, fix types, repair or drop odd values, collapse repeats.

    The result has the spec's columns only: the group column (text), the features (float64, bools
    as 0/1) and the raw label (text).
    """
    findings: list[Finding] = []
    rows_in = len(frame)

    deduped = frame.drop_duplicates()
    if len(deduped) < rows_in:
        findings.append(Finding(problem="duplicate row", rows=rows_in - len(deduped), action="drop the copies"))

    labels = raw_labels(deduped[spec.target.column])
    keep = labels.notna().to_numpy()
    if not keep.all():
        findings.append(
            Finding(column=spec.target.column, problem="no label", rows=int((~keep).sum()), action="drop row")
        )

    columns: dict[str, pd.Series] = {}
    if spec.split.group_column:
        columns[spec.split.group_column] = deduped[spec.split.group_column].astype("string").astype(object)
    for feature in spec.features:
        values, _ = coerce_feature(deduped[feature.name], feature)
        problems = feature_problems(values, feature)
        # Only rows still in play are counted, so a row is counted once, under its first problem column.
        findings.extend(problems.findings(deduped[feature.name], feature, among=keep))
        keep &= ~problems.drop_mask(feature).to_numpy()
        if feature.out_of_range is OutOfRangeAction.CLIP:
            values = values.clip(lower=feature.min, upper=feature.max)
        columns[feature.name] = values
    columns[spec.target.column] = labels.astype(object)

    wrangled = pd.DataFrame(columns)[keep].reset_index(drop=True)
    key = spec.wrangling.example_key
    if key:
        before = len(wrangled)
        wrangled = wrangled.drop_duplicates(subset=key).reset_index(drop=True)
        if len(wrangled) < before:
            findings.append(
                Finding(
                    column=", ".join(key),
                    problem="repeated example key",
                    rows=before - len(wrangled),
                    action="collapse into one example",
                )
            )
    report = DataReport(
        title=f"Wrangling of {spec.name} data",
        source=source,
        rows_in=rows_in,
        rows_out=len(wrangled),
        findings=findings,
        facts={"columns kept": ", ".join(wrangled.columns), "columns dropped": str(frame.shape[1] - wrangled.shape[1])},
    )
    return wrangled, report


def label_examples(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> tuple[pd.DataFrame, DataReport]:
    """Map raw labels to the spec's classes, drop rows with unknown labels, count the classes."""
    column = spec.target.column
    classes, unknown = map_labels(raw_labels(frame[column]), spec.target)
    findings = [unknown_label_finding(frame[column], unknown)] if unknown.any() else []
    labelled = frame.loc[~unknown.to_numpy()].copy()
    labelled[column] = classes[~unknown].astype(object).to_numpy()
    labelled = labelled.reset_index(drop=True)
    counts = labelled[column].value_counts()
    missing_classes = [c for c in spec.target.classes if c not in counts.index]
    if missing_classes:
        findings.append(
            Finding(
                column=column,
                problem="class without examples",
                rows=0,
                action="none: the model cannot learn these classes from this data",
                examples=missing_classes[:10],
            )
        )
    report = DataReport(
        title=f"Labelling of {spec.name} data",
        source=source,
        rows_in=len(frame),
        rows_out=len(labelled),
        findings=findings,
        label_counts={str(k): int(v) for k, v in counts.items()},
        facts={"classes present": f"{counts.size} of {len(spec.target.classes)}"},
    )
    return labelled, report
