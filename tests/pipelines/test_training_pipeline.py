"""The training pipeline through the CLI on small data in the session's isolated store: a registered,
self-contained ONNX model version, tracked in MLflow and mirrored to its registry; a gate miss
registers nothing."""

import re

import numpy as np
import pytest
import yaml

from headliner.labels import Artifact, Step
from headliner.model.estimators import feature_frame
from headliner.model.onnx_packaging import PARITY_TOLERANCE, OnnxPredictor
from headliner.spec import PROJECT_ROOT
from tests.helpers.cli import run_cli
from tests.helpers.training import LINKED_ARTIFACTS, check_registered_version


def test_registers_a_model_version_with_its_artifacts(jukebox_training):
    run, stdout = jukebox_training
    version = run.steps[Step.REGISTER_MODEL].model_version
    assert version.model.name == "jukebox"
    assert f"Registered model 'jukebox' version {version.number}" in stdout
    linked = set(version.data_artifact_ids) | set(version.model_artifact_ids)
    assert linked >= LINKED_ARTIFACTS, linked
    metadata = version.run_metadata
    assert set(metadata["test_metrics"]) >= {"accuracy", "f1_macro", "top_k_accuracy", "log_loss"}
    assert metadata["splits"]["test_split"]["rows"] == len(
        run.steps[Step.SPLIT_DATA].outputs[Artifact.TEST_SPLIT][0].load()
    )


def test_the_onnx_file_alone_predicts_like_the_trained_model(jukebox_training, jukebox_spec):
    run, _ = jukebox_training
    onnx_model = run.steps[Step.PACKAGE_MODEL].outputs[Artifact.ONNX_MODEL][0].load()
    sklearn_model = run.steps[Step.TRAIN_MODEL].outputs[Artifact.SKLEARN_MODEL][0].load()
    test = run.steps[Step.SPLIT_DATA].outputs[Artifact.TEST_SPLIT][0].load()
    predictor = OnnxPredictor.from_bytes(onnx_model.SerializeToString())
    version = run.steps[Step.REGISTER_MODEL].model_version
    assert predictor.model_name == "jukebox" and predictor.model_version == str(version.number)
    assert predictor.classes == jukebox_spec.target.classes
    assert predictor.class_names[jukebox_spec.target.classes.index("KR")] == "South Korea"
    labels, proba = predictor.predict({name: test[name].to_numpy() for name in jukebox_spec.feature_names})
    expected = sklearn_model.predict_proba(feature_frame(test, jukebox_spec))
    assert proba.shape == (len(test), 72)
    assert np.abs(proba - expected).max() <= PARITY_TOLERANCE
    assert set(labels) <= set(jukebox_spec.target.classes)
    assert (
        run.steps[Step.PACKAGE_MODEL].outputs[Artifact.ONNX_MODEL][0].run_metadata["parity_max_abs_diff"]
        <= PARITY_TOLERANCE
    )


def test_evaluation_beats_the_baseline_and_is_visualized(jukebox_training):
    from zenml.artifacts.utils import load_artifact_visualization

    run, _ = jukebox_training
    artifact = run.steps[Step.EVALUATE_MODEL].outputs[Artifact.EVALUATION_REPORT][0]
    report = artifact.load()
    assert report.rows == len(run.steps[Step.SPLIT_DATA].outputs[Artifact.TEST_SPLIT][0].load())
    assert report.metrics["top_k_accuracy"] > report.baseline_metrics["top_k_accuracy"] + 0.05
    assert [v.type.value for v in artifact.visualizations] == ["html", "image"]
    png = load_artifact_visualization(artifact, index=1).value
    assert png[:4] == b"\x89PNG"
    onnx_card = load_artifact_visualization(run.steps[Step.PACKAGE_MODEL].outputs[Artifact.ONNX_MODEL][0]).value
    onnx_card = onnx_card.decode() if isinstance(onnx_card, bytes) else onnx_card
    assert "danceability" in onnx_card and "South Korea" in onnx_card


def test_every_candidate_is_an_mlflow_run_and_the_version_is_mirrored(jukebox_training):
    import mlflow
    from mlflow.tracking import MlflowClient
    from zenml.client import Client

    run, _ = jukebox_training
    mlflow.set_tracking_uri(Client().active_stack.experiment_tracker.get_tracking_uri())
    client = MlflowClient()
    selection = run.steps[Step.TRAIN_MODEL].outputs[Artifact.MODEL_SELECTION][0].load()
    assert [c.name for c in selection.candidates] == ["logistic_regression", "small_forest"]
    for candidate in selection.candidates:
        mlflow_run = client.get_run(candidate.mlflow_run_id)
        assert mlflow_run.data.params["family"] == candidate.family
        assert mlflow_run.data.metrics["validation_log_loss"] == pytest.approx(candidate.validation_metrics["log_loss"])
        tags = mlflow_run.data.tags
        assert tags["zenml_run_id"] == str(run.id) and len(tags["data_fingerprint"]) == 16 and tags["git_commit"]
        assert "mlflow.parentRunId" in tags
        logged = client.search_logged_models(
            experiment_ids=[mlflow_run.info.experiment_id], filter_string=f"source_run_id='{mlflow_run.info.run_id}'"
        )
        info = mlflow.models.get_model_info(f"models:/{logged[0].model_id}")
        assert "sklearn" in info.flavors and info.signature is not None and info.saved_input_example_info
    version = run.steps[Step.REGISTER_MODEL].model_version
    mirrored = client.get_model_version("jukebox", version.run_metadata["mlflow_registry_version"])
    assert mirrored.tags["zenml_model_version"] == str(version.number)


def test_wine_trains_and_registers_with_the_same_code(wine_training, wine_spec):
    run, _ = wine_training
    version = run.steps[Step.REGISTER_MODEL].model_version
    assert version.model.name == "wine"
    report = run.steps[Step.EVALUATE_MODEL].outputs[Artifact.EVALUATION_REPORT][0].load()
    assert report.metrics["accuracy"] >= 0.8 and report.class_names == ["Cultivar 1", "Cultivar 2", "Cultivar 3"]
    predictor = OnnxPredictor.from_bytes(
        run.steps[Step.PACKAGE_MODEL].outputs[Artifact.ONNX_MODEL][0].load().SerializeToString()
    )
    assert predictor.feature_names == wine_spec.feature_names and predictor.classes == wine_spec.target.classes


def test_a_missed_gate_fails_with_one_line_and_registers_nothing(isolated_env, tmp_path, wine_training):
    from zenml.client import Client

    spec = yaml.safe_load((PROJECT_ROOT / "configs" / "use_cases" / "wine.yaml").read_text())
    spec["evaluation"][Artifact.QUALITY_GATES] = [{"metric": "log_loss", "max": 0.0001}]
    spec_path = tmp_path / "wine_strict.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    versions_before = Client().list_model_versions("wine").total
    result = run_cli(["--pipeline", "training", "--config", str(spec_path)], isolated_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert re.fullmatch(
        r"error: quality gate failed for \w+ on [\d,]+ test_split rows: log_loss \d\.\d{4} is above 0\.0001 "
        r"\(baseline \d\.\d{4}\)\. The baseline is the class prior .*\. Nothing was registered\. "
        r"To pass, try more rows .* evaluation\.quality_gates .*\.",
        result.stderr.strip().splitlines()[-1],
    ), result.stderr[-500:]
    assert Client().list_model_versions("wine").total == versions_before


def test_a_registration_that_fails_removes_the_version_it_created(wine_training, wine_spec, local_stack, monkeypatch):
    """The registration step's failure hook: the version packaging created is deleted, so none is left
    without its registry mirror; the next run gets that number again. (A failure before a step's body
    runs is cleaned up by the CLI instead: tests/test_servers.py kills the MLflow server mid-run.)"""
    from importlib import import_module

    from zenml.client import Client

    from pipelines.training import training

    register_step = import_module(
        "steps.training.register_model"
    )  # the module; the package exports the step by that name

    def registry_down(*args, **kwargs):
        raise ConnectionError("the model registry stopped answering")

    client = Client()
    before = [v.number for v in client.list_model_versions("wine", size=100).items]
    monkeypatch.setattr(register_step, "mirror_to_registry", registry_down)
    with pytest.raises(ConnectionError, match="the model registry stopped answering"):
        training.with_options(config_path=str(PROJECT_ROOT / "configs" / "runs" / "training.yaml"))(spec=wine_spec)
    run = client.get_pipeline("training").last_run
    assert run.status.value == "failed"
    assert run.steps[Step.PACKAGE_MODEL].status.value == "completed"  # it created version max(before) + 1
    assert run.steps[Step.REGISTER_MODEL].status.value == "failed"
    assert [v.number for v in client.list_model_versions("wine", size=100).items] == before
    with pytest.raises(KeyError):
        client.get_model_version("wine", max(before) + 1)


def test_export_model_writes_the_registered_onnx_file(jukebox_training, isolated_env, tmp_path):
    run, _ = jukebox_training
    number = run.steps[Step.REGISTER_MODEL].model_version.number
    out = tmp_path / "jukebox.onnx"
    result = run_cli(["export-model", "--version", str(number), "--out", str(out)], isolated_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Wrote model 'jukebox' version {number}" in result.stdout
    predictor = OnnxPredictor.from_path(out)
    assert predictor.model_version == str(number) and len(predictor.classes) == 72

    missing = run_cli(["export-model", "--version", "999", "--out", str(tmp_path / "x.onnx")], isolated_env)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1] == (
        "error: model 'jukebox' has no version '999'; see: zenml model version list --model=jukebox"
    )
    assert not (tmp_path / "x.onnx").exists()


def test_the_run_config_flag_files_the_staging_request(jukebox_training):
    from headliner.governance import promotion as governance

    run, _ = jukebox_training
    number = run.steps[Step.REGISTER_MODEL].model_version.number
    (request,) = [r for r in governance.pending_requests("jukebox") if r.version == number]
    assert (request.to_stage, request.from_stage, request.requested_by) == ("staging", "none", "training-pipeline")
    assert run.name in request.reason
    assert governance.stage_holders("jukebox")["staging"] == []  # approval stays human


@pytest.mark.parametrize("use_case", ["jukebox", "wine"])  # store_sales: tests/services/test_regression_loop.py
def test_every_task_trains_gates_packages_and_registers_with_the_same_code(use_case, request):
    run, stdout = request.getfixturevalue(f"{use_case}_training")
    check_registered_version(run, stdout, request.getfixturevalue(f"{use_case}_spec"))
