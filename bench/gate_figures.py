"""The measured figures behind the jukebox quality gate: for each run config and data size, the test
top-k accuracy of the selected model, the class-prior baseline and the limit the spec's gate sets, so
that the gate's bound relative to the baseline rests on numbers (docs/training.md, "Quality gates").

    nice -n 10 python bench/gate_figures.py [--rows 30000 100000 all] \
        [--run-config configs/runs/training.yaml tests/training_fast.yaml] [--seeds 42 1 2] [--json-lines FILE]

"all" is the spec's own source size (the default data). --seeds replaces the spec's generator and split
seeds (default: the spec's own) to show how much the figures move between draws of the same size. It
calls the plain functions the training pipeline's steps call (no ZenML, no MLflow), one (config, rows,
seed) at a time, prints each result as a JSON line when it is ready (appended to --json-lines if given)
and markdown tables at the end: every measurement, and the range over seeds of each (config, rows);
--tables-from FILE prints the tables of such a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headliner.spec import UseCaseSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

DEFAULT_SPEC = PROJECT_ROOT / "configs" / "use_cases" / "jukebox.yaml"
DEFAULT_RUN_CONFIGS = ["configs/runs/training.yaml", "tests/training_fast.yaml"]
DEFAULT_ROWS = ["30000", "100000", "all"]


def measure(spec: UseCaseSpec, run_config: str, rows: int | None, seed: int | None) -> dict[str, Any]:
    """Train, select and evaluate as the training pipeline does; return the gated figures."""
    from headliner.data.sources import describe_source, load_raw_data
    from headliner.data.splitting import split_examples
    from headliner.data.validation import validate_raw
    from headliner.data.wrangling import label_examples, wrangle
    from headliner.model.gates import evaluate_gates
    from headliner.model.training import evaluate_selected, load_training_config, select_model

    if seed is not None:
        seeded = {part: getattr(spec, part).model_copy(update={"seed": seed}) for part in ("source", "split")}
        spec = spec.model_copy(update=seeded)
    training = load_training_config(PROJECT_ROOT / run_config)
    source = describe_source(spec, None, rows)
    start = time.perf_counter()
    raw = load_raw_data(spec, rows=rows)
    validate_raw(raw, spec, source)
    wrangled, _ = wrangle(raw, spec, source)
    labelled, _ = label_examples(wrangled, spec, source)
    train, validation, test, _ = split_examples(labelled, spec, source)
    pipeline, selection = select_model(spec, training, train, validation)
    report = evaluate_selected(spec, pipeline, selection.selected, train, test)
    metric = spec.evaluation.primary_metric
    return {
        "run_config": run_config,
        "seed": spec.source.seed,
        "raw_rows": len(raw),
        "examples": len(labelled),
        "train_rows": len(train),
        "test_rows": len(test),
        "selected": selection.selected,
        "metric": metric,
        "value": report.metrics[metric],
        "baseline": report.baseline_metrics[metric],
        "gates": [result.model_dump() for result in evaluate_gates(report, spec.evaluation.quality_gates)],
        "seconds": time.perf_counter() - start,
    }


def _verdicts(result: dict[str, Any]) -> str:
    return "; ".join(f"{g['bound']}: {'passed' if g['passed'] else 'FAILED'}" for g in result["gates"]) or "none"


def measurements_table(results: list[dict[str, Any]]) -> str:
    """One row per measurement: the figure, the baseline, their ratio and each gate bound's verdict."""
    lines = [
        "| run config | raw rows | seed | examples (test) | selected | model | baseline | model / baseline "
        "| gate bounds | seconds |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['run_config']} | {r['raw_rows']:,} | {r['seed']} | {r['examples']:,} ({r['test_rows']:,}) "
            f"| {r['selected']} | {r['value']:.4f} | {r['baseline']:.4f} | {r['value'] / r['baseline']:.2f} "
            f"| {_verdicts(r)} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def _span(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def seeds_table(results: list[dict[str, Any]]) -> str:
    """Per (run config, rows): the range over seeds of the figure, the baseline, their difference and
    ratio, and how many seeds passed every gate."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["run_config"], r["raw_rows"]), []).append(r)
    lines = [
        "| run config | raw rows | seeds | model | baseline | model − baseline | model / baseline | passed |",
        "|---|---:|---:|---|---|---|---|---:|",
    ]
    for (run_config, raw_rows), group in groups.items():
        values, baselines = [r["value"] for r in group], [r["baseline"] for r in group]
        lifts = [v - b for v, b in zip(values, baselines, strict=True)]
        ratios = [v / b for v, b in zip(values, baselines, strict=True)]
        passed = sum(all(g["passed"] for g in r["gates"]) for r in group)
        lines.append(
            f"| {run_config} | {raw_rows:,} | {len(group)} | {_span(values, 4)} | {_span(baselines, 4)} "
            f"| {_span(lifts, 4)} | {_span(ratios, 2)} | {passed}/{len(group)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, help="raw row counts, or 'all'")
    parser.add_argument("--run-config", nargs="+", default=DEFAULT_RUN_CONFIGS, dest="run_configs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[None], help="default: the spec's seeds")
    parser.add_argument("--json-lines", type=Path, help="append each result to this file as it is ready")
    parser.add_argument("--tables-from", type=Path, help="print the tables of a --json-lines file; measure nothing")
    args = parser.parse_args()
    if args.tables_from:
        print_tables([json.loads(line) for line in args.tables_from.read_text().splitlines()])
        return
    from headliner.spec import load_spec

    spec = load_spec(args.spec)
    row_counts = [None if rows == "all" else int(rows) for rows in args.rows]
    results = []
    for rows in row_counts:
        for run_config in args.run_configs:
            for seed in args.seeds:
                result = measure(spec, run_config, rows, seed)
                results.append(result)
                line = json.dumps(result)
                print(line, flush=True)
                if args.json_lines:
                    with args.json_lines.open("a") as out:
                        out.write(line + "\n")
    print_tables(results)


def print_tables(results: list[dict[str, Any]]) -> None:
    print(measurements_table(results))
    if len({r["seed"] for r in results}) > 1:
        print()
        print(seeds_table(results))


if __name__ == "__main__":
    main()
