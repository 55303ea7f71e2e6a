"""Monitoring on a schedule on the local stack (`python run.py monitor --every 1h`): the interval, a run lock
per model that the kernel releases when its holder dies (so a crash leaves no stale lock), a loop that runs
one job at a time every interval (a run longer than the interval delays the next, never overlaps it), and a
clean stop on SIGTERM or SIGINT (the current run finishes, then the loop ends)."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from headliner.errors import MonitoringError
from headliner.monitoring.window import duration_text, parse_duration

JOIN_POLL_SECONDS = 0.2  # how often the main thread, waiting for a run, lets a signal handler run


def parse_interval(text: str) -> timedelta:
    """`--every`: a duration such as 30s, 15m, 1h or 1d."""
    interval = parse_duration(text)
    if interval is None or interval.total_seconds() <= 0:
        raise MonitoringError(f"--every '{text}': expected a positive duration such as 30s, 15m, 1h or 1d")
    return interval


def lock_path(folder: Path, model_name: str) -> Path:
    """The scheduler's lock file of a model in `folder` (headliner's local state, beside ZenML's stores)."""
    return folder / f"monitor-{model_name}.lock"


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold `path` locked (fcntl.flock) while the scheduler runs, with the holder's pid in it. A second
    scheduler of the same model is refused naming that pid; the kernel drops the lock of a process that
    dies, however it dies, so the next one takes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise MonitoringError(
                f"another scheduler (pid {holder}) is monitoring this model (lock {path}): "
                f"stop it first (kill -TERM {holder})"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


@contextmanager
def stop_on_signals(stop: threading.Event, say: Callable[[str], None]) -> Iterator[None]:
    """While inside: SIGTERM or SIGINT sets `stop` (the current run finishes, then the loop ends) and
    restores the previous handler, so a second signal interrupts as it normally would. Main thread only."""
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.getsignal(number) for number in signals}

    def handle(number: int, frame: FrameType | None) -> None:
        for restored, handler in previous.items():
            signal.signal(restored, handler)
        say(
            f"{signal.Signals(number).name} received: finishing the current run, then stopping "
            "(send it again to interrupt the run)"
        )
        stop.set()

    for number in signals:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@dataclass(frozen=True)
class Tick:
    """One scheduled run: its number (from 1), when it started and where its window starts."""

    number: int
    started_at: datetime
    since: datetime


def _clock_text(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _run_in_thread(job: Callable[[Tick], None], tick: Tick) -> BaseException | None:
    """Run the job in a worker thread while the main thread waits, so a signal only reaches the main thread's
    handler and never interrupts the job (ZenML installs its interrupting handlers in the main thread only)."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            job(tick)
        except BaseException as exc:  # reported by the loop; a failed run does not end the schedule
            failure.append(exc)

    worker = threading.Thread(target=target, name=f"scheduled-run-{tick.number}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(JOIN_POLL_SECONDS)
    return failure[0] if failure else None


def run_every(
    interval: timedelta,
    job: Callable[[Tick], None],
    stop: threading.Event,
    say: Callable[[str], None],
    first_since: datetime | None = None,
) -> int:
    """Run `job` every `interval` until `stop` is set, one run at a time; returns the runs started.

    Each run's window starts where the previous run started (the first: `first_since`, or one interval
    back), so consecutive windows neither overlap nor leave gaps; a run that fails carries its window into
    the next. A run longer than the interval skips the ticks that fell due meanwhile: the next starts as
    soon as it ends."""
    seconds = interval.total_seconds()
    since = first_since or datetime.now(UTC) - interval
    number = 0
    while not stop.is_set():
        number += 1
        started, started_at = time.monotonic(), datetime.now(UTC)
        tick = Tick(number=number, started_at=started_at, since=since)
        say(f"Run {number} at {_clock_text(started_at)}: the window since {_clock_text(since)}")
        failure = _run_in_thread(job, tick)
        took = time.monotonic() - started
        if failure is None:
            since = started_at
        else:
            say(f"Run {number} failed: {type(failure).__name__}: {failure}; its window is carried into the next run")
        if stop.is_set():
            break
        if took > seconds:
            say(
                f"Run {number} took {took:,.1f} s, longer than the interval ({duration_text(interval)}): "
                f"{int(took // seconds)} tick(s) skipped while it ran; the next run starts now"
            )
            continue
        say(f"Next run at {_clock_text(started_at + interval)}")
        stop.wait(max(0.0, started + seconds - time.monotonic()))
    say(f"Stopped after {number} run(s)")
    return number
