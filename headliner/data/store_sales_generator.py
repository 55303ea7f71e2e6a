"""Synthetic weekly store sales in the Kaggle "Store Sales - Time Series Forecasting" layout, so the
regression loop (store_sales) runs with no download.

One row is one (week, store, product family): date (the Monday starting the week, ISO text as in
Kaggle's train.csv), store_nbr (1-54), family (Kaggle's 33 names), sales (units, >= 0), onpromotion
(items of the family on promotion in the week), price (mean shelf price, USD) and is_holiday (a public
holiday of Ecuador's calendar falls in the week). Expected sales multiply a level (store effect x family
effect x their interaction), a trend, a smooth yearly seasonality (per family phase), a holiday uplift,
a promotion effect and a price elasticity; a persistent demand shock (AR(1) in log) and weekly noise
come on top, and the units sold are Poisson counts (so small families have zero weeks), plus a few
out-of-stock weeks for small families.

The world (store sizes, family reactions, elasticities) depends on the seed alone, and every random
array has its own stream: a smaller frame's series are the same as a larger one's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.signal import lfilter

COLUMNS: tuple[str, ...] = ("date", "store_nbr", "family", "sales", "onpromotion", "price", "is_holiday")
STORES = 54
WEEKS = 156  # three years, 2021-01-04 to the week of 2023-12-25
LAST_WEEK = "2023-12-25"

# family: (weekly units at a typical store, base price USD, yearly amplitude (log), peak as a fraction of
#          the year from 1 January, holiday sensitivity). Levels follow the ranking of Kaggle's daily means.
FAMILIES: dict[str, tuple[float, float, float, float, float]] = {
    "AUTOMOTIVE": (40, 12.0, 0.10, 0.90, 0.3),
    "BABY CARE": (3, 9.0, 0.10, 0.50, 0.3),
    "BEAUTY": (25, 8.0, 0.20, 0.37, 0.8),  # Mother's Day in May
    "BEVERAGES": (2400, 1.6, 0.24, 0.20, 1.2),  # the hot season
    "BOOKS": (2, 15.0, 0.60, 0.68, 0.2),
    "BREAD/BAKERY": (460, 1.2, 0.10, 0.95, 1.0),
    "CELEBRATION": (50, 6.0, 0.50, 0.95, 2.5),
    "CLEANING": (1070, 3.2, 0.10, 0.00, 0.5),
    "DAIRY": (710, 1.9, 0.10, 0.50, 0.8),
    "DELI": (265, 4.5, 0.12, 0.95, 1.2),
    "EGGS": (170, 2.5, 0.10, 0.30, 0.7),
    "FROZEN FOODS": (155, 4.0, 0.40, 0.95, 1.5),
    "GROCERY I": (3800, 2.3, 0.12, 0.95, 1.0),
    "GROCERY II": (25, 3.0, 0.16, 0.90, 0.8),
    "HARDWARE": (8, 18.0, 0.12, 0.30, 0.2),
    "HOME AND KITCHEN I": (25, 14.0, 0.30, 0.95, 1.5),
    "HOME AND KITCHEN II": (20, 16.0, 0.30, 0.95, 1.5),
    "HOME APPLIANCES": (3, 60.0, 0.20, 0.95, 1.0),
    "HOME CARE": (175, 3.8, 0.10, 0.00, 0.5),
    "LADIESWEAR": (10, 20.0, 0.30, 0.37, 1.0),
    "LAWN AND GARDEN": (10, 11.0, 0.40, 0.30, 0.3),
    "LINGERIE": (8, 12.0, 0.24, 0.12, 0.8),  # Valentine's Day
    "LIQUOR,WINE,BEER": (90, 7.0, 0.30, 0.95, 2.0),
    "MAGAZINES": (5, 4.0, 0.16, 0.50, 0.5),
    "MEATS": (340, 6.5, 0.14, 0.95, 1.3),
    "PERSONAL CARE": (270, 4.2, 0.10, 0.40, 0.6),
    "PET SUPPLIES": (6, 9.0, 0.10, 0.50, 0.3),
    "PLAYERS AND ELECTRONICS": (7, 45.0, 0.50, 0.95, 2.0),
    "POULTRY": (350, 5.5, 0.12, 0.95, 1.3),
    "PREPARED FOODS": (100, 5.0, 0.12, 0.50, 0.9),
    "PRODUCE": (1350, 1.4, 0.16, 0.20, 0.8),
    "SCHOOL AND OFFICE SUPPLIES": (6, 3.5, 1.20, 0.68, 0.1),  # school starts in September (Sierra)
    "SEAFOOD": (25, 8.5, 0.40, 0.24, 0.8),  # Lent
}
FAMILY_NAMES = tuple(FAMILIES)
SERIES = STORES * len(FAMILIES)

# Uplift of a holiday week before the family's sensitivity: 1 + strength x sensitivity.
CHRISTMAS, NEW_YEAR, NATIONAL = 0.45, 0.15, 0.08
# Ecuador's national holidays as in Kaggle's holidays_events.csv: (month, day, strength); Christmas
# includes the additional days Navidad-4 .. Navidad+1, New Year the additional 31 December.
FIXED_HOLIDAYS: tuple[tuple[int, int, float], ...] = (
    (1, 1, NEW_YEAR),
    (5, 1, NATIONAL),  # Dia del Trabajo
    (5, 24, NATIONAL),  # Batalla de Pichincha
    (8, 10, NATIONAL),  # Primer Grito de Independencia
    (10, 9, NATIONAL),  # Independencia de Guayaquil
    (11, 2, NATIONAL),  # Dia de Difuntos
    (11, 3, NATIONAL),  # Independencia de Cuenca
    *((12, day, CHRISTMAS) for day in range(21, 27)),
    (12, 31, NEW_YEAR),
)
EASTER_HOLIDAYS: tuple[tuple[int, float], ...] = (
    (-48, NATIONAL),
    (-47, NATIONAL),
    (-2, NATIONAL),
)  # Carnival, Good Friday

LEVEL_PHI, LEVEL_SHOCK = 0.9, 0.06  # persistent demand shocks: AR(1) in log sales
NOISE = 0.12  # weekly lognormal noise
PRICE_PHI, PRICE_SHOCK = 0.9, 0.03  # the shelf price wanders around the series' base price
TREND_SATURATION_YEARS = 5.0  # long spans (millions of rows) keep growth bounded
SMALL_FAMILY_UNITS, OUT_OF_STOCK_RATE = 30.0, 0.03


def generate_store_sales(rows: int, seed: int = 42, weeks: int = WEEKS, last_week: str = LAST_WEEK) -> pd.DataFrame:
    """`rows` weekly rows of (store, family) series, sorted by (date, store_nbr, family) like Kaggle's file.

    Each series spans the `weeks` weeks ending with the week starting on Monday `last_week`; when `rows`
    needs more than the 54 x 33 series, the span grows back in time instead. The last series drawn is
    cut at its start to give exactly `rows` rows (a family the store began selling later).
    """
    if rows < 1:
        raise ValueError(f"rows must be a positive number of rows, got {rows}")
    if weeks < 1:
        raise ValueError(f"weeks must be positive, got {weeks}")
    end = pd.Timestamp(last_week)
    if end.dayofweek != 0:
        raise ValueError(f"last_week must be a Monday (the start of a week), got {last_week} ({end.day_name()})")
    weeks = max(weeks, math.ceil(rows / SERIES))
    n_series = math.ceil(rows / weeks)
    mondays = pd.date_range(end=end, periods=weeks, freq="W-MON")

    # One stream per random array: the first series of a smaller frame are those of a larger one.
    pick, world, promotion, items_drawn, price_walk, price_cut, demand, weekly, counts, stock = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(10)
    )
    chosen = pick.permutation(SERIES)[:n_series]
    store, family = chosen // len(FAMILIES), chosen % len(FAMILIES)
    table = np.array(list(FAMILIES.values()))
    level, base_price, amplitude, peak, sensitivity = (table[family, k] for k in range(5))

    # The world: per store (size, growth, price level, promotion habit), per family (growth, elasticity,
    # promotion effect), per (store, family) pair; drawn for all of them whatever `rows` is.
    store_size = world.lognormal(0.0, 0.5, STORES)
    store_growth = world.normal(0.03, 0.04, STORES)
    store_price = world.normal(0.0, 0.05, STORES)
    store_promo = world.uniform(0.5, 1.5, STORES)
    family_growth = world.normal(0.0, 0.03, len(FAMILIES))
    elasticity = world.uniform(0.8, 2.0, len(FAMILIES))
    promo_effect = world.uniform(0.08, 0.16, len(FAMILIES))
    pair_effect = world.lognormal(0.0, 0.25, SERIES)[chosen]
    phase_jitter = world.normal(0.0, 0.02, SERIES)[chosen]

    shape = (n_series, weeks)
    years_to_end = ((mondays - end).days.to_numpy() / 365.25)[None, :]
    growth = (store_growth[store] + family_growth[family])[:, None]
    trend = growth * TREND_SATURATION_YEARS * np.tanh(years_to_end / TREND_SATURATION_YEARS)
    year_fraction = ((mondays + pd.Timedelta(days=3)).dayofyear.to_numpy() / 365.25)[None, :]  # the week's Thursday
    season = amplitude[:, None] * np.cos(2 * np.pi * (year_fraction - peak[:, None] - phase_jitter[:, None]))
    strength = _holiday_strength(mondays)
    holiday = np.log1p(strength[None, :] * sensitivity[:, None])

    promo_rate = np.clip(0.05 + 0.08 * np.log10(level), 0.03, 0.35) * store_promo[store]
    promoted = promotion.random(shape) < promo_rate[:, None]
    items = 1 + items_drawn.poisson(np.broadcast_to((1.2 * np.sqrt(level))[:, None], shape))
    onpromotion = np.where(promoted, items, 0)

    series_price = np.log(base_price) + store_price[store]
    wander = _ar1(price_walk.standard_normal(shape), PRICE_PHI) * PRICE_SHOCK
    discount = np.where(promoted, np.log1p(-price_cut.uniform(0.05, 0.2, shape)), 0.0)
    price = np.round(np.exp(series_price[:, None] + wander + discount), 2)
    price_effect = -elasticity[family][:, None] * (np.log(price) - series_price[:, None])

    shock = _ar1(demand.standard_normal(shape), LEVEL_PHI) * LEVEL_SHOCK
    noise = weekly.normal(-(NOISE**2) / 2, NOISE, shape)
    log_mean = (
        np.log(level * store_size[store] * pair_effect)[:, None]
        + trend
        + season
        + holiday
        + promo_effect[family][:, None] * np.log1p(onpromotion)
        + price_effect
        + shock
        + noise
    )
    sales = counts.poisson(np.exp(log_mean)).astype(np.float64)
    out_of_stock = (level < SMALL_FAMILY_UNITS)[:, None] & (stock.random(shape) < OUT_OF_STOCK_RATE)
    sales[out_of_stock] = 0.0

    present = np.ones(shape, dtype=bool)
    present[-1, : n_series * weeks - rows] = False  # the last series starts later
    order = np.lexsort((family, store))  # series by (store, family); rows by week, then series
    present_t = present[order].T
    week_index = np.broadcast_to(np.arange(weeks)[:, None], present_t.shape)[present_t]
    series_index = np.broadcast_to(order[None, :], present_t.shape)[present_t]
    dates = mondays.strftime("%Y-%m-%d").to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "date": dates[week_index],
            "store_nbr": (store + 1)[series_index],
            "family": np.array(FAMILY_NAMES, dtype=object)[family[series_index]],
            "sales": sales[series_index, week_index],
            "onpromotion": onpromotion[series_index, week_index].astype(np.int64),
            "price": price[series_index, week_index],
            "is_holiday": (strength > 0).astype(np.int64)[week_index],
        }
    )


def _ar1(shocks: NDArray[np.float64], phi: float) -> NDArray[np.float64]:
    """A stationary AR(1) of unit innovations along each row (the first value drawn from its stationary law)."""
    shocks[:, 0] /= math.sqrt(1 - phi**2)
    filtered: NDArray[np.float64] = lfilter([1.0], [1.0, -phi], shocks, axis=1)
    return filtered


def _holiday_strength(mondays: pd.DatetimeIndex) -> NDArray[np.float64]:
    """The strongest holiday in each week starting on `mondays` (0: no holiday)."""
    first = mondays[0]
    strength = np.zeros(7 * len(mondays))
    for year in range(first.year, mondays[-1].year + 2):
        easter = pd.Timestamp(year, 1, 1) + pd.offsets.Easter()
        dated = [(pd.Timestamp(year, month, day), value) for month, day, value in FIXED_HOLIDAYS]
        dated += [(easter + pd.Timedelta(days=offset), value) for offset, value in EASTER_HOLIDAYS]
        for day, value in dated:
            index = (day - first).days
            if 0 <= index < strength.size:
                strength[index] = max(strength[index], value)
    weekly: NDArray[np.float64] = strength.reshape(len(mondays), 7).max(axis=1)
    return weekly
