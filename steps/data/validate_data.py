"""Step: hard checks (fail the run) and a count of soft problems in the raw table."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.data.validation import validate_raw
from headliner.labels import Artifact
from headliner.reports.html import DataReport
from headliner.spec import UseCaseSpec


@step
def validate_data(
    raw_data: pd.DataFrame, spec: UseCaseSpec, source: str
) -> Annotated[DataReport, Artifact.VALIDATION_REPORT]:
    return validate_raw(raw_data, spec, source)
