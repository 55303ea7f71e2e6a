"""Step: Evidently data-quality profile of the labelled examples, shown in the dashboard."""

from typing import Annotated

import pandas as pd
from zenml import step
from zenml.types import HTMLString

from headliner.data.profiling import data_profile_html
from headliner.labels import Artifact
from headliner.spec import UseCaseSpec


@step
def profile_data(labelled_data: pd.DataFrame, spec: UseCaseSpec) -> Annotated[HTMLString, Artifact.DATA_PROFILE]:
    return HTMLString(data_profile_html(labelled_data, spec, categorical=[spec.target.column]))
