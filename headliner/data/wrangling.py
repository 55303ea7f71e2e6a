"""Wrangling and labelling: raw rows become clean, typed, labelled examples, with every repair and
every dropped row counted in a report (the rules come from the use-case spec).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from headliner.data.features import (
    MISSING,
    NO_TARGET,
    NOT_A_DATE,
    NOT_A_NUMBER,
    coerce_feature,
    coerce_number,
    feature_problems,
    map_labels,
    parse_times,
    raw_labels,
    target_facts,
    target_findings,
    target_problems,
    unknown_label_finding,
)
from headliner.data.time_features import period_start, periods, raw_step, steps_per_period
from headliner.reports.html import DataReport, Finding
from headliner.spec import FeatureType, OutOfRangeAction, TimeSeries, UseCaseSpec


def wrangle(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> tuple[pd.DataFrame, DataReport]:
    """Drop duplicates and rows without a label or target, fix types, repair or drop odd values, collapse
    repeats; a time series' rows are aggregated into one per period and series.

    The result has the spec's raw columns only: the key columns (the split's group and the series columns
    as text, the time column as datetime64), the raw features (float64, bools as 0/1) and the target (raw
    label text for classification, float64 for regression).
    """
    findings: list[Finding] = []
    rows_in = len(frame)

    deduped = frame.drop_duplicates()
    if len(deduped) < rows_in:
        findings.append(Finding(problem="duplicate row", rows=rows_in - len(deduped), action="drop the copies"))

    target = spec.target.column
    if spec.is_classification:
        labels = raw_labels(deduped[target])
        keep = labels.notna().to_numpy()
        if not keep.all():
            findings.append(Finding(column=target, problem="no label", rows=int((~keep).sum()), action="drop row"))
        target_values = labels.astype(object)
    else:
        target_values, _ = coerce_number(deduped[target])
        keep = (target_values.notna() & ~np.isinf(target_values)).to_numpy()
        unusable = target_findings(deduped[target], spec.target)
        findings.extend(f for f in unusable if f.problem in (NO_TARGET, NOT_A_NUMBER))

    columns: dict[str, pd.Series] = {}
    series = spec.time_series
    for column in spec.key_columns:
        if series is not None and column == series.time_column:
            key_values, unreadable = parse_times(deduped[column])
            absent = key_values.isna().to_numpy()
            key_problems = [(NOT_A_DATE, unreadable.to_numpy()), (MISSING, absent & ~unreadable.to_numpy())]
        else:
            key_values = deduped[column].astype("string").astype(object)
            in_series = series is not None and column in series.series
            absent = deduped[column].isna().to_numpy() & in_series
            key_problems = [(MISSING, absent)]
        for problem, mask in key_problems:
            counted = mask & keep
            if counted.any():
                findings.append(Finding(column=column, problem=problem, rows=int(counted.sum()), action="drop row"))
        keep &= ~absent
        columns[column] = key_values
    for feature in spec.raw_features:
        values, _ = coerce_feature(deduped[feature.name], feature)
        problems = feature_problems(values, feature)
        # Only rows still in play are counted, so a row is counted once, under its first problem column.
        findings.extend(problems.findings(deduped[feature.name], feature, among=keep))
        keep &= ~problems.drop_mask(feature).to_numpy()
        if feature.out_of_range is OutOfRangeAction.CLIP:
            values = values.clip(lower=feature.min, upper=feature.max)
        columns[feature.name] = values
    columns[target] = target_values

    wrangled = pd.DataFrame(columns)[keep].reset_index(drop=True)
    facts: dict[str, str] = {}
    if series is not None:
        wrangled, aggregation_findings, facts = aggregate_periods(wrangled, spec)
        findings.extend(aggregation_findings)
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
        facts={
            "columns kept": ", ".join(wrangled.columns),
            "columns dropped": str(frame.shape[1] - wrangled.shape[1]),
            **facts,
        },
    )
    return wrangled, report


def aggregate_periods(frame: pd.DataFrame, spec: UseCaseSpec) -> tuple[pd.DataFrame, list[Finding], dict[str, str]]:
    """One row per (period, series) of the spec's time series, the time moved to the period's start: the
    target and int features summed, float features averaged, bool features or-ed (max). Rows already one
    per period stay as they are. Rows finer than the period only count for a complete period (see
    `drop_incomplete_periods`). Sorted by (time, series); a summed feature above its range is repaired
    per the spec (e.g. a week's promotions above max)."""
    series = spec.time_series
    assert series is not None
    frame, findings, facts = drop_incomplete_periods(frame, series)
    keys = [series.time_column, *series.series]
    frame = frame.assign(**{series.time_column: period_start(frame[series.time_column], series.frequency)})
    # A regression target is summed over the period; a class label is the period's last.
    how = {spec.target.column: "last" if spec.is_classification else "sum"} | {
        f.name: {FeatureType.INT: "sum", FeatureType.FLOAT: "mean", FeatureType.BOOL: "max"}[f.dtype]
        for f in spec.raw_features
    }
    extra = [c for c in frame.columns if c not in keys and c not in how]  # e.g. the split's group column
    how |= dict.fromkeys(extra, "first")
    aggregated = frame.groupby(keys, sort=True, observed=True).agg(how).reset_index()[list(frame.columns)]
    merged = len(frame) - len(aggregated)
    if merged:
        findings.append(
            Finding(
                column=", ".join(keys),
                problem=f"several rows in one {series.frequency} period and series",
                rows=merged,
                action=f"aggregate {len(frame):,} rows into {len(aggregated):,}: target and int features summed, "
                "float averaged, bool or-ed",
            )
        )
    keep = np.ones(len(aggregated), dtype=bool)
    for feature in spec.raw_features:
        problems = feature_problems(aggregated[feature.name], feature)
        if feature.dtype is not FeatureType.INT or not problems.out_of_range.any():
            continue
        findings.extend(problems.findings(aggregated[feature.name], feature, among=keep))
        keep &= ~problems.drop_mask(feature).to_numpy()
        if feature.out_of_range is OutOfRangeAction.CLIP:
            aggregated[feature.name] = aggregated[feature.name].clip(lower=feature.min, upper=feature.max)
    facts |= {
        "periods": f"{aggregated[series.time_column].nunique():,} ({series.frequency})",
        "rows per period and series": f"{len(frame) / max(len(aggregated), 1):.2f} on average",
    }
    return aggregated[keep].reset_index(drop=True), findings, facts


def drop_incomplete_periods(
    frame: pd.DataFrame, series: TimeSeries
) -> tuple[pd.DataFrame, list[Finding], dict[str, str]]:
    """Drop the rows of each (period, series) that lacks some of its raw times, so no period's sum is
    short (a week with a missing day, the partial first and last weeks of a daily file). A period is
    complete when it holds as many distinct times as it has steps of the raw rows' own step (the most
    common gap within a series): 7 days a week for daily rows; rows as coarse as the period always are."""
    step = raw_step(frame, series)
    if step is None:
        return frame, [], {}
    facts = {"raw rows' step": _describe_step(step, plural=False)}
    times = frame[series.time_column]
    expected = steps_per_period(times, series.frequency, step)
    if (expected == 1).all():
        return frame, [], facts
    ordinal = pd.Series(periods(times, series.frequency).array.asi8, index=frame.index)
    present = times.groupby([ordinal, *(frame[c] for c in series.series)], sort=False).transform("nunique")
    shortfall = pd.DataFrame({"present": present.to_numpy(), "expected": expected})
    shortfall = shortfall[shortfall["present"] < shortfall["expected"]]
    counts = shortfall.groupby(["present", "expected"]).size()
    findings = [
        Finding(
            column=series.time_column,
            problem=f"incomplete {series.frequency} period: {held} of {full} {_describe_step(step)}",
            rows=int(rows),
            action="drop",
        )
        for held, full, rows in zip(
            counts.index.get_level_values(0), counts.index.get_level_values(1), counts.to_numpy(), strict=True
        )
    ]
    keep = np.ones(len(frame), dtype=bool)
    keep[shortfall.index.to_numpy()] = False
    return frame[keep], findings, facts


def _describe_step(step: pd.Timedelta, plural: bool = True) -> str:
    """'days' / '1 day' for daily rows, 'steps of 7 days' / '7 days' for weekly ones."""
    whole_days = step % pd.Timedelta(days=1) == pd.Timedelta(0)
    size = f"{step.days} days" if whole_days else str(step)
    if step == pd.Timedelta(days=1):
        return "days" if plural else "1 day"
    return f"steps of {size}" if plural else size


def label_examples(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> tuple[pd.DataFrame, DataReport]:
    """Classification: map raw labels to the spec's classes, drop rows with unknown labels, count the
    classes. Regression: the target as float64, rows without a usable or in-range target dropped and
    counted, the target's count, mean and range as facts."""
    if not spec.is_classification:
        return _label_targets(frame, spec, source)
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


def _label_targets(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> tuple[pd.DataFrame, DataReport]:
    column = spec.target.column
    values, _ = coerce_number(frame[column])
    missing, out_of_range = target_problems(values, spec.target)
    findings = target_findings(frame[column], spec.target)
    keep = ~(missing | out_of_range).to_numpy()
    labelled = frame.assign(**{column: values})[keep].reset_index(drop=True)
    report = DataReport(
        title=f"Labelling of {spec.name} data",
        source=source,
        rows_in=len(frame),
        rows_out=len(labelled),
        findings=findings,
        facts=target_facts(labelled[column], spec.target),
    )
    return labelled, report
