"""Monitoring on a schedule (headliner.monitoring.schedule): the interval of --every, the run lock that a
second scheduler cannot take but the next one takes from a killed holder, runs that never overlap, and a
SIGTERM that lets the current run finish before the scheduler exits 0."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from itertools import pairwise

import pytest
import yaml

from headliner.errors import MonitoringError
from headliner.monitoring.schedule import Tick, lock_path, parse_interval, run_every, run_lock
from headliner.monitoring.window import duration_text
from headliner.spec import PROJECT_ROOT
from tests.helpers.cli import run_cli

HOLD_LOCK = """
import sys, time
from pathlib import Path
from headliner.monitoring.schedule import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""

# A scheduler whose runs take 1.5 s, every 0.2 s; each run leaves a line in the file of argv[1].
SLOW_SCHEDULER = """
import sys, threading, time
from datetime import timedelta
from pathlib import Path
from headliner.monitoring.schedule import run_every, stop_on_signals
marks = Path(sys.argv[1])
def job(tick):
    with marks.open("a") as out:
        out.write(f"started {tick.number}\\n")
    time.sleep(1.5)
    with marks.open("a") as out:
        out.write(f"finished {tick.number}\\n")
stop = threading.Event()
with stop_on_signals(stop, lambda line: print(line, flush=True)):
    run_every(timedelta(seconds=0.2), job, stop, lambda line: print(line, flush=True))
"""


def _python(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1D", timedelta(days=1)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_intervals(text, expected):
    assert parse_interval(text) == expected
    assert duration_text(expected) == text.lower()


@pytest.mark.parametrize("text", ["", "1", "h", "0s", "-1h", "1 hour", "1y"])
def test_a_bad_interval_names_every_and_what_is_expected(text):
    with pytest.raises(MonitoringError) as error:
        parse_interval(text)
    assert str(error.value) == (f"--every '{text}': expected a positive duration such as 30s, 15m, 1h or 1d")


def test_the_cli_refuses_a_bad_interval_before_anything_runs():
    result = run_cli(["monitor", "--every", "90"])
    assert result.returncode == 2
    assert "Invalid value for '--every': '90': expected a positive duration such as 30s, 15m, 1h or 1d" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_cli(["monitor"])
    assert missing.returncode == 2 and "Missing option '--every'" in missing.stderr


def test_a_held_lock_is_refused_naming_its_holder_and_a_killed_holders_lock_is_taken(tmp_path):
    path = lock_path(tmp_path, "jukebox")
    holder = _python(HOLD_LOCK, str(path))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(MonitoringError) as refused, run_lock(path):
            pass
        assert str(refused.value) == (
            f"another scheduler (pid {holder.pid}) is monitoring this model (lock {path}): "
            f"stop it first (kill -TERM {holder.pid})"
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert holder.returncode == -signal.SIGKILL and path.exists()  # no chance to clean up: the file stays
    with run_lock(path):
        assert path.read_text().strip() == str(os.getpid())
    with run_lock(path):  # released on leaving, so taken again
        pass


def test_runs_never_overlap_and_a_long_run_skips_the_ticks_due_meanwhile():
    interval = timedelta(seconds=0.2)
    spans: list[tuple[float, float]] = []
    ticks: list[Tick] = []
    in_run = threading.Lock()
    stop = threading.Event()
    lines: list[str] = []

    def job(tick: Tick) -> None:
        assert in_run.acquire(blocking=False), "two runs at once"
        start = time.monotonic()
        time.sleep(0.5 if tick.number == 1 else 0.05)  # the first run spans two intervals
        spans.append((start, time.monotonic()))
        ticks.append(tick)
        in_run.release()
        if tick.number == 4:
            stop.set()

    assert run_every(interval, job, stop, lines.append) == 4
    assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans))
    assert spans[1][0] - spans[0][1] < 0.3  # after the long run, the next starts at once
    assert 0.19 <= spans[2][0] - spans[1][0] < 0.5  # then on the interval again
    (skipped,) = [line for line in lines if "skipped" in line]
    assert skipped.startswith("Run 1 took 0.5 s, longer than the interval (0.2s): ")
    assert skipped.endswith("2 tick(s) skipped while it ran; the next run starts now")
    # consecutive windows: each starts where the previous run started; the first one interval back
    assert abs(ticks[0].started_at - ticks[0].since - interval) < timedelta(seconds=0.05)
    assert all(tick.since == previous.started_at for previous, tick in pairwise(ticks))
    assert lines[-1] == "Stopped after 4 run(s)"


def test_a_failed_run_carries_its_window_into_the_next():
    ticks: list[Tick] = []
    stop = threading.Event()
    lines: list[str] = []

    def job(tick: Tick) -> None:
        ticks.append(tick)
        if tick.number == 2:
            stop.set()
            return
        raise MonitoringError("too few rows")

    run_every(timedelta(seconds=0.05), job, stop, lines.append)
    assert ticks[1].since == ticks[0].since
    assert "Run 1 failed: MonitoringError: too few rows; its window is carried into the next run" in lines


def test_sigterm_lets_the_current_run_finish_then_exits_0(tmp_path):
    marks = tmp_path / "marks"
    scheduler = _python(SLOW_SCHEDULER, str(marks))
    try:
        _wait_for(lambda: marks.exists() and "started 1" in marks.read_text())
        scheduler.send_signal(signal.SIGTERM)
        stdout, stderr = scheduler.communicate(timeout=30)
    finally:
        scheduler.kill()
    assert scheduler.returncode == 0, stderr
    assert marks.read_text().splitlines() == ["started 1", "finished 1"]
    assert "SIGTERM received: finishing the current run, then stopping (send it again to interrupt the run)" in stdout
    assert stdout.splitlines()[-1] == "Stopped after 1 run(s)"


@pytest.mark.parametrize("schedule", ["every hour", "0 * * *", "0 * * * * *"])
def test_the_specs_schedule_must_be_a_cron_expression(tmp_path, schedule):
    from headliner.errors import SpecError
    from headliner.spec import USE_CASES_DIR, load_spec

    spec = yaml.safe_load((USE_CASES_DIR / "jukebox.yaml").read_text())
    spec["monitoring"]["schedule"] = schedule
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as error:
        load_spec(path)
    assert str(error.value) == (
        f"use-case spec {path}: field 'monitoring.schedule': Value error, expected a cron expression of five fields "
        "(minute hour day-of-month month day-of-week) such as '0 * * * *', or @hourly, @daily, @weekly, @monthly"
    )
    spec["monitoring"]["schedule"] = "*/15 6-18 * * MON-FRI"
    path.write_text(yaml.safe_dump(spec))
    assert load_spec(path).monitoring.schedule == "*/15 6-18 * * MON-FRI"
