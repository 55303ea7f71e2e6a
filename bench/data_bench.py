"""Benchmark of the data engineering logic: generator rows/s and validate+wrangle rows/s, with peak
memory, on 1M rows (by default), against a baseline measured in the same run: pandas reading the same
rows from CSV (the unavoidable cost of ingesting them).

    python bench/data_bench.py [--rows 1000000]

Each phase runs in a fresh child process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase(name: str, rows: int, workdir: Path) -> dict[str, float]:
    import pandas as pd

    from headliner.spec import load_spec

    spec = load_spec(PROJECT_ROOT / "configs" / "use_cases" / "jukebox.yaml")
    csv_path, parquet_path = workdir / "charts.csv", workdir / "charts.parquet"
    if name == "generate":
        from headliner.data.jukebox_generator import generate_jukebox_charts

        start = time.perf_counter()
        frame = generate_jukebox_charts(rows, spec.target.classes, seed=spec.source.seed)
        seconds = time.perf_counter() - start
        peak = _peak_rss_mib()
        frame.to_csv(csv_path, index=False)
        frame.to_parquet(parquet_path, index=False)
        return {"seconds": seconds, "peak_rss_mib": peak}
    if name == "read_csv (baseline)":
        start = time.perf_counter()
        frame = pd.read_csv(csv_path, low_memory=False)
        return {"seconds": time.perf_counter() - start, "peak_rss_mib": _peak_rss_mib()}
    if name == "validate + wrangle + label + split":
        from headliner.data.splitting import split_examples
        from headliner.data.validation import validate_raw
        from headliner.data.wrangling import label_examples, wrangle

        frame = pd.read_parquet(parquet_path)
        start = time.perf_counter()
        report = validate_raw(frame, spec, "bench")
        validate_seconds = time.perf_counter() - start
        wrangled, _ = wrangle(frame, spec, "bench")
        labelled, _ = label_examples(wrangled, spec, "bench")
        split_examples(labelled, spec, "bench")
        seconds = time.perf_counter() - start
        return {
            "seconds": seconds,
            "validate_seconds": validate_seconds,
            "peak_rss_mib": _peak_rss_mib(),
            "examples": len(labelled),
            "findings": len(report.findings),
        }
    raise ValueError(name)


PHASES = ("generate", "read_csv (baseline)", "validate + wrangle + label + split")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args.phase, args.rows, Path(args.workdir))))
        return

    results = {}
    with tempfile.TemporaryDirectory(prefix="headliner-bench-") as workdir:
        for phase in PHASES:
            out = subprocess.run(
                [sys.executable, __file__, "--rows", str(args.rows), "--phase", phase, "--workdir", workdir],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[phase] = json.loads(out.strip().splitlines()[-1])

    baseline = results["read_csv (baseline)"]["seconds"]
    print(f"Data engineering benchmark, {args.rows:,} raw rows (one process per phase)\n")
    print(f"{'phase':38} {'seconds':>8} {'rows/s':>12} {'peak RSS MiB':>13} {'x baseline':>11}")
    for phase, result in results.items():
        seconds = result["seconds"]
        print(
            f"{phase:38} {seconds:8.2f} {args.rows / seconds:12,.0f} {result['peak_rss_mib']:13,.0f} "
            f"{seconds / baseline:11.2f}"
        )
    wrangling = results["validate + wrangle + label + split"]
    print(
        f"\nvalidation alone: {wrangling['validate_seconds']:.2f} s; "
        f"{wrangling['examples']:,} labelled examples, {wrangling['findings']} kinds of findings"
    )


if __name__ == "__main__":
    main()
