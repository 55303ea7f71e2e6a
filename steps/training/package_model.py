"""Step: the whole fitted pipeline as one ONNX file with its metadata, checked for parity."""

from typing import Annotated

import onnx
import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import get_step_context, log_metadata, step

import materializers  # noqa: F401  (registers the ONNX materializer)
from headliner.labels import Artifact
from headliner.model.evaluation import EvaluationReport
from headliner.model.packaging import package_checked, parity_key
from headliner.spec import UseCaseSpec
from steps.training.discard_failed_version import discard_failed_version


@step(enable_cache=False, on_failure=discard_failed_version)
def package_model(
    sklearn_model: Pipeline,
    evaluation_report: EvaluationReport,
    train_split: pd.DataFrame,
    test_split: pd.DataFrame,
    spec: UseCaseSpec,
) -> Annotated[onnx.ModelProto, Artifact.ONNX_MODEL]:
    context = get_step_context()
    onnx_model, parity = package_checked(
        spec,
        sklearn_model,
        evaluation_report,
        train_split,
        test_split,
        model_version=str(context.model.number),
        zenml_run_id=str(context.pipeline_run.id),
    )
    log_metadata(metadata={parity_key(spec): parity}, infer_artifact=True)
    return onnx_model
