"""Rollouts in the serving app in-process, with two real packaged versions: the canary split within
statistical tolerance, A/B stickiness, shadow scoring that never changes an answer and logs both, every
response naming (and computed by) the version that answered, the controller following the policy table
and the production stage, and the rollout report."""

import logging
import random

import numpy as np
import orjson
import pytest

from headliner.model.onnx_packaging import OnnxPredictor
from headliner.serving.app import InferenceApp
from headliner.serving.inference_log import InferenceLog, read_inference_log
from headliner.serving.rollout import PolicyStore, RolloutController
from headliner.serving.routing import CANDIDATE, PRODUCTION, SHADOW, RolloutPolicy, Routing, ab_bucket
from headliner.serving.server import ModelServer
from tests.helpers.payloads import random_songs, v2_request_of
from tests.helpers.serving import Client


@pytest.fixture
def seeded_random():
    """The canary draws with Python's `random`: seeded, so the split a test sees is the same every run."""
    state = random.getstate()
    random.seed(20)
    yield
    random.setstate(state)


@pytest.fixture(scope="module")
def songs(jukebox_spec) -> list[dict]:
    """200 valid songs, spread over each feature's range."""
    return random_songs(jukebox_spec, 200, seed=11)


def _servers(versions: dict[str, bytes], log=None) -> tuple[ModelServer, ModelServer]:
    primary = ModelServer(OnnxPredictor(versions["1"]), log)
    return primary, primary.sibling(OnnxPredictor(versions["2"]))


def _expected(server: ModelServer, songs: list[dict]) -> tuple[np.ndarray, list[list[str]]]:
    """The version's own probabilities and top-k codes for each song, scored alone as a one-song request
    is (ONNX Runtime's last digits depend on the batch a row is scored in)."""
    probabilities = np.concatenate(
        [server.predictor.probabilities(server.rules.songs_matrix([song], 1)) for song in songs]
    )
    order, _ = server.predictor.top_classes(probabilities)
    return probabilities, server.classes[order].tolist()


def test_policies_need_a_share_for_split_modes():
    assert RolloutPolicy(mode="canary", percent=20).describe() == "canary: 20% of requests to the candidate (staging)"
    assert RolloutPolicy(mode="ab", percent=50, ab_header="X-User-ID").ab_header == "x-user-id"
    for mode in ("canary", "ab"):
        with pytest.raises(ValueError, match=f"{mode}: percent must be in \\(0, 100\\], got 0"):
            RolloutPolicy(mode=mode)
    with pytest.raises(ValueError):
        RolloutPolicy(mode="canary", percent=120)


def test_canary_split_is_within_statistical_tolerance(jukebox_versions, seeded_random):
    primary, candidate = _servers(jukebox_versions)
    routing = Routing(primary, candidate, RolloutPolicy(mode="canary", percent=20))
    n = 20_000
    chosen = [routing.choose(None) for _ in range(n)]
    to_candidate = sum(server is candidate for server, _, _ in chosen)
    assert abs(to_candidate / n - 0.20) < 4 * (0.2 * 0.8 / n) ** 0.5  # 4 standard errors: 0.011
    assert all(
        variant == (CANDIDATE if server is candidate else PRODUCTION) and shadow is None
        for server, variant, shadow in chosen
    )


def test_ab_assignment_is_sticky_per_key_and_splits_the_keys(jukebox_versions):
    primary, candidate = _servers(jukebox_versions)
    routing = Routing(primary, candidate, RolloutPolicy(mode="ab", percent=30))
    again = Routing(primary, candidate, RolloutPolicy(mode="ab", percent=30))  # another worker, or after a restart
    keys = [f"user-{i}".encode() for i in range(5_000)]
    first = [routing.choose(key)[0] for key in keys]
    assert all(
        routing.choose(key)[0] is server and again.choose(key)[0] is server
        for key, server in zip(keys, first, strict=True)
    )
    share = sum(server is candidate for server in first) / len(keys)
    assert abs(share - 0.30) < 4 * (0.3 * 0.7 / len(keys)) ** 0.5
    assert routing.choose(None)[:2] == (primary, PRODUCTION)  # no key: the control group
    assert 0 <= ab_bucket(b"user-1") < 100 and ab_bucket(b"user-1") == ab_bucket(b"user-1")


def test_a_candidate_equal_to_production_or_missing_means_production_only(jukebox_versions):
    primary, _ = _servers(jukebox_versions)
    for routing in (
        Routing(primary, None, RolloutPolicy(mode="canary", percent=100)),
        Routing(primary, primary, RolloutPolicy(mode="shadow")),
    ):
        assert routing.mode == "off" and routing.choose(b"k") == (primary, PRODUCTION, None)
        assert "waits: no candidate version" in routing.status()["describe"]
    assert Routing(primary).choose(None) == (primary, None, None)  # a fixed model: no variant names


def test_shadow_never_changes_an_answer_and_logs_both_versions(jukebox_versions, songs, tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log = InferenceLog(url, OnnxPredictor(jukebox_versions["1"]).feature_names, flush_seconds=60)
    primary, candidate = _servers(jukebox_versions, log)
    _, production_tops = _expected(primary, songs)
    _, candidate_tops = _expected(candidate, songs)
    assert production_tops != candidate_tops  # the two versions disagree somewhere
    app = InferenceApp()
    app.route(Routing(primary, candidate, RolloutPolicy(mode="shadow")))
    client = Client(app)
    ids = []
    try:
        for song, tops in zip(songs[:50], production_tops[:50], strict=True):
            response = client.post("/predict", json=song)
            assert response.status_code == 200 and response.headers["x-model-version"] == "1"
            body = response.json()
            assert body["model_version"] == "1" and [c["code"] for c in body["predictions"][0]["top"]] == tops
            ids.append(body["request_id"])
    finally:
        client.close()
        assert log.close() == 0
    frame = read_inference_log(url)
    assert len(frame) == 100
    answered, shadowed = frame[frame["variant"] == PRODUCTION], frame[frame["variant"] == SHADOW]
    assert answered["request_id"].tolist() == ids == shadowed["request_id"].tolist()
    assert set(answered["model_version"]) == {"1"} and set(shadowed["model_version"]) == {"2"}
    assert [orjson.loads(o)["top"][0] for o in shadowed["outputs"]] == candidate_tops[:50]
    assert (shadowed["status"] == 200).all() and shadowed["inputs"].tolist() == answered["inputs"].tolist()
    assert [orjson.loads(o)["top"][0] for o in answered["outputs"]] == production_tops[:50]


def test_every_answer_names_the_version_that_computed_it(jukebox_versions, songs, tmp_path, seeded_random):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log = InferenceLog(url, OnnxPredictor(jukebox_versions["1"]).feature_names, flush_seconds=60)
    primary, candidate = _servers(jukebox_versions, log)
    expected = {"1": _expected(primary, songs)[1], "2": _expected(candidate, songs)[1]}
    app = InferenceApp()
    app.route(Routing(primary, candidate, RolloutPolicy(mode="canary", percent=50)))
    client = Client(app)
    seen = {}
    try:
        for index, song in enumerate(songs):
            response = client.post("/predict", json=song)
            version = response.json()["model_version"]
            assert response.headers["x-model-version"] == version
            assert [c["code"] for c in response.json()["predictions"][0]["top"]] == expected[version][index]
            seen[response.json()["request_id"]] = version
        pinned = client.post("/v2/models/jukebox/versions/2/infer", json=v2_request_of([songs[0]], primary.rules.names))
        assert pinned.status_code == 200 and pinned.json()["model_version"] == "2"
        assert client.get("/v2/models/jukebox").json()["versions"] == ["1", "2"]
        assert client.get("/v2/models/jukebox/versions/3").status_code == 404
        status = client.get("/rollout").json()
        assert (status["mode"], status["production_version"], status["candidate_version"]) == ("canary", "1", "2")
    finally:
        client.close()
        assert log.close() == 0
    assert 60 <= sum(v == "2" for v in seen.values()) <= 140  # 200 requests at 50%
    frame = read_inference_log(url)
    logged = dict(zip(frame["request_id"], zip(frame["model_version"], frame["variant"], strict=True), strict=True))
    assert all(logged[rid] == (version, CANDIDATE if version == "2" else PRODUCTION) for rid, version in seen.items())


def test_controller_reads_production_and_candidate_as_one_pair_across_a_promotion(jukebox_versions, tmp_path):
    """A promotion that lands between the reads of production and of the candidate must not look like
    'old production, no candidate': the shadow would stop until the next registry poll."""
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    registry = {"production": "1", "staging": "2"}
    base = ModelServer(OnnxPredictor(jukebox_versions["1"]), None)
    app = InferenceApp()
    reads: list[str] = []

    def resolve(reference: str) -> str | None:
        answer = registry.get(reference)
        reads.append(reference)
        if reads == ["production"]:  # v2 is approved to production right after the poll's first read
            registry.update(production="2", staging=None)
        return answer

    controller = RolloutController(app.route, base, PolicyStore(url), resolve, jukebox_versions.__getitem__, 60, 0)
    PolicyStore(url).write("jukebox", RolloutPolicy(mode="shadow"), "alice")
    reads.clear()
    assert controller.refresh() is True
    assert reads == ["production", "staging", "production", "staging", "production"]  # moved: read again
    assert (app.routing.primary.version, app.routing.candidate, app.routing.mode) == ("2", None, "off")


def test_controller_follows_the_policy_table_and_the_production_stage(jukebox_versions, tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    registry = {"production": "1", "staging": "2", "1": "1", "2": "2"}
    loads = []

    def load(version: str) -> bytes:
        loads.append(version)
        return jukebox_versions[version]

    base = ModelServer(OnnxPredictor(jukebox_versions["1"]), None)
    app = InferenceApp()
    store = PolicyStore(url)
    controller = RolloutController(app.route, base, store, registry.get, load, poll_seconds=60, registry_poll_seconds=0)
    assert app.routing.primary is base and app.routing.mode == "off" and app.routing.tracked
    assert controller.refresh() is False  # nothing changed

    record = PolicyStore(url).write("jukebox", RolloutPolicy(mode="canary", percent=20, reason="try v2"), "alice")
    assert controller.refresh() is True
    routing = app.routing
    assert (routing.mode, routing.primary.version, routing.candidate.version, routing.policy_id) == (
        "canary",
        "1",
        "2",
        record.id,
    )
    assert routing.primary is base and loads == ["2"]

    registry.update(production="2", staging=None)  # v2 approved to production
    assert controller.refresh() is True
    assert (app.routing.primary.version, app.routing.candidate, app.routing.mode) == ("2", None, "off")
    assert loads == ["2"]  # already loaded: reused

    PolicyStore(url).write("jukebox", RolloutPolicy(mode="ab", percent=50, candidate="1"), "alice")
    controller.refresh()
    assert (app.routing.mode, app.routing.primary.version, app.routing.candidate.version) == ("ab", "2", "1")

    def broken(version: str) -> bytes:
        raise OSError("artifact store unreachable")

    controller.load_model = broken
    registry["9"] = "9"
    PolicyStore(url).write("jukebox", RolloutPolicy(mode="shadow", candidate="9"), "bob")
    before = app.routing
    with caplog.at_level(logging.WARNING, logger="headliner.serving.rollout"):
        controller.refresh_safely()
    assert app.routing is before and "keeping the current routing (OSError: artifact store unreachable)" in caplog.text

    PolicyStore(url).write("jukebox", RolloutPolicy(), "bob")  # rollback
    controller.refresh_safely()
    assert (app.routing.mode, app.routing.primary.version, app.routing.candidate) == ("off", "2", None)
    assert [r.set_by for r in store.history("jukebox", 10)] == ["bob", "bob", "alice", "alice"]
    controller.stop()


def test_rollout_report_counts_variants_latency_labels_and_agreement(jukebox_versions, songs, tmp_path):
    from headliner.errors import HeadlinerError
    from headliner.serving.feedback import Feedback, FeedbackStore
    from headliner.serving.inference_log import InferenceRecord
    from headliner.serving.rollout_report import rollout_report

    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    primary, candidate = _servers(jukebox_versions)
    with pytest.raises(HeadlinerError, match="no inference log at"):
        rollout_report(url, "jukebox", jukebox_versions.get)
    log = InferenceLog(url, primary.predictor.feature_names, flush_seconds=60)
    matrix = primary.rules.songs_matrix(songs, len(songs))
    tops = {"1": _expected(primary, songs)[1], "2": _expected(candidate, songs)[1]}
    plan = []  # (request id, song, variant, version, latency)
    for i in range(100):
        variant, version = (CANDIDATE, "2") if i % 4 == 0 else (PRODUCTION, "1")
        plan.append((f"r{i}", i, variant, version, float(i + 1)))
        if i < 10:  # the first ten also scored in the shadow by v2
            plan.append((f"r{i}", i, SHADOW, "2", 0.5))
    for request_id, song, variant, version, latency in plan:
        top = np.asarray([tops[version][song]], dtype=object)
        log.append(
            InferenceRecord(
                1.7e9 + song,
                request_id,
                "predict",
                "jukebox",
                version,
                200,
                latency,
                1,
                matrix[song : song + 1],
                top,
                np.full((1, top.shape[1]), 0.1),
                None,
                variant,
            )
        )
    log.append(
        InferenceRecord(1.7e9, "bad", "predict", "jukebox", "1", 422, 0.1, 0, None, None, None, "bad tempo", PRODUCTION)
    )
    log.append(
        InferenceRecord(
            1.7e9,
            "fixed",
            "predict",
            "jukebox",
            "1",
            200,
            0.1,
            1,
            matrix[:1],
            np.asarray([tops["1"][0]], dtype=object),
            np.full((1, 5), 0.1),
            None,
        )
    )
    assert log.close() == 0
    labels = {
        f"r{i}": tops["1"][i][0] if i % 2 else "ZZ" for i in range(0, 40)
    }  # right top-1 on odd, unknown class on even
    store = FeedbackStore(url)
    store.write([Feedback(request_id, 0, label) for request_id, label in labels.items()], "api")
    store.close()

    report = rollout_report(url, "jukebox", jukebox_versions.get, policy="canary: 25%")

    figures = {(v.variant, v.version): v for v in report.variants}
    assert list(figures) == [
        (PRODUCTION, "1"),
        (CANDIDATE, "2"),
        (SHADOW, "2"),
    ]  # the unversioned 'fixed' row is left out
    production, canary, shadow = figures.values()
    assert (production.requests, production.errors, production.items) == (76, 1, 75)
    assert (canary.requests, canary.items, shadow.requests) == (25, 25, 10)
    answered = [latency for _, _, variant, _, latency in plan if variant == PRODUCTION]
    assert production.latency_p50_ms == pytest.approx(np.percentile(answered, 50))
    assert production.latency_p99_ms == pytest.approx(np.percentile(answered, 99))
    # labelled: r0..r39; odd ids carry production's top-1, so production (odd ids: all of r1..r39 not
    # divisible by 4) is right on them
    assert (production.labelled, production.accuracy) == (30, 20 / 30)
    assert canary.labelled == 10 and shadow.labelled == 10
    assert (production.top_k_accuracy, canary.accuracy) == (20 / 30, 0.0)
    agree = np.mean([one[0] == two[0] for one, two in zip(tops["1"][:100], tops["2"][:100], strict=True)])
    assert report.compared_versions == ["1", "2"] and report.agreement_items == 100  # each logged song, scored by both
    assert report.agreement == pytest.approx(agree) and 0 < agree < 1
    lines = report.lines()
    assert lines[0] == "Rollout of 'jukebox', every request logged under a rollout; policy now: canary: 25%"
    assert "top-1 agreement of v1 and v2" in lines[-1]


def test_monitoring_judges_the_production_version_of_a_rollout_by_default(jukebox_versions, tmp_path):
    from headliner.monitoring.window import newest_logged_version
    from headliner.serving.inference_log import InferenceRecord

    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log = InferenceLog(url, OnnxPredictor(jukebox_versions["1"]).feature_names, flush_seconds=60)
    for i, (version, variant) in enumerate([("1", None), ("1", PRODUCTION), ("2", CANDIDATE), ("2", SHADOW)]):
        log.append(
            InferenceRecord(
                1.7e9 + i, f"r{i}", "predict", "jukebox", version, 200, 1.0, 0, None, None, None, None, variant
            )
        )
    assert log.close() == 0
    assert newest_logged_version(url, "jukebox") == "1"
