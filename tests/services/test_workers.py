"""`python run.py serve --workers 2`: two BentoML worker processes on one port behave as one service. Under
concurrent traffic on fresh connections (so both workers answer), every answered request is exactly one
inference-log row, feedback sent to either worker joins the request it labels, /metrics from either worker
reports the whole service, rollout policies reach both workers and split the whole traffic, and a promotion
swaps production on both with no failed request."""

import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import pytest

from headliner.governance import promotion as governance
from headliner.serving.feedback import FeedbackStore
from headliner.serving.inference_log import logged_items, read_inference_log
from tests.helpers.cli import run_cli
from tests.helpers.payloads import SONG, v2_request
from tests.helpers.service import RunningService, launch_wine_production, quick_polling_env
from tests.services.test_rollout_service import MODEL, _top, _wines, wine_versions  # noqa: F401 (a fixture)

WORKERS = 2
METRIC_LINE = re.compile(r"^(\w+(?:\{[^}]*\})?) (\S+)$")

# (endpoint as logged, path, body) per kind of request; the bad song gets a 422, logged like the others
JUKEBOX_REQUESTS = [
    ("predict", "/predict", SONG),
    ("v2", "/v2/models/jukebox/infer", v2_request()),
    ("predict", "/predict", {**SONG, "tempo": 300.0}),
]


def serve_command(options: list[str], port: int) -> list[str]:
    return [sys.executable, "run.py", "serve", *options, "--workers", str(WORKERS), "--port", str(port)]


def send_all(url: str, jobs: list[tuple[str, dict]], threads: int = 12) -> list[httpx.Response]:
    """POST each (path, body) from `threads` threads, each request on a new connection (a connection stays
    with the worker that accepted it), in order of `jobs`."""
    local = threading.local()

    def send(job: tuple[str, dict]) -> httpx.Response:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=30, trust_env=False, headers={"Connection": "close"})
        path, body = job
        return local.client.post(path, json=body)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(send, jobs))


def metrics(url: str) -> dict[str, float]:
    """One scrape of /metrics on a new connection: sample (name with labels) -> value."""
    text = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, trust_env=False).text
    return {m.group(1): float(m.group(2)) for line in text.splitlines() if (m := METRIC_LINE.match(line))}


def worker_requests(scrape: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in scrape.items() if name.startswith("headliner_worker_requests_total")}


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def rollout_workers(service: RunningService) -> list[dict]:
    return httpx.get(f"{service.url}/rollout", headers={"Connection": "close"}, trust_env=False).json()["workers"]


@pytest.fixture
def two_workers(jukebox_onnx_file, isolated_env, tmp_path):
    command = partial(serve_command, ["--model-file", str(jukebox_onnx_file)])
    running = RunningService.launch(
        command, quick_polling_env(isolated_env, tmp_path), tmp_path, f"sqlite:///{tmp_path}/log.sqlite"
    )
    try:
        wait_until(lambda: metrics(running.url).get("headliner_workers") == WORKERS, "both workers serve")
        yield running
    finally:
        running.stop()


def test_two_workers_log_every_request_once_join_feedback_and_report_the_whole_service(two_workers, predictor):
    service = two_workers
    assert f"at {service.url} by {WORKERS} worker processes" in service.text()
    jobs = [JUKEBOX_REQUESTS[i % 3] for i in range(900)]
    answers = send_all(service.url, [(path, body) for _, path, body in jobs])
    answered = [
        (endpoint, r.status_code, r.headers["x-request-id"]) for (endpoint, _, _), r in zip(jobs, answers, strict=True)
    ]
    assert [status for _, status, _ in answered] == [200, 200, 422] * 300
    assert len({request_id for _, _, request_id in answered}) == 900

    # feedback for every answered song, each on a new connection, so both workers store some
    predicted = [
        r.json()["request_id"]
        for (endpoint, _, _), r in zip(jobs, answers, strict=True)
        if endpoint == "predict" and r.status_code == 200
    ]
    labels = [(request_id, predictor.classes[i % len(predictor.classes)]) for i, request_id in enumerate(predicted)]
    stored = send_all(service.url, [("/feedback", {"request_id": r, "label": label}) for r, label in labels])
    assert {r.status_code for r in stored} == {200}

    # /metrics from either worker: the whole service, both workers having answered
    expected = {
        'headliner_requests_total{endpoint="predict",status="200"}': 300,
        'headliner_requests_total{endpoint="predict",status="422"}': 300,
        'headliner_requests_total{endpoint="v2",status="200"}': 300,
        'headliner_requests_total{endpoint="feedback",status="200"}': 300,
        "headliner_inference_log_rows_written_total": 900,
        "headliner_inference_log_rows_pending": 0,
        "headliner_workers": WORKERS,
    }
    # another worker's counters are as old as its last publication (every 0.25 s, later under load): ten
    # scrapes in a row, landing on either worker, show the whole service once every worker has published
    scrapes: list[dict[str, float]] = []

    def ten_scrapes_show_the_whole_service() -> bool:
        scrapes[:] = [metrics(service.url) for _ in range(10)]
        return all({name: scrape.get(name) for name in expected} == expected for scrape in scrapes)

    wait_until(ten_scrapes_show_the_whole_service, "every worker's counters in ten scrapes of /metrics in a row")
    for scrape in scrapes:
        assert scrape['headliner_request_latency_seconds_count{endpoint="predict"}'] == 600
        assert scrape['headliner_rows_scored_total{endpoint="v2"}'] == 300
    by_worker = worker_requests(scrapes[0])
    assert len(by_worker) == WORKERS and all(n > 0 for n in by_worker.values()) and sum(by_worker.values()) == 1200
    assert all(worker_requests(scrape) == by_worker for scrape in scrapes)
    workers = rollout_workers(service)
    assert len({worker["pid"] for worker in workers}) == WORKERS
    print(f"\n{WORKERS} workers answered {len(answered)} requests + {len(stored)} labels; by worker: {by_worker}")

    assert service.stop() == 0
    logged = read_inference_log(service.log_url)
    assert len(logged) == len(answered)  # not one lost, not one twice
    assert sorted(zip(logged["endpoint"], logged["status"], logged["request_id"], strict=True)) == sorted(answered)
    print(f"inference log: {len(logged)} rows for {len(answered)} answered requests")

    feedback = FeedbackStore(service.log_url)
    try:
        truth = feedback.read()
    finally:
        feedback.close()
    joined = logged_items(logged).merge(truth, on=["request_id", "item"], how="inner")
    assert len(joined) == len(labels) and set(joined["request_id"]) == set(predicted)
    assert dict(zip(joined["request_id"], joined["label"], strict=True)) == dict(labels)


@pytest.fixture(scope="module")
def rollout_workers_service(wine_versions, isolated_env, tmp_path_factory):  # noqa: F811 (the fixture)
    folder = tmp_path_factory.mktemp("rollout-workers")
    running = launch_wine_production(isolated_env, folder, "--workers", str(WORKERS))
    try:
        wait_until(lambda: len(rollout_workers(running)) == WORKERS, "both workers serve")
        yield running
    finally:
        running.stop()


def _rollout(service: RunningService, *args: str) -> str:
    result = run_cli(["rollout", *args, "--config", "configs/use_cases/wine.yaml", "--url", service.url], service.env)
    assert result.returncode == 0 and "Applied by the service" in result.stdout, result.stdout + result.stderr
    return result.stdout


def _versions_and_tops(answers: list[httpx.Response]) -> list[tuple[str, list[str]]]:
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers if r.status_code != 200][:3]
    return [(r.json()["model_version"], [c["code"] for c in r.json()["predictions"][0]["top"]]) for r in answers]


def test_rollouts_and_a_promotion_reach_both_workers(rollout_workers_service, wine_versions):  # noqa: F811
    service = rollout_workers_service
    production, candidate, files = wine_versions
    wines = _wines(1200)
    expected = {version: _top(data, wines) for version, data in files.items()}

    # canary 30%: in force on both workers before `rollout set` returns; the whole traffic splits 30/70
    _rollout(service, "set", "--canary", "30")
    assert {(w["mode"], w["candidate_version"]) for w in rollout_workers(service)} == {("canary", candidate)}
    before = worker_requests(metrics(service.url))
    canary = _versions_and_tops(send_all(service.url, [("/predict", wine) for wine in wines[:600]]))
    assert all(top == expected[version][i] for i, (version, top) in enumerate(canary))
    to_candidate = sum(version == candidate for version, _ in canary)
    assert 0.22 <= to_candidate / 600 <= 0.38, to_candidate
    time.sleep(0.5)  # every worker publishes its counters at least every 0.25 s
    after = worker_requests(metrics(service.url))
    assert len(after) == WORKERS and all(after[pid] - before.get(pid, 0) > 0 for pid in after), (before, after)

    # shadow: production answers on both workers, the candidate scores every request
    _rollout(service, "set", "--shadow")
    shadowed = send_all(service.url, [("/predict", wine) for wine in wines[600:800]])
    assert {version for version, _ in _versions_and_tops(shadowed)} == {production}
    shadow_ids = {r.headers["x-request-id"] for r in shadowed}

    # a promotion under load: both workers swap to the new production, no request fails
    answers: list[httpx.Response] = []
    stop = threading.Event()

    def load(thread: int) -> None:
        """Wine i, as request swap-<thread>-<i>, until stopped."""
        with httpx.Client(base_url=service.url, timeout=30, trust_env=False, headers={"Connection": "close"}) as client:
            i = 800
            while not stop.is_set():
                request_id = f"swap-{thread}-{i}"
                answers.append(
                    client.post("/predict", json=wines[i % len(wines)], headers={"X-Request-ID": request_id})
                )
                i += 1

    threads = [threading.Thread(target=load, args=(thread,)) for thread in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        request = governance.request_promotion(MODEL, int(candidate), "production", "workers test", "alice")
        governance.approve(request.id, "bob", override="workers test: the swap is what is tested")
        wait_until(
            lambda: {w["production_version"] for w in rollout_workers(service)} == {candidate},
            "both workers serve the promoted version",
        )
        swapped_at = len(answers)
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    swap = _versions_and_tops(answers)  # every answer a 200
    assert {version for version, _ in swap[:20]} == {production}
    after_swap = swap[swapped_at + len(threads) :]  # past the requests in flight when the last worker swapped
    assert {version for version, _ in after_swap} == {candidate} and len(after_swap) > 20
    for response, (version, top) in zip(answers, swap, strict=True):
        assert top == expected[version][int(response.headers["x-request-id"].split("-")[2]) % len(wines)]
    print(f"\nswap under load: {len(answers)} requests, 0 failed, {swapped_at} before both workers swapped")

    assert service.stop() == 0
    logged = read_inference_log(service.log_url)
    answered = [r.headers["x-request-id"] for r in (*shadowed, *answers)]
    answered_ids = set(answered)
    assert len(answered_ids) == len(answered)
    served = logged[logged["variant"] != "shadow"]
    in_test = served[served["request_id"].isin(answered_ids)]
    assert len(in_test) == len(answered) and set(in_test["request_id"]) == answered_ids  # one row each
    assert len(served) == 600 + len(answered)  # the canary's requests too
    # the shadow policy stayed in force until the promotion left no candidate
    shadowed_in_swap = {
        r.headers["x-request-id"] for r, (version, _) in zip(answers, swap, strict=True) if version == production
    }
    shadow_rows = logged.loc[logged["variant"] == "shadow", "request_id"]
    assert sorted(shadow_rows) == sorted(shadow_ids | shadowed_in_swap)
    print(f"inference log: {len(served)} answered rows for {600 + len(answered)} answered requests")
