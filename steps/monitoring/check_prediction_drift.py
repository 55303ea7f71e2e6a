"""Step: Evidently's drift test of the predicted top class, window against the reference's predictions."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.monitoring.drift import DriftReport, prediction_drift
from headliner.monitoring.window import ANALYSED
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def check_prediction_drift(
    held_out_reference: pd.DataFrame, current_window: pd.DataFrame, spec: UseCaseSpec
) -> Annotated[DriftReport, Artifact.PREDICTION_DRIFT_REPORT]:
    return prediction_drift(held_out_reference, current_window[current_window[ANALYSED]], spec)
