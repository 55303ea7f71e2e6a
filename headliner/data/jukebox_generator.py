"""Synthetic Spotify charts in Kaggle's raw CSV format, so the jukebox loop runs with no download.

One row is one (song, country, day) chart entry, as in Kaggle's "Top Spotify Songs in 73 Countries".
Songs get a latent style that shifts their audio features through a Gaussian copula calibrated to
real songs (headliner.data.jukebox_calibration); countries prefer styles, so the song features
carry information about the country, which is what the jukebox model learns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import ndtr

from headliner.data import jukebox_calibration as calibration

KAGGLE_COLUMNS: tuple[str, ...] = (
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
FEATURES = calibration.CONTINUOUS_FEATURES
NAN_FEATURES = ("danceability", "energy", "acousticness", "valence")
CHART_SIZE = 50
MIN_DAYS = 14
MEAN_RUN_DAYS = 6.0
ROWS_PER_SONG = 60
MIN_SONGS = 300
ZIPF_EXPONENT = 0.9
COUNTRY_PREFERENCE_SPREAD = 1.0
OTHER_STYLE_WEIGHT = 0.2

# style: (share of songs, explicit probability before calibration to the real rate,
#         latent mean shifts in the order of FEATURES:
#         duration danceability energy loudness speechiness acousticness instrumentalness
#         liveness valence tempo)
STYLES: dict[str, tuple[float, float, tuple[float, ...]]] = {
    "pop": (0.20, 0.30, (0.0, 0.3, 0.3, 0.4, -0.5, -0.1, -0.3, 0.0, 0.3, 0.0)),
    "latin": (0.14, 0.40, (0.1, 1.3, 0.4, 0.5, 0.7, -0.1, -0.3, 0.1, 0.8, -0.5)),
    "hiphop": (0.14, 0.85, (-0.1, 0.7, -0.1, 0.0, 1.7, -0.3, -0.1, 0.1, -0.5, 0.3)),
    "edm": (0.07, 0.10, (-0.4, 0.5, 1.3, 0.9, -0.4, -1.3, 1.6, 0.4, 0.0, 0.5)),
    "rock": (0.06, 0.15, (0.7, -1.2, 1.2, 0.7, -0.4, -0.9, 0.5, 0.8, -0.1, 0.4)),
    "acoustic": (0.07, 0.03, (0.4, -1.0, -1.7, -1.6, -0.7, 1.8, 0.3, -0.3, -0.7, -0.4)),
    "rnb": (0.06, 0.45, (0.1, 0.4, -0.9, -0.7, 0.3, 0.7, -0.1, -0.1, -0.4, -0.7)),
    "kpop": (0.05, 0.03, (-0.7, 0.4, 1.0, 1.2, -0.3, -0.8, -0.3, 0.0, 0.5, 0.4)),
    "jpop": (0.04, 0.02, (0.5, -0.8, 0.9, 0.5, -0.4, -0.4, -0.1, 0.3, 0.4, 1.0)),
    "schlager": (0.04, 0.02, (0.0, 0.5, 0.8, 0.3, -0.8, -0.4, -0.3, 0.1, 1.6, 0.5)),
    "afrobeats": (0.04, 0.20, (0.4, 1.4, -0.3, -0.3, 0.5, 0.5, -0.1, -0.1, 0.7, -0.4)),
    "bollywood": (0.04, 0.01, (1.4, -0.3, -0.3, -0.4, -0.4, 0.8, 0.4, 0.4, -0.3, -0.1)),
    "arabic": (0.05, 0.05, (0.9, 0.1, 0.7, 0.4, 0.4, -0.1, 0.3, 0.7, 0.4, 0.1)),
}
STYLE_NAMES = tuple(STYLES)

REGION_COUNTRIES: dict[str, str] = {
    "anglosphere": "AU CA GB IE NZ US",
    "western_europe": "BE FR LU NL",
    "german_speaking": "AT CH DE",
    "southern_europe": "ES GR IT PT",
    "nordics": "DK FI IS NO SE",
    "eastern_europe": "BG BY CZ EE HU KZ LT LV PL RO SK UA",
    "east_asia": "HK JP KR TW",
    "southeast_asia": "ID MY PH SG TH VN",
    "middle_east_north_africa": "AE EG IL MA SA TR",
    "sub_saharan_africa": "NG ZA",
    "south_asia": "IN PK",
    "latin_america": "AR BO BR CL CO CR DO EC GT HN MX NI PA PE PY SV UY VE",
}
REGION_OF_COUNTRY: dict[str, str] = {
    code: region for region, codes in REGION_COUNTRIES.items() for code in codes.split()
}
# Relative style weights per region; unlisted styles weigh OTHER_STYLE_WEIGHT.
REGION_STYLE_WEIGHTS: dict[str, dict[str, float]] = {
    "anglosphere": {"pop": 6, "hiphop": 5, "rnb": 2.5, "rock": 1.5, "edm": 1.5, "acoustic": 2, "latin": 1},
    "western_europe": {"pop": 4, "hiphop": 5, "edm": 2.5, "rnb": 1.5, "latin": 1, "afrobeats": 1},
    "german_speaking": {"pop": 4, "hiphop": 4, "schlager": 3.5, "edm": 2.5, "rock": 1.5},
    "southern_europe": {"pop": 3.5, "latin": 4, "hiphop": 3, "edm": 1, "acoustic": 1},
    "nordics": {"pop": 5, "hiphop": 3, "edm": 2.5, "acoustic": 2, "schlager": 1.5, "rock": 1.5},
    "eastern_europe": {"pop": 4, "hiphop": 3, "edm": 3, "rock": 2, "schlager": 1.5},
    "east_asia": {"kpop": 6, "jpop": 4, "pop": 3, "acoustic": 2, "rnb": 1.5},
    "southeast_asia": {"pop": 4, "kpop": 3, "acoustic": 3, "rnb": 2, "hiphop": 1},
    "middle_east_north_africa": {"arabic": 6, "pop": 3, "hiphop": 2, "edm": 1},
    "sub_saharan_africa": {"afrobeats": 7, "hiphop": 3, "rnb": 2, "pop": 2},
    "south_asia": {"bollywood": 8, "pop": 2, "hiphop": 1.5, "acoustic": 1},
    "latin_america": {"latin": 9, "pop": 2, "hiphop": 1.5, "rnb": 0.5},
    "generic": {"pop": 4, "hiphop": 2, "latin": 1, "edm": 1},
}

TITLE_ADJECTIVES = (
    "Golden",
    "Midnight",
    "Electric",
    "Broken",
    "Summer",
    "Wild",
    "Neon",
    "Silent",
    "Lost",
    "Sweet",
    "Burning",
    "Cold",
    "Crazy",
    "Last",
    "Little",
    "Lonely",
    "Perfect",
    "Secret",
    "Velvet",
    "Young",
)
TITLE_NOUNS = (
    "Heart",
    "Night",
    "Dream",
    "Fire",
    "Love",
    "River",
    "City",
    "Rain",
    "Dance",
    "Stars",
    "Road",
    "Ocean",
    "Eyes",
    "Heaven",
    "Sunset",
    "Party",
    "Ghost",
    "Paradise",
    "Moon",
    "Storm",
)
ARTIST_FIRST_NAMES = (
    "Luna",
    "Kai",
    "Nova",
    "Milo",
    "Zara",
    "Leo",
    "Ivy",
    "Jay",
    "Mara",
    "Rio",
    "Sky",
    "Nico",
    "Ayla",
    "Max",
    "Lia",
    "Omar",
    "Yuna",
    "Dani",
    "Theo",
    "Sol",
)
ARTIST_LAST_NAMES = (
    "Vega",
    "Stone",
    "Park",
    "Silva",
    "Berg",
    "Khan",
    "Moreau",
    "Kim",
    "Okafor",
    "Rossi",
    "Novak",
    "Tanaka",
    "Costa",
    "Lund",
    "Reyes",
    "Sharma",
    "Hale",
    "Cruz",
    "Blake",
    "Ito",
)
BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", np.uint8)


@dataclass
class _Songs:
    """The song pool, sorted by style; `draw_key` is style + within-style cumulative Zipf weight."""

    style: np.ndarray
    weight: np.ndarray
    draw_key: np.ndarray
    popularity: np.ndarray
    features: dict[str, np.ndarray]
    is_explicit: np.ndarray
    key: np.ndarray
    mode: np.ndarray
    time_signature: np.ndarray


def _normalized(probs: Sequence[float] | NDArray[np.floating]) -> NDArray[np.float64]:
    values = np.asarray(probs, dtype=np.float64)
    shares: NDArray[np.float64] = values / values.sum()
    return shares


def _round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    magnitude = np.floor(np.log10(np.abs(values), where=values != 0, out=np.zeros_like(values)))
    decimals = (digits - 1 - magnitude).astype(int)
    rounded = values.copy()
    for places in np.unique(decimals):
        selected = decimals == places
        rounded[selected] = np.round(values[selected], places)
    return rounded


def _make_songs(rng: np.random.Generator, n_songs: int) -> _Songs:
    """About `n_songs` songs: style blocks with Zipf weights, copula features and discrete features."""
    shares = np.array([share for share, _, _ in STYLES.values()])
    counts = np.maximum(1, np.round(shares * n_songs).astype(int))
    style = np.repeat(np.arange(len(STYLES)), counts)
    block_start = np.cumsum(counts) - counts
    rank_in_style = np.arange(style.size) - block_start[style] + 1
    weight = rank_in_style**-ZIPF_EXPONENT
    cumulative = np.cumsum(weight)
    before_block = (cumulative - weight)[block_start][style]
    block_total = cumulative[block_start + counts - 1][style] - before_block
    draw_key = style + (cumulative - before_block) / block_total
    popularity = 55 + 40 * (1 - np.log(rank_in_style) / np.log(counts[style] + 1))

    # Gaussian copula: style mean shifts plus correlated noise, scaled so each margin stays N(0, 1).
    shifts = np.array([shift for _, _, shift in STYLES.values()])
    shares = counts / counts.sum()
    shifts -= shares @ shifts
    within_scale = np.sqrt(1 - shares @ shifts**2)
    cholesky = np.linalg.cholesky(np.array(calibration.NORMAL_SCORE_CORRELATION))
    scores = shifts[style] + (rng.standard_normal((style.size, len(FEATURES))) @ cholesky.T) * within_scale
    quantiles = ndtr(scores)
    features = {}
    for column, feature in enumerate(FEATURES):
        values = np.interp(quantiles[:, column], calibration.QUANTILE_PROBS, calibration.QUANTILES[feature])
        if feature == "duration_ms":
            features[feature] = np.round(values).astype(np.int64)
        elif feature in ("loudness", "tempo"):
            features[feature] = np.round(values, 3)
        else:
            features[feature] = _round_significant(values, 3)

    explicit_by_style = np.array([explicit for _, explicit, _ in STYLES.values()])
    explicit_by_style *= calibration.EXPLICIT_RATE / (shares @ explicit_by_style)
    return _Songs(
        style=style,
        weight=weight,
        draw_key=draw_key,
        popularity=popularity,
        features=features,
        is_explicit=rng.random(style.size) < np.minimum(explicit_by_style, 0.95)[style],
        key=rng.choice(12, size=style.size, p=_normalized(calibration.KEY_PROBS)),
        mode=rng.choice(2, size=style.size, p=_normalized(calibration.MODE_PROBS)),
        time_signature=rng.choice(
            np.array(calibration.TIME_SIGNATURE_VALUES),
            size=style.size,
            p=_normalized(calibration.TIME_SIGNATURE_PROBS),
        ),
    )


def _chart_style_preferences(rng: np.random.Generator, countries: Sequence[str]) -> np.ndarray:
    """Style probabilities per chart: row 0 is the global chart, then one row per country."""
    region_log_weights = {
        region: np.log([weights.get(style, OTHER_STYLE_WEIGHT) for style in STYLE_NAMES])
        for region, weights in REGION_STYLE_WEIGHTS.items()
    }
    log_weights = np.array([region_log_weights[REGION_OF_COUNTRY.get(code, "generic")] for code in countries])
    log_weights += rng.normal(0, COUNTRY_PREFERENCE_SPREAD, size=log_weights.shape)
    preferences = np.exp(log_weights)
    preferences /= preferences.sum(axis=1, keepdims=True)
    return np.vstack([preferences.mean(axis=0), preferences])


def _draw_songs(rng: np.random.Generator, style_probs: np.ndarray, songs: _Songs) -> np.ndarray:
    """For each row of style probabilities: a style, then a song of that style by Zipf weight."""
    cumulative = np.cumsum(style_probs, axis=1)
    style = (rng.random(len(style_probs))[:, None] > cumulative).sum(axis=1)
    style = np.minimum(style, style_probs.shape[1] - 1)  # guards against cumulative rounding below 1
    song: NDArray[np.intp] = np.searchsorted(songs.draw_key, style + rng.random(style.size), side="right")
    return song


def _chart_entries(
    rng: np.random.Generator, n_rows: int, preferences: np.ndarray, songs: _Songs
) -> tuple[int, dict[str, np.ndarray]]:
    """Daily charts made of runs (one song on consecutive days), `n_rows` entries in all."""
    n_charts = len(preferences)
    days = max(MIN_DAYS, round(n_rows / (n_charts * CHART_SIZE)))
    cells = n_charts * days
    base_size, extra = divmod(n_rows, cells)
    cell_size = np.full(cells, base_size)
    cell_size[rng.permutation(cells)[:extra]] += 1
    chart, slot, day = (axis.ravel() for axis in np.indices((n_charts, base_size + (extra > 0), days)))
    # A new run starts on the first day or with probability 1/mean: geometric run lengths.
    run = np.cumsum((day == 0) | (rng.random(day.size) < 1 / MEAN_RUN_DAYS))
    keep = slot < cell_size[chart * days + day]
    chart, day, run = chart[keep], day[keep], run[keep]
    run_starts = np.r_[True, run[1:] != run[:-1]]
    run = np.cumsum(run_starts) - 1
    run_chart, run_first_day = chart[run_starts], day[run_starts]

    cell = chart * days + day
    run_song = _draw_songs(rng, preferences[run_chart], songs)
    while True:  # a song appears at most once per chart and day: redraw the runs that clash
        entry_key = cell.astype(np.int64) * songs.style.size + run_song[run]
        order = np.argsort(entry_key, kind="stable")
        clashing = np.unique(run[order[1:][entry_key[order[1:]] == entry_key[order[:-1]]]])
        if clashing.size == 0:
            break
        run_song[clashing] = _draw_songs(rng, preferences[run_chart[clashing]], songs)
    song = run_song[run]

    score = (
        np.log(songs.weight[song])
        + rng.standard_normal(run_chart.size)[run]
        + 0.3 * rng.standard_normal(song.size)
        - 0.05 * (day - run_first_day[run])
    )
    order = np.lexsort((-score, cell))
    cell_counts = np.bincount(cell, minlength=cells)
    rank = np.empty(song.size, dtype=np.int64)
    rank[order] = np.arange(song.size) - (np.cumsum(cell_counts) - cell_counts)[cell[order]] + 1

    # Movement: the rank `lag` days earlier on the same chart minus today's rank, 0 if not charted then.
    chart_song_day = (chart.astype(np.int64) * songs.style.size + song) * days + day
    by_key = np.argsort(chart_song_day)
    sorted_keys = chart_song_day[by_key]

    def movement(lag: int) -> np.ndarray:
        earlier = np.minimum(np.searchsorted(sorted_keys, chart_song_day - lag), song.size - 1)
        charted = (day >= lag) & (sorted_keys[earlier] == chart_song_day - lag)
        return np.where(charted, rank[by_key[earlier]] - rank, 0)

    popularity = np.clip(np.round(songs.popularity[song] + rng.normal(0, 3, song.size)), 0, 100)
    return days, {
        "chart": chart,
        "day": day,
        "song": song,
        "daily_rank": rank,
        "daily_movement": movement(1),
        "weekly_movement": movement(7),
        "popularity": popularity.astype(np.int64),
    }


def _inject_song_oddities(rng: np.random.Generator, songs: _Songs, entry_song: np.ndarray, target_rows: int) -> None:
    """Turn a few rarely charting songs into real-world oddities, each kind covering ~target_rows rows."""
    rows_per_song = np.bincount(entry_song, minlength=songs.style.size)
    charting = np.flatnonzero(rows_per_song)
    # Only songs with few rows qualify, so that a single hit cannot make an oddity common.
    limit = max(target_rows, rows_per_song[charting].min())
    candidates = rng.permutation(charting[rows_per_song[charting] <= limit])
    picked: dict[str, np.ndarray] = {}
    for kind in ("duration_zero", "tempo_zero", "loudness_positive", "nan"):
        covered = np.cumsum(rows_per_song[candidates])
        taken = min(candidates.size, int(np.searchsorted(covered, target_rows)) + 1)
        picked[kind], candidates = candidates[:taken], candidates[taken:]
    features = songs.features
    features["duration_ms"][picked["duration_zero"]] = 0
    features["tempo"][picked["tempo_zero"]] = 0.0
    features["loudness"][picked["loudness_positive"]] = np.round(
        rng.uniform(0.001, calibration.LOUDNESS_POSITIVE_MAX, picked["loudness_positive"].size), 3
    )
    nan_columns = rng.integers(0, len(NAN_FEATURES), picked["nan"].size)
    for song, column in zip(picked["nan"], nan_columns, strict=True):
        features[NAN_FEATURES[column]][song] = np.nan


def _song_texts(rng: np.random.Generator, n_songs: int) -> dict[str, np.ndarray]:
    """Spotify ids, titles, artists and album names from small word lists."""
    ids = BASE62[rng.integers(0, BASE62.size, size=(n_songs, 22))].view("S22").ravel().astype(str)
    n_artists = max(20, n_songs // 4)
    first_names = np.array(ARTIST_FIRST_NAMES)[rng.integers(0, len(ARTIST_FIRST_NAMES), n_artists)]
    last_names = np.array(ARTIST_LAST_NAMES)[rng.integers(0, len(ARTIST_LAST_NAMES), n_artists)]
    has_last_name = rng.random(n_artists) < 0.7
    artist_names = np.array(
        [
            f"{first} {last}" if full else first.upper()
            for first, last, full in zip(first_names, last_names, has_last_name, strict=True)
        ],
        dtype=object,
    )
    artist_weights = _normalized(np.arange(1, n_artists + 1) ** -0.8)
    main_artist = artist_names[rng.choice(n_artists, n_songs, p=artist_weights)]
    featured_artist = artist_names[rng.choice(n_artists, n_songs, p=artist_weights)]
    has_feature = rng.random(n_songs) < 0.25
    adjectives, nouns = np.array(TITLE_ADJECTIVES), np.array(TITLE_NOUNS)
    adjective, album_adjective = adjectives[rng.integers(0, adjectives.size, (2, n_songs))]
    noun, second_noun, album_noun = nouns[rng.integers(0, nouns.size, (3, n_songs))]
    title_form, is_single = rng.integers(0, 3, n_songs), rng.random(n_songs) < 0.45
    titles, artists, albums = [], [], []
    for i in range(n_songs):
        title = (f"{adjective[i]} {noun[i]}", str(noun[i]), f"{noun[i]} {second_noun[i]}")[title_form[i]]
        if has_feature[i] and title_form[i] == 1:
            title = f"{title} (feat. {featured_artist[i]})"
        titles.append(title)
        artists.append(f"{main_artist[i]}, {featured_artist[i]}" if has_feature[i] else main_artist[i])
        albums.append(title if is_single[i] else f"{album_adjective[i]} {album_noun[i]}")
    return {
        "spotify_id": ids.astype(object),
        "name": np.array(titles, dtype=object),
        "artists": np.array(artists, dtype=object),
        "album_name": np.array(albums, dtype=object),
    }


def generate_jukebox_charts(
    rows: int,
    countries: Sequence[str],
    seed: int = 42,
    oddity_rate: float = 0.002,
    start_date: str = "2023-10-18",
) -> pd.DataFrame:
    """`rows` daily chart entries of `countries` plus the global chart, in Kaggle's raw column layout.

    Oddities (duration_ms == 0, tempo == 0, loudness > 0, NaN features, exact duplicate rows) each
    cover about `oddity_rate` of the rows and at least one row when the rate is positive.
    """
    if rows < 1 or not countries:
        raise ValueError("rows must be positive and countries non-empty")
    if not 0 <= oddity_rate < 0.5:
        raise ValueError("oddity_rate must be in [0, 0.5)")
    # The world (each country's taste) depends on the seed alone, so samples of any size share it.
    preferences = _chart_style_preferences(np.random.default_rng([seed, 1]), countries)
    rng = np.random.default_rng(seed)
    odd_rows = max(1, round(oddity_rate * rows)) if oddity_rate > 0 else 0
    n_duplicates = min(odd_rows, rows // 2)
    songs = _make_songs(rng, max(MIN_SONGS, rows // ROWS_PER_SONG))
    days, entries = _chart_entries(rng, rows - n_duplicates, preferences, songs)
    song = entries["song"]
    if odd_rows:
        _inject_song_oddities(rng, songs, song, odd_rows)

    n_songs = songs.style.size
    texts = _song_texts(rng, n_songs)
    start = np.datetime64(start_date, "D")
    first_chart_day = np.full(n_songs, days)
    np.minimum.at(first_chart_day, song, entries["day"])
    days_before_chart = 1 + np.round(
        np.where(rng.random(n_songs) < 0.75, rng.exponential(45, n_songs), rng.exponential(900, n_songs))
    ).astype(np.int64)
    release_date = np.datetime_as_string(start + first_chart_day - days_before_chart).astype(object)
    snapshot_date = np.datetime_as_string(start + np.arange(days)).astype(object)
    chart_country = np.array([None, *countries], dtype=object)

    columns = {
        "spotify_id": texts["spotify_id"][song],
        "name": texts["name"][song],
        "artists": texts["artists"][song],
        "daily_rank": entries["daily_rank"],
        "daily_movement": entries["daily_movement"],
        "weekly_movement": entries["weekly_movement"],
        "country": chart_country[entries["chart"]],
        "snapshot_date": snapshot_date[entries["day"]],
        "popularity": entries["popularity"],
        "is_explicit": songs.is_explicit[song],
        "album_name": texts["album_name"][song],
        "album_release_date": release_date[song],
        "key": songs.key[song],
        "mode": songs.mode[song],
        "time_signature": songs.time_signature[song],
        **{feature: values[song] for feature, values in songs.features.items()},
    }
    # Kaggle's order: newest day first, global chart before the countries, then by rank.
    order = np.lexsort((entries["daily_rank"], entries["chart"], -entries["day"]))
    duplicated = rng.choice(order.size, n_duplicates, replace=False)
    order = order[np.sort(np.concatenate([np.arange(order.size), duplicated]))]
    return pd.DataFrame({column: columns[column][order] for column in KAGGLE_COLUMNS})
