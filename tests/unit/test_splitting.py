"""The grouped split: reproducible, no group in two splits, fractions and label mix close to the whole."""

import numpy as np
import pandas as pd
import pytest

from headliner.data.splitting import class_distribution, dataframe_fingerprint, split_examples
from headliner.errors import DataValidationError


@pytest.fixture(scope="module")
def examples(jukebox_spec) -> pd.DataFrame:
    """6,000 songs charting in 1-6 countries each, country preference depending on a song 'style'."""
    rng = np.random.default_rng(7)
    classes = np.array(jukebox_spec.target.classes)
    songs = np.arange(6000)
    style = rng.integers(0, 8, songs.size)
    per_song = rng.integers(1, 7, songs.size)
    song_of_row = np.repeat(songs, per_song)
    preferred = (style[song_of_row] * 9 + rng.integers(0, 12, song_of_row.size)) % classes.size
    frame = pd.DataFrame({"spotify_id": [f"s{i}" for i in song_of_row], "country": classes[preferred]})
    frame = frame.drop_duplicates().reset_index(drop=True)
    for feature in jukebox_spec.feature_names:
        frame[feature] = rng.random(len(frame))
    return frame[jukebox_spec.raw_columns]


def test_no_song_in_two_splits(examples, jukebox_spec):
    train, validation, test, _ = split_examples(examples, jukebox_spec, "t")
    sets = [set(part["spotify_id"]) for part in (train, validation, test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(train) + len(validation) + len(test) == len(examples)


def test_fractions_and_label_distribution_are_close(examples, jukebox_spec):
    train, validation, test, report = split_examples(examples, jukebox_spec, "t")
    total = len(examples)
    assert len(train) / total == pytest.approx(0.70, abs=0.02)
    assert len(validation) / total == pytest.approx(0.15, abs=0.02)
    assert len(test) / total == pytest.approx(0.15, abs=0.02)
    overall = class_distribution(examples["country"], jukebox_spec.target.classes)
    for part in (train, validation, test):
        distance = 0.5 * np.abs(class_distribution(part["country"], jukebox_spec.target.classes) - overall).sum()
        assert distance < 0.06
    assert report.facts["train fingerprint"] == dataframe_fingerprint(train)


def test_split_is_reproducible_by_seed(examples, jukebox_spec):
    first = split_examples(examples, jukebox_spec, "t")
    again = split_examples(examples, jukebox_spec, "t")
    for a, b in zip(first[:3], again[:3], strict=True):
        pd.testing.assert_frame_equal(a, b)
    reseeded = jukebox_spec.model_copy(update={"split": jukebox_spec.split.model_copy(update={"seed": 3})})
    other = split_examples(examples, reseeded, "t")
    assert set(other[2]["spotify_id"]) != set(first[2]["spotify_id"])


def test_row_level_split_is_stratified_exactly(wine_spec):
    frame = pd.DataFrame({"target": ["class_0"] * 50 + ["class_1"] * 30 + ["class_2"] * 20})
    for feature in wine_spec.feature_names:
        frame[feature] = 1.0
    spec = wine_spec.model_copy(update={"split": wine_spec.split.model_copy(update={"train": 0.6})})
    train, validation, test, _ = split_examples(frame[wine_spec.raw_columns], spec, "t")
    assert train["target"].value_counts().to_dict() == {"class_0": 30, "class_1": 18, "class_2": 12}
    assert len(validation) == len(test) == 20


def test_fingerprint_tracks_content():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    assert dataframe_fingerprint(frame) == dataframe_fingerprint(frame.copy())
    changed = frame.copy()
    changed.loc[1, "a"] = 2.5
    assert dataframe_fingerprint(changed) != dataframe_fingerprint(frame)
    assert dataframe_fingerprint(frame.iloc[::-1]) != dataframe_fingerprint(frame)


# Split by time (store_sales): the test weeks come after the validation weeks, which come after training.


@pytest.fixture(scope="module")
def sales_spec():
    from headliner.spec import USE_CASES_DIR, load_spec

    return load_spec(USE_CASES_DIR / "store_sales.yaml")


@pytest.fixture(scope="module")
def sales_examples(sales_spec) -> pd.DataFrame:
    """3 series x 100 weeks (2024-01-01 on), labelled and with derived features: weeks 52-99 remain."""
    from headliner.data.time_features import derive_features
    from tests.unit.test_time_features import labelled, weekly_sales

    return derive_features(labelled(weekly_sales(series=3, weeks=100, missing=0.0), sales_spec), sales_spec, "t")[0]


def test_split_by_time_orders_the_splits_and_counts_the_weeks(sales_examples, sales_spec):
    train, validation, test, report = split_examples(sales_examples, sales_spec, "t")
    assert train["date"].max() < validation["date"].min() <= validation["date"].max() < test["date"].min()
    # test_last 8 weeks, validation_last 8 weeks, 3 series; 48 weeks in all
    assert (len(train), len(validation), len(test)) == (3 * 32, 3 * 8, 3 * 8)
    assert test["date"].nunique() == validation["date"].nunique() == 8
    assert test["date"].max() == sales_examples["date"].max()
    assert report.facts["test date range"] == "2025-10-06 to 2025-11-24"
    assert report.facts["validation date range"] == "2025-08-11 to 2025-09-29"
    assert report.facts["train date range"] == "2024-12-30 to 2025-08-04"
    assert report.facts["test mean target"] == f"{test['sales'].mean():.4g} units"
    assert not any("label distance" in fact for fact in report.facts) and report.label_counts == {}
    assert report.facts["train fingerprint"] == dataframe_fingerprint(train)


def test_split_by_time_with_too_little_history_names_spans_and_dates(sales_examples, sales_spec):
    spec = sales_spec.model_copy(
        update={"split": sales_spec.split.model_copy(update={"validation_last": "40 weeks", "test_last": "8w"})}
    )
    with pytest.raises(
        DataValidationError,
        match=r"^t: a split by time leaves the train split empty: test_last '8w' and validation_last '40 weeks' "
        r"before it, counted back from the data's last date; the data spans 2024-12-30 to 2025-11-24 \(date\)",
    ):
        split_examples(sales_examples, spec, "t")


def test_a_regression_split_by_group_is_stratified_by_the_targets_level(sales_spec):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({name: rng.random(1000) for name in sales_spec.feature_names})
    frame["sales"] = rng.lognormal(5, 1, 1000)
    by_group = sales_spec.split.model_construct(by="group", train=0.6, validation=0.2, test=0.2, seed=1)
    spec = sales_spec.model_copy(update={"split": by_group, "time_series": None})
    train, validation, test, report = split_examples(frame, spec, "t")
    assert (len(train), len(validation), len(test)) == (600, 200, 200)
    for part in (train, validation, test):
        assert part["sales"].median() == pytest.approx(frame["sales"].median(), rel=0.1)
    assert "test mean target" in report.facts and report.label_counts == {}
