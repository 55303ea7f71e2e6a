"""Validation with teeth: hard failures stop the pipeline with one line naming the file, the column,
what was expected and a sample of offending values; soft problems are counted for wrangling to repair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from headliner.data.features import (
    MISSING,
    NOT_A_DATE,
    coerce_feature,
    coerce_number,
    examples,
    expected_type,
    feature_problems,
    map_labels,
    parse_times,
    raw_labels,
    target_facts,
    target_findings,
    unknown_label_finding,
)
from headliner.errors import DataValidationError
from headliner.reports.html import Check, DataReport, Finding
from headliner.spec import UseCaseSpec


def _entirely_empty(column: pd.Series) -> bool:
    """All values missing, or (text columns) blank; stops at the first real value."""
    present = column.dropna()
    if present.empty:
        return True
    if column.dtype != object:
        return False
    return not any(not isinstance(v, str) or v.strip() for v in present.to_numpy())


def check_structure(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> list[Check]:
    """The hard rules on rows and columns; raises DataValidationError on the first one broken."""
    if frame.empty:
        raise DataValidationError(f"{source}: no rows to validate (empty file)")
    missing = [c for c in spec.raw_columns if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, list(frame.columns)[:12])) + (" ..." if frame.shape[1] > 12 else "")
        raise DataValidationError(
            f"{source}: missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"expected all of the spec's columns, found: {found}"
        )
    checks = [
        Check(name="has rows", passed=True, detail=f"{len(frame):,} rows"),
        Check(name="required columns present", passed=True, detail=", ".join(spec.raw_columns)),
    ]
    for column in spec.raw_columns:
        if column != spec.target.column and _entirely_empty(frame[column]):
            raise DataValidationError(
                f"{source}: column '{column}' is entirely empty (all {len(frame):,} values missing); "
                "expected values in it"
            )
    checks.append(Check(name="no entirely empty column", passed=True))
    for feature in spec.raw_features:
        _, wrong_type = coerce_feature(frame[feature.name], feature)
        if wrong_type.any():
            raise DataValidationError(
                f"{source}: column '{feature.name}' must be {expected_type(feature)}; found "
                f"{', '.join(examples(frame.loc[wrong_type, feature.name]))} "
                f"in {int(wrong_type.sum()):,} of {len(frame):,} rows"
            )
    checks.append(Check(name="feature columns have the spec's types", passed=True))
    return checks


def check_times(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> tuple[list[Check], list[Finding]]:
    """A time series' time column holds dates, refused when none of its values is one; rows whose time is
    missing or not a date, or whose series column is empty, are counted (wrangling drops them)."""
    if spec.time_series is None:
        return [], []
    column = spec.time_series.time_column
    times, unreadable = parse_times(frame[column])
    dates = int(times.notna().sum())
    if dates == 0:
        raise DataValidationError(
            f"{source}: column '{column}' (time_series.time_column) holds no readable date; found "
            f"{', '.join(examples(frame.loc[unreadable, column])) or 'only empty values'}; "
            "expected dates such as 2024-01-01"
        )
    check = Check(name="time column holds dates", passed=True, detail=f"{column}: {dates:,} dates")
    found = []
    if unreadable.any():
        found.append(
            Finding(
                column=column,
                problem=NOT_A_DATE,
                rows=int(unreadable.sum()),
                action="drop row",
                examples=examples(frame.loc[unreadable, column]),
            )
        )
    absent = [(column, times.isna() & ~unreadable)] + [(name, frame[name].isna()) for name in spec.time_series.series]
    for name, mask in absent:
        if mask.any():
            found.append(Finding(column=name, problem=MISSING, rows=int(mask.sum()), action="drop row"))
    return [check], found


def check_labels(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> tuple[Check, pd.Series, pd.Series]:
    """Labelled rows exist and unknown labels stay under the spec's share; returns classes and mask."""
    target = spec.target
    labels = raw_labels(frame[target.column])
    labelled = int(labels.notna().sum())
    if labelled == 0:
        raise DataValidationError(
            f"{source}: no labelled rows: column '{target.column}' is empty in all {len(frame):,} rows; "
            f"expected: {target.description}"
        )
    classes, unknown = map_labels(labels, target)
    share = float(unknown.sum()) / labelled
    if share > target.max_unknown_share:
        raise DataValidationError(
            f"{source}: column '{target.column}' has {share:.1%} of labelled rows with unknown labels "
            f"(at most {target.max_unknown_share:.1%} allowed); found "
            f"{', '.join(examples(labels[unknown]))}; expected one of the spec's {len(target.classes)} classes"
        )
    return Check(name="labelled rows", passed=True, detail=f"{labelled:,} labelled"), classes, unknown


def check_target(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> Check:
    """Regression: some rows have a numeric target; refused when none has."""
    column = spec.target.column
    values, not_a_number = coerce_number(frame[column])
    usable = int((values.notna() & ~np.isinf(values)).sum())
    if usable == 0:
        found = f"; found {', '.join(examples(frame.loc[not_a_number, column]))}" if not_a_number.any() else ""
        raise DataValidationError(
            f"{source}: no row has a numeric target: column '{column}' is empty or not a number in all "
            f"{len(frame):,} rows{found}; expected: {spec.target.description} ({spec.target.unit})"
        )
    return Check(name="rows with a numeric target", passed=True, detail=f"{usable:,} of {len(frame):,}")


DATE_RANGE_FACT = "date range"


def date_range(frame: pd.DataFrame, column: str | None) -> str:
    """The first and last date of the raw data's date `column`, or why there is none."""
    if column is None:
        return "the spec names no date column (source.date_column)"
    if column not in frame.columns:
        return f"no column '{column}' (source.date_column) in the data"
    dates = parse_times(frame[column])[0].dropna()
    if dates.empty:
        return f"{column}: no readable dates"
    first, last = dates.min().date(), dates.max().date()
    return f"{first} to {last} ({(last - first).days + 1:,} days, {column})"


def validate_raw(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> DataReport:
    """Run every hard check (raising on failure) and count the soft problems."""
    checks = check_structure(frame, spec, source)
    findings: list[Finding] = []
    duplicates = int(frame.duplicated().sum())
    if duplicates:
        findings.append(Finding(problem="duplicate row", rows=duplicates, action="drop the copies"))
    facts = {"columns": str(frame.shape[1]), DATE_RANGE_FACT: date_range(frame, spec.source.date_column)}
    label_counts: dict[str, int] = {}
    column = spec.target.column
    if spec.is_classification:
        label_check, classes, unknown = check_labels(frame, spec, source)
        checks.append(label_check)
        unlabelled = int(classes.isna().sum())
        if unlabelled:
            findings.append(Finding(column=column, problem="no label", rows=unlabelled, action="drop row"))
        if unknown.any():
            findings.append(unknown_label_finding(frame[column], unknown))
        label_counts = {str(k): int(v) for k, v in classes[~unknown].value_counts().items()}
    else:
        checks.append(check_target(frame, spec, source))
        findings.extend(target_findings(frame[column], spec.target))
        facts.update(target_facts(coerce_number(frame[column])[0], spec.target))
    time_checks, time_problems = check_times(frame, spec, source)
    checks.extend(time_checks)
    findings.extend(time_problems)
    for feature in spec.raw_features:
        values, _ = coerce_feature(frame[feature.name], feature)
        findings.extend(feature_problems(values, feature).findings(frame[feature.name], feature))
    return DataReport(
        title=f"Validation of {spec.name} raw data",
        source=source,
        rows_in=len(frame),
        rows_out=len(frame),
        checks=checks,
        findings=findings,
        label_counts=label_counts,
        facts=facts,
    )
