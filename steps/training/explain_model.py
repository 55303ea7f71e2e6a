"""Step: global explanations of the packaged model on the validation split (which features it uses,
overall and, for a classifier, per class; for a regressor, mean |SHAP| of the forecast in the target's
unit), computed on the ONNX predictor so that what is explained is what is served; kept with the model
version and in the MLflow run."""

from typing import Annotated

import onnx
import pandas as pd
from zenml import log_metadata, step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.model.explanations import GlobalExplanations, global_explanations
from headliner.model.onnx_packaging import OnnxPredictor
from headliner.spec import UseCaseSpec
from steps.training.discard_failed_version import discard_failed_version


@step(experiment_tracker=True, enable_cache=False, on_failure=discard_failed_version)
def explain_model(
    onnx_model: onnx.ModelProto, validation_split: pd.DataFrame, spec: UseCaseSpec
) -> Annotated[GlobalExplanations, Artifact.GLOBAL_EXPLANATIONS]:
    explanations = global_explanations(OnnxPredictor.from_model(onnx_model), validation_split, spec)
    explanations.log_to_mlflow()
    # the report's summary_metadata is attached by its materializer; the full ranking and the cost here
    log_metadata(
        metadata={
            "importance": {f.feature: f.mean_drop for f in explanations.overall},
            "seconds": explanations.importance_seconds + explanations.shap_seconds,
        },
        infer_artifact=True,
    )
    return explanations
