"""The monitoring pipeline: the inference log's window of a served version against that version's
training split -> feature and prediction drift, data quality, fairness, live performance and its
label-free estimate -> ok | warn | retrain, and an alert for warn and retrain."""

from zenml import pipeline
from zenml.client import Client
from zenml.enums import ExecutionMode

from headliner.labels import Artifact
from headliner.monitoring.window import WindowSelection
from headliner.spec import UseCaseSpec
from pipelines.docker_settings import docker_settings
from steps.monitoring import (
    check_data_quality,
    check_fairness,
    check_feature_drift,
    check_prediction_drift,
    decide_action,
    estimate_performance,
    evaluate_live_performance,
    load_inference_window,
    publish_figures,
    record_in_workspace,
    score_reference,
    send_alert,
)


@pipeline(
    name="monitoring",
    execution_mode=ExecutionMode.FAIL_FAST,
    enable_cache=False,
    settings={"docker": docker_settings()},
)
def monitoring(spec: UseCaseSpec, version: str, selection: WindowSelection, log_url: str | None = None) -> None:
    """Judges version `version` (a number) of model `spec.name`: inputs against its training split (its
    validation split when split by time), the prediction, fairness and the estimated performance against its
    validation split. The version's splits, `onnx_model` and `evaluation_report` artifacts are the steps'
    inputs, so the run's lineage shows what it compared against. ZenML resolves the version when the steps
    run: check it exists first."""
    model_version = Client().get_model_version(spec.name, version)
    validation_split = model_version.get_artifact(Artifact.VALIDATION_SPLIT)
    onnx_model = model_version.get_artifact(Artifact.ONNX_MODEL)
    reference, held_out = score_reference(
        model_version.get_artifact(Artifact.TRAIN_SPLIT), validation_split, onnx_model, spec=spec
    )
    current, window_report = load_inference_window(spec=spec, version=version, selection=selection, log_url=log_url)
    # Split by time, the training weeks lie far back (trend, other seasons): inputs are compared with the
    # validation weeks, the most recent the version knows.
    input_reference = held_out if spec.split.by == "time" else reference
    feature_drift = check_feature_drift(input_reference, current, spec=spec)
    prediction_drift = check_prediction_drift(held_out, current, spec=spec)
    quality = check_data_quality(current, window_report, spec=spec)
    fairness = check_fairness(validation_split, onnx_model, current, spec=spec)
    performance = evaluate_live_performance(current, model_version.get_artifact(Artifact.EVALUATION_REPORT), spec=spec)
    estimate = estimate_performance(validation_split, onnx_model, current, spec=spec)
    summary = decide_action(
        window_report, feature_drift, prediction_drift, quality, fairness, performance, estimate, spec=spec
    )
    send_alert(summary, spec=spec)
    # after the alert: the pipeline stops at a failed step, and a failure to publish must not hold the alert back
    publish_figures(summary, log_url=log_url, after="send_alert")
    record_in_workspace(input_reference, current, summary, spec=spec, after="send_alert")
