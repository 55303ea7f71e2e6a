"""Reading feature and label columns per the spec, shared by validation (which counts problems) and
wrangling and labelling (which act on them), so both always agree on what a problem is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from headliner.reports.html import Finding
from headliner.spec import Feature, FeatureType, OutOfRangeAction, Target

_BOOL_WORDS = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0, "yes": 1.0, "no": 0.0}

# Problems a row can have in one feature column, in the order they are checked.
MISSING = "missing value"
NOT_WHOLE = "not a whole number"
OUT_OF_RANGE = "out of range"
NOT_A_DATE = "not a date"


def examples(values: pd.Series, limit: int = 5) -> list[str]:
    """A few distinct offending values, as text, for messages and reports."""
    return [repr(v) if isinstance(v, str) else str(v) for v in pd.unique(values.dropna())[:limit]]


def coerce_feature(raw: pd.Series, feature: Feature) -> tuple[pd.Series, pd.Series]:
    """The column as float64 (bool as 0/1) and a mask of present values that are not of its type."""
    if feature.dtype is FeatureType.BOOL:
        if pd.api.types.is_bool_dtype(raw):
            return raw.astype("float64"), pd.Series(False, index=raw.index)
        if pd.api.types.is_numeric_dtype(raw):
            values = raw.astype("float64")
            return values.where(values.isin([0.0, 1.0])), raw.notna() & ~values.isin([0.0, 1.0])
        words = raw.astype("string").str.strip().str.lower()
        values = words.map(_BOOL_WORDS).astype("float64")
        return values, raw.notna() & values.isna()
    return coerce_number(raw)


def coerce_number(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The column as float64 and a mask of present values that are not numbers (text is parsed)."""
    if pd.api.types.is_bool_dtype(raw) or pd.api.types.is_numeric_dtype(raw):
        return raw.astype("float64"), pd.Series(False, index=raw.index)
    text = raw.astype("string").str.strip()
    values = pd.to_numeric(text, errors="coerce").astype("float64")
    return values, text.notna() & (text != "") & values.isna()


def parse_times(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The column as datetime64[ns] (time-zone-aware values in UTC, then without zone) and a mask of
    present values that are not dates. ISO text is read fast; any other format is tried per value."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        times = raw.dt.tz_convert(None) if getattr(raw.dt, "tz", None) is not None else raw
        return times.astype("datetime64[ns]"), pd.Series(False, index=raw.index)
    text = raw.astype("string").str.strip().mask(lambda t: t == "")
    times = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    retry = text.notna() & times.isna()
    if retry.any():
        times[retry] = pd.to_datetime(text[retry], errors="coerce", format="mixed", utc=True)
    times = times.dt.tz_convert(None).astype("datetime64[ns]")
    return times, text.notna() & times.isna()


def expected_type(feature: Feature) -> str:
    return {FeatureType.BOOL: "true/false or 0/1", FeatureType.INT: "a whole number", FeatureType.FLOAT: "a number"}[
        feature.dtype
    ]


@dataclass(frozen=True)
class FeatureProblems:
    """Row masks of the soft problems in one feature column (after type coercion)."""

    missing: pd.Series
    not_whole: pd.Series
    out_of_range: pd.Series

    def drop_mask(self, feature: Feature) -> pd.Series:
        """Rows wrangling drops because of this feature."""
        dropped = self.missing | self.not_whole
        if feature.out_of_range is OutOfRangeAction.DROP:
            dropped = dropped | self.out_of_range
        return dropped

    def findings(self, raw: pd.Series, feature: Feature, among: np.ndarray | None = None) -> list[Finding]:
        """One finding per kind of problem present, counted among the rows `among` (default: all),
        with examples from the raw column."""
        found = []
        for problem, mask, action in (
            (MISSING, self.missing, "drop row"),
            (NOT_WHOLE, self.not_whole, "drop row"),
            (OUT_OF_RANGE, self.out_of_range, out_of_range_action(feature)),
        ):
            rows = mask.to_numpy() if among is None else mask.to_numpy() & among
            if rows.any():
                found.append(
                    Finding(
                        column=feature.name,
                        problem=problem,
                        rows=int(rows.sum()),
                        action=action,
                        examples=examples(raw[rows]) if problem != MISSING else [],
                    )
                )
        return found


def feature_problems(values: pd.Series, feature: Feature) -> FeatureProblems:
    missing = values.isna() | np.isinf(values)
    present = ~missing
    not_whole = present & (feature.dtype is FeatureType.INT) & (values != np.round(values))
    low = values < feature.min if feature.min is not None else pd.Series(False, index=values.index)
    high = values > feature.max if feature.max is not None else pd.Series(False, index=values.index)
    return FeatureProblems(missing=missing, not_whole=not_whole, out_of_range=present & ~not_whole & (low | high))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def valid_range(feature: Feature) -> str:
    low = "-inf" if feature.min is None else _number(feature.min)
    high = "inf" if feature.max is None else _number(feature.max)
    return f"[{low}, {high}]"


def out_of_range_action(feature: Feature) -> str:
    bounds = valid_range(feature)
    if feature.out_of_range is OutOfRangeAction.CLIP:
        return f"clip to {bounds}"
    return f"drop row (valid: {bounds})"


def raw_labels(raw: pd.Series) -> pd.Series:
    """Label values as stripped text (object dtype); empty strings count as missing (e.g. global-chart
    rows)."""
    if pd.api.types.is_float_dtype(raw) and (raw.dropna() == raw.dropna().round()).all():
        raw = raw.astype("Int64")  # 0.0 -> '0', as an integer label column read with NaNs would be
    missing = raw.isna().to_numpy()
    text = raw.astype(object).where(missing, raw.astype(str)).str.strip()
    return text.mask(text == "")


def unknown_label_finding(raw: pd.Series, unknown: pd.Series) -> Finding:
    return Finding(
        column=str(raw.name),
        problem="unknown label",
        rows=int(unknown.sum()),
        action="drop row",
        examples=examples(raw[unknown.to_numpy()]),
    )


def target_problems(values: pd.Series, target: Target) -> tuple[pd.Series, pd.Series]:
    """Regression: masks of rows whose target is missing (or infinite) and of present values outside the
    target's [min, max]."""
    missing = values.isna() | np.isinf(values)
    low = values < target.min if target.min is not None else pd.Series(False, index=values.index)
    high = values > target.max if target.max is not None else pd.Series(False, index=values.index)
    return missing, ~missing & (low | high)


def target_range(target: Target) -> str:
    low = "-inf" if target.min is None else _number(target.min)
    high = "inf" if target.max is None else _number(target.max)
    return f"[{low}, {high}]"


def map_labels(labels: pd.Series, target: Target) -> tuple[pd.Series, pd.Series]:
    """Class of each present label (raw values mapped per the spec) and a mask of unknown ones."""
    mapped = labels.replace(target.raw_values) if target.raw_values else labels
    unknown = mapped.notna() & ~mapped.isin(target.classes)
    return mapped, unknown


NOT_A_NUMBER = "not a number"
NO_TARGET = "no target value"


def target_findings(raw: pd.Series, target: Target, among: np.ndarray | None = None) -> list[Finding]:
    """Regression: rows whose target is missing, not a number or outside the target's range, counted among
    the rows `among` (default: all), each with what is done about it."""
    values, not_a_number = coerce_number(raw)
    missing, out_of_range = target_problems(values, target)
    found = []
    for problem, mask, action in (
        (NO_TARGET, missing & ~not_a_number, "drop row"),
        (NOT_A_NUMBER, not_a_number, "drop row"),
        (OUT_OF_RANGE, out_of_range, f"drop row (valid: {target_range(target)})"),
    ):
        rows = mask.to_numpy() if among is None else mask.to_numpy() & among
        if rows.any():
            found.append(
                Finding(
                    column=str(raw.name),
                    problem=problem,
                    rows=int(rows.sum()),
                    action=action,
                    examples=examples(raw[rows]) if problem != NO_TARGET else [],
                )
            )
    return found


def target_facts(values: pd.Series, target: Target) -> dict[str, str]:
    """Regression: count, mean, min and max of the target's (numeric) values."""
    present = values[np.isfinite(values)]
    if present.empty:
        return {"target rows": "0"}
    unit = f" {target.unit}" if target.unit else ""
    return {
        "target rows": f"{len(present):,}",
        "target mean": f"{amount(present.mean())}{unit}",
        "target min/max": f"{amount(present.min())} / {amount(present.max())}{unit}",
    }


def amount(value: float) -> str:
    """A figure for people: 37,480 or 583.5 or 0.0123."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
