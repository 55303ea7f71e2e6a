"""Step: Evidently's drift test of every feature, window against reference."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.monitoring.drift import DriftReport, feature_drift
from headliner.monitoring.window import ANALYSED
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def check_feature_drift(
    reference_data: pd.DataFrame, current_window: pd.DataFrame, spec: UseCaseSpec
) -> Annotated[DriftReport, Artifact.FEATURE_DRIFT_REPORT]:
    return feature_drift(reference_data, current_window[current_window[ANALYSED]], spec)
