"""Validation: every hard failure with its own message, and the soft problems counted, then repaired
by wrangling and labelling with the same counts."""

import numpy as np
import pandas as pd
import pytest

from headliner.data.time_features import raw_step, steps_per_period
from headliner.data.validation import validate_raw
from headliner.data.wrangling import label_examples, wrangle
from headliner.errors import DataValidationError
from headliner.spec import TimeSeries

SOURCE = "charts.csv"


def clean_rows(n: int = 12) -> pd.DataFrame:
    """n valid raw rows in the Kaggle layout (spec columns plus two extra ones), 3 songs x 4 countries."""
    rng = np.random.default_rng(0)
    songs = [f"song{i // 4}" for i in range(n)]
    return pd.DataFrame(
        {
            "spotify_id": songs,
            "name": [f"Name {s}" for s in songs],
            "daily_rank": np.arange(1, n + 1),
            "country": (["DE", "FR", "US", "BR"] * n)[:n],
            "is_explicit": [bool(i % 2) for i in range(n)],
            "duration_ms": rng.integers(120_000, 240_000, n),
            "danceability": rng.uniform(0.2, 0.9, n),
            "energy": rng.uniform(0.2, 0.9, n),
            "key": rng.integers(0, 12, n),
            "loudness": rng.uniform(-12, -3, n),
            "mode": rng.integers(0, 2, n),
            "speechiness": rng.uniform(0.02, 0.3, n),
            "acousticness": rng.uniform(0, 0.8, n),
            "instrumentalness": rng.uniform(0, 0.1, n),
            "liveness": rng.uniform(0.05, 0.4, n),
            "valence": rng.uniform(0.1, 0.9, n),
            "tempo": rng.uniform(80, 160, n),
        }
    )


def test_clean_data_passes_with_no_findings(jukebox_spec):
    report = validate_raw(clean_rows(), jukebox_spec, SOURCE)
    assert report.findings == []
    assert all(check.passed for check in report.checks)
    assert report.label_counts == {"DE": 3, "FR": 3, "US": 3, "BR": 3}


def test_empty_table(jukebox_spec):
    with pytest.raises(DataValidationError, match=r"^charts\.csv: no rows to validate"):
        validate_raw(clean_rows().iloc[0:0], jukebox_spec, SOURCE)


def test_missing_required_column(jukebox_spec):
    with pytest.raises(
        DataValidationError,
        match=r"^charts\.csv: missing required column\(s\) 'valence', 'tempo'; expected all of the spec's "
        r"columns, found: spotify_id, name,",
    ):
        validate_raw(clean_rows().drop(columns=["tempo", "valence"]), jukebox_spec, SOURCE)


def test_non_numeric_feature_column(jukebox_spec):
    frame = clean_rows()
    frame["tempo"] = frame["tempo"].astype(object)
    frame.loc[[2, 5], "tempo"] = ["fast", "120 bpm"]
    with pytest.raises(
        DataValidationError,
        match=r"^charts\.csv: column 'tempo' must be a number; found 'fast', '120 bpm' in 2 of 12 rows$",
    ):
        validate_raw(frame, jukebox_spec, SOURCE)


def test_non_boolean_flag_column(jukebox_spec):
    frame = clean_rows()
    frame["is_explicit"] = ["maybe"] + ["true"] * 11
    with pytest.raises(DataValidationError, match=r"column 'is_explicit' must be true/false or 0/1; found 'maybe'"):
        validate_raw(frame, jukebox_spec, SOURCE)


def test_text_booleans_and_numbers_are_accepted(jukebox_spec):
    frame = clean_rows()
    frame["is_explicit"] = ["True", "False"] * 6
    frame["tempo"] = frame["tempo"].map(lambda v: f" {v:.3f} ")
    wrangled, _ = wrangle(frame, jukebox_spec, SOURCE)
    assert wrangled["is_explicit"].tolist()[:2] == [1.0, 0.0]
    assert wrangled["tempo"].dtype == "float64"


def test_entirely_empty_column(jukebox_spec):
    frame = clean_rows()
    frame["energy"] = np.nan
    with pytest.raises(
        DataValidationError, match=r"^charts\.csv: column 'energy' is entirely empty \(all 12 values missing\)"
    ):
        validate_raw(frame, jukebox_spec, SOURCE)


def test_no_labelled_rows(jukebox_spec):
    frame = clean_rows()
    frame["country"] = ""
    with pytest.raises(
        DataValidationError, match=r"^charts\.csv: no labelled rows: column 'country' is empty in all 12 rows"
    ):
        validate_raw(frame, jukebox_spec, SOURCE)


def test_too_many_unknown_labels(jukebox_spec):
    frame = clean_rows()
    frame.loc[[0, 1], "country"] = ["XX", "Germany"]
    with pytest.raises(
        DataValidationError,
        match=r"column 'country' has 16\.7% of labelled rows with unknown labels \(at most 1\.0% allowed\); "
        r"found 'XX', 'Germany'",
    ):
        validate_raw(frame, jukebox_spec, SOURCE)


def odd_rows() -> pd.DataFrame:
    """Clean rows plus one of each soft problem, at known places."""
    frame = clean_rows(40)
    frame.loc[0, "country"] = np.nan  # global chart row
    frame.loc[1, "danceability"] = np.nan
    frame.loc[2, "tempo"] = 0.0  # out of range [30, 250]: drop
    frame.loc[3, "duration_ms"] = 0  # out of range: drop
    frame.loc[4, "loudness"] = 2.5  # above 0 dB: clip
    frame["key"] = frame["key"].astype("float64")
    frame.loc[5, "key"] = 3.5  # not a whole number: drop
    frame.loc[6, "country"] = "XX"  # unknown label (1 of 39 labelled, allowed with a larger share)
    frame = pd.concat([frame, frame.iloc[[10, 11]]], ignore_index=True)  # two exact duplicates
    frame.loc[len(frame)] = frame.loc[12].copy()  # same song and country on another day
    frame.loc[len(frame) - 1, "daily_rank"] = 99
    return frame


def test_soft_problems_are_counted_then_repaired(jukebox_spec):
    spec = jukebox_spec.model_copy(
        update={"target": jukebox_spec.target.model_copy(update={"max_unknown_share": 0.05})}
    )
    raw = odd_rows()
    report = validate_raw(raw, spec, SOURCE)
    assert report.rows_affected("duplicate row") == 2
    assert report.rows_affected("no label", "country") == 1
    assert report.rows_affected("unknown label", "country") == 1
    assert report.rows_affected("missing value", "danceability") == 1
    assert report.rows_affected("out of range", "tempo") == 1
    assert report.rows_affected("out of range", "duration_ms") == 1
    assert report.rows_affected("out of range", "loudness") == 1
    assert report.rows_affected("not a whole number", "key") == 1

    wrangled, wrangling_report = wrangle(raw, spec, SOURCE)
    assert wrangling_report.rows_in == len(raw) == 43
    assert wrangling_report.rows_affected("duplicate row") == 2
    assert wrangling_report.rows_affected("no label") == 1
    assert wrangling_report.rows_affected("repeated example key") == 1
    # dropped: 2 duplicates, 1 unlabelled, NaN, tempo 0, duration 0, key 3.5, 1 repeated key
    assert wrangling_report.rows_out == len(wrangled) == 43 - 2 - 1 - 4 - 1
    assert list(wrangled.columns) == jukebox_spec.raw_columns
    assert wrangled["loudness"].max() == 0.0  # clipped, not dropped
    assert wrangled[spec.feature_names].notna().all().all()
    assert (wrangled["tempo"] >= 30).all() and (wrangled["duration_ms"] >= 10_000).all()
    assert not wrangled.duplicated(subset=["spotify_id", "country"]).any()

    labelled, labelling_report = label_examples(wrangled, spec, SOURCE)
    assert labelling_report.rows_affected("unknown label") == 1
    assert len(labelled) == len(wrangled) - 1
    assert set(labelled["country"]) <= set(spec.target.classes)
    assert sum(labelling_report.label_counts.values()) == len(labelled)


def test_integer_labels_are_mapped_to_classes(wine_spec):
    from headliner.data.sources import load_raw_data

    raw = load_raw_data(wine_spec)
    wrangled, _ = wrangle(raw, wine_spec, "wine")
    labelled, report = label_examples(wrangled, wine_spec, "wine")
    assert report.label_counts == {"class_1": 71, "class_0": 59, "class_2": 48}
    assert len(labelled) == 178


def test_report_renders_findings_as_html(jukebox_spec):
    spec = jukebox_spec.model_copy(
        update={"target": jukebox_spec.target.model_copy(update={"max_unknown_share": 0.05})}
    )
    page = validate_raw(odd_rows(), spec, SOURCE).to_html()
    assert "<table>" in page and "out of range" in page and "clip to [-60, 0]" in page


def test_the_raw_datas_date_range_is_a_fact_of_the_validation_report(jukebox_spec):
    from headliner.data.validation import DATE_RANGE_FACT, date_range

    rows = clean_rows().assign(snapshot_date=["2024-10-18", "2024-06-02", "not a date"] * 4)
    report = validate_raw(rows, jukebox_spec, SOURCE)
    assert report.facts[DATE_RANGE_FACT] == "2024-06-02 to 2024-10-18 (139 days, snapshot_date)"
    assert validate_raw(clean_rows(), jukebox_spec, SOURCE).facts[DATE_RANGE_FACT] == (
        "no column 'snapshot_date' (source.date_column) in the data"
    )
    assert date_range(rows, None) == "the spec names no date column (source.date_column)"
    assert date_range(rows.assign(snapshot_date="?"), "snapshot_date") == "snapshot_date: no readable dates"


# Regression on a time series (store_sales): a numeric target, a time column, rows aggregated into weeks.


@pytest.fixture(scope="module")
def sales_spec():
    from headliner.spec import USE_CASES_DIR, load_spec

    return load_spec(USE_CASES_DIR / "store_sales.yaml")


def sales_rows(**kwargs):
    from tests.unit.test_time_features import weekly_sales

    return weekly_sales(**kwargs)


def test_clean_sales_rows_pass_without_the_derived_features(sales_spec):
    raw = sales_rows(series=3, weeks=20, missing=0.0)
    assert "sales_lag_1" not in raw.columns  # derived features are not expected in raw data
    report = validate_raw(raw, sales_spec, SOURCE)
    assert report.findings == [] and report.label_counts == {}
    assert "time column holds dates" in [check.name for check in report.checks]
    assert report.facts["target rows"] == "60"
    assert report.facts["target mean"] == f"{raw['sales'].mean():.4g} units"
    assert report.facts["date range"] == "2024-01-01 to 2024-05-13 (134 days, date)"


def test_a_missing_raw_column_is_named_but_derived_ones_are_not_asked_for(sales_spec):
    with pytest.raises(DataValidationError, match=r"^charts\.csv: missing required column\(s\) 'onpromotion';"):
        validate_raw(sales_rows(weeks=5).drop(columns=["onpromotion"]), sales_spec, SOURCE)


def test_bad_targets_and_dates_are_counted_then_dropped(sales_spec):
    raw = sales_rows(series=2, weeks=12, missing=0.0).astype({"sales": object, "date": object})
    raw.loc[0, "sales"] = np.nan
    raw.loc[1, "sales"] = "n/a"
    raw.loc[2, "sales"] = -5.0  # below min 0
    raw.loc[3, "sales"] = 2e7  # above max 1e7
    raw.loc[4, "date"] = "someday"
    raw.loc[5, "date"] = None
    raw.loc[6, "store_nbr"] = None
    report = validate_raw(raw, sales_spec, SOURCE)
    assert report.rows_affected("no target value", "sales") == 1
    assert report.rows_affected("not a number", "sales") == 1
    assert report.rows_affected("out of range", "sales") == 2
    assert report.rows_affected("not a date", "date") == 1
    assert report.rows_affected("missing value", "date") == 1
    assert report.rows_affected("missing value", "store_nbr") == 1
    assert "'n/a'" in next(f for f in report.findings if f.problem == "not a number").examples
    assert "drop row (valid: [0, 10000000])" in [f.action for f in report.findings]

    wrangled, wrangling_report = wrangle(raw, sales_spec, SOURCE)
    assert wrangling_report.rows_affected("no target value") == wrangling_report.rows_affected("not a number") == 1
    assert wrangling_report.rows_affected("not a date", "date") == 1
    assert wrangling_report.rows_affected("missing value", "date") == 1
    assert wrangling_report.rows_affected("missing value", "store_nbr") == 1
    assert len(wrangled) == 24 - 5
    assert wrangled["date"].dtype == "datetime64[ns]" and wrangled["sales"].dtype == "float64"
    assert wrangled["store_nbr"].map(type).eq(str).all()

    labelled, labelling_report = label_examples(wrangled, sales_spec, SOURCE)
    assert labelling_report.rows_affected("out of range", "sales") == 2
    assert len(labelled) == 24 - 7 and labelled["sales"].between(0, 1e7).all()
    assert labelling_report.facts["target rows"] == "17"
    assert labelling_report.facts["target min/max"].endswith(" units")


def test_no_numeric_target_or_no_date_is_refused(sales_spec):
    raw = sales_rows(series=2, weeks=3)
    with pytest.raises(
        DataValidationError, match=r"^charts\.csv: no row has a numeric target: column 'sales' .*found 'lots'"
    ):
        validate_raw(raw.assign(sales="lots"), sales_spec, SOURCE)
    with pytest.raises(
        DataValidationError,
        match=r"^charts\.csv: column 'date' \(time_series\.time_column\) holds no readable date; found 'week 1'",
    ):
        validate_raw(raw.assign(date="week 1"), sales_spec, SOURCE)


def test_daily_rows_are_aggregated_into_weeks_and_weekly_rows_stay(sales_spec):
    weekly = sales_rows(series=2, weeks=3, missing=0.0)
    wrangled_weekly, report = wrangle(weekly, sales_spec, SOURCE)
    assert report.findings == [] and len(wrangled_weekly) == len(weekly)
    assert (wrangled_weekly["date"] == weekly["date"]).all()

    daily = weekly.loc[weekly.index.repeat(7)].reset_index(drop=True)
    daily["date"] = daily["date"] + pd.to_timedelta(daily.groupby(["date", "store_nbr"]).cumcount(), unit="D")
    daily["date"] = daily["date"].dt.strftime("%Y-%m-%d")  # as read from Kaggle's CSV
    daily["sales"] = daily["sales"] / 7
    daily["is_holiday"] = (daily["date"] == "2024-01-10").astype(int)  # one holiday on a Wednesday
    wrangled, report = wrangle(daily, sales_spec, SOURCE)
    assert len(wrangled) == 6 and report.rows_affected("several rows in one W-MON period and series") == 36
    assert report.facts["periods"] == "3 (W-MON)"
    pd.testing.assert_series_equal(wrangled["date"], wrangled_weekly["date"])
    np.testing.assert_allclose(wrangled["sales"], weekly["sales"])  # summed
    np.testing.assert_allclose(wrangled["onpromotion"], weekly["onpromotion"] * 7)  # int: summed
    np.testing.assert_allclose(wrangled["price"], weekly["price"])  # float: averaged
    assert wrangled["is_holiday"].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]  # bool: any day of the week


def test_a_weekly_sum_above_an_int_features_range_is_repaired(sales_spec):
    daily = sales_rows(series=1, weeks=1, missing=0.0)
    daily = daily.loc[daily.index.repeat(7)].reset_index(drop=True)
    daily["date"] = daily["date"] + pd.to_timedelta(np.arange(7), unit="D")
    daily["onpromotion"] = 2000  # in range per day, 14,000 in the week (max 10,000: drop)
    wrangled, report = wrangle(daily, sales_spec, SOURCE)
    assert wrangled.empty and report.rows_affected("out of range", "onpromotion") == 1


def test_incomplete_weeks_of_daily_rows_are_dropped_and_counted(sales_spec):
    days = pd.date_range("2023-12-28", "2024-01-23", freq="D")  # Thu..Sun, three whole weeks, Mon..Tue
    daily = pd.DataFrame(
        {
            "date": np.tile(days.strftime("%Y-%m-%d"), 2),
            "store_nbr": np.repeat([1, 2], days.size),
            "family": "GROCERY I",
            "sales": 10.0,
            "onpromotion": 1,
            "price": 2.5,
            "is_holiday": 0,
        }
    )
    gap = (daily["store_nbr"] == 2) & (daily["date"] == "2024-01-10")  # store 2 misses a Wednesday
    wrangled, report = wrangle(daily[~gap], sales_spec, SOURCE)

    assert report.rows_affected("incomplete W-MON period: 4 of 7 days") == 2 * 4  # the first week, both stores
    assert report.rows_affected("incomplete W-MON period: 6 of 7 days") == 6  # store 2's second week
    assert report.rows_affected("incomplete W-MON period: 2 of 7 days") == 2 * 2  # the last week, both stores
    assert {f.action for f in report.findings if f.problem.startswith("incomplete")} == {"drop"}
    assert report.facts["raw rows' step"] == "1 day"
    assert report.rows_in == 2 * 27 - 1 and report.rows_out == 5
    assert wrangled[["date", "store_nbr"]].astype(str).values.tolist() == [
        ["2024-01-01", "1"],
        ["2024-01-01", "2"],
        ["2024-01-08", "1"],
        ["2024-01-15", "1"],
        ["2024-01-15", "2"],
    ]
    assert wrangled["sales"].tolist() == [70.0] * 5 and wrangled["onpromotion"].tolist() == [7.0] * 5
    assert report.rows_affected("several rows in one W-MON period and series") == 5 * 7 - 5


def test_weekly_rows_with_missing_weeks_are_complete_periods(sales_spec):
    weekly = sales_rows(series=3, weeks=12, missing=0.2)
    wrangled, report = wrangle(weekly, sales_spec, SOURCE)
    assert report.findings == [] and report.facts["raw rows' step"] == "7 days"
    assert len(wrangled) == len(weekly) and (wrangled["date"] == weekly["date"]).all()
    np.testing.assert_allclose(wrangled["sales"], weekly["sales"])


DAYS_1_3_5 = ["2024-01-01", "2024-01-03", "2024-01-05"]


def test_the_raw_step_is_the_most_common_gap_within_a_series():
    series = TimeSeries(time_column="date", series=["store"])
    frame = pd.DataFrame(
        {
            "store": ["a"] * 4 + ["b"] * 3,  # a: gaps 1, 1, 5 days; b: 2, 2 (tie with 1: the shorter wins)
            "date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-08", *DAYS_1_3_5]),
        }
    )
    assert raw_step(frame, series) == pd.Timedelta(days=1)
    assert raw_step(frame[frame["store"] == "b"], series) == pd.Timedelta(days=2)
    assert raw_step(frame.drop_duplicates("store"), series) is None  # one time per series: no step
    days = pd.Series(pd.to_datetime(["2024-01-03", "2024-02-10", "2024-03-31"]))
    assert steps_per_period(days, "W-MON", pd.Timedelta(days=1)).tolist() == [7, 7, 7]
    assert steps_per_period(days, "W-MON", pd.Timedelta(hours=1)).tolist() == [168, 168, 168]
    assert steps_per_period(days, "D", pd.Timedelta(days=7)).tolist() == [1, 1, 1]
