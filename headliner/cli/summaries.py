"""The lines a finished run prints about what it made (splits, model version, service), shared by the
--pipeline runs and the training a monitoring run starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from headliner.cli import runs

if TYPE_CHECKING:
    from zenml.models import PipelineRunResponse

    from headliner.deploy.deployment import SmokeTestReport
    from headliner.model.evaluation import EvaluationReport
    from headliner.model.gates import QualityGateReport
    from headliner.reports.html import DataReport

SPLITS = ("train", "validation", "test")


def split_lines(report: DataReport) -> list[str]:
    """How many labelled examples, and each split's rows and fingerprint."""
    return [f"{report.rows_in:,} labelled examples"] + [
        f"  {name + '_split':17} {report.facts[f'{name} rows']:>18}  fingerprint {report.facts[f'{name} fingerprint']}"
        for name in SPLITS
    ]


def model_version_lines(model_name: str, number: int, report: EvaluationReport, gates: QualityGateReport) -> list[str]:
    """The registered version, its test metrics beside the baseline's, and its quality gates."""
    lines = [
        f"Registered model '{model_name}' version {number} (candidate '{report.candidate}')",
        f"  {'test metric':22} {'model':>8} {'baseline':>9}",
    ]
    lines += [
        f"  {metric:22} {value:8.4f} {report.baseline_metrics[metric]:9.4f}" for metric, value in report.metrics.items()
    ]
    lines += [
        f"  gate {gate.metric} {gate.bound}: {'passed' if gate.passed else 'FAILED'} ({gate.value:.4f})"
        for gate in gates.results
    ]
    lines.append(
        f"Its reports and stage: the run's artifacts in the ZenML dashboard (zenml login --local); "
        f"the registry: python run.py mlflow-ui, Models -> {model_name}"
    )
    return lines


def training_lines(model_name: str, run: PipelineRunResponse) -> list[str]:
    """A finished training run: its splits, then the version it registered."""
    report, gates = runs.training_outcome(run)
    return split_lines(runs.split_report(run)) + model_version_lines(
        model_name, runs.registered_version(run).number, report, gates
    )


def deployment_lines(report: SmokeTestReport) -> list[str]:
    """Where the service answers, its smoke test, and how to try and stop it (after a dry run: where it would)."""
    if not report.applied:
        return [
            f"Dry run: not applied; the service for '{report.model_name}' version {report.model_version} "
            f"would be at {report.url}"
        ]
    return [
        f"Service for '{report.model_name}' version {report.model_version} is live at {report.url}",
        *(
            f"  smoke test {check.name}: {'passed' if check.passed else 'FAILED'} ({check.detail})"
            for check in report.checks
        ),
        f"  Open Inference Protocol: {report.url}/v2/models/{report.model_name}/infer   metrics: {report.url}/metrics",
        f"Open the page in a browser: {report.url}/",
        "Try it:",
        f"  {report.curl}",
        "Running services: zenml model-deployer models list; stop one: zenml model-deployer models delete <uuid>",
    ]
