"""Step: fairness of the predicted top class across the spec's fairness attribute — statistical parity,
disparate impact, and with true labels equal opportunity and average odds — beside the validation split's."""

from typing import Annotated

import onnx
import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report and ONNX materializers)
from headliner.labels import Artifact
from headliner.monitoring.estimate import labelled_reference
from headliner.monitoring.fairness import FairnessReport, fairness, not_watched
from headliner.monitoring.window import ANALYSED, LABEL
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def check_fairness(
    validation_split: pd.DataFrame, onnx_model: onnx.ModelProto, current_window: pd.DataFrame, spec: UseCaseSpec
) -> Annotated[FairnessReport, Artifact.FAIRNESS_REPORT]:
    """The reference is the validation split with its true labels, as the version predicts it (scored only
    when the spec watches an attribute)."""
    if spec.monitoring.fairness_attribute is None:
        return not_watched()
    reference, _ = labelled_reference(validation_split, onnx_model.SerializeToString(), spec)
    return fairness(
        current_window[current_window[ANALYSED]],
        reference,
        spec,
        labelled=current_window[current_window[LABEL].notna()],
    )
