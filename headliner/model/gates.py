"""Quality gates: the spec's bounds on test metrics, checked before a model may be registered, so a
model that does not beat its floor, ceiling or the trivial baseline never reaches the registry."""

from __future__ import annotations

from pydantic import BaseModel

from headliner.errors import QualityGateError
from headliner.model.evaluation import EvaluationReport, require_metric
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import DEFAULT_RUN_CONFIGS, LOWER_IS_BETTER, METRICS_BY_TASK, QualityGate, Task

__all__ = [
    "LOWER_IS_BETTER",
    "GateResult",
    "QualityGateReport",
    "enforce_gates",
    "evaluate_gates",
    "failure_message",
    "remedies",
]

_MISSED = {">=": "is below", "<=": "is above"}


def remedies(task: Task) -> str:
    """What to try when a gate fails, ordered by what the measured figures (docs/training.md, "Quality
    gates") say helps most."""
    return (
        "more rows (a larger --rows, or no --rows for the whole source), the full run config "
        f"(--run-config {DEFAULT_RUN_CONFIGS[task]}, the default), or a lower bound in the spec's "
        "evaluation.quality_gates (docs/training.md, 'Quality gates', has the figures measured per data size)"
    )


class GateResult(BaseModel):
    """One bound of a quality gate and whether the model met it."""

    metric: str
    value: float
    baseline: float
    bound: str  # "<operator> <threshold>", e.g. ">= 0.8" or ">= baseline 0.0712 + 0.05 = 0.1212"
    passed: bool
    from_baseline: bool = False  # the threshold is the baseline's figure plus or minus a lift

    def failure(self) -> str:
        """The miss in words, with the baseline's figure when the limit is not already made of it:
        "accuracy 0.7500 is below 0.8 (baseline 0.4000)"."""
        operator, threshold = self.bound.split(" ", 1)
        miss = f"{self.metric} {self.value:.4f} {_MISSED[operator]} {threshold}"
        return miss if self.from_baseline else f"{miss} (baseline {self.baseline:.4f})"


class QualityGateReport(HtmlReport):
    """The gate results of a model that passed them all: the artifact kept with the model version."""

    results: list[GateResult]

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {"gates": len(self.results), "passed": sum(result.passed for result in self.results)}

    def to_html(self) -> str:
        rows = [
            [r.metric, f"{r.value:.4f}", f"{r.baseline:.4f}", r.bound, "passed" if r.passed else "FAILED"]
            for r in self.results
        ]
        table = html_table(["metric", "value", "baseline", "bound", "result"], rows) if rows else "<p>No gates set.</p>"
        return html_page("Quality gates", [("Results", table)])


def _result(
    gate: QualityGate,
    value: float,
    baseline: float,
    at_least: bool,
    threshold: float,
    text: str,
    from_baseline: bool = False,
) -> GateResult:
    passed = value >= threshold if at_least else value <= threshold
    bound = f"{'>=' if at_least else '<='} {text}"
    return GateResult(
        metric=gate.metric, value=value, baseline=baseline, bound=bound, passed=passed, from_baseline=from_baseline
    )


def evaluate_gates(report: EvaluationReport, gates: list[QualityGate]) -> list[GateResult]:
    """One result per bound that a gate sets (min, max, min_lift_over_baseline,
    min_improvement_over_baseline). A relative improvement i asks for at most baseline - i x |baseline|
    on a lower-is-better metric, at least baseline + i x |baseline| otherwise (so a negative baseline R2
    still asks for more)."""
    results = []
    for gate in gates:
        if gate.metric not in METRICS_BY_TASK[report.task]:
            raise QualityGateError(
                f"quality gate on unknown metric '{gate.metric}'; known metrics: {', '.join(report.metrics)}"
            )
        where = f"the {report.rows:,} {report.split} rows of {report.candidate}"
        try:
            value = require_metric(report.metrics, gate.metric, where)
            baseline = require_metric(report.baseline_metrics, gate.metric, f"the baseline's forecast on {where}")
        except ValueError as undefined:
            raise QualityGateError(
                f"quality gate on {gate.metric} cannot be checked: {undefined}. Nothing was registered. Gate on "
                "a metric defined for these rows (e.g. smape or mae) in the spec's evaluation.quality_gates."
            ) from None
        if gate.min is not None:
            results.append(_result(gate, value, baseline, True, gate.min, f"{gate.min:g}"))
        if gate.max is not None:
            results.append(_result(gate, value, baseline, False, gate.max, f"{gate.max:g}"))
        if gate.min_lift_over_baseline is not None:
            lift = gate.min_lift_over_baseline
            higher_is_better = gate.metric not in LOWER_IS_BETTER
            threshold = baseline + lift if higher_is_better else baseline - lift
            sign = "+" if higher_is_better else "-"
            text = f"baseline {baseline:.4f} {sign} {lift:g} = {threshold:.4f}"
            results.append(_result(gate, value, baseline, higher_is_better, threshold, text, from_baseline=True))
        if gate.min_improvement_over_baseline is not None:
            share = gate.min_improvement_over_baseline
            higher_is_better = gate.metric not in LOWER_IS_BETTER
            margin = share * abs(baseline)
            threshold = baseline + margin if higher_is_better else baseline - margin
            sign = "+" if higher_is_better else "-"
            text = f"baseline {baseline:.4f} {sign} {share * 100:g}% = {threshold:.4f}"
            results.append(_result(gate, value, baseline, higher_is_better, threshold, text, from_baseline=True))
    return results


def failure_message(report: EvaluationReport, missed: list[GateResult]) -> str:
    """One line: what was evaluated, every miss with its limit and baseline, what the baseline is, and
    what to try."""
    misses = "; ".join(result.failure() for result in missed)
    return (
        f"quality gate failed for {report.candidate} on {report.rows:,} {report.split} rows: {misses}. "
        f"The baseline is {report.baseline_description}. Nothing was registered. To pass, try "
        f"{remedies(report.task)}."
    )


def enforce_gates(report: EvaluationReport, gates: list[QualityGate]) -> list[GateResult]:
    """The gate results if all passed; otherwise a QualityGateError naming every miss on one line."""
    results = evaluate_gates(report, gates)
    missed = [result for result in results if not result.passed]
    if missed:
        raise QualityGateError(failure_message(report, missed))
    return results
