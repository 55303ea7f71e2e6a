"""Step: complete the model version (splits, evaluation, metrics, model card) and mirror it in the
stack's model registry (MLflow) with the card's files; its stage record shows the new version's state in
the dashboard."""

from typing import Annotated

import numpy as np
import onnx
import pandas as pd
from zenml import get_step_context, log_metadata, step
from zenml.model.utils import link_artifact_to_model

import materializers  # noqa: F401  (registers the report materializer)
from headliner.governance.model_card import (
    FairnessFact,
    GroupMetrics,
    ModelCard,
    build_model_card,
    explanation_facts,
    group_metrics,
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
from headliner.monitoring import fairness
from headliner.monitoring.window import reference_rows
from headliner.spec import UseCaseSpec
from steps.training.discard_failed_version import discard_failed_version

LINKED_INPUTS = (  # inputs named after the artifacts they receive
    Artifact.TRAIN_SPLIT,
    Artifact.VALIDATION_SPLIT,
    Artifact.TEST_SPLIT,
    Artifact.EVALUATION_REPORT,
    Artifact.MODEL_SELECTION,
    Artifact.QUALITY_GATES,
)


def fairness_on_test_split(
    spec: UseCaseSpec, test_split: pd.DataFrame, predictor: OnnxPredictor
) -> tuple[list[GroupMetrics], list[FairnessFact], str]:
    """The card's per-group metrics (every test row, like the test metrics) and fairness figures with monitoring's
    own functions, on the test split as traffic sends it (`reference_rows`: one row per song, as live monitoring's
    reference is): groups, figures, a note."""
    attribute = spec.monitoring.fairness_attribute
    if attribute is None:
        return [], [], "The spec sets no fairness attribute (monitoring.fairness_attribute): no groups to compare."
    probabilities = predictor.probabilities(test_split[spec.feature_names].to_numpy(dtype=np.float64))
    groups = group_metrics(test_split, probabilities, spec, attribute)
    rules = spec.monitoring
    traffic = reference_rows(test_split, spec)
    flags = traffic[attribute].to_numpy().astype(bool)
    chosen = predictor.probabilities(traffic[spec.feature_names].to_numpy(dtype=np.float64)).argmax(axis=1)
    predicted = np.asarray(spec.target.classes, dtype=object)[chosen]
    labels = traffic[spec.target.column].astype(str).to_numpy()
    facts = []
    parity = fairness.parity_differences(flags, predicted)
    if rules.fairness_max_parity_difference is not None:
        facts.append(
            FairnessFact(
                name="statistical_parity_difference",
                value=abs(parity[0].difference) if parity else None,
                label=parity[0].label if parity else None,
                upper=rules.fairness_max_parity_difference,
                note="" if parity else f"every test row has the same {attribute}",
            )
        )
    for name, lower, upper, rows in (
        (
            fairness.DISPARATE_IMPACT_RATIO,
            rules.fairness_min_disparate_impact_ratio,
            rules.fairness_max_disparate_impact_ratio,
            (flags, predicted, None),
        ),
        (
            fairness.EQUAL_OPPORTUNITY_DIFFERENCE,
            None,
            rules.fairness_max_equal_opportunity_difference,
            (flags, predicted, labels),
        ),
        (
            fairness.AVERAGE_ODDS_DIFFERENCE,
            None,
            rules.fairness_max_average_odds_difference,
            (flags, predicted, labels),
        ),
    ):
        figure = fairness.fairness_figure(name, lower, upper, rows, None)
        facts.append(
            FairnessFact(name=name, value=figure.value, label=figure.label, lower=lower, upper=upper, note=figure.note)
        )
    note = (
        f"On {len(traffic):,} test {spec.decision.item_noun}s, one row each as traffic sends them (live monitoring's "
        "fairness report computes the same figures on its window and reference)."
    )
    return groups, facts, note


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
    registry_version = mirror_to_registry(spec, onnx_model, version, context.pipeline_run, evaluation_report.metrics)
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
    groups, figures, note = fairness_on_test_split(spec, test_split, OnnxPredictor.from_model(onnx_model))
    link = run_link(context.pipeline_run)
    card = build_model_card(
        spec,
        version,
        onnx_model,
        evaluation_report,
        model_selection,
        quality_gates,
        splits,
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
