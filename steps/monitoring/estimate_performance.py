"""Step: the version's performance on the window estimated without labels (CBPE), calibrated on its
validation split."""

from typing import Annotated

import onnx
import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report and ONNX materializers)
from headliner.labels import Artifact
from headliner.monitoring.estimate import PerformanceEstimateReport, performance_estimate
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def estimate_performance(
    validation_split: pd.DataFrame, onnx_model: onnx.ModelProto, current_window: pd.DataFrame, spec: UseCaseSpec
) -> Annotated[PerformanceEstimateReport, Artifact.PERFORMANCE_ESTIMATE_REPORT]:
    return performance_estimate(validation_split, onnx_model.SerializeToString(), current_window, spec)
