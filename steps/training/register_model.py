"""Step: complete the model version (splits, evaluation, metrics, model card) and mirror it in the
stack's model registry (MLflow) with the card's files; its stage record shows the new version's state in
the dashboard."""

from typing import Annotated

import onnx
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.model.utils import link_artifact_to_model

import materializers  # noqa: F401  (registers the report materializer)
from headliner.data.validation import DATE_RANGE_FACT
from headliner.governance.model_card import (
    ModelCard,
    build_model_card,
    explanation_facts,
    log_card_to_mlflow,
)
from headliner.governance.promotion import AUTOMATION_USER, history, request_promotion
from headliner.governance.stage_record import ModelStageRecord, model_stage_record
from headliner.labels import Artifact
from headliner.model.evaluation import EvaluationReport
from headliner.model.explanations import GlobalExplanations
from headliner.model.gates import QualityGateReport
from headliner.model.onnx_packaging import OnnxPredictor
from headliner.model.registration import mirror_to_registry, run_link, version_metadata
from headliner.model.training import ModelSelection
from headliner.monitoring.fairness import held_out_fairness
from headliner.reports.html import DataReport
from headliner.spec import UseCaseSpec
from steps.training.discard_failed_version import discard_failed_version

LINKED_INPUTS = (  # inputs named after the artifacts they receive
    Artifact.TRAIN_SPLIT,
    Artifact.VALIDATION_SPLIT,
    Artifact.TEST_SPLIT,
    Artifact.EVALUATION_REPORT,
    Artifact.MODEL_SELECTION,
    Artifact.QUALITY_GATES,
    Artifact.VALIDATION_REPORT,
)


@step(experiment_tracker=True, enable_cache=False, on_failure=discard_failed_version)
def register_model(
    onnx_model: onnx.ModelProto,
    evaluation_report: EvaluationReport,
    model_selection: ModelSelection,
    quality_gates: QualityGateReport,
    train_split: pd.DataFrame,
    validation_split: pd.DataFrame,
    test_split: pd.DataFrame,
    global_explanations: GlobalExplanations,
    validation_report: DataReport,
    spec: UseCaseSpec,
    request_staging: bool = False,
    trigger: dict[str, str] | None = None,
) -> tuple[
    Annotated[ModelCard, Artifact.MODEL_CARD],
    Annotated[ModelStageRecord, Artifact.MODEL_STAGE_RECORD],
]:
    """`request_staging` (run config) files the staging request for a second person to approve; `trigger`
    (set by the pipeline) is recorded on the version: why it was trained. The card and the stage record
    come last, so they show the MLflow mirror and the request."""
    context = get_step_context()
    for name in LINKED_INPUTS:
        link_artifact_to_model(context.inputs[name][0])
    splits: dict[str, pd.DataFrame] = {
        Artifact.TRAIN_SPLIT: train_split,
        Artifact.VALIDATION_SPLIT: validation_split,
        Artifact.TEST_SPLIT: test_split,
    }
    version = context.model.number
    registry_version = mirror_to_registry(spec, onnx_model, version, context.pipeline_run, evaluation_report)
    metadata = version_metadata(evaluation_report, splits, registry_version)
    if trigger:
        metadata["trigger"] = trigger
    log_metadata(metadata=metadata, infer_model=True)
    if request_staging:
        request_promotion(
            spec.name,
            version,
            "staging",
            f"automatic: quality gates passed in run {context.pipeline_run.name}",
            AUTOMATION_USER,
        )
    groups, figures, note = held_out_fairness(spec, test_split, OnnxPredictor.from_model(onnx_model))
    link = run_link(context.pipeline_run)
    card = build_model_card(
        spec,
        version,
        onnx_model,
        evaluation_report,
        model_selection,
        quality_gates,
        splits,
        date_range=validation_report.facts.get(DATE_RANGE_FACT, "not recorded by validation"),
        groups=groups,
        fairness=figures,
        fairness_note=note,
        explanations=explanation_facts(global_explanations),
        history=history(spec.name, version),
        mlflow_version=registry_version,
        links={
            "ZenML run": link["zenml_run_name"],
            **({"ZenML run URL": link["zenml_run_url"]} if "zenml_run_url" in link else {}),
        },
    )
    log_card_to_mlflow(card)
    return card, model_stage_record(spec.name, version)
