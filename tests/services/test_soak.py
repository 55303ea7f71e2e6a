"""The service under mixed traffic and stopped under it (SIGTERM, as Kubernetes and `podman stop` stop it), on
the local SQLite inference log and on PostgreSQL (the `servers` stack's log database): no 5xx, every answered
request exactly one log row with the status it was answered, none for a request refused while stopping; the
service exits 0 within its drain timeout and, started again on the same log, keeps every row and logs on.
bench/soak.py runs the same traffic for longer and prints the figures."""

from collections.abc import Iterator
from functools import partial

import pytest

from headliner.serving.feedback import FeedbackStore
from tests.helpers.service import RunningService
from tests.helpers.soak import (
    FEEDBACK,
    REFUSALS,
    REQUESTS,
    MixedTraffic,
    audit,
    log_rows,
    postgresql_database,
    serve_command,
    soak_then_stop,
)

SOAK_SECONDS = 6  # of traffic before the stop signal (the client sends about 1,000 requests a second)
DRAIN_SECONDS = 5


@pytest.fixture
def postgresql_log() -> Iterator[str]:
    with postgresql_database() as url:
        yield url


def stored_labels(log_url: str) -> set[str]:
    """The request ids the feedback store holds labels of."""
    feedback = FeedbackStore(log_url)
    try:
        return set(feedback.read()["request_id"])
    finally:
        feedback.close()


def launch(jukebox_onnx_file, isolated_env, folder, log_url: str, workers: int) -> RunningService:
    env = {key: value for key, value in isolated_env.items() if not key.startswith("HEADLINER_")}
    env.update(HEADLINER_INFERENCE_LOG=log_url, HEADLINER_DRAIN_SECONDS=str(DRAIN_SECONDS))
    command = partial(serve_command, str(jukebox_onnx_file), workers)
    return RunningService.launch(command, env, folder, log_url)


def check_soak_and_stop(service: RunningService, restart) -> None:
    run = soak_then_stop(service, SOAK_SECONDS, connections=8, seed=21, stop_timeout=DRAIN_SECONDS + 30)
    traffic, before_stop = run.traffic, run.before_stop()
    assert len(before_stop) > 2000, f"too little traffic to judge: {traffic.statuses()}"
    kinds = {outcome.kind for outcome in before_stop}
    assert kinds == {*REQUESTS, FEEDBACK}, kinds
    # No 5xx and no wrong answer at any time; before the signal every request answered.
    assert traffic.server_errors() == []
    assert traffic.wrong_answers() == [], traffic.statuses()
    assert all(outcome.status is not None for outcome in before_stop), traffic.errors()
    # The stop: exit 0 within the drain timeout; what was not answered was refused, never left hanging.
    assert run.exit_code == 0, service.text()[-3000:]
    assert run.stop_seconds < DRAIN_SECONDS + 10
    assert set(traffic.errors()) <= REFUSALS, traffic.errors()
    assert any(outcome.status is None for outcome in run.after_stop()), "no request was sent to the stopped service"

    # Every answered request is one row with its status; a refused one has none.
    result = audit(traffic, log_rows(service.log_url))
    assert result.clean, result
    assert result.rows == result.expected_rows > 2000
    # Every label answered 200 is stored.
    assert len(traffic.labelled) > 100
    assert traffic.labelled <= stored_labels(service.log_url)

    # Started again on the same log: every row is still there, and new requests are logged after them.
    again = restart()
    try:
        after = MixedTraffic(again.url, connections=2, seed=22, id_prefix="after-restart").run(2)
        assert after.server_errors() == [] and after.wrong_answers() == []
    finally:
        assert again.stop() == 0
    rows = log_rows(service.log_url)
    assert audit(traffic, rows).clean
    assert audit(after, rows).clean and audit(after, rows).rows > 0
    assert traffic.labelled <= stored_labels(service.log_url)


def test_soak_and_sigterm_under_load_lose_no_sqlite_row(jukebox_onnx_file, isolated_env, tmp_path):
    log_url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    start = partial(launch, jukebox_onnx_file, isolated_env, tmp_path, log_url, 1)
    check_soak_and_stop(start(), start)


def test_two_workers_soak_and_sigterm_under_load_lose_no_postgresql_row(
    jukebox_onnx_file, isolated_env, tmp_path, postgresql_log
):
    start = partial(launch, jukebox_onnx_file, isolated_env, tmp_path, postgresql_log, 2)
    check_soak_and_stop(start(), start)
