"""Benchmark of the monitoring pipeline against the goals it is held to: wall time and peak memory of
`python run.py --pipeline monitoring` on an inference log of 100k and of 1M logged requests, the goal
being 1M rows in under 60 s with memory bounded (the 1M run's peak RSS at most 1.5x the 100k run's).

    python bench/monitoring_bench.py [--sizes 100000 1000000] [--sampling-check] [--keep DIR]

Setup (not measured): an isolated ZenML state in a temporary folder (ZENML_CONFIG_PATH,
ZENML_REPOSITORY_PATH, BENTOML_HOME as tests/conftest.py sets them; the user's global config is never
read or written) gets a jukebox model version 1 from `python run.py --pipeline training --rows 60000
--run-config tests/training_fast.yaml` (about 40 s). The songs of that version's `test_split` are
scored once with its `onnx_model`, and for each size a fresh SQLite inference log gets N one-song
`predict` requests (status 200, version '1', unique request ids, received_at spread over the last 6 hours),
drawn from those songs with replacement (seeded), written with the service's own `RowWriter`; the
true labels of 10% of the requests go to table `feedback` with `FeedbackStore.write`, so live
performance is part of the measured work. `--keep DIR` puts the state and the logs in DIR and keeps
them: a later run with the same DIR skips the training run and reuses complete logs.

Measured: each size's `python run.py --pipeline monitoring --version 1 --inference-log sqlite:///LOG
--reports-dir TMP --no-retrain`, from process start to exit (interpreter start, imports, ZenML's run
bookkeeping and the reports written included). It must exit 0 and print a `Decision:` line.

  wall s       wall-clock time of the whole command.
  peak RSS     the highest sum of the resident set sizes of the process and all its descendants,
               polled with psutil every 0.1 s (a tree sum, because a process the pipeline might spawn
               would otherwise be missed; spikes shorter than 0.1 s can be missed).
  max 1-proc   the kernel's exact high-water mark of the largest single process of the tree
               (ru_maxrss from wait4). The local orchestrator runs every step in the CLI's own process,
               so the two columns agree when nothing else is spawned; the goal is judged on peak RSS.
  x 100k       ratios to the smallest size's run, the baseline measured in the same invocation.
  steps        ZenML's own step durations (from the CLI's output) of each run, to see where time goes.

Sampling (see headliner/monitoring/window.py): the window is read in 20,000-row chunks; drift, data
quality and fairness run on a seeded uniform sample of at most `monitoring.max_analysis_rows`
(200,000) items, and every labelled item is kept besides, so live metrics use all the labels. Memory
therefore grows with the sample plus the labelled items, not with the window: at 1M requests with 10%
labelled the frame holds ~200k sampled + ~80k labelled-not-sampled items, against 100k (+0) at 100k.
Counts (requests, rejections, scored items) are exact SQL aggregates over the whole window.
The effect of sampling on drift: drift scores of numeric features are distances between distributions
(Evidently picks the normed Wasserstein distance for columns over 1,000 rows, Jensen-Shannon for the
bool feature), and the predicted class is tested with chi-square (the jukebox spec's choice); on a
200k uniform sample vs the full window these differ by sampling noise only (a distance's standard error
falls like 1/sqrt(n): ~0.002 at 200k). `--sampling-check` quantifies it on the largest log: it runs
`feature_drift` and `prediction_drift` in-process on the reference against (a) the 200k sample the
pipeline analyses and (b) every item (a spec copy with max_analysis_rows = 1,000,000), and prints the
largest absolute difference of the drift scores and whether any verdict differs. A p-value test's power,
unlike a distance, grows with n, so a chi-square p-value on 1M items can be smaller than on 200k when a
real (tiny) shift exists; the check shows whether that changes a verdict.

Exit code 0 when both goals are met, 1 when a goal is missed (or not measured, or a monitoring run
failed), 2 on a setup error (training run, log fill, sampling check).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import psutil

    from headliner.spec import UseCaseSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

MODEL_NAME, MODEL_VERSION = "jukebox", "1"
TRAINING_ROWS = 60_000
FAST_RUN_CONFIG = PROJECT_ROOT / "tests" / "training_fast.yaml"
SPEC_FILE = PROJECT_ROOT / "configs" / "use_cases" / "jukebox.yaml"
WRITE_BATCH = 50_000
LABELLED_SHARE = 0.10
SPREAD_HOURS = 6
SEED = 7
POLL_SECONDS = 0.1
RUN_TIMEOUT_SECONDS = 1800

# Goals
GOAL_ROWS = 1_000_000
GOAL_SECONDS = 60.0
GOAL_RSS_RATIO = 1.5  # peak RSS of the GOAL_ROWS run at most this many times the baseline's

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STEP_FINISHED = re.compile(r"Step (\S+) has finished in ([\d.]+)(ms|s|m)\b")
UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0}


class SetupError(RuntimeError):
    """Something before the measurement failed: exit code 2."""


# -- isolated ZenML state ------------------------------------------------------------------------------------


def isolated_env(state: Path) -> dict[str, str]:
    """The variables of tests/conftest.py's ISOLATED_ENV, rooted at `state`."""
    return {
        "ZENML_CONFIG_PATH": str(state / "zenml-config"),
        "ZENML_REPOSITORY_PATH": str(state / "zenml-repo"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "AUTO_OPEN_DASHBOARD": "false",
        "BENTOML_HOME": str(state / "bentoml"),
    }


def use_isolated_state(state: Path) -> dict[str, str]:
    """Point this process at the isolated state (before ZenML is imported) and return the environment for
    the CLI subprocesses."""
    if "zenml" in sys.modules:
        raise SetupError("zenml was imported before the isolated state was set")
    os.environ.update(isolated_env(state))
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # MLflow follows the stack's tracker, not the user's server
    os.environ.pop("HEADLINER_INFERENCE_LOG", None)
    Path(os.environ["ZENML_REPOSITORY_PATH"]).mkdir(parents=True, exist_ok=True)
    return dict(os.environ)


def register_model_version(state: Path, env: dict[str, str]) -> None:
    """`run.py --pipeline training` once per state folder (a marker file says it succeeded)."""
    marker = state / "trained.ok"
    if marker.exists():
        print(f"setup: reusing the model version in {state}")
        return
    command = [
        sys.executable,
        "run.py",
        "--pipeline",
        "training",
        "--rows",
        str(TRAINING_ROWS),
        "--run-config",
        str(FAST_RUN_CONFIG),
    ]
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS
    )
    (state / "training.out").write_text(result.stdout + result.stderr)
    if result.returncode != 0 or f"Registered model '{MODEL_NAME}' version {MODEL_VERSION} " not in result.stdout:
        raise SetupError(
            f"training run failed (exit code {result.returncode}) or did not register version {MODEL_VERSION}:\n"
            + _tail(result.stdout + result.stderr)
        )
    marker.touch()
    print(
        f"setup: trained and registered '{MODEL_NAME}' version {MODEL_VERSION} in {time.perf_counter() - started:.1f} s"
    )


def version_artifacts() -> tuple[UseCaseSpec, bytes, pd.DataFrame, pd.DataFrame]:
    """(spec, ONNX bytes, train split, test split) of the registered version, through the ZenML client."""
    import materializers  # noqa: F401  (registers the project's materializers)
    from headliner.spec import load_spec
    from headliner.stacks.setup import ensure_stack

    ensure_stack(("orchestrator", "artifact_store"))  # the project's source root and local stack
    from headliner.labels import Artifact
    from headliner.model.versions import find_model_version

    spec = load_spec(SPEC_FILE)
    model_version = find_model_version(MODEL_NAME, MODEL_VERSION)
    loaded: dict[str, Any] = {}
    for name in (Artifact.ONNX_MODEL, Artifact.TRAIN_SPLIT, Artifact.TEST_SPLIT):
        artifact = model_version.get_artifact(name)
        if artifact is None:
            raise SetupError(f"'{MODEL_NAME}' version {MODEL_VERSION} has no {name} artifact")
        loaded[name] = artifact.load()
    return (
        spec,
        loaded[Artifact.ONNX_MODEL].SerializeToString(),
        loaded[Artifact.TRAIN_SPLIT],
        loaded[Artifact.TEST_SPLIT],
    )


# -- the inference logs --------------------------------------------------------------------------------------


class ScoredPool:
    """The test split's songs, scored once: raw feature rows, logged top-k class codes and probabilities,
    true labels."""

    def __init__(self, spec: UseCaseSpec, onnx_bytes: bytes, test_split: pd.DataFrame) -> None:
        import numpy as np

        from headliner.data.splitting import one_row_per_group
        from headliner.model.onnx_packaging import OnnxPredictor

        songs = one_row_per_group(test_split, spec)
        predictor = OnnxPredictor(onnx_bytes)
        if predictor.feature_names != spec.feature_names:
            raise SetupError(f"the model's inputs {predictor.feature_names} are not the spec's features")
        self.feature_names = predictor.feature_names
        self.inputs = songs[self.feature_names].to_numpy(dtype=np.float64)
        order, self.top_probabilities = predictor.top_classes(predictor.probabilities(self.inputs))
        self.top_labels = np.asarray(predictor.classes, dtype=object)[order]
        self.labels = songs[spec.target.column].astype(str).to_numpy()


def fill_log(path: Path, requests: int, pool: ScoredPool) -> float:
    """A fresh SQLite log of `requests` one-song predict requests and the labels of LABELLED_SHARE of them;
    returns the seconds it took."""
    import numpy as np

    from headliner.serving.feedback import Feedback, FeedbackStore
    from headliner.serving.inference_log import InferenceRecord, RowWriter, create_log_engine, log_table

    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    started = time.perf_counter()
    url = f"sqlite:///{path}"
    rng = np.random.default_rng(SEED)
    chosen = rng.integers(0, len(pool.inputs), requests)
    labelled = np.flatnonzero(rng.random(requests) < LABELLED_SHARE)
    first = datetime.now(UTC).timestamp() - SPREAD_HOURS * 3600
    step = SPREAD_HOURS * 3600 / requests
    engine = create_log_engine(url)
    try:
        writer = RowWriter(engine, log_table(engine), pool.feature_names)
        for start in range(0, requests, WRITE_BATCH):
            records = [
                InferenceRecord(
                    first + i * step,
                    f"bench-{i:08d}",
                    "predict",
                    MODEL_NAME,
                    MODEL_VERSION,
                    200,
                    1.0,
                    1,
                    pool.inputs[j : j + 1],
                    pool.top_labels[j : j + 1],
                    pool.top_probabilities[j : j + 1],
                    None,
                )
                for i, j in zip(
                    range(start, min(start + WRITE_BATCH, requests)),
                    chosen[start : start + WRITE_BATCH].tolist(),
                    strict=True,
                )
            ]
            with engine.begin() as connection:
                connection.exec_driver_sql(writer.sql, writer.parameters(records))
    finally:
        engine.dispose()
    store = FeedbackStore(url)
    try:
        for start in range(0, len(labelled), WRITE_BATCH):
            batch = labelled[start : start + WRITE_BATCH].tolist()
            store.write([Feedback(f"bench-{i:08d}", 0, str(pool.labels[chosen[i]])) for i in batch], "file")
    finally:
        store.close()
    return time.perf_counter() - started


def log_counts(path: Path) -> tuple[int, int]:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(path)) as connection:
        return (
            connection.execute("SELECT COUNT(*) FROM inference_log").fetchone()[0],
            connection.execute("SELECT COUNT(*) FROM feedback").fetchone()[0],
        )


def prepare_log(workdir: Path, requests: int, pool: ScoredPool) -> Path:
    """The log of one size; a complete one left in a kept folder is reused."""
    path = workdir / f"inference_log_{requests}.sqlite"
    marker = path.with_suffix(".complete")
    if marker.exists() and path.exists():
        logged, labels = log_counts(path)
        print(f"setup: reusing {path.name} ({logged:,} requests, {labels:,} labels)")
        return path
    marker.unlink(missing_ok=True)
    seconds = fill_log(path, requests, pool)
    logged, labels = log_counts(path)
    if logged != requests:
        raise SetupError(f"{path}: {logged:,} rows written, expected {requests:,}")
    marker.touch()
    print(
        f"setup: filled {path.name} with {logged:,} requests and {labels:,} labels in {seconds:.1f} s "
        f"({path.stat().st_size / 2**20:,.0f} MiB; not measured)"
    )
    return path


# -- the measured run ----------------------------------------------------------------------------------------


class Run:
    def __init__(self, rows: int, wall: float, peak_rss: int, max_single_rss: int, exit_code: int, output: str):
        self.rows = rows
        self.wall = wall
        self.peak_rss = peak_rss  # bytes, tree sum polled
        self.max_single_rss = max_single_rss  # bytes, wait4's ru_maxrss
        self.exit_code = exit_code
        self.output = ANSI.sub("", output)
        decision = re.search(r"^Decision: (\w+)", self.output, re.MULTILINE)
        self.decision = decision.group(1) if decision else None
        self.steps = {
            name: float(value) * UNIT_SECONDS[unit] for name, value, unit in STEP_FINISHED.findall(self.output)
        }
        finished = re.search(r"Pipeline run has finished in ([\d.]+)(ms|s|m)\b", self.output)
        self.pipeline_seconds = float(finished.group(1)) * UNIT_SECONDS[finished.group(2)] if finished else None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.decision is not None


def _tree_rss(process: psutil.Process) -> int:
    import psutil

    total = 0
    for member in [process, *process.children(recursive=True)]:
        with suppress(psutil.Error):  # it ended between listing and reading
            total += member.memory_info().rss
    return total


def measure_monitoring(log: Path, rows: int, workdir: Path, env: dict[str, str]) -> Run:
    import psutil

    reports = workdir / f"reports_{rows}"
    output_file = workdir / f"monitoring_{rows}.out"
    command = [
        sys.executable,
        "run.py",
        "--pipeline",
        "monitoring",
        "--version",
        MODEL_VERSION,
        "--inference-log",
        f"sqlite:///{log}",
        "--reports-dir",
        str(reports),
        "--no-retrain",
    ]
    peak = 0
    with output_file.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        watched = psutil.Process(process.pid)
        stop = threading.Event()

        def poll() -> None:
            nonlocal peak
            while not stop.is_set():
                try:
                    peak = max(peak, _tree_rss(watched))
                except psutil.Error:  # the CLI itself has ended
                    return
                stop.wait(POLL_SECONDS)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            # wait4 reaps the CLI and gives its rusage; ru_maxrss (KiB on Linux) covers it and its reaped children
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        wall = time.perf_counter() - started
        process.returncode = exit_code = os.waitstatus_to_exitcode(status)
        stop.set()
        poller.join()
    return Run(rows, wall, peak, usage.ru_maxrss * 1024, exit_code, output_file.read_text(errors="replace"))


# -- the sampling check --------------------------------------------------------------------------------------


def sampling_check(log: Path, rows: int, spec: UseCaseSpec, onnx_bytes: bytes, train_split: pd.DataFrame) -> None:
    """Drift on the pipeline's sample vs on every item of the log, in this process."""
    from headliner.monitoring.drift import feature_drift, prediction_drift
    from headliner.monitoring.window import ANALYSED, WindowSelection, load_window, reference_data

    url = f"sqlite:///{log}"
    reference = reference_data(train_split, onnx_bytes, spec)
    full_spec = spec.model_copy(
        update={
            "monitoring": spec.monitoring.model_copy(
                update={"max_analysis_rows": max(rows, spec.monitoring.max_analysis_rows)}
            )
        }
    )
    results = {}
    for key, use_spec in (("sample", spec), ("full", full_spec)):
        started = time.perf_counter()
        window, _ = load_window(url, use_spec, MODEL_VERSION, WindowSelection())
        analysed = window[window[ANALYSED]]
        loaded = time.perf_counter() - started
        features = feature_drift(reference, analysed, spec)
        predicted = prediction_drift(reference, analysed, spec)
        results[key] = (len(analysed), {c.column: c for c in [*features.columns, *predicted.columns]})
        print(
            f"  ({'a' if key == 'sample' else 'b'}) reference ({len(reference):,} rows) vs {len(analysed):,} items: "
            f"window read in {loaded:.1f} s, drift in {time.perf_counter() - started - loaded:.1f} s; "
            f"{len(features.drifted)} of {len(features.columns)} features drifted, prediction "
            f"{'DRIFT' if predicted.drifted else 'ok'}"
        )
        del window, analysed
    sample, full = results["sample"][1], results["full"][1]
    print(f"  {'column':18} {'method':28} {'sample':>10} {'all':>10} {'|diff|':>9} {'threshold':>9}  verdicts")
    differences = {}
    for column, drift in sample.items():
        other = full[column]
        differences[column] = abs(drift.score - other.score)
        verdicts = f"{'DRIFT' if drift.drifted else 'ok'} / {'DRIFT' if other.drifted else 'ok'}"
        print(
            f"  {column:18} {drift.method:28} {drift.score:10.4g} {other.score:10.4g} {differences[column]:9.2g} "
            f"{drift.threshold:9g}  {verdicts}"
        )
    numeric = {c: d for c, d in differences.items() if c != "predicted"}
    worst = max(numeric, key=numeric.__getitem__)
    changed = [c for c in sample if sample[c].drifted != full[c].drifted]
    print(
        f"  max |feature drift score difference|: {numeric[worst]:.2g} ({worst}); prediction drift score difference: "
        f"{differences['predicted']:.2g}; verdicts that differ: {', '.join(changed) or 'none'}"
    )


# -- the report ----------------------------------------------------------------------------------------------


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(ANSI.sub("", text).splitlines()[-lines:])


def _mib(size: int) -> float:
    return size / 2**20


def print_table(runs: list[Run]) -> None:
    base = runs[0]
    print(
        f"\n{'rows':>10} {'wall s':>8} {'peak RSS MiB':>13} {'max 1-proc MiB':>15} {'decision':>9} "
        f"{'time x base':>12} {'RSS x base':>11}"
    )
    for run in runs:
        print(
            f"{run.rows:10,} {run.wall:8.1f} {_mib(run.peak_rss):13,.0f} {_mib(run.max_single_rss):15,.0f} "
            f"{run.decision or 'FAILED':>9} {run.wall / base.wall:11.2f}x {run.peak_rss / base.peak_rss:10.2f}x"
        )
    print(
        f"(base: the {base.rows:,}-row run; peak RSS: psutil tree sum every {POLL_SECONDS} s; "
        "max 1-proc: wait4 ru_maxrss)"
    )
    names = list(dict.fromkeys(name for run in runs for name in run.steps))
    print(f"\nstep durations (ZenML's), s\n{'step':28}" + "".join(f"{run.rows:>12,}" for run in runs))
    for name in names:
        print(f"{name:28}" + "".join(f"{run.steps.get(name, float('nan')):12.1f}" for run in runs))
    print(
        f"{'pipeline run (ZenML)':28}"
        + "".join(f"{run.pipeline_seconds:12.1f}" if run.pipeline_seconds else f"{'-':>12}" for run in runs)
    )
    print(
        f"{'outside the run (CLI)':28}"
        + "".join(f"{run.wall - run.pipeline_seconds:12.1f}" if run.pipeline_seconds else f"{'-':>12}" for run in runs)
    )


def judge(runs: list[Run]) -> bool:
    by_rows = {run.rows: run for run in runs}
    base = runs[0]
    goal = by_rows.get(GOAL_ROWS)
    print()
    if goal is None or goal is base:
        print(f"{GOAL_ROWS:,} rows: not measured (--sizes needs {base.rows:,} < {GOAL_ROWS:,}): missed")
        return False
    time_met = goal.wall < GOAL_SECONDS
    ratio = goal.peak_rss / base.peak_rss
    memory_met = ratio <= GOAL_RSS_RATIO
    print(f"1M rows: {goal.wall:.1f} s (goal < {GOAL_SECONDS:.0f} s): {'met' if time_met else 'missed'}")
    print(
        f"memory: peak RSS at 1M is {ratio:.2f}x the {base.rows // 1000:,}k run "
        f"(bounded: <= {GOAL_RSS_RATIO}x): {'met' if memory_met else 'missed'}"
    )
    return time_met and memory_met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[100_000, 1_000_000],
        metavar="N",
        help="logged requests per run; the smallest is the baseline",
    )
    parser.add_argument(
        "--sampling-check",
        action="store_true",
        help="compare drift on the 200k sample with drift on every item of the largest log",
    )
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="state, logs and reports in DIR, kept and reused by later runs"
    )
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))
    if sizes[0] < 1000:
        parser.error("--sizes: at least 1,000 rows each")

    if args.keep:
        workdir = args.keep.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="headliner-monitoring-bench-"))
    print(
        f"{os.cpu_count()} cores; 1-minute load average before the run: {os.getloadavg()[0]:.2f}; work folder {workdir}"
    )
    runs: list[Run] = []
    try:
        try:
            env = use_isolated_state(workdir)
            register_model_version(workdir, env)
            spec, onnx_bytes, train_split, test_split = version_artifacts()
            pool = ScoredPool(spec, onnx_bytes, test_split)
            print(f"setup: {len(pool.inputs):,} test-split songs scored as the pool the requests are drawn from")
            logs = {rows: prepare_log(workdir, rows, pool) for rows in sizes}
        except (SetupError, subprocess.TimeoutExpired) as exc:
            print(f"setup error: {exc}")
            return 2

        for rows in sizes:
            run = measure_monitoring(logs[rows], rows, workdir, env)
            runs.append(run)
            print(
                f"measured {rows:,} rows: {run.wall:.1f} s, peak RSS {_mib(run.peak_rss):,.0f} MiB, "
                f"exit code {run.exit_code}, decision {run.decision}"
            )
            if not run.ok:
                print(f"the monitoring run on {rows:,} rows failed (exit code {run.exit_code}, no Decision line):")
                print(_tail(run.output))
                return 1
        print_table(runs)
        met = judge(runs)

        if args.sampling_check:
            rows = sizes[-1]
            print(f"\nsampling check on the {rows:,}-row log (in this process):")
            try:
                sampling_check(logs[rows], rows, spec, onnx_bytes, train_split)
            except Exception as exc:
                print(f"sampling check failed: {type(exc).__name__}: {exc}")
                return 2
        return 0 if met else 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
