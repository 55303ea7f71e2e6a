"""Valid requests of each use case: one jukebox song (as JSON and as the model's input row), the v2
request the workshop notebook sends, one wine, one store-week of store_sales (its "Ordinary week" preset),
and seeded valid items spread over a spec's ranges."""

import numpy as np

from headliner.spec import UseCaseSpec

SONG = {
    "is_explicit": True,
    "duration_ms": 201000,
    "danceability": 0.71,
    "energy": 0.62,
    "key": 5,
    "loudness": -5.5,
    "mode": 1,
    "speechiness": 0.05,
    "acousticness": 0.2,
    "instrumentalness": 0.0,
    "liveness": 0.11,
    "valence": 0.48,
    "tempo": 121.5,
}
SONG_ROW = [1.0, 201000.0, 0.71, 0.62, 5.0, -5.5, 1.0, 0.05, 0.2, 0.0, 0.11, 0.48, 121.5]

WINE = {
    "alcohol": 13.2,
    "malic_acid": 1.8,
    "ash": 2.4,
    "alcalinity_of_ash": 16.0,
    "magnesium": 110.0,
    "total_phenols": 2.8,
    "flavanoids": 3.0,
    "nonflavanoid_phenols": 0.3,
    "proanthocyanins": 1.9,
    "color_intensity": 5.5,
    "hue": 1.05,
    "od280_od315_of_diluted_wines": 3.2,
    "proline": 1100.0,
}

STORE_WEEK = {
    "onpromotion": 0,
    "price": 4.0,
    "is_holiday": 0,
    "week_of_year": 23,
    "sales_lag_1": 350.0,
    "sales_lag_2": 340.0,
    "sales_lag_52": 330.0,
    "sales_rolling_mean_4": 345.0,
}


def v2_request(rows: int = 1, shape_of=lambda rows: [rows, 1]) -> dict:
    """The workshop notebook's request: one FP32 input per feature, shape [N, 1]."""
    return {
        "inputs": [
            {"name": name, "shape": shape_of(rows), "datatype": "FP32", "data": [SONG[name] * 1.0] * rows}
            for name in SONG
        ]
    }


def v2_request_of(items: list[dict], names: list[str]) -> dict:
    """A v2 request of `items`: one FP32 input per feature name, shape [N, 1]."""
    return {
        "inputs": [
            {"name": name, "datatype": "FP32", "shape": [len(items), 1], "data": [float(item[name]) for item in items]}
            for name in names
        ]
    }


def random_songs(spec: UseCaseSpec, count: int, seed: int) -> list[dict]:
    """`count` valid items of a use case, each feature drawn uniformly over its range (seeded)."""
    rng = np.random.default_rng(seed)
    songs = []
    for _ in range(count):
        song: dict[str, float | int] = {}
        for feature in spec.features:
            value = rng.uniform(
                feature.min if feature.min is not None else 0.0, feature.max if feature.max is not None else 1.0
            )
            song[feature.name] = round(value) if feature.dtype.value in ("int", "bool") else round(float(value), 4)
        songs.append(song)
    return songs
