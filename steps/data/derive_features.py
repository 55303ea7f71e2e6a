"""Step: add the spec's derived time-series features (lags, rolling means, week of year) to the labelled
examples, dropping and counting rows without the history they need."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.data import time_features
from headliner.labels import Artifact
from headliner.reports.html import DataReport
from headliner.spec import UseCaseSpec


@step
def derive_features(
    labelled_data: pd.DataFrame, spec: UseCaseSpec, source: str
) -> tuple[Annotated[pd.DataFrame, Artifact.DERIVED_DATA], Annotated[DataReport, Artifact.DERIVATION_REPORT]]:
    # ZenML counts outputs from the literal tuple in the return statement.
    derived_data, report = time_features.derive_features(labelled_data, spec, source)
    return derived_data, report
