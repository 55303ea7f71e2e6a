"""Runs of the project's pipelines as the CLI starts them, and the outputs it reports from a finished run.
The one module of the CLI that imports `pipelines`; no click, so a test or tool can run a pipeline the
way `run.py` does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headliner.labels import Artifact, Step

if TYPE_CHECKING:
    from datetime import datetime

    from zenml.models import ModelVersionResponse, PipelineRunResponse

    from headliner.deploy.deployment import SmokeTestReport
    from headliner.governance.stage_record import ModelStageRecord
    from headliner.model.evaluation import EvaluationReport
    from headliner.model.gates import QualityGateReport
    from headliner.monitoring.decision import Alert, MonitoringSummary
    from headliner.monitoring.window import WindowSelection
    from headliner.reports.html import DataReport, HtmlReport
    from headliner.serving.batch_scoring import BatchScoringReport
    from headliner.serving.rollout_report import RolloutReport
    from headliner.spec import UseCaseSpec

# What --pipeline ... passes to a pipeline's with_options: enable_cache, config_path, tags.
RunOptions = dict[str, Any]

# The monitoring run's reports, the summary first (it names the report folder).
MONITORING_REPORTS = (
    (Step.DECIDE_ACTION, Artifact.MONITORING_SUMMARY),
    (Step.LOAD_INFERENCE_WINDOW, Artifact.WINDOW_REPORT),
    (Step.CHECK_FEATURE_DRIFT, Artifact.FEATURE_DRIFT_REPORT),
    (Step.CHECK_PREDICTION_DRIFT, Artifact.PREDICTION_DRIFT_REPORT),
    (Step.CHECK_DATA_QUALITY, Artifact.DATA_QUALITY_REPORT),
    (Step.CHECK_FAIRNESS, Artifact.FAIRNESS_REPORT),
    (Step.EVALUATE_LIVE_PERFORMANCE, Artifact.LIVE_PERFORMANCE_REPORT),
    (Step.ESTIMATE_PERFORMANCE, Artifact.PERFORMANCE_ESTIMATE_REPORT),
)


def _finished(run: PipelineRunResponse | None, pipeline: str) -> PipelineRunResponse:
    """ZenML returns no run only for a scheduled pipeline, which the CLI never starts."""
    if run is None:
        raise RuntimeError(f"pipeline '{pipeline}' started no run")
    return run


def run_data_engineering(
    spec: UseCaseSpec, data: str | None, rows: int | None, options: RunOptions
) -> PipelineRunResponse:
    from pipelines.data_engineering import data_engineering

    return _finished(data_engineering.with_options(**options)(spec=spec, data=data, rows=rows), data_engineering.name)


def run_training(
    spec: UseCaseSpec,
    data: str | None,
    rows: int | None,
    options: RunOptions,
    trigger: dict[str, str] | None = None,
) -> PipelineRunResponse:
    """`trigger`: why a run that no person started starts (recorded on the run and its model version)."""
    from pipelines.training import training

    run = training.with_options(**options)(spec=spec, data=data, rows=rows, trigger=trigger)
    return _finished(run, training.name)


def run_deployment(spec: UseCaseSpec, number: int, port: int, options: RunOptions) -> PipelineRunResponse:
    from pipelines.deployment import deployment

    return _finished(deployment.with_options(**options)(spec=spec, version=str(number), port=port), deployment.name)


def run_batch_inference(
    spec: UseCaseSpec, data: str, number: int, output: str | None, options: RunOptions
) -> PipelineRunResponse:
    from pipelines.batch_inference import batch_inference

    run = batch_inference.with_options(**options)(spec=spec, data=data, version=str(number), output=output)
    return _finished(run, batch_inference.name)


def run_monitoring(
    spec: UseCaseSpec, number: int, selection: WindowSelection, log_url: str | None, options: RunOptions
) -> PipelineRunResponse:
    """`log_url` None: the serving settings' inference log, resolved in the step."""
    from pipelines.monitoring import monitoring

    run = monitoring.with_options(**options)(spec=spec, version=str(number), selection=selection, log_url=log_url)
    return _finished(run, monitoring.name)


def run_rollout_report(
    spec: UseCaseSpec, log_url: str, since: datetime | None, policy: str | None
) -> PipelineRunResponse:
    from pipelines.rollout_report import rollout_report

    return _finished(rollout_report(spec=spec, log_url=log_url, since=since, policy=policy), rollout_report.name)


def run_governance(model: str, version: int) -> PipelineRunResponse:
    """Record a model version's stage and promotion history as a run (after a promotion decision)."""
    from pipelines.governance import governance

    return _finished(governance(model=model, version=version), governance.name)


def load_output(run: PipelineRunResponse, step: Step, artifact: Artifact) -> Any:
    """The loaded value of a step's named output in a finished run."""
    return run.steps[step].outputs[artifact][0].load()


def split_report(run: PipelineRunResponse) -> DataReport:
    report: DataReport = load_output(run, Step.SPLIT_DATA, Artifact.SPLIT_REPORT)
    return report


def registered_version(run: PipelineRunResponse) -> ModelVersionResponse:
    """The model version a training run registered."""
    version = run.steps[Step.REGISTER_MODEL].model_version
    if version is None:
        raise RuntimeError(f"run '{run.name}' registered no model version")
    return version


def training_outcome(run: PipelineRunResponse) -> tuple[EvaluationReport, QualityGateReport]:
    """The test-set evaluation and the quality gates of a training run."""
    report: EvaluationReport = load_output(run, Step.EVALUATE_MODEL, Artifact.EVALUATION_REPORT)
    gates: QualityGateReport = load_output(run, Step.CHECK_QUALITY_GATES, Artifact.QUALITY_GATES)
    return report, gates


def smoke_test(run: PipelineRunResponse) -> SmokeTestReport:
    report: SmokeTestReport = load_output(run, Step.SMOKE_TEST_SERVICE, Artifact.SMOKE_TEST)
    return report


def batch_report(run: PipelineRunResponse) -> BatchScoringReport:
    report: BatchScoringReport = load_output(run, Step.SCORE_BATCH, Artifact.BATCH_REPORT)
    return report


def monitoring_reports(run: PipelineRunResponse) -> tuple[MonitoringSummary, dict[str, HtmlReport]]:
    """The decision, and every report of a monitoring run by its artifact name (the decision's included)."""
    loaded: dict[str, Any] = {name: load_output(run, step, name) for step, name in MONITORING_REPORTS}
    summary: MonitoringSummary = loaded[Artifact.MONITORING_SUMMARY]
    reports: dict[str, HtmlReport] = loaded
    return summary, reports


def alert(run: PipelineRunResponse) -> Alert:
    sent: Alert = load_output(run, Step.SEND_ALERT, Artifact.ALERT)
    return sent


def stage_record(run: PipelineRunResponse) -> ModelStageRecord:
    record: ModelStageRecord = load_output(run, Step.RECORD_MODEL_STAGE, Artifact.MODEL_STAGE_RECORD)
    return record


def rollout_report(run: PipelineRunResponse) -> RolloutReport:
    report: RolloutReport = load_output(run, Step.REPORT_ROLLOUT, Artifact.ROLLOUT_REPORT)
    return report
