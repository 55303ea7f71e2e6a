"""Names: class labels in terms people understand (country names for ISO codes from pycountry, a
maintained library, not a hand table, or the spec's own display names), and the names of the steps and
artifacts that pipelines, the CLI, tools and tests share."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below are imported by the CLI at start: no pydantic for them
    from headliner.spec import UseCaseSpec


def class_display_names(spec: UseCaseSpec) -> list[str]:
    """A display name per class, in the spec's class order."""
    target = spec.target
    if target.class_names == "iso3166":
        import pycountry

        names = []
        for code in target.classes:
            country = pycountry.countries.get(alpha_2=code)
            names.append(
                target.display_names.get(code)
                or getattr(country, "common_name", None)
                or (country.name if country else code)
            )
        return names
    return [target.display_names.get(c, c) for c in target.classes]


class Step(StrEnum):
    """The pipelines' step names (each step's function name)."""

    BUILD_BENTO = "build_bento"
    CHECK_DATA_QUALITY = "check_data_quality"
    CHECK_FAIRNESS = "check_fairness"
    CHECK_FEATURE_DRIFT = "check_feature_drift"
    CHECK_PREDICTION_DRIFT = "check_prediction_drift"
    CHECK_QUALITY_GATES = "check_quality_gates"
    DECIDE_ACTION = "decide_action"
    DEPLOY_SERVICE = "deploy_service"
    DERIVE_FEATURES = "derive_features"
    DISCARD_FAILED_VERSION = "discard_failed_version"
    EVALUATE_LIVE_PERFORMANCE = "evaluate_live_performance"
    EVALUATE_MODEL = "evaluate_model"
    EXPLAIN_MODEL = "explain_model"
    ESTIMATE_PERFORMANCE = "estimate_performance"
    INGEST_DATA = "ingest_data"
    LABEL_DATA = "label_data"
    LOAD_INFERENCE_WINDOW = "load_inference_window"
    PACKAGE_MODEL = "package_model"
    PROFILE_DATA = "profile_data"
    PUBLISH_FIGURES = "publish_figures"
    RECORD_IN_WORKSPACE = "record_in_workspace"
    RECORD_MODEL_STAGE = "record_model_stage"
    REGISTER_MODEL = "register_model"
    REPORT_ROLLOUT = "report_rollout"
    SCORE_BATCH = "score_batch"
    SCORE_REFERENCE = "score_reference"
    SEND_ALERT = "send_alert"
    SMOKE_TEST_SERVICE = "smoke_test_service"
    SPLIT_DATA = "split_data"
    TRAIN_MODEL = "train_model"
    VALIDATE_DATA = "validate_data"
    WRANGLE_DATA = "wrangle_data"


class Artifact(StrEnum):
    """The steps' named outputs, as the steps declare them and the CLI, tools and tests load them."""

    ALERT = "alert"
    BATCH_PREDICTIONS = "batch_predictions"
    BATCH_REPORT = "batch_report"
    BENTO = "bento"
    CURRENT_WINDOW = "current_window"
    DATA_PROFILE = "data_profile"
    DATA_QUALITY_REPORT = "data_quality_report"
    DERIVATION_REPORT = "derivation_report"
    DERIVED_DATA = "derived_data"
    EVALUATION_REPORT = "evaluation_report"
    FAIRNESS_REPORT = "fairness_report"
    FEATURE_DRIFT_REPORT = "feature_drift_report"
    GLOBAL_EXPLANATIONS = "global_explanations"
    HELD_OUT_REFERENCE = "held_out_reference"
    LABELLED_DATA = "labelled_data"
    LABELLING_REPORT = "labelling_report"
    LIVE_PERFORMANCE_REPORT = "live_performance_report"
    MODEL_CARD = "model_card"
    MODEL_SELECTION = "model_selection"
    MODEL_STAGE_RECORD = "model_stage_record"
    MONITORING_SUMMARY = "monitoring_summary"
    ONNX_MODEL = "onnx_model"
    PERFORMANCE_ESTIMATE_REPORT = "performance_estimate_report"
    PREDICTION_DRIFT_REPORT = "prediction_drift_report"
    QUALITY_GATES = "quality_gates"
    RAW_DATA = "raw_data"
    REFERENCE_DATA = "reference_data"
    ROLLOUT_REPORT = "rollout_report"
    SERVICE = "service"
    SKLEARN_MODEL = "sklearn_model"
    SMOKE_TEST = "smoke_test"
    SPLIT_REPORT = "split_report"
    TEST_SPLIT = "test_split"
    TRAIN_SPLIT = "train_split"
    VALIDATION_REPORT = "validation_report"
    VALIDATION_SPLIT = "validation_split"
    WINDOW_REPORT = "window_report"
    WRANGLED_DATA = "wrangled_data"
    WRANGLING_REPORT = "wrangling_report"
