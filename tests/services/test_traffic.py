"""`simulate-traffic` against a real service (the ASGI app under uvicorn): the traffic sent is answered,
logged and its labels stored; failures are counted by status; a missing or guarded service is a clear
error."""

import numpy as np
import pytest

from headliner.errors import HeadlinerError
from headliner.monitoring.traffic import served_version, simulate_traffic, traffic_songs
from headliner.serving.app import InferenceApp
from headliner.serving.feedback import FeedbackStore
from headliner.serving.inference_log import InferenceLog, logged_items, read_inference_log
from headliner.serving.server import ModelServer
from tests.helpers.payloads import SONG
from tests.helpers.ports import refused_url
from tests.helpers.serving import serving
from tests.helpers.traffic import held_out_frame

TOKEN = "traffic-token"


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
    label_of_row = dict(zip(frame["danceability"], frame["country"], strict=True))
    sent_row = dict(zip(items["request_id"], items["danceability"], strict=True))
    assert len(stored) == 20 and stored["request_id"].is_unique and set(stored["item"]) == {0}
    assert set(stored["request_id"]) <= set(logged["request_id"])
    assert all(
        label == label_of_row[sent_row[request_id]]
        for request_id, label in zip(stored["request_id"], stored["label"], strict=True)
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
    with refused_url() as closed:
        with pytest.raises(
            HeadlinerError,
            match=rf"^no service answers at {closed} \(.*\); start one with `python run.py serve` or "
            r"`python run.py --pipeline deployment`$",
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
            f"the service at {url} answered 401 (missing or wrong bearer token): "
            "pass --token or set HEADLINER_API_TOKEN"
        )
        with pytest.raises(HeadlinerError, match="answered 401"):
            served_version(url, "jukebox", token="wrong")
        assert served_version(url, "jukebox", token=TOKEN) == "1"
        with pytest.raises(HeadlinerError) as error:
            served_version(url, "wine", token=TOKEN)
        assert str(error.value) == (
            f"the service at {url} serves model 'jukebox', not 'wine'; "
            "pass the --config of 'jukebox' or the --url of a 'wine' service"
        )
