"""Unit tests of the synthetic jukebox chart generator (Kaggle raw format, country-dependent songs)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kruskal

from headliner.data.jukebox_generator import KAGGLE_COLUMNS, generate_jukebox_charts

COUNTRIES = [
    "AE",
    "AR",
    "AT",
    "AU",
    "BE",
    "BG",
    "BO",
    "BR",
    "BY",
    "CA",
    "CH",
    "CL",
    "CO",
    "CR",
    "CZ",
    "DE",
    "DK",
    "DO",
    "EC",
    "EE",
    "EG",
    "ES",
    "FI",
    "FR",
    "GB",
    "GR",
    "GT",
    "HK",
    "HN",
    "HU",
    "ID",
    "IE",
    "IL",
    "IN",
    "IS",
    "IT",
    "JP",
    "KR",
    "KZ",
    "LT",
    "LU",
    "LV",
    "MA",
    "MX",
    "MY",
    "NG",
    "NI",
    "NL",
    "NO",
    "NZ",
    "PA",
    "PE",
    "PH",
    "PK",
    "PL",
    "PT",
    "PY",
    "RO",
    "SA",
    "SE",
    "SG",
    "SK",
    "SV",
    "TH",
    "TR",
    "TW",
    "UA",
    "US",
    "UY",
    "VE",
    "VN",
    "ZA",
]
LATIN_AMERICA = [
    "AR",
    "BO",
    "BR",
    "CL",
    "CO",
    "CR",
    "DO",
    "EC",
    "GT",
    "HN",
    "MX",
    "NI",
    "PA",
    "PE",
    "PY",
    "SV",
    "UY",
    "VE",
]
EAST_ASIA = ["HK", "JP", "KR", "TW"]
EXPECTED_COLUMNS = (
    "spotify_id",
    "name",
    "artists",
    "daily_rank",
    "daily_movement",
    "weekly_movement",
    "country",
    "snapshot_date",
    "popularity",
    "is_explicit",
    "duration_ms",
    "album_name",
    "album_release_date",
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
    "time_signature",
)
INT_COLUMNS = (
    "daily_rank",
    "daily_movement",
    "weekly_movement",
    "popularity",
    "duration_ms",
    "key",
    "mode",
    "time_signature",
)
FLOAT_COLUMNS = (
    "danceability",
    "energy",
    "loudness",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
)
TEXT_COLUMNS = ("spotify_id", "name", "artists", "album_name", "snapshot_date", "album_release_date")
UNIT_INTERVAL_FEATURES = (
    "danceability",
    "energy",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
)
SONG_COLUMNS = ("name", "artists", "is_explicit", "duration_ms", "album_name", "key", "mode", *FLOAT_COLUMNS)


@pytest.fixture(scope="module")
def charts() -> pd.DataFrame:
    return generate_jukebox_charts(3000, COUNTRIES, seed=7)


@pytest.fixture(scope="module")
def clean_charts() -> pd.DataFrame:
    return generate_jukebox_charts(3000, COUNTRIES, seed=7, oddity_rate=0.0)


def oddity_counts(frame: pd.DataFrame) -> dict[str, int]:
    return {
        "duration_ms == 0": int((frame["duration_ms"] == 0).sum()),
        "tempo == 0": int((frame["tempo"] == 0).sum()),
        "loudness > 0": int((frame["loudness"] > 0).sum()),
        "NaN feature": int(frame[list(FLOAT_COLUMNS)].isna().any(axis=1).sum()),
        "duplicate row": int(frame.duplicated().sum()),
    }


def test_columns_are_the_kaggle_columns_in_order(charts: pd.DataFrame) -> None:
    assert KAGGLE_COLUMNS == EXPECTED_COLUMNS
    assert tuple(charts.columns) == EXPECTED_COLUMNS


@pytest.mark.parametrize("rows", [1, 2, 73, 2000, 3001])
def test_returns_exactly_the_requested_rows(rows: int) -> None:
    assert len(generate_jukebox_charts(rows, COUNTRIES)) == rows


def test_dtypes_are_those_pandas_reads_from_the_real_csv(charts: pd.DataFrame) -> None:
    for column in INT_COLUMNS:
        assert charts[column].dtype == np.int64, column
    for column in FLOAT_COLUMNS:
        assert charts[column].dtype == np.float64, column
    assert charts["is_explicit"].dtype == bool
    for column in TEXT_COLUMNS:
        assert charts[column].map(type).eq(str).all(), column
    for column in ("snapshot_date", "album_release_date"):
        assert charts[column].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all(), column
    assert charts["spotify_id"].str.fullmatch(r"[0-9A-Za-z]{22}").all()


def test_countries_come_from_the_given_list_or_are_the_global_chart(charts: pd.DataFrame) -> None:
    assert set(charts["country"].dropna()) <= set(COUNTRIES)
    assert charts["country"].nunique() > 60
    global_share = charts["country"].isna().mean()
    expected_share = 1 / (len(COUNTRIES) + 1)
    assert 0.5 * expected_share < global_share < 2 * expected_share


def test_unknown_country_codes_are_accepted() -> None:
    frame = generate_jukebox_charts(500, ["XX", "US"])
    assert set(frame["country"].dropna()) == {"XX", "US"}


@pytest.mark.parametrize("arguments", [{"rows": 0}, {"countries": []}, {"oddity_rate": -0.1}])
def test_invalid_arguments_are_refused(arguments: dict) -> None:
    with pytest.raises(ValueError):
        generate_jukebox_charts(**{"rows": 100, "countries": COUNTRIES, **arguments})


def test_same_seed_gives_the_same_frame_and_another_seed_a_different_one(charts: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(generate_jukebox_charts(3000, COUNTRIES, seed=7), charts)
    assert not generate_jukebox_charts(3000, COUNTRIES, seed=8).equals(charts)


def test_every_sample_size_of_a_seed_shares_one_world(monkeypatch) -> None:
    """Each country's taste depends on the seed alone: a bigger sample of the same source is more of the
    same world (retraining on more rows learns the same mapping), another seed is another world."""
    from headliner.data import jukebox_generator

    worlds = []
    original = jukebox_generator._chart_style_preferences

    def recording(rng, countries):
        worlds.append(original(rng, countries))
        return worlds[-1]

    monkeypatch.setattr(jukebox_generator, "_chart_style_preferences", recording)
    for rows, seed in ((3_000, 42), (20_000, 42), (3_000, 7)):
        generate_jukebox_charts(rows, ["GB", "JP", "MX"], seed=seed)
    np.testing.assert_array_equal(worlds[0], worlds[1])
    assert np.abs(worlds[0] - worlds[2]).max() > 0.01


@pytest.mark.parametrize("seed", range(5))
def test_each_oddity_is_present_at_a_small_rate(seed: int) -> None:
    frame = generate_jukebox_charts(2000, COUNTRIES, seed=seed)
    for oddity, count in oddity_counts(frame).items():
        assert 0 < count < 0.05 * len(frame), oddity


def test_no_oddities_when_the_rate_is_zero(clean_charts: pd.DataFrame) -> None:
    assert set(oddity_counts(clean_charts).values()) == {0}


def test_song_properties_including_oddities_are_the_same_on_every_row_of_a_song(charts: pd.DataFrame) -> None:
    per_song = charts.groupby("spotify_id")[list(SONG_COLUMNS)].nunique(dropna=False)
    assert (per_song == 1).all().all()


def test_features_lie_in_the_real_ranges(clean_charts: pd.DataFrame, charts: pd.DataFrame) -> None:
    for feature in UNIT_INTERVAL_FEATURES:
        assert clean_charts[feature].between(0, 1).all(), feature
    assert clean_charts["tempo"].gt(0).all() and clean_charts["tempo"].le(250).all()
    assert clean_charts["loudness"].between(-60, 0).all()
    assert clean_charts["duration_ms"].between(1, 1_000_000).all()
    assert set(clean_charts["key"]) <= set(range(12))
    assert set(clean_charts["mode"]) <= {0, 1}
    assert set(clean_charts["time_signature"]) <= {0, 1, 3, 4, 5}
    assert clean_charts["popularity"].between(0, 100).all()
    positive_loudness = charts.loc[charts["loudness"] > 0, "loudness"]
    assert positive_loudness.le(3.5).all()


def test_ranks_run_from_one_within_each_chart_and_day(charts: pd.DataFrame) -> None:
    entries = charts.drop_duplicates().fillna({"country": ""}).sort_values("daily_rank")
    position = entries.groupby(["country", "snapshot_date"]).cumcount() + 1
    assert (entries["daily_rank"] == position).all()
    assert not entries.duplicated(["spotify_id", "country", "snapshot_date"]).any()


@pytest.mark.parametrize(("column", "lag"), [("daily_movement", 1), ("weekly_movement", 7)])
def test_movement_is_the_earlier_rank_minus_todays_rank(charts: pd.DataFrame, column: str, lag: int) -> None:
    entries = charts.drop_duplicates().fillna({"country": ""})
    entries["day"] = pd.to_datetime(entries["snapshot_date"])
    earlier = entries[["spotify_id", "country", "day", "daily_rank"]]
    earlier = earlier.assign(day=earlier["day"] + pd.Timedelta(days=lag))
    joined = entries.merge(earlier, on=["spotify_id", "country", "day"], how="left", suffixes=("", "_earlier"))
    expected = (joined["daily_rank_earlier"] - joined["daily_rank"]).fillna(0).astype(np.int64)
    assert (joined[column] == expected).all()
    assert joined["daily_rank_earlier"].notna().sum() > 0.1 * len(joined)


def test_albums_are_released_before_the_song_first_charts(charts: pd.DataFrame) -> None:
    first_chart = charts.groupby("spotify_id")["snapshot_date"].min()
    release = charts.groupby("spotify_id")["album_release_date"].first()
    assert (release < first_chart).all()


def test_song_features_depend_on_the_country() -> None:
    frame = generate_jukebox_charts(20_000, COUNTRIES, seed=11)
    entries = frame.dropna(subset=["country"]).drop_duplicates(["spotify_id", "country"])
    danceability = entries.groupby("country")["danceability"]
    assert kruskal(*[values.dropna() for _, values in danceability]).pvalue < 1e-10
    latin, east_asian = danceability.mean()[LATIN_AMERICA].mean(), danceability.mean()[EAST_ASIA].mean()
    assert latin - east_asian > 0.04


def test_csv_round_trip_keeps_columns_rows_and_global_chart(charts: pd.DataFrame) -> None:
    buffer = io.StringIO()
    charts.to_csv(buffer, index=False)
    buffer.seek(0)
    reread = pd.read_csv(buffer)
    assert tuple(reread.columns) == EXPECTED_COLUMNS
    assert len(reread) == len(charts)
    assert reread["country"].isna().sum() == charts["country"].isna().sum()
    for column in INT_COLUMNS:
        assert reread[column].dtype == np.int64, column
    assert reread["is_explicit"].dtype == bool
