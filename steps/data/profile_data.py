"""Step: the data profile of the examples that are split (statistics, top values, histograms of the
features, derived ones included, and the target), shown in the dashboard, with Evidently's interactive
summary in the artifact's folder."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.data.profiling import DataProfile, data_profile, target_columns
from headliner.labels import Artifact
from headliner.spec import UseCaseSpec


@step
def profile_data(labelled_data: pd.DataFrame, spec: UseCaseSpec) -> Annotated[DataProfile, Artifact.DATA_PROFILE]:
    return data_profile(labelled_data, spec, *target_columns(spec), title=f"Data profile of {spec.name} labelled data")
