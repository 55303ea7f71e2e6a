"""Step: a model version's stage, MLflow aliases and promotion history as the `model_stage_record`
artifact, so each promotion decision is a run the ZenML dashboard shows."""

from typing import Annotated

from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.governance.stage_record import ModelStageRecord, model_stage_record
from headliner.labels import Artifact


@step(enable_cache=False)
def record_model_stage(model: str, version: int) -> Annotated[ModelStageRecord, Artifact.MODEL_STAGE_RECORD]:
    """Never cached: the stage and history change with every decision."""
    return model_stage_record(model, version)
