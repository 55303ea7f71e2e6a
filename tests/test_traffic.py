"""`simulate-traffic` without ZenML: drift options are parsed or refused naming the item, held-out rows
become valid, shifted, reproducible requests, and a real service (the ASGI app under uvicorn) answers,
logs and stores the labels of the traffic sent; a missing or guarded service is a clear error."""

import numpy as np
import pandas as pd
import pytest

from headliner.errors import HeadlinerError
from headliner.monitoring.traffic import parse_drift, served_version, simulate_traffic, traffic_songs
from headliner.serving.app import InferenceApp, ModelServer
from headliner.serving.feedback import FeedbackStore
from headliner.serving.inference_log import InferenceLog, logged_items, read_inference_log
from headliner.spec import FeatureType, UseCaseSpec
from tests.conftest import free_port, run_cli, serving
from tests.test_serving_payloads import SONG

TOKEN = "traffic-token"


def held_out_frame(spec: UseCaseSpec, rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows like a test split: every feature spread over its valid range, a label, and a column that is
    not a feature. Float values are distinct, so a row can be recognised by its first float feature."""
    rng = np.random.default_rng(seed)
    columns = {"row_key": [f"row-{i}" for i in range(rows)]}
    for feature in spec.features:
        if feature.dtype is FeatureType.BOOL:
            columns[feature.name] = rng.integers(0, 2, rows).astype(bool)
        elif feature.dtype is FeatureType.INT:
            columns[feature.name] = rng.integers(int(feature.min), int(feature.max) + 1, rows)
        else:
            columns[feature.name] = rng.uniform(feature.min, feature.max, rows)
    columns[spec.target.column] = rng.choice(spec.target.classes, rows)
    return pd.DataFrame(columns)


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
            "--drift 'tempoo=30': unknown feature 'tempoo' (did you mean 'tempo'?); expected one of is_explicit, duration_ms,",
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
    for song, label in zip(songs, labels):
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
    for before, after in zip(base, drifted):
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
    for before, after in zip(base, drifted):
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


# -- against a real service --------------------------------------------------------------------------


def test_traffic_to_a_live_service_is_answered_logged_and_labelled(predictor, jukebox_spec, tmp_path):
    log_url = f"sqlite:///{tmp_path / 'inference.sqlite'}"
    log = InferenceLog(log_url, predictor.feature_names, flush_seconds=60)
    feedback = FeedbackStore(log_url)
    frame = held_out_frame(jukebox_spec, 30)
    songs, labels = traffic_songs(frame, jukebox_spec, 40, {"tempo": 10.0}, seed=3)  # 40 of 30 rows: repeats
    try:
        with serving(InferenceApp(ModelServer(predictor, log, feedback=feedback))) as url:
            assert served_version(url + "/", "jukebox") == "1"
            report = simulate_traffic(
                url, "jukebox", songs, labels, feedback_rate=0.5, concurrency=4, seed=3, progress=False
            )
        log.flush()
        logged = read_inference_log(log_url, endpoint="predict")
        stored = feedback.read()
    finally:
        log.close()
        feedback.close()

    assert (report.requests, report.answered, report.failed, report.failed_by_status, report.errors) == (
        40,
        40,
        0,
        {},
        [],
    )
    assert (report.feedback_sent, report.feedback_accepted, report.feedback_errors) == (20, 20, [])
    assert report.seconds > 0 and report.requests_per_second == pytest.approx(40 / report.seconds, rel=0.05)
    lines = report.summary_lines()
    assert lines[0].startswith(f"Sent 40 requests to 'jukebox' at {url} in ")
    assert lines[1:] == [
        "  answered 200: 40; failed: 0",
        "  feedback: 20 true labels sent to POST /feedback, 20 accepted",
    ]

    assert len(logged) == 40 and set(logged["status"]) == {200} and set(logged["rows"]) == {1}
    assert logged["request_id"].is_unique
    items = logged_items(logged)
    np.testing.assert_allclose(sorted(items["tempo"]), sorted(song["tempo"] for song in songs))
    # each stored label is the true label of the row its request sent
    label_of_row = dict(zip(frame["danceability"], frame["country"]))
    sent_row = dict(zip(items["request_id"], items["danceability"]))
    assert len(stored) == 20 and stored["request_id"].is_unique and set(stored["item"]) == {0}
    assert set(stored["request_id"]) <= set(logged["request_id"])
    assert all(
        label == label_of_row[sent_row[request_id]] for request_id, label in zip(stored["request_id"], stored["label"])
    )


def test_failures_are_counted_by_status_with_their_messages(predictor):
    songs = [SONG, {**SONG, "tempo": 999.0}, {**SONG, "key": 40}, SONG]
    labels = ["US", "GB", "DE", "FR"]
    with serving(InferenceApp(ModelServer(predictor, None, token=TOKEN))) as url:
        report = simulate_traffic(
            url, "jukebox", songs, labels, feedback_rate=1.0, token=TOKEN, concurrency=2, progress=False
        )
        assert (report.requests, report.answered, report.failed_by_status) == (4, 2, {"422": 2})
        assert sorted(report.errors) == [
            "HTTP 422: song.key: expected an integer in [0, 11], got 40",
            "HTTP 422: song.tempo: expected a number in [30, 250] BPM, got 999.0",
        ]
        # feedback for the 2 answered requests; this server has no store to keep it
        assert (report.feedback_sent, report.feedback_accepted) == (2, 0)
        assert report.feedback_errors == ["HTTP 503: this server keeps no feedback (it has no inference log)"]

        unauthorized = simulate_traffic(url, "jukebox", songs, labels, feedback_rate=1.0, progress=False)
        assert (unauthorized.answered, unauthorized.failed_by_status, unauthorized.feedback_sent) == (0, {"401": 4}, 0)
        assert unauthorized.errors == ["HTTP 401: missing or wrong bearer token: send Authorization: Bearer <token>"]
        assert unauthorized.summary_lines()[1] == "  answered 200: 0; failed: 4 (401: 4)"


def test_served_version_errors_say_what_to_do(predictor):
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(
        HeadlinerError,
        match=rf"^no service answers at {closed} \(.*\); start one with `python run.py serve` or `python run.py --pipeline deployment`$",
    ):
        served_version(closed, "jukebox")
    with pytest.raises(
        HeadlinerError, match=rf"^no service answers at {closed} \(.*\); start one with `python run.py serve`"
    ):
        simulate_traffic(closed, "jukebox", [SONG], ["US"], feedback_rate=0.0, progress=False)
    with pytest.raises(HeadlinerError, match=r"^--url '127.0.0.1:3000': expected http://HOST:PORT"):
        served_version("127.0.0.1:3000", "jukebox")

    with serving(InferenceApp(ModelServer(predictor, None, token=TOKEN))) as url:
        with pytest.raises(HeadlinerError) as error:
            served_version(url, "jukebox")
        assert str(error.value) == (
            f"the service at {url} answered 401 (missing or wrong bearer token): pass --token or set HEADLINER_API_TOKEN"
        )
        with pytest.raises(HeadlinerError, match="answered 401"):
            served_version(url, "jukebox", token="wrong")
        assert served_version(url, "jukebox", token=TOKEN) == "1"
        with pytest.raises(HeadlinerError) as error:
            served_version(url, "wine", token=TOKEN)
        assert str(error.value) == (
            f"the service at {url} serves model 'jukebox', not 'wine'; pass the --config of 'jukebox' or the --url of a 'wine' service"
        )


def test_cli_refuses_bad_drift_and_a_missing_service_in_one_line(isolated_env):
    bad_drift = run_cli(["simulate-traffic", "--requests", "5", "--drift", "tempoo=3"], isolated_env)
    assert bad_drift.returncode == 1
    assert bad_drift.stderr.startswith("error: --drift 'tempoo=3': unknown feature 'tempoo' (did you mean 'tempo'?)")
    assert bad_drift.stderr.count("\n") == 1

    closed = f"http://127.0.0.1:{free_port()}"
    no_service = run_cli(["simulate-traffic", "--requests", "5", "--url", closed], isolated_env)
    assert no_service.returncode == 1
    assert no_service.stderr.startswith(f"error: no service answers at {closed} (")
    assert "python run.py serve" in no_service.stderr and "Traceback" not in no_service.stderr

    no_requests = run_cli(["simulate-traffic", "--requests", "0"], isolated_env)
    assert no_requests.returncode == 2 and "--requests" in no_requests.stderr
