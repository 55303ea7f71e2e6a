"""Step: map raw labels to the spec's classes and drop unknown ones, with counts."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.data.wrangling import label_examples
from headliner.labels import Artifact
from headliner.reports.html import DataReport
from headliner.spec import UseCaseSpec


@step
def label_data(
    wrangled_data: pd.DataFrame, spec: UseCaseSpec, source: str
) -> tuple[Annotated[pd.DataFrame, Artifact.LABELLED_DATA], Annotated[DataReport, Artifact.LABELLING_REPORT]]:
    # ZenML counts outputs from the literal tuple in the return statement.
    labelled_data, report = label_examples(wrangled_data, spec, source)
    return labelled_data, report
