"""What every training run must show, whatever the task: the checks the pipeline tests run on the training
run of each use case (jukebox and wine in tests/pipelines, store_sales in tests/services/test_regression_loop.py)."""

import numpy as np

from headliner.labels import Artifact, Step
from headliner.model.estimators import feature_frame
from headliner.model.onnx_packaging import PARITY_TOLERANCE, OnnxPredictor
from headliner.model.training import model_output
from headliner.spec import LOWER_IS_BETTER, UseCaseSpec

LINKED_ARTIFACTS = {
    Artifact.ONNX_MODEL,
    Artifact.MODEL_CARD,
    Artifact.EVALUATION_REPORT,
    Artifact.TRAIN_SPLIT,
    Artifact.VALIDATION_SPLIT,
    Artifact.TEST_SPLIT,
}


def check_registered_version(run, stdout: str, spec: UseCaseSpec) -> None:
    """One code path per task, chosen by the spec: a use case's training run registered a version with its test
    metrics beside the baseline's, and its ONNX file alone answers like the scikit-learn model on the test split."""
    version = run.steps[Step.REGISTER_MODEL].model_version
    assert version.model.name == spec.name and f"Registered model '{spec.name}' version {version.number}" in stdout
    assert set(version.data_artifact_ids) | set(version.model_artifact_ids) >= LINKED_ARTIFACTS

    report = run.steps[Step.EVALUATE_MODEL].outputs[Artifact.EVALUATION_REPORT][0].load()
    assert set(report.metrics) == set(report.baseline_metrics) >= set(spec.evaluation.metrics)
    primary = spec.evaluation.primary_metric
    better = report.metrics[primary] < report.baseline_metrics[primary]
    assert better if primary in LOWER_IS_BETTER else not better, (report.metrics, report.baseline_metrics)
    gates = run.steps[Step.CHECK_QUALITY_GATES].outputs[Artifact.QUALITY_GATES][0].load()
    assert len(gates.results) >= len(spec.evaluation.quality_gates) and all(r.passed for r in gates.results)

    onnx_model = run.steps[Step.PACKAGE_MODEL].outputs[Artifact.ONNX_MODEL][0].load()
    sklearn_model = run.steps[Step.TRAIN_MODEL].outputs[Artifact.SKLEARN_MODEL][0].load()
    test = run.steps[Step.SPLIT_DATA].outputs[Artifact.TEST_SPLIT][0].load()
    predictor = OnnxPredictor.from_bytes(onnx_model.SerializeToString())
    assert predictor.task == spec.task and predictor.feature_names == spec.feature_names
    assert predictor.model_version == str(version.number)
    scores = predictor.scores(test[spec.feature_names].to_numpy(dtype=np.float64))
    if spec.is_classification:
        expected = sklearn_model.predict_proba(feature_frame(test, spec))
        assert scores.shape == (len(test), len(spec.target.classes))
        assert np.abs(scores - expected).max() <= PARITY_TOLERANCE
    else:
        expected = model_output(sklearn_model, feature_frame(test, spec), spec)  # clipped to the target's range
        assert scores.shape == (len(test), 1) and predictor.output_names == [spec.target.column]
        assert (np.abs(scores[:, 0] - expected) / np.maximum(np.abs(expected), 1)).max() <= PARITY_TOLERANCE
