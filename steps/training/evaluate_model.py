"""Step: evaluate the selected model on the test split against the baseline of its task (the class prior,
or the spec's baseline forecast)."""

from typing import Annotated

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import log_metadata, step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.model.evaluation import EvaluationReport
from headliner.model.tracking import log_evaluation
from headliner.model.training import ModelSelection, evaluate_selected
from headliner.spec import UseCaseSpec


@step(experiment_tracker=True, enable_cache=False)
def evaluate_model(
    sklearn_model: Pipeline,
    model_selection: ModelSelection,
    train_split: pd.DataFrame,
    test_split: pd.DataFrame,
    spec: UseCaseSpec,
) -> Annotated[EvaluationReport, Artifact.EVALUATION_REPORT]:
    report = evaluate_selected(spec, sklearn_model, model_selection.selected, train_split, test_split)
    log_evaluation(report)
    log_metadata(
        metadata={
            "test_metrics": report.metrics,
            "baseline_metrics": report.baseline_metrics,
            "baseline": report.baseline_description,
        },
        infer_artifact=True,
    )
    return report
