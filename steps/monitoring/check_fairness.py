"""Step: statistical parity difference of the predicted top class across the spec's fairness attribute."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.monitoring.fairness import FairnessReport, fairness
from headliner.monitoring.window import ANALYSED
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def check_fairness(
    held_out_reference: pd.DataFrame, current_window: pd.DataFrame, spec: UseCaseSpec
) -> Annotated[FairnessReport, Artifact.FAIRNESS_REPORT]:
    return fairness(current_window[current_window[ANALYSED]], held_out_reference, spec)
