"""Step: the reference data — the served version's training split (what the inputs are compared with)
and its validation split (what the predictions are compared with), each with what the version predicts
(the top class, or the forecast)."""

from typing import Annotated

import onnx
import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the ONNX materializer)
from headliner.labels import Artifact
from headliner.monitoring.window import reference_data
from headliner.spec import UseCaseSpec


@step
def score_reference(
    train_split: pd.DataFrame, validation_split: pd.DataFrame, onnx_model: onnx.ModelProto, spec: UseCaseSpec
) -> tuple[Annotated[pd.DataFrame, Artifact.REFERENCE_DATA], Annotated[pd.DataFrame, Artifact.HELD_OUT_REFERENCE]]:
    """Predictions on rows the model was trained on are more confident than on new rows (a flexible model
    fits them): the predicted-class distribution of live traffic is compared with held-out rows instead."""
    model = onnx_model.SerializeToString()
    return reference_data(train_split, model, spec), reference_data(validation_split, model, spec)
