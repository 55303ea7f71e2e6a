"""Step: train/validation/test split (grouped, stratified and seeded, or by time, per the spec); each split
carries its fingerprint."""

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.data.splitting import dataframe_fingerprint, split_examples
from headliner.labels import Artifact
from headliner.reports.html import DataReport
from headliner.spec import UseCaseSpec


@step
def split_data(
    labelled_data: pd.DataFrame, spec: UseCaseSpec, source: str
) -> tuple[
    Annotated[pd.DataFrame, Artifact.TRAIN_SPLIT],
    Annotated[pd.DataFrame, Artifact.VALIDATION_SPLIT],
    Annotated[pd.DataFrame, Artifact.TEST_SPLIT],
    Annotated[DataReport, Artifact.SPLIT_REPORT],
]:
    train, validation, test, report = split_examples(labelled_data, spec, source)
    for name, part in (
        (Artifact.TRAIN_SPLIT, train),
        (Artifact.VALIDATION_SPLIT, validation),
        (Artifact.TEST_SPLIT, test),
    ):
        log_metadata(
            metadata={"fingerprint": dataframe_fingerprint(part), "rows": len(part)},
            artifact_name=name,
            infer_artifact=True,
        )
    return train, validation, test, report
