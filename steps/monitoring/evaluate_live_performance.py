"""Step: live metrics from the true labels that arrived, beside the version's offline evaluation."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.model.evaluation import EvaluationReport
from headliner.monitoring.performance import LivePerformanceReport, live_performance
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def evaluate_live_performance(
    current_window: pd.DataFrame, evaluation_report: EvaluationReport, spec: UseCaseSpec
) -> Annotated[LivePerformanceReport, Artifact.LIVE_PERFORMANCE_REPORT]:
    return live_performance(current_window, evaluation_report.metrics, spec)
