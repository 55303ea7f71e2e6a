"""`simulate-traffic` without ZenML or a service: drift options are parsed or refused naming the item,
held-out rows become valid, shifted, reproducible requests, and the CLI refuses bad options and a
missing service in one line."""

import pytest

from headliner.errors import HeadlinerError
from headliner.monitoring.traffic import parse_drift, traffic_songs
from headliner.spec import FeatureType
from tests.helpers.cli import run_cli
from tests.helpers.ports import refused_url
from tests.helpers.traffic import held_out_frame

# -- parse_drift -------------------------------------------------------------------------------------


def test_parse_drift_reads_feature_shift_pairs(jukebox_spec, wine_spec):
    assert parse_drift(["tempo=30", "energy=-0.2", " loudness = +5 "], jukebox_spec) == {
        "tempo": 30.0,
        "energy": -0.2,
        "loudness": 5.0,
    }
    assert parse_drift([], jukebox_spec) == {}
    assert parse_drift(["alcohol=1.5"], wine_spec) == {"alcohol": 1.5}


@pytest.mark.parametrize(
    "values, message",
    [
        (["tempo30"], "--drift 'tempo30': expected FEATURE=SHIFT, e.g. danceability=0.1"),
        (["=5"], "--drift '=5': expected FEATURE=SHIFT"),
        (
            ["tempoo=30"],
            "--drift 'tempoo=30': unknown feature 'tempoo' (did you mean 'tempo'?); "
            "expected one of is_explicit, duration_ms,",
        ),
        (["genre=1"], "--drift 'genre=1': unknown feature 'genre'; expected one of is_explicit,"),
        (["tempo=fast"], "--drift 'tempo=fast': shift 'fast' is not a finite number; expected e.g. danceability=0.1"),
        (["tempo="], "--drift 'tempo=': shift '' is not a finite number"),
        (["tempo=nan"], "--drift 'tempo=nan': shift 'nan' is not a finite number"),
        (
            ["tempo=10", "energy=0.1", "tempo=20"],
            "--drift 'tempo=20': feature 'tempo' is shifted twice; give each feature once",
        ),
    ],
)
def test_parse_drift_errors_name_the_item_and_what_was_expected(jukebox_spec, values, message):
    with pytest.raises(HeadlinerError) as error:
        parse_drift(values, jukebox_spec)
    assert str(error.value).startswith(message)


# -- traffic_songs -----------------------------------------------------------------------------------


def test_songs_are_json_ready_in_spec_order_with_their_labels(jukebox_spec):
    frame = held_out_frame(jukebox_spec, 50)
    songs, labels = traffic_songs(frame, jukebox_spec, 20, {}, seed=1)
    assert len(songs) == len(labels) == 20
    row_of = {key: frame.iloc[position] for position, key in enumerate(frame["danceability"])}
    for song, label in zip(songs, labels, strict=True):
        assert list(song) == jukebox_spec.feature_names
        row = row_of[song["danceability"]]
        assert label == row["country"]
        for feature in jukebox_spec.features:
            expected_type = float if feature.dtype is FeatureType.FLOAT else int
            assert type(song[feature.name]) is expected_type
            assert song[feature.name] == row[feature.name]  # no drift: the row as it is


def test_drift_shifts_by_exactly_the_amount_and_clips_at_the_spec_bounds(jukebox_spec):
    frame = held_out_frame(jukebox_spec, 200)
    base, base_labels = traffic_songs(frame, jukebox_spec, 100, {}, seed=2)
    drifted, labels = traffic_songs(frame, jukebox_spec, 100, {"tempo": 30.0, "energy": -0.2}, seed=2)
    assert labels == base_labels
    shifted = clipped = 0
    for before, after in zip(base, drifted, strict=True):
        if before["tempo"] + 30 <= 250:
            assert after["tempo"] == before["tempo"] + 30.0
            shifted += 1
        else:
            assert after["tempo"] == 250.0
            clipped += 1
        assert after["energy"] == (before["energy"] - 0.2 if before["energy"] >= 0.2 else 0.0)
        assert {k: v for k, v in after.items() if k not in ("tempo", "energy")} == {
            k: v for k, v in before.items() if k not in ("tempo", "energy")
        }
    assert shifted > 0 and clipped > 0

    far, _ = traffic_songs(frame, jukebox_spec, 100, {"duration_ms": 5e6, "loudness": 100, "key": -20}, seed=2)
    assert {(s["duration_ms"], s["loudness"], s["key"]) for s in far} == {(1_200_000, 0.0, 0)}


def test_int_and_bool_features_stay_integers_after_a_fractional_shift(jukebox_spec):
    frame = held_out_frame(jukebox_spec, 100)
    base, _ = traffic_songs(frame, jukebox_spec, 60, {}, seed=4)
    drifted, _ = traffic_songs(frame, jukebox_spec, 60, {"key": 0.6, "is_explicit": 0.7, "mode": -0.4}, seed=4)
    for before, after in zip(base, drifted, strict=True):
        assert type(after["key"]) is type(after["is_explicit"]) is type(after["mode"]) is int
        assert after["key"] == min(before["key"] + 1, 11)
        assert after["is_explicit"] == 1  # 0 + 0.7 rounds to 1; 1 + 0.7 is clipped to 1
        assert after["mode"] == before["mode"]  # 1 - 0.4 rounds back to 1; 0 - 0.4 is clipped to 0


def test_sampling_is_seeded_and_uses_replacement_only_when_needed(jukebox_spec, wine_spec):
    frame = held_out_frame(jukebox_spec, 30)
    assert traffic_songs(frame, jukebox_spec, 25, {}, seed=5) == traffic_songs(frame, jukebox_spec, 25, {}, seed=5)
    assert (
        traffic_songs(frame, jukebox_spec, 25, {}, seed=5)[0] != traffic_songs(frame, jukebox_spec, 25, {}, seed=6)[0]
    )

    keys = lambda songs: [song["danceability"] for song in songs]  # noqa: E731
    fewer, _ = traffic_songs(frame, jukebox_spec, 29, {}, seed=5)
    assert len(set(keys(fewer))) == 29
    every, _ = traffic_songs(frame, jukebox_spec, 30, {}, seed=5)
    assert sorted(keys(every)) == sorted(frame["danceability"])  # each row exactly once
    more, _ = traffic_songs(frame, jukebox_spec, 75, {}, seed=5)
    assert len(more) == 75 and set(keys(more)) <= set(frame["danceability"]) and len(set(keys(more))) < 75

    wine = held_out_frame(wine_spec, 10)  # nothing song-specific: another spec works the same way
    songs, labels = traffic_songs(wine, wine_spec, 12, {"alcohol": 100.0}, seed=0)
    assert {song["alcohol"] for song in songs} == {wine_spec.feature("alcohol").max}
    assert set(labels) <= set(wine_spec.target.classes) and list(songs[0]) == wine_spec.feature_names


def test_songs_need_the_spec_columns_and_a_request(jukebox_spec):
    frame = held_out_frame(jukebox_spec, 10)
    with pytest.raises(
        HeadlinerError,
        match=r"held-out rows: missing column\(s\) tempo, country; expected the spec's features and target 'country'",
    ):
        traffic_songs(frame.drop(columns=["tempo", "country"]), jukebox_spec, 5, {}, seed=0)
    with pytest.raises(HeadlinerError, match="held-out rows: none"):
        traffic_songs(frame.iloc[:0], jukebox_spec, 5, {}, seed=0)
    with pytest.raises(HeadlinerError, match="requests: expected at least 1, got 0"):
        traffic_songs(frame, jukebox_spec, 0, {}, seed=0)


def test_cli_refuses_bad_drift_and_a_missing_service_in_one_line(isolated_env):
    bad_drift = run_cli(["simulate-traffic", "--requests", "5", "--drift", "tempoo=3"], isolated_env)
    assert bad_drift.returncode == 1
    assert bad_drift.stderr.startswith("error: --drift 'tempoo=3': unknown feature 'tempoo' (did you mean 'tempo'?)")
    assert bad_drift.stderr.count("\n") == 1

    with refused_url() as closed:
        no_service = run_cli(["simulate-traffic", "--requests", "5", "--url", closed], isolated_env)
    assert no_service.returncode == 1
    assert no_service.stderr.startswith(f"error: no service answers at {closed} (")
    assert "python run.py serve" in no_service.stderr and "Traceback" not in no_service.stderr

    no_requests = run_cli(["simulate-traffic", "--requests", "0"], isolated_env)
    assert no_requests.returncode == 2 and "--requests" in no_requests.stderr
