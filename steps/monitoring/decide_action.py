"""Step: ok | warn | retrain from the checks' figures and the spec's thresholds."""

from typing import Annotated

from zenml import get_step_context, log_metadata, step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.monitoring.decision import MonitoringSummary, decide
from headliner.monitoring.drift import DriftReport
from headliner.monitoring.estimate import PerformanceEstimateReport
from headliner.monitoring.fairness import FairnessReport
from headliner.monitoring.performance import LivePerformanceReport
from headliner.monitoring.quality import DataQualityReport
from headliner.monitoring.window import WindowReport
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def decide_action(
    window_report: WindowReport,
    feature_drift_report: DriftReport,
    prediction_drift_report: DriftReport,
    data_quality_report: DataQualityReport,
    fairness_report: FairnessReport,
    live_performance_report: LivePerformanceReport,
    performance_estimate_report: PerformanceEstimateReport,
    spec: UseCaseSpec,
) -> Annotated[MonitoringSummary, Artifact.MONITORING_SUMMARY]:
    """The decision is also recorded as the run's metadata (dashboard: the run's metadata tab)."""
    summary = decide(
        window_report,
        feature_drift_report,
        prediction_drift_report,
        data_quality_report,
        fairness_report,
        live_performance_report,
        spec,
        performance_estimate_report,
    )
    log_metadata(
        metadata={"decision": summary.decision, "reasons": summary.reasons},
        run_id_name_or_prefix=get_step_context().pipeline_run.id,
    )
    return summary
