"""Benchmark of inference latency and training cost: scikit-learn `predict_proba` against the packaged ONNX
model (`OnnxPredictor.predict`) on 1 and 1,000 rows, side by side in one process (median and p99 after a
warm-up); then fit time and peak memory of the logistic_regression pipeline at 10k, 100k and 1M
training rows, each size in a fresh child process so its peak RSS is its own.

    python bench/inference_bench.py [--raw-rows 500000] [--train-rows 10000,100000,1000000]

Data comes from the project's jukebox generator (wrangled and labelled as the data pipeline does).
Training sets larger than the generated labelled set are drawn from it with replacement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from headliner.spec import UseCaseSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

SEED = 0
GOAL_SPEEDUP = 10  # ONNX one-row latency at least this many times lower than scikit-learn's
LATENCY_RUNS = {1: (3000, 300), 1000: (300, 30)}  # rows -> (timed repetitions, warm-up repetitions)
SKLEARN = "scikit-learn predict_proba (DataFrame)"
ONNX = "ONNX OnnxPredictor.predict (dict)"


def _peak_rss_mib() -> float:
    """This process's peak RSS. Not getrusage's ru_maxrss: that survives exec, so a child started by a
    parent holding the data would report the parent's size."""
    status = Path("/proc/self/status").read_text()
    peak_kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(peak_kib) / 1024


def _spec() -> UseCaseSpec:
    from headliner.spec import load_spec

    return load_spec(PROJECT_ROOT / "configs" / "use_cases" / "jukebox.yaml")


def _labelled_examples(spec: UseCaseSpec, raw_rows: int) -> pd.DataFrame:
    from headliner.data.sources import load_raw_data
    from headliner.data.wrangling import label_examples, wrangle

    wrangled, _ = wrangle(load_raw_data(spec, rows=raw_rows), spec, "bench")
    labelled, _ = label_examples(wrangled, spec, "bench")
    return labelled[[*spec.feature_names, spec.target.column]].reset_index(drop=True)


def _fit_linear(spec: UseCaseSpec, examples: pd.DataFrame) -> Pipeline:
    from headliner.model.estimators import CandidateConfig, build_pipeline, feature_frame

    candidate = CandidateConfig(name="bench", family="logistic_regression")
    return build_pipeline(spec, candidate).fit(feature_frame(examples, spec), examples[spec.target.column])


def _latency_us(call: Callable[[], object], repetitions: int, warm_up: int) -> tuple[float, float]:
    """Median and p99 of one call's wall time, in microseconds."""
    for _ in range(warm_up):
        call()
    timings = np.empty(repetitions)
    for i in range(repetitions):
        start = time.perf_counter_ns()
        call()
        timings[i] = time.perf_counter_ns() - start
    return float(np.median(timings)) / 1e3, float(np.percentile(timings, 99)) / 1e3


def _fit_phase(examples_path: str, rows: int) -> dict[str, float]:
    """Child process: draw `rows` training rows with replacement, fit, report time and peak RSS."""
    import pandas as pd

    spec = _spec()
    examples = pd.read_parquet(examples_path).sample(n=rows, replace=True, random_state=SEED)
    peak_before_fit = _peak_rss_mib()
    start = time.perf_counter()
    pipeline = _fit_linear(spec, examples)
    return {
        "seconds": time.perf_counter() - start,
        "iterations": int(np.max(pipeline[-1].n_iter_)),
        "peak_rss_before_fit_mib": peak_before_fit,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _latency_table(spec: UseCaseSpec, examples: pd.DataFrame) -> None:
    from headliner.model.estimators import feature_frame
    from headliner.model.onnx_packaging import OnnxPredictor, check_parity, package_onnx

    pipeline = _fit_linear(spec, examples)
    model = package_onnx(pipeline, spec, "bench", {})
    parity = check_parity(model, pipeline, examples.sample(n=min(len(examples), 10_000), random_state=SEED), spec)
    predictor = OnnxPredictor.from_model(model)
    print(
        f"model: logistic_regression fitted on {len(examples):,} examples; ONNX {model.ByteSize():,} bytes; "
        f"parity max abs difference {parity:.2g}\n"
    )
    print(f"{'rows':>5} {'runtime':38} {'median µs':>10} {'p99 µs':>10} {'rows/s':>12}")
    speedups: dict[int, float] = {}
    for rows, (repetitions, warm_up) in LATENCY_RUNS.items():
        frame = feature_frame(examples.sample(n=rows, random_state=SEED), spec)
        columns = {name: frame[name].to_numpy().reshape(-1, 1) for name in spec.feature_names}
        runtimes: dict[str, Callable[[], object]] = {
            SKLEARN: partial(pipeline.predict_proba, frame),
            ONNX: partial(predictor.predict, columns),
        }
        medians: dict[str, float] = {}
        for runtime, call in runtimes.items():
            median, p99 = _latency_us(call, repetitions, warm_up)
            medians[runtime] = median
            print(f"{rows:5,} {runtime:38} {median:10,.1f} {p99:10,.1f} {rows / median * 1e6:12,.0f}")
        speedups[rows] = medians[SKLEARN] / medians[ONNX]
    print()
    for rows, speedup in speedups.items():
        print(f"{rows:,} row(s): ONNX is {speedup:.1f}x faster than scikit-learn (median)")
    speedup = speedups[1]
    verdict = "met" if speedup >= GOAL_SPEEDUP else "NOT met"
    print(f"goal: ONNX one-row latency at least {GOAL_SPEEDUP}x lower than scikit-learn's: {verdict} ({speedup:.1f}x)")


def _training_table(spec: UseCaseSpec, examples: pd.DataFrame, train_rows: list[int]) -> None:
    print(
        f"\nTraining logistic_regression, one fresh process per size; training rows are drawn with "
        f"replacement from the {len(examples):,} generated labelled examples\n"
    )
    print(f"{'training rows':>13} {'fit seconds':>12} {'iterations':>11} {'peak RSS MiB':>13} {'before fit MiB':>15}")
    with tempfile.TemporaryDirectory(prefix="headliner-bench-") as workdir:
        examples_path = str(Path(workdir) / "examples.parquet")
        examples.to_parquet(examples_path, index=False)
        for rows in train_rows:
            out = subprocess.run(
                [sys.executable, __file__, "--fit-rows", str(rows), "--examples", examples_path],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(
                f"{rows:13,} {result['seconds']:12.2f} {result['iterations']:11} {result['peak_rss_mib']:13,.0f} "
                f"{result['peak_rss_before_fit_mib']:15,.0f}"
            )
    print("(peak RSS of the whole child process; 'before fit': its peak after imports and loading the data)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-rows", type=int, default=500_000, help="raw chart rows to generate")
    parser.add_argument("--train-rows", default="10000,100000,1000000", help="comma-separated training sizes")
    parser.add_argument("--fit-rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--examples", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit_rows:
        print(json.dumps(_fit_phase(args.examples, args.fit_rows)))
        return

    spec = _spec()
    examples = _labelled_examples(spec, args.raw_rows)
    print(f"Inference benchmark, jukebox: {args.raw_rows:,} generated raw rows -> {len(examples):,} labelled examples")
    print()
    _latency_table(spec, examples)
    _training_table(spec, examples, [int(rows) for rows in args.train_rows.split(",")])


if __name__ == "__main__":
    main()
