"""Unit tests of the synthetic store-sales generator (Kaggle layout, weekly rows, learnable effects)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from headliner.data.sources import load_raw_data, parse_table
from headliner.data.store_sales_generator import COLUMNS, FAMILY_NAMES, SERIES, generate_store_sales
from headliner.spec import USE_CASES_DIR, load_spec

SERIES_KEY = ["store_nbr", "family"]


@pytest.fixture(scope="module")
def sales() -> pd.DataFrame:
    return generate_store_sales(30_000, seed=42)


def _relative(frame: pd.DataFrame) -> pd.Series:
    """Each week's sales over its series' mean: effects compared across series of any size."""
    return frame["sales"] / frame.groupby(SERIES_KEY)["sales"].transform("mean")


def test_columns_and_dtypes_follow_kaggle_layout(sales: pd.DataFrame) -> None:
    assert (
        tuple(sales.columns)
        == COLUMNS
        == ("date", "store_nbr", "family", "sales", "onpromotion", "price", "is_holiday")
    )
    assert sales.dtypes.astype(str).to_dict() == {
        "date": "object",
        "store_nbr": "int64",
        "family": "object",
        "sales": "float64",
        "onpromotion": "int64",
        "price": "float64",
        "is_holiday": "int64",
    }
    dates = pd.to_datetime(sales["date"], format="%Y-%m-%d")
    assert (dates.dt.dayofweek == 0).all()  # the Monday starting the week
    assert dates.min() == pd.Timestamp("2021-01-04") and dates.max() == pd.Timestamp("2023-12-25")
    assert dates.nunique() == 156
    assert len(FAMILY_NAMES) == 33 and {"GROCERY I", "BEVERAGES", "BREAD/BAKERY", "BOOKS"} <= set(FAMILY_NAMES)
    assert set(sales["family"]) <= set(FAMILY_NAMES)
    assert sales["store_nbr"].between(1, 54).all()


def test_rows_are_one_per_week_and_series_sorted_like_kaggle(sales: pd.DataFrame) -> None:
    assert not sales.duplicated(["date", *SERIES_KEY]).any()
    assert sales.equals(sales.sort_values(["date", *SERIES_KEY], kind="stable").reset_index(drop=True))
    weeks_per_series = sales.groupby(SERIES_KEY).size()
    assert len(weeks_per_series) == 193  # ceil(30,000 / 156)
    assert (weeks_per_series == 156).sum() == 192 and weeks_per_series.min() == 30_000 - 192 * 156


@pytest.mark.parametrize("rows", [1, 155, 157, 5_000, 120_000])
def test_exact_row_count(rows: int) -> None:
    assert len(generate_store_sales(rows, seed=3)) == rows


def test_more_rows_than_series_allow_extend_the_span_back_in_time() -> None:
    rows = SERIES * 156 + 1
    frame = generate_store_sales(rows)
    assert len(frame) == rows
    weeks = frame.groupby(SERIES_KEY).size()
    assert weeks.max() == 157 and len(weeks) == 1771  # ceil(rows / (54 x 33)) weeks, as many series as needed
    assert frame["date"].max() == "2023-12-25" and frame["date"].min() == "2020-12-28"  # one week earlier


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    first, again, other = generate_store_sales(4_000, 7), generate_store_sales(4_000, 7), generate_store_sales(4_000, 8)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert not first["sales"].equals(other["sales"])
    assert not first[SERIES_KEY].equals(other[SERIES_KEY])


def test_a_smaller_frame_holds_the_same_series_as_a_larger_one() -> None:
    small, large = generate_store_sales(156 * 10), generate_store_sales(156 * 40)
    merged = small.merge(large, on=["date", *SERIES_KEY], suffixes=("", "_large"))
    assert len(merged) == len(small)
    for column in ("sales", "onpromotion", "price", "is_holiday"):
        assert (merged[column] == merged[f"{column}_large"]).all(), column


def test_value_ranges_and_magnitudes(sales: pd.DataFrame) -> None:
    spec = load_spec(USE_CASES_DIR / "store_sales.yaml")
    assert (sales["sales"] >= 0).all() and (sales["sales"] == sales["sales"].round()).all()  # whole units
    assert sales["sales"].max() <= spec.target.max
    price = spec.feature("price")
    assert sales["price"].between(price.min, price.max).all() and (sales["price"] > 0).all()
    assert sales["onpromotion"].between(0, spec.feature("onpromotion").max).all()
    assert set(sales["is_holiday"]) == {0, 1}
    by_family = sales.groupby("family")["sales"].mean()
    assert 1_000 < by_family["GROCERY I"] < 20_000  # thousands a week
    assert 0.5 < by_family["BOOKS"] < 10  # a few units
    small = sales["family"].isin(["BOOKS", "BABY CARE", "HOME APPLIANCES"])
    assert (sales.loc[small, "sales"] == 0).mean() > 0.05  # small families have zero weeks
    assert (sales.loc[sales["family"] == "GROCERY I", "sales"] > 0).all()


def test_holiday_weeks_follow_ecuadors_calendar(sales: pd.DataFrame) -> None:
    holiday = sales.groupby("date")["is_holiday"].first()
    for week in ("2022-12-19", "2022-12-26", "2023-12-18", "2023-12-25"):  # Christmas and New Year
        assert holiday[week] == 1, week
    assert holiday["2023-02-20"] == 1  # Carnival: 20-21 February 2023 (48 and 47 days before Easter)
    assert holiday["2022-04-11"] == 1  # Good Friday: 15 April 2022
    assert holiday["2023-06-12"] == 0 and holiday["2023-07-17"] == 0
    assert 8 <= holiday.groupby(holiday.index.str[:4]).sum().min() <= 10  # holiday weeks per year


def test_holiday_promotion_and_price_effects_are_present(sales: pd.DataFrame) -> None:
    relative = _relative(sales)
    holiday = sales["is_holiday"] == 1
    assert relative[holiday].mean() > 1.1 * relative[~holiday].mean()
    christmas = sales["date"].str[5:].between("12-18", "12-31")
    assert relative[christmas].mean() > 1.25 * relative[~holiday].mean()
    promoted = sales["onpromotion"] > 0
    assert relative[promoted].mean() > 1.3 * relative[~promoted].mean()
    many_items = sales["onpromotion"] > sales.loc[promoted, "onpromotion"].median()
    assert relative[many_items].mean() > relative[promoted & ~many_items].mean()  # more items, more sales
    # Higher price, fewer sales: within series, in weeks without promotion (whose price is cut).
    plain = sales[~promoted & ~holiday & (sales["sales"] > 20)]
    log_price = np.log(plain["price"]) - np.log(plain["price"]).groupby([plain[c] for c in SERIES_KEY]).transform(
        "mean"
    )
    log_sales = np.log(plain["sales"]) - np.log(plain["sales"]).groupby([plain[c] for c in SERIES_KEY]).transform(
        "mean"
    )
    assert np.corrcoef(log_price, log_sales)[0, 1] < -0.2


def test_sales_are_autocorrelated_a_week_and_a_year_apart(sales: pd.DataFrame) -> None:
    frame = sales.assign(log_sales=np.log1p(sales["sales"])).sort_values([*SERIES_KEY, "date"])
    frame["log_sales"] -= frame.groupby(SERIES_KEY)["log_sales"].transform("mean")
    grouped = frame.groupby(SERIES_KEY)["log_sales"]
    correlation = {lag: frame["log_sales"].corr(grouped.shift(lag)) for lag in (1, 26, 52)}
    assert correlation[1] > 0.15 and correlation[52] > 0.1
    assert correlation[26] < 0 < correlation[52]  # a yearly cycle: half a year apart sells unlike, a year apart alike


def test_refuses_bad_arguments_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="rows must be a positive number of rows, got 0"):
        generate_store_sales(0)
    with pytest.raises(ValueError, match=r"last_week must be a Monday .* got 2023-12-24 \(Sunday\)"):
        generate_store_sales(100, last_week="2023-12-24")


def test_load_raw_data_returns_the_generated_rows_for_the_spec() -> None:
    spec = load_spec(USE_CASES_DIR / "store_sales.yaml")
    frame = load_raw_data(spec, rows=5_000)
    assert len(frame) == 5_000
    assert set(spec.raw_columns) <= set(frame.columns)
    pd.testing.assert_frame_equal(frame, generate_store_sales(5_000, seed=spec.source.seed), check_exact=True)


def test_csv_round_trip_gives_the_same_frame() -> None:
    frame = generate_store_sales(2_000)
    back = parse_table(frame.to_csv(index=False).encode(), "csv", "sales.csv")
    pd.testing.assert_frame_equal(frame, back, check_exact=True)
