"""Step: train every candidate of the run config, track each in MLflow, keep the best on validation."""

from typing import Annotated

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import get_step_context, step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.data.splitting import dataframe_fingerprint
from headliner.labels import Artifact
from headliner.model.tracking import git_commit, log_candidate
from headliner.model.training import ModelSelection, TrainingConfig, select_model
from headliner.spec import UseCaseSpec


@step(experiment_tracker=True, enable_cache=False)
def train_model(
    train_split: pd.DataFrame, validation_split: pd.DataFrame, spec: UseCaseSpec, training: TrainingConfig
) -> tuple[Annotated[Pipeline, Artifact.SKLEARN_MODEL], Annotated[ModelSelection, Artifact.MODEL_SELECTION]]:
    tags = {
        "use_case": spec.name,
        "git_commit": git_commit(),
        "data_fingerprint": dataframe_fingerprint(train_split),
        "zenml_run_id": str(get_step_context().pipeline_run.id),
    }
    sklearn_model, model_selection = select_model(
        spec,
        training,
        train_split,
        validation_split,
        track=lambda trained: log_candidate(spec, trained, validation_split, tags),
    )
    return sklearn_model, model_selection
