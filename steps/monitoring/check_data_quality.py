"""Step: data quality of the window — invalid values, rejected requests, Evidently's data summary."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.monitoring.quality import DataQualityReport, data_quality
from headliner.monitoring.window import ANALYSED, WindowReport
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def check_data_quality(
    current_window: pd.DataFrame, window_report: WindowReport, spec: UseCaseSpec
) -> Annotated[DataQualityReport, Artifact.DATA_QUALITY_REPORT]:
    return data_quality(current_window[current_window[ANALYSED]], window_report, spec)
