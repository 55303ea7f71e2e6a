"""Step: Evidently data-quality profile of the labelled examples, shown in the dashboard."""

from typing import Annotated

import pandas as pd
from zenml import step
from zenml.types import HTMLString

from headliner.data.profiling import data_profile_html
from headliner.spec import UseCaseSpec


@step
def profile_data(labelled_data: pd.DataFrame, spec: UseCaseSpec) -> Annotated[HTMLString, "data_profile"]:
    return HTMLString(data_profile_html(labelled_data, spec, categorical=[spec.target.column]))
