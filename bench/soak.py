"""The service under a long soak of mixed traffic, then stopped under it: the figures behind "load and
shutdown lose nothing" (tests/services/test_soak.py checks the same in a short run):

    python bench/soak.py [--seconds 60] [--connections 8] [--workers 1] [--postgresql]

A jukebox model fitted on generated data is served by `python run.py serve --model-file` (one process per
worker, on 127.0.0.1, a free port) with its inference log in SQLite, or with --postgresql in a fresh database on
the PostgreSQL server at 127.0.0.1:5432 (the `servers` stack's), dropped afterwards. `--connections` clients
send `/predict`, v2 infer, `/feedback` for earlier answers, rejected songs, malformed JSON and tensors and an
unknown path (tests/helpers/soak.py) for `--seconds`; then the service gets SIGTERM while the traffic goes on,
and is started again on the same log. Exit code 0 when no answer was a 5xx or a wrong status, every request
before the signal was answered, the stop took less than the drain timeout and exited 0, what followed was
refused (never a timeout), and the log holds exactly one row per answered request, before and after the restart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import nullcontext
from functools import partial
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="seconds of traffic before the stop signal")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=1, help="the service's worker processes")
    parser.add_argument("--postgresql", action="store_true", help="log to PostgreSQL (127.0.0.1:5432) instead")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="headliner-soak-"))
    os.environ.update(ZENML_CONFIG_PATH=str(folder / "zenml"), ZENML_ANALYTICS_OPT_IN="false")
    from serving_bench import goal

    from headliner.serving.settings import ServingSettings
    from headliner.spec import load_spec
    from tests.helpers.models import packaged_linear_model
    from tests.helpers.service import RunningService
    from tests.helpers.soak import (
        REFUSALS,
        MixedTraffic,
        audit,
        log_rows,
        postgresql_database,
        serve_command,
        soak_then_stop,
    )

    drain_seconds = ServingSettings.model_fields["drain_seconds"].default  # the service's, as users run it

    model_file = folder / "jukebox.onnx"
    model_file.write_bytes(packaged_linear_model(load_spec(PROJECT_ROOT / "configs/use_cases/jukebox.yaml"), 20_000))
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADLINER_")}
    print(f"{os.cpu_count()} cores; load average before the run: {os.getloadavg()[0]:.2f}")
    database = postgresql_database() if args.postgresql else nullcontext(f"sqlite:///{folder / 'log.sqlite'}")
    with database as log_url:
        env.update(HEADLINER_INFERENCE_LOG=log_url)
        start = partial(
            RunningService.launch, partial(serve_command, str(model_file), args.workers), env, folder, log_url
        )
        where = "PostgreSQL" if args.postgresql else "SQLite"
        print(
            f"{args.workers} worker(s), inference log in {where}; {args.connections} clients, "
            f"{args.seconds:.0f} s of mixed traffic, then SIGTERM under load\n"
        )
        run = soak_then_stop(start(), args.seconds, args.connections, stop_timeout=drain_seconds + 60)
        traffic, before = run.traffic, run.before_stop()
        answered_before = [outcome for outcome in before if outcome.status is not None]
        print(f"{'request':14} {'status':>6} {'count':>8}")
        for (kind, status), count in sorted(traffic.statuses().items(), key=lambda item: (item[0][0], str(item[0][1]))):
            print(f"{kind:14} {status if status is not None else '-':>6} {count:8,}")
        print(
            f"\nbefore the signal: {len(before):,} requests in {run.signalled:.1f} s, "
            f"{len(answered_before) / max(run.signalled, 1e-9):,.0f} answered/s; "
            f"p50 {traffic.latency_ms(0.5):.2f} ms, p99 {traffic.latency_ms(0.99):.2f} ms"
        )
        after = run.after_stop()
        print(
            f"after the signal: {len(after):,} requests, {sum(o.status is not None for o in after):,} answered, "
            f"refusals {dict(traffic.errors())}; exit code {run.exit_code} after {run.stop_seconds:.2f} s"
        )
        stopped = audit(traffic, log_rows(log_url))
        again = start()
        try:
            restarted = MixedTraffic(again.url, connections=2, seed=1, id_prefix="after-restart").run(3)
        finally:
            again_exit = again.stop()
        rows = log_rows(log_url)
        kept, logged_on = audit(traffic, rows), audit(restarted, rows)
        print(
            f"inference log: {stopped.rows:,} rows for {stopped.expected_rows:,} answered requests; lost "
            f"{stopped.lost}, duplicated {len(stopped.duplicated)}, logged without an answer "
            f"{len(stopped.unanswered_logged)}, other status {len(stopped.status_mismatch)}; after the restart "
            f"{kept.rows:,} of them, and {logged_on.rows:,} rows for {logged_on.expected_rows:,} new answers\n"
        )

    passed = [
        goal(
            "no 5xx", not traffic.server_errors() and not restarted.server_errors(), f"{len(traffic.server_errors())}"
        ),
        goal("every answer has its right status", not traffic.wrong_answers(), f"{len(traffic.wrong_answers())} wrong"),
        goal(
            "every request before the signal answered",
            len(answered_before) == len(before),
            f"{len(before) - len(answered_before)} not",
        ),
        goal(
            f"graceful exit within the drain timeout ({drain_seconds} s)",
            run.exit_code == 0 and run.stop_seconds < drain_seconds,
            f"exit {run.exit_code} after {run.stop_seconds:.2f} s",
        ),
        goal("after the signal: answers or clean refusals", set(traffic.errors()) <= REFUSALS, str(traffic.errors())),
        goal("one log row per answered request", stopped.clean, f"{stopped.lost} lost"),
        goal(
            "the log keeps every row and logs on after a restart",
            kept.clean and logged_on.clean and logged_on.rows > 0 and again_exit == 0,
            f"{kept.rows:,} kept, {logged_on.rows:,} new",
        ),
    ]
    sys.exit(0 if all(passed) else 1)


if __name__ == "__main__":
    main()
