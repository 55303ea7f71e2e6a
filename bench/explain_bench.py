"""Benchmark of explanations: the latency of one song's local explanation (`LocalExplainer.explain`, what
POST /explain runs) as a ratio to one `/predict`-equivalent `OnnxPredictor.probabilities` call on the same
model in the same process (first call, then p50/p95 over repeated calls on validation songs), beside shap's
own `PermutationExplainer` on the same model and background (its first call compiles numba code), with the
largest difference between their SHAP values; then the cost of the training step's global explanations
on the validation split.

    python bench/explain_bench.py [--raw-rows 60000] [--calls 200] [--families logistic_regression,random_forest]

Models are packaged as the training pipeline packages them (the ONNX file carries its explanation
background), from the project's jukebox generator, split as the data pipeline splits.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from headliner.model.onnx_packaging import OnnxPredictor
    from headliner.spec import UseCaseSpec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

SEED = 0
SHAP_CALLS = 20  # shap's explainer is timed on fewer songs: the comparison is of its level, not its tail
FAMILY_PARAMS: dict[str, dict[str, object]] = {
    "logistic_regression": {},
    "random_forest": {"n_estimators": 10, "max_depth": 6, "min_samples_leaf": 5},  # the test suite's forest
    "mlp": {"hidden_layer_sizes": (64,)},
}


def _splits(spec: UseCaseSpec, raw_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from headliner.data.sources import load_raw_data
    from headliner.data.splitting import split_examples
    from headliner.data.wrangling import label_examples, wrangle

    wrangled, _ = wrangle(load_raw_data(spec, rows=raw_rows), spec, "bench")
    labelled, _ = label_examples(wrangled, spec, "bench")
    train, validation, _, _ = split_examples(labelled, spec, "bench")
    return train, validation


def _packaged(spec: UseCaseSpec, family: str, train: pd.DataFrame) -> OnnxPredictor:
    from headliner.model.estimators import CandidateConfig, build_pipeline, feature_frame
    from headliner.model.onnx_packaging import OnnxPredictor, explanation_background, package_onnx

    candidate = CandidateConfig(name=family, family=family, params=FAMILY_PARAMS[family])
    pipeline = build_pipeline(spec, candidate).fit(feature_frame(train, spec), train[spec.target.column])
    return OnnxPredictor.from_model(package_onnx(pipeline, spec, "bench", explanation_background(train, spec)))


def _timings_ms(call: Callable[[int], object], count: int) -> np.ndarray:
    timings = np.empty(count)
    for i in range(count):
        start = time.perf_counter_ns()
        call(i)
        timings[i] = (time.perf_counter_ns() - start) / 1e6
    return timings


def _row(name: str, first_ms: float, timings: np.ndarray, predict_p50: float) -> str:
    p50, p95 = float(np.median(timings)), float(np.percentile(timings, 95))
    return f"  {name:34} {first_ms:10,.1f} {p50:9,.2f} {p95:9,.2f} {p50 / predict_p50:12,.0f}x"


def _bench_family(spec: UseCaseSpec, family: str, train: pd.DataFrame, validation: pd.DataFrame, calls: int) -> None:
    from headliner.model.estimators import feature_frame
    from headliner.model.explanations import LocalExplainer, global_explanations, probability_function

    predictor = _packaged(spec, family, train)
    songs = feature_frame(validation, spec).to_numpy(dtype=np.float64)
    songs = songs[np.random.default_rng(SEED).choice(len(songs), size=min(calls, len(songs)), replace=False)]
    one = [songs[i : i + 1] for i in range(len(songs))]
    background = predictor.background
    assert background is not None
    print(f"\n{family}: background {background.shape[0]} rows x {background.shape[1]} features")
    print(f"  {'call':34} {'first ms':>10} {'p50 ms':>9} {'p95 ms':>9} {'p50 / predict':>13}")

    start = time.perf_counter_ns()
    predictor.probabilities(one[0])
    predict_first = (time.perf_counter_ns() - start) / 1e6
    predict = _timings_ms(lambda i: predictor.probabilities(one[i % len(one)]), 10 * len(one))
    predict_p50 = float(np.median(predict))
    print(_row("predict (probabilities, 1 song)", predict_first, predict, predict_p50))

    start = time.perf_counter_ns()
    explainer = LocalExplainer(predictor)
    explainer.explain(one[0])
    explain_first = (time.perf_counter_ns() - start) / 1e6
    explain = _timings_ms(lambda i: explainer.explain(one[i % len(one)]), len(one))
    print(_row("LocalExplainer.explain (1 song)", explain_first, explain, predict_p50))

    import shap

    model = probability_function(predictor)
    reference = shap.PermutationExplainer(model, shap.maskers.Independent(background, max_samples=len(background)))
    start = time.perf_counter_ns()
    reference(one[0], silent=True)
    shap_first = (time.perf_counter_ns() - start) / 1e6
    shap_calls = min(SHAP_CALLS, len(one))
    reference_timings = _timings_ms(lambda i: reference(one[i], silent=True), shap_calls)
    print(_row("shap PermutationExplainer (1 song)", shap_first, reference_timings, predict_p50))
    difference = 0.0
    for song in one[:shap_calls]:
        np.random.seed(SEED)  # shap draws its permutations from numpy's global generator
        seeded = shap.PermutationExplainer(
            model, shap.maskers.Independent(background, max_samples=len(background)), seed=SEED
        )
        expected = seeded(song, silent=True).values[0]
        difference = max(difference, float(np.abs(explainer.shap_values(song)[0][0] - expected).max()))
    print(f"  max |SHAP difference| to shap's, same seed, {shap_calls} songs: {difference:.1e}")

    explanations = global_explanations(predictor, validation, spec)
    print(
        f"  global explanations on {len(validation):,} validation rows: permutation importance "
        f"{explanations.importance_seconds:.1f} s ({explanations.importance_rows:,} rows x 13 features x "
        f"{explanations.repeats} repeats), per-class mean |SHAP| {explanations.shap_seconds:.1f} s "
        f"({explanations.shap_rows} rows); top: {', '.join(f.feature for f in explanations.top_features(3))}"
    )


def main() -> None:
    from headliner.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-rows", type=int, default=60_000, help="raw chart rows to generate")
    parser.add_argument("--calls", type=int, default=200, help="timed explanations (one validation song each)")
    parser.add_argument("--families", default="logistic_regression,random_forest", help=", ".join(FAMILY_PARAMS))
    args = parser.parse_args()

    spec = load_spec(PROJECT_ROOT / "configs" / "use_cases" / "jukebox.yaml")
    train, validation = _splits(spec, args.raw_rows)
    print(
        f"Explanation benchmark, jukebox: {args.raw_rows:,} generated raw rows -> {len(train):,} train, "
        f"{len(validation):,} validation examples; one process, one ONNX Runtime thread"
    )
    for family in args.families.split(","):
        _bench_family(spec, family, train, validation, args.calls)


if __name__ == "__main__":
    main()
