"""Global explanations in the training pipeline: an artifact of the model version, visualized in the
dashboard, covering every feature and every class, and in the pipeline run's MLflow run."""

from headliner.labels import Artifact, Step
from headliner.model.explanations import GlobalExplanations
from headliner.reports.html import script_free_problems


def test_the_model_version_has_its_global_explanations(jukebox_training, jukebox_spec):
    from zenml.artifacts.utils import load_artifact_visualization

    run, _ = jukebox_training
    artifact = run.steps[Step.EXPLAIN_MODEL].outputs[Artifact.GLOBAL_EXPLANATIONS][0]
    explanations = artifact.load()
    assert isinstance(explanations, GlobalExplanations)
    version = run.steps[Step.REGISTER_MODEL].model_version
    assert explanations.model_name == "jukebox" and explanations.model_version == str(version.number)
    assert Artifact.GLOBAL_EXPLANATIONS in set(version.data_artifact_ids) | set(version.model_artifact_ids)

    assert sorted(f.feature for f in explanations.overall) == sorted(jukebox_spec.feature_names)
    drops = [f.mean_drop for f in explanations.overall]
    assert drops == sorted(drops, reverse=True) and drops[0] > 0
    assert explanations.metric == "top_k_accuracy"
    validation = run.steps[Step.SPLIT_DATA].outputs[Artifact.VALIDATION_SPLIT][0].load()
    assert explanations.importance_rows == min(len(validation), 5_000)
    assert [c.label for c in explanations.per_class] == jukebox_spec.target.classes  # all 72 countries
    assert sum(c.rows for c in explanations.per_class) == len(validation)
    assert next(c for c in explanations.per_class if c.label == "BR").name == "Brazil"
    assert all(set(c.mean_abs_shap) == set(jukebox_spec.feature_names) for c in explanations.per_class)

    assert [v.type.value for v in artifact.visualizations] == ["html", "image", "image"]
    page = load_artifact_visualization(artifact, index=0).value
    page = page.decode() if isinstance(page, bytes) else page
    assert script_free_problems(page) == [] and "danceability" in page
    assert artifact.run_metadata["top_features"].startswith(explanations.overall[0].feature)


def test_the_explanations_are_in_the_mlflow_run(jukebox_training, jukebox_spec):
    import mlflow
    from mlflow.tracking import MlflowClient
    from zenml.client import Client

    run, _ = jukebox_training
    step = run.steps[Step.EXPLAIN_MODEL]
    explanations = step.outputs[Artifact.GLOBAL_EXPLANATIONS][0].load()
    mlflow.set_tracking_uri(Client().active_stack.experiment_tracker.get_tracking_uri())
    client = MlflowClient()
    mlflow_run = client.get_run(step.run_metadata["mlflow_run_id"])
    for feature in explanations.overall:
        assert mlflow_run.data.metrics[f"importance_{feature.feature}"] == feature.mean_drop
    assert {f"importance_{name}" for name in jukebox_spec.feature_names} <= set(mlflow_run.data.metrics)
    logged = {item.path for item in client.list_artifacts(mlflow_run.info.run_id, "explanations")}
    assert logged == {"explanations/global_explanations.html", "explanations/global_explanations.json"}
    stored = client.download_artifacts(mlflow_run.info.run_id, "explanations/global_explanations.json")
    with open(stored, encoding="utf-8") as file:
        assert GlobalExplanations.model_validate_json(file.read()) == explanations
