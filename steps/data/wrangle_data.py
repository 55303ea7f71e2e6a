"""Step: deduplicate, fix types, repair or drop odd values per the spec, with counts."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.data.wrangling import wrangle
from headliner.labels import Artifact
from headliner.reports.html import DataReport
from headliner.spec import UseCaseSpec


@step
def wrangle_data(
    raw_data: pd.DataFrame, spec: UseCaseSpec, source: str
) -> tuple[Annotated[pd.DataFrame, Artifact.WRANGLED_DATA], Annotated[DataReport, Artifact.WRANGLING_REPORT]]:
    # ZenML counts outputs from the literal tuple in the return statement.
    wrangled_data, report = wrangle(raw_data, spec, source)
    return wrangled_data, report
