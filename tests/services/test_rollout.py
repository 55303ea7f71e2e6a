"""Rollout swaps under load over real HTTP (the serving app under uvicorn): while the routing changes,
no request fails and every answer is wholly the version it names."""

import threading
import time

import httpx
import numpy as np

from headliner.model.onnx_packaging import PARITY_TOLERANCE, OnnxPredictor
from headliner.serving.app import InferenceApp
from headliner.serving.routing import RolloutPolicy, Routing
from headliner.serving.server import ModelServer
from tests.helpers.payloads import random_songs, v2_request_of
from tests.helpers.serving import serving


def test_swaps_under_load_fail_no_request_and_never_mix_versions(jukebox_versions, jukebox_spec):
    """Four client threads send v2 requests of 1 to 3 songs while the routing is swapped 40 times
    (policies, promotion, rollback); each keeps sending until the swaps are done and it has 40 answers.
    The version that answered is the one the answer names (body and header); its probabilities are that
    version's own for the songs sent, within the parity tolerance, and the two versions differ by more
    than twice that on every song, so no mix can pass."""
    primary = ModelServer(OnnxPredictor(jukebox_versions["1"]), None)
    candidate = primary.sibling(OnnxPredictor(jukebox_versions["2"]))
    servers = {"1": primary, "2": candidate}
    songs = random_songs(jukebox_spec, 200, seed=11)
    matrix = primary.rules.songs_matrix(songs, len(songs))
    apart = np.abs(primary.predictor.probabilities(matrix) - candidate.predictor.probabilities(matrix)).max(axis=1)
    assert (apart > 2 * PARITY_TOLERANCE).all()
    app = InferenceApp(primary)
    routings = [
        Routing(primary, candidate, RolloutPolicy(mode="canary", percent=50)),
        Routing(primary, candidate, RolloutPolicy(mode="shadow")),
        Routing(candidate, primary, RolloutPolicy(mode="ab", percent=50)),
        Routing(candidate, None, RolloutPolicy()),  # promoted
        Routing(primary, None, RolloutPolicy()),  # rolled back
    ]
    results, failures, stop = [], [], threading.Event()

    def client_loop(url: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        sent = 0
        with httpx.Client(base_url=url, timeout=30) as client:
            while not (stop.is_set() and sent >= 40):
                sent += 1
                picked = sorted(rng.choice(len(songs), size=int(rng.integers(1, 4)), replace=False).tolist())
                try:
                    response = client.post(
                        "/v2/models/jukebox/infer",
                        json=v2_request_of([songs[i] for i in picked], primary.rules.names),
                        headers={"x-user-id": f"u{seed}-{picked[0]}"},
                    )
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                body = response.json()
                got = np.asarray(body["outputs"][0]["data"], dtype=np.float32).reshape(len(picked), -1)
                results.append((body["model_version"], response.headers["x-model-version"], picked, got))

    with serving(app) as url:
        threads = [threading.Thread(target=client_loop, args=(url, seed)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for swap in range(40):
            app.route(routings[swap % len(routings)])
            time.sleep(0.03)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures[:3]
    assert len(results) >= 160
    for version, header, picked, got in results:
        assert header == version
        expected = servers[version].predictor.probabilities(matrix[picked])
        np.testing.assert_allclose(got, expected, rtol=0, atol=PARITY_TOLERANCE)
    assert {version for version, *_ in results} == {"1", "2"}
