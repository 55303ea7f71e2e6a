"""The worker board of a service with several worker processes, in one process: another worker's published
file counts in /metrics and /rollout (a running one's routing, a dead one's counters only), this worker's
own counters count as they are, and the last worker to leave removes the folder; `applied` waits for
every worker."""

import os

import orjson
import psutil
import pytest

from headliner.serving.rollout import applied
from headliner.serving.routing import RolloutPolicy, Routing
from headliner.serving.server import Metrics, ModelServer, WorkerBoard


def dead_pid() -> int:
    """A pid no process has now."""
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid += 1
    return pid


def other_worker(board: WorkerBoard, pid: int, predict_200: int, routing: dict | None = None) -> None:
    """Publish a state on `board` as the worker `pid` would."""
    counts = [0] * (len(Metrics.BUCKETS) + 1)
    counts[2] = predict_200
    state = {
        "pid": pid,
        "metrics": {
            "requests": [["predict", 200, predict_200]],
            "rows": {"predict": predict_200},
            "histograms": {"predict": [counts, 0.002 * predict_200]},
            "log_written": predict_200,
            "log_pending": 0,
        },
        "routing": routing,
    }
    (board.folder / f"worker-{pid}.json").write_bytes(orjson.dumps(state))


def samples(text: str) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))


@pytest.fixture
def board(tmp_path):
    board = WorkerBoard(tmp_path / "board", publish_seconds=60)
    yield board
    board.close()


def test_metrics_sum_every_worker_and_count_the_running_ones(board):
    metrics = Metrics(board=board)
    for _ in range(3):
        metrics.observe("predict", 200, 2, 0.0007)
    metrics.observe("v2", 422, 0, 0.003)
    running, dead = os.getppid(), dead_pid()
    other_worker(board, running, 5)
    other_worker(board, dead, 7)

    text = samples(metrics.text())
    assert text['headliner_requests_total{endpoint="predict",status="200"}'] == "15"
    assert text['headliner_requests_total{endpoint="v2",status="422"}'] == "1"
    assert text['headliner_rows_scored_total{endpoint="predict"}'] == str(6 + 5 + 7)
    assert text['headliner_request_latency_seconds_bucket{endpoint="predict",le="0.001"}'] == "3"
    assert text['headliner_request_latency_seconds_bucket{endpoint="predict",le="0.002"}'] == "15"
    assert text['headliner_request_latency_seconds_count{endpoint="predict"}'] == "15"
    assert text["headliner_workers"] == "2"  # the dead worker's counters count, the worker does not
    assert {name: value for name, value in text.items() if name.startswith("headliner_worker_requests")} == {
        f'headliner_worker_requests_total{{pid="{os.getpid()}"}}': "4",
        f'headliner_worker_requests_total{{pid="{running}"}}': "5",
        f'headliner_worker_requests_total{{pid="{dead}"}}': "7",
    }
    assert "headliner_workers" not in Metrics().text()  # a process without a board speaks for itself


def test_the_board_publishes_whole_files_and_the_last_worker_removes_it(board, tmp_path):
    metrics = Metrics(board=board)
    metrics.observe("predict", 200, 1, 0.001)
    board.start(lambda: {"metrics": metrics.snapshot(), "routing": None})
    published = orjson.loads(board.path.read_bytes())
    assert published["pid"] == os.getpid() and published["metrics"]["requests"] == [["predict", 200, 1]]
    assert list(board.folder.glob("*.tmp")) == []

    other_worker(board, os.getppid(), 1)
    board.close()
    assert not board.path.exists() and board.folder.is_dir()  # the other worker still runs

    last = WorkerBoard(tmp_path / "alone")
    other_worker(last, dead_pid(), 1)
    last.close()
    assert not last.folder.exists()


def test_rollout_status_names_what_each_running_worker_applies(board, predictor):
    server = ModelServer(predictor, None, board=board)
    routing = Routing(server, policy=RolloutPolicy(mode="shadow", candidate="2"), policy_id=7)
    other_worker(
        board,
        os.getppid(),
        0,
        {"policy_id": 6, "mode": "off", "production_version": "1", "candidate_version": None},
    )
    other_worker(board, dead_pid(), 0, {"policy_id": 5, "mode": "off", "production_version": "1"})
    status = routing.status()
    assert status["workers"] == [
        {"pid": os.getpid(), "policy_id": 7, "mode": "off", "production_version": "1", "candidate_version": None},
        {"pid": os.getppid(), "policy_id": 6, "mode": "off", "production_version": "1", "candidate_version": None},
    ]
    assert not applied(status, 7)
    status["workers"][1]["policy_id"] = 7
    assert applied(status, 7)
    assert "workers" not in Routing(ModelServer(predictor, None)).status()  # one process: no board
    assert applied({"policy_id": 3}, 3) and not applied({"policy_id": 2}, 3)
