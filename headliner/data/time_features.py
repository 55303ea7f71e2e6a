"""Time-series features computed from earlier periods of the same series (lags, rolling means) and from
the calendar (week of year), never from the row's own target or a later one, so a model trained on them
can be fed the same way at forecast time; also the period arithmetic wrangling and splitting share.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from headliner.errors import DataValidationError
from headliner.reports.html import DataReport, Finding
from headliner.spec import Derivation, DerivationKind, Feature, TimeSeries, UseCaseSpec

_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def period_alias(frequency: str) -> str:
    """The pandas period alias of the spec's frequency. A weekly frequency names the day its weeks start
    on (W-MON: Monday to Sunday, as the spec says), where a pandas weekly period names the day it ends on
    (W-SUN); other frequencies are pandas' own."""
    offset = to_offset(frequency)
    weekday = getattr(offset, "weekday", None)
    if isinstance(offset, pd.offsets.Week) and weekday is not None:
        return f"W-{_WEEKDAYS[(weekday - 1) % 7]}"
    return frequency


def periods(times: pd.Series, frequency: str) -> pd.Series:
    """Each time's period of the spec's frequency (pandas Period values)."""
    result: pd.Series = times.dt.to_period(period_alias(frequency))
    return result


def raw_step(frame: pd.DataFrame, series: TimeSeries) -> pd.Timedelta | None:
    """The step of the raw rows: the most common gap between consecutive distinct times of a series (the
    shortest on a tie); None when no series has two distinct times."""
    dates = frame[[*series.series, series.time_column]].drop_duplicates()
    dates = dates.sort_values([*series.series, series.time_column])
    gaps = dates[series.time_column].diff()
    if series.series:  # a gap counts only between two times of the same series
        gaps = gaps[dates.duplicated(subset=series.series).to_numpy()]
    common = gaps[gaps > pd.Timedelta(0)].mode()
    return None if common.empty else pd.Timedelta(common.iloc[0])


def steps_per_period(times: pd.Series, frequency: str, step: pd.Timedelta) -> np.ndarray:
    """How many raw steps the period of each time holds (7 for daily rows in a week, 28 to 31 in a month;
    at least 1, so rows as coarse as the period or coarser fill it)."""
    spans = periods(times, frequency)
    length = spans.dt.end_time - spans.dt.start_time + pd.Timedelta(1, unit="ns")
    counts: np.ndarray = np.maximum((length / step).round().to_numpy(dtype=np.int64), 1)
    return counts


def period_start(times: pd.Series, frequency: str) -> pd.Series:
    """Each time moved to the start of its period (datetime64[ns]): a Monday for W-MON, the day for D."""
    result: pd.Series = periods(times, frequency).dt.start_time.astype("datetime64[ns]")
    return result


def has_derived_features(spec: UseCaseSpec) -> bool:
    return any(feature.derive is not None for feature in spec.features)


def _describe(derivation: Derivation) -> str:
    if derivation.kind is DerivationKind.LAG:
        return f"lag {derivation.periods}"
    if derivation.kind is DerivationKind.ROLLING_MEAN:
        return f"rolling mean of {derivation.periods}"
    return derivation.kind.value


class _History:
    """The target of each series by period, looked up k periods back from every row (NaN where that
    period has no row: a missing week gives no lag)."""

    def __init__(self, frame: pd.DataFrame, spec: UseCaseSpec, longest: int) -> None:
        series = spec.time_series
        assert series is not None  # the spec refuses derived features without a time series
        ordinal = periods(frame[series.time_column], series.frequency).array.asi8.astype(np.int64)
        code = (
            frame.groupby(series.series, sort=True, observed=True).ngroup().to_numpy(np.int64)
            if series.series
            else np.zeros(len(frame), np.int64)
        )
        self.series_count = int(code.max()) + 1 if len(frame) else 0
        # One integer per (series, period), series far enough apart that k periods back never reaches the
        # series before it.
        stride = int(ordinal.max() - ordinal.min()) + longest + 1 if len(frame) else 1
        self.keys = code * stride + (ordinal - (ordinal.min() if len(frame) else 0))
        self.by_time = np.lexsort((code, ordinal))  # row order by (time, series), series in sorted order
        self.order = np.argsort(self.keys, kind="stable")
        sorted_keys = self.keys[self.order]
        repeated = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
        if repeated.size:
            row = frame.iloc[self.order[repeated[0]]]
            where = ", ".join(f"{c}={row[c]}" for c in [series.time_column, *series.series])
            raise DataValidationError(
                f"{len(repeated):,} rows repeat a (series, period) pair, e.g. {where}: expected one row per "
                f"{series.frequency} period and series (wrangling aggregates them)"
            )
        self.sorted_keys = sorted_keys
        self.sorted_target = frame[spec.target.column].to_numpy(np.float64)[self.order]
        self._lags: dict[int, np.ndarray] = {}

    def lag(self, k: int) -> np.ndarray:
        if k not in self._lags:
            wanted = self.keys - k
            position = np.searchsorted(self.sorted_keys, wanted).clip(max=len(self.sorted_keys) - 1)
            found = self.sorted_keys[position] == wanted
            self._lags[k] = np.where(found, self.sorted_target[position], np.nan)
        return self._lags[k]

    def rolling_mean(self, window: int) -> np.ndarray:
        """Mean of the `window` periods before (the row's own excluded); NaN unless all are present."""
        total = np.zeros(len(self.keys))
        for k in range(1, window + 1):
            total += self.lag(k)
        return total / window


def _derived_values(feature: Feature, frame: pd.DataFrame, spec: UseCaseSpec, history: _History) -> np.ndarray:
    derivation = feature.derive
    assert derivation is not None and spec.time_series is not None
    if derivation.kind is DerivationKind.WEEK_OF_YEAR:
        weeks: np.ndarray = frame[spec.time_series.time_column].dt.isocalendar().week.to_numpy(np.float64)
        return weeks
    assert derivation.periods is not None
    if derivation.kind is DerivationKind.LAG:
        return history.lag(derivation.periods)
    return history.rolling_mean(derivation.periods)


def derive_features(frame: pd.DataFrame, spec: UseCaseSpec, source: str) -> tuple[pd.DataFrame, DataReport]:
    """The labelled frame with every derived feature of the spec added (float64), rows lacking the history
    one needs dropped and counted (each row under the first feature it lacks), sorted by (time, series).

    A spec without derived features gets the frame back unchanged.
    """
    derived = [feature for feature in spec.features if feature.derive is not None]
    title = f"Derived features of {spec.name} data"
    if not derived or spec.time_series is None:
        report = DataReport(title=title, source=source, rows_in=len(frame), rows_out=len(frame))
        return frame, report
    series = spec.time_series
    target = spec.target.column
    missing = [c for c in [series.time_column, *series.series, target] if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{source}: derived features need column(s) {missing}, not in the labelled data")
    if not pd.api.types.is_numeric_dtype(frame[target]):
        raise DataValidationError(
            f"{source}: derived features need a numeric target; column '{target}' is {frame[target].dtype}"
        )
    if not pd.api.types.is_datetime64_any_dtype(frame[series.time_column]):
        raise DataValidationError(
            f"{source}: column '{series.time_column}' must hold dates (datetime64) to derive features; "
            f"found {frame[series.time_column].dtype}"
        )
    longest = max((f.derive.periods or 0 for f in derived if f.derive is not None), default=0)
    history = _History(frame, spec, longest)
    columns = {f.name: _derived_values(f, frame, spec, history) for f in derived}

    keep = np.ones(len(frame), dtype=bool)
    findings = []
    for feature in derived:
        lacking = np.isnan(columns[feature.name]) & keep
        if lacking.any():
            assert feature.derive is not None
            findings.append(
                Finding(
                    column=feature.name,
                    problem=f"no history for {_describe(feature.derive)}",
                    rows=int(lacking.sum()),
                    action="drop row",
                )
            )
        keep &= ~lacking
    order = history.by_time[keep[history.by_time]]
    result = frame.assign(**columns).iloc[order].reset_index(drop=True)
    report = DataReport(
        title=title,
        source=source,
        rows_in=len(frame),
        rows_out=len(result),
        findings=findings,
        facts={
            "derived features": ", ".join(f"{f.name} ({_describe(f.derive)})" for f in derived if f.derive),
            "series": f"{history.series_count:,}",
        },
    )
    return result, report
