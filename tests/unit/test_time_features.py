"""Derived time-series features: lags and rolling means by time (a missing week gives no lag), never
from a later week than the row's own, and the weekly periods wrangling and splitting share."""

import numpy as np
import pandas as pd
import pytest

from headliner.data.time_features import derive_features, period_alias, period_start
from headliner.errors import DataValidationError
from headliner.spec import USE_CASES_DIR, Derivation, DerivationKind, Feature, FeatureType, UseCaseSpec, load_spec

FIRST_MONDAY = pd.Timestamp("2024-01-01")  # ISO week 1 of 2024


@pytest.fixture(scope="module")
def sales_spec() -> UseCaseSpec:
    return load_spec(USE_CASES_DIR / "store_sales.yaml")


def weekly_sales(series: int = 4, weeks: int = 70, seed: int = 0, missing: float = 0.03) -> pd.DataFrame:
    """Raw weekly rows in the store_sales layout (one per store, family and Monday), a few weeks missing."""
    rng = np.random.default_rng(seed)
    stores = np.repeat(np.arange(1, series + 1), weeks)
    week = np.tile(np.arange(weeks), series)
    frame = pd.DataFrame(
        {
            "date": FIRST_MONDAY + pd.to_timedelta(week * 7, unit="D"),
            "store_nbr": stores,
            "family": np.where(stores % 2 == 0, "GROCERY I", "BEVERAGES"),
            "sales": rng.gamma(4.0, 100.0, stores.size).round(),
            "onpromotion": rng.integers(0, 20, stores.size),
            "price": rng.uniform(1.0, 9.0, stores.size).round(2),
            "is_holiday": (week % 52 == 51).astype(int),
        }
    )
    dropped = rng.random(len(frame)) < missing
    return frame[~dropped].sort_values(["date", "store_nbr", "family"]).reset_index(drop=True)


def labelled(raw: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """The raw rows as the data pipeline's labelling leaves them (key columns, raw features, float target)."""
    from headliner.data.wrangling import label_examples, wrangle

    return label_examples(wrangle(raw, spec, "t")[0], spec, "t")[0]


def with_features(spec: UseCaseSpec, *derivations: tuple[str, Derivation]) -> UseCaseSpec:
    features = [f for f in spec.features if f.derive is None] + [
        Feature(name=name, dtype=FeatureType.FLOAT, description=name, derive=derive) for name, derive in derivations
    ]
    return spec.model_copy(update={"features": features})


def test_lags_and_rolling_means_by_hand_with_a_missing_week(sales_spec):
    spec = with_features(
        sales_spec,
        ("lag_1", Derivation(kind=DerivationKind.LAG, periods=1)),
        ("lag_2", Derivation(kind=DerivationKind.LAG, periods=2)),
        ("mean_2", Derivation(kind=DerivationKind.ROLLING_MEAN, periods=2)),
        ("week", Derivation(kind=DerivationKind.WEEK_OF_YEAR)),
    )
    weeks_a = [0, 1, 2, 4, 5, 6, 7]  # week 3 missing
    rows = [("1", "A", w, 10.0 * (w + 1)) for w in weeks_a] + [("1", "B", w, float(w + 1)) for w in range(3)]
    frame = pd.DataFrame(
        {
            "date": [FIRST_MONDAY + pd.Timedelta(weeks=w) for _, _, w, _ in rows],
            "store_nbr": [s for s, _, _, _ in rows],
            "family": [f for _, f, _, _ in rows],
            "onpromotion": 0.0,
            "price": 1.0,
            "is_holiday": 0.0,
            "sales": [v for _, _, _, v in rows],
        }
    ).sample(frac=1.0, random_state=5)  # row order must not matter: lags go by time

    derived, report = derive_features(frame, spec, "t")

    expected = pd.DataFrame(
        {
            "date": [FIRST_MONDAY + pd.Timedelta(weeks=w) for w in (2, 2, 6, 7)],
            "family": ["A", "B", "A", "A"],
            "lag_1": [20.0, 2.0, 60.0, 70.0],
            "lag_2": [10.0, 1.0, 50.0, 60.0],
            "mean_2": [15.0, 1.5, 55.0, 65.0],
            "week": [3.0, 3.0, 7.0, 8.0],
        }
    )
    pd.testing.assert_frame_equal(derived[list(expected.columns)], expected)
    assert derived["lag_1"].dtype == derived["week"].dtype == np.float64
    # lag 1 lacking: A weeks 0 and 4 (after the gap), B week 0; then lag 2: A weeks 1 and 5, B week 1
    assert report.rows_in == 10 and report.rows_out == 4
    assert report.rows_affected("no history for lag 1", "lag_1") == 3
    assert report.rows_affected("no history for lag 2", "lag_2") == 3
    assert report.rows_affected("no history for rolling mean of 2") == 0


def test_no_feature_of_a_row_uses_a_later_week(sales_spec):
    """Change every target after week T (and drop some of those weeks): the derived features of every
    row at or before T stay exactly the same."""
    examples = labelled(weekly_sales(series=6, weeks=120, seed=1), sales_spec)
    derived_names = [f.name for f in sales_spec.features if f.derive is not None]
    before, _ = derive_features(examples, sales_spec, "t")
    cutoff = FIRST_MONDAY + pd.Timedelta(weeks=80)

    rng = np.random.default_rng(2)
    later = examples["date"] > cutoff
    changed = examples.copy()
    changed.loc[later, "sales"] = changed.loc[later, "sales"] * rng.uniform(0.2, 5.0, later.sum()) + rng.normal(
        0, 50, later.sum()
    ).clip(0)
    changed = changed.drop(changed[later].sample(frac=0.2, random_state=3).index)
    after, _ = derive_features(changed, sales_spec, "t")

    old = before[before["date"] <= cutoff].reset_index(drop=True)
    new = after[after["date"] <= cutoff].reset_index(drop=True)
    assert len(old) > 6 * 20  # rows with a year of history exist up to T
    compared = ["date", "store_nbr", *derived_names]
    pd.testing.assert_frame_equal(old[compared], new[compared])
    # the test can see a leak: features after T did change
    old_later = before[before["date"] > cutoff].set_index(["date", "store_nbr"])["sales_lag_1"]
    new_later = after[after["date"] > cutoff].set_index(["date", "store_nbr"])["sales_lag_1"]
    common = old_later.index.intersection(new_later.index)
    assert (old_later[common] != new_later[common]).mean() > 0.9


def test_output_sorted_by_time_and_series_with_every_model_feature(sales_spec):
    derived, report = derive_features(labelled(weekly_sales(seed=4), sales_spec), sales_spec, "t")
    assert list(derived.columns) == [*sales_spec.key_columns, *[f.name for f in sales_spec.raw_features], "sales"] + [
        f.name for f in sales_spec.features if f.derive is not None
    ]
    keys = derived[["date", "store_nbr", "family"]]
    pd.testing.assert_frame_equal(keys, keys.sort_values(["date", "store_nbr", "family"]).reset_index(drop=True))
    assert derived[sales_spec.feature_names].notna().all().all()
    assert (derived["date"] >= FIRST_MONDAY + pd.Timedelta(weeks=52)).all()  # lag 52 needs a year
    assert report.facts["series"] == "4"
    assert report.rows_in - report.rows_out == sum(f.rows for f in report.findings)


def test_a_spec_without_derived_features_gets_its_frame_back(wine_spec):
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    derived, report = derive_features(frame, wine_spec, "t")
    assert derived is frame
    assert report.rows_in == report.rows_out == 2 and report.findings == []


def test_two_rows_of_one_series_and_week_are_refused(sales_spec):
    examples = labelled(weekly_sales(series=2, weeks=10), sales_spec)
    twice = pd.concat([examples, examples.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataValidationError, match=r"^1 rows repeat a \(series, period\) pair, e\.g\. date=.*one row"):
        derive_features(twice, sales_spec, "t")


def test_a_text_target_is_refused(sales_spec):
    examples = labelled(weekly_sales(series=2, weeks=10), sales_spec).astype({"sales": str})
    with pytest.raises(DataValidationError, match=r"^t: derived features need a numeric target; column 'sales'"):
        derive_features(examples, sales_spec, "t")


def test_weekly_periods_start_on_the_spec_weekday():
    assert period_alias("W-MON") == "W-SUN" and period_alias("D") == "D"
    times = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-07", "2024-01-08"]))
    assert period_start(times, "W-MON").dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-01",
        "2024-01-01",
        "2024-01-01",
        "2024-01-08",
    ]
    assert period_start(times, "D").equals(times)


def test_the_profile_of_derived_examples_reads_a_regression_target_as_a_number(sales_spec, wine_spec):
    from headliner.data.profiling import data_profile, target_columns
    from headliner.data.time_features import has_derived_features

    assert has_derived_features(sales_spec) and not has_derived_features(wine_spec)
    derived, _ = derive_features(labelled(weekly_sales(seed=6), sales_spec), sales_spec, "t")
    profile = data_profile(derived, sales_spec, *target_columns(sales_spec))
    numeric = {column.name: column for column in profile.numeric}
    assert list(numeric) == [f.name for f in sales_spec.features if f.name != "is_holiday"] + ["sales"]
    assert numeric["sales"].mean == pytest.approx(derived["sales"].mean())
    assert numeric["week_of_year"].bin_edges[0] == min(derived["week_of_year"]) - 0.5  # int: a bin per week
    assert [column.name for column in profile.categorical] == ["is_holiday"]
    assert target_columns(wine_spec) == (["target"], [])
