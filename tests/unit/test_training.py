"""Training logic as plain functions: run-config validation, model selection, class names, model card."""

import numpy as np
import pytest

from headliner.data.sources import load_raw_data
from headliner.data.splitting import split_examples
from headliner.data.wrangling import label_examples, wrangle
from headliner.errors import HeadlinerError, RunConfigError
from headliner.labels import class_display_names
from headliner.model.estimators import CandidateConfig
from headliner.model.training import TrainingConfig, best_candidate, load_training_config, select_model
from headliner.spec import PROJECT_ROOT


@pytest.fixture(scope="module")
def wine_splits(wine_spec):
    wrangled, _ = wrangle(load_raw_data(wine_spec), wine_spec, "wine")
    labelled, _ = label_examples(wrangled, wine_spec, "wine")
    return split_examples(labelled, wine_spec, "wine")[:3]


def test_shipped_run_config_is_valid():
    config = load_training_config(PROJECT_ROOT / "configs" / "runs" / "training.yaml")
    assert [c.family for c in config.candidates] == ["logistic_regression", "mlp", "random_forest"]
    assert config.selection_metric == "log_loss"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps: {}", "missing 'steps.train_model.parameters.training'"),
        (
            "steps: {train_model: {parameters: {training: {candidates: []}}}}",
            "field 'steps.train_model.parameters.training.candidates'",
        ),
        (
            "steps: {train_model: {parameters: {training: {candidates: [{name: a, family: xgboost}]}}}}",
            "candidates.0.family': Input should be 'logistic_regression', 'mlp', 'random_forest', 'ridge', "
            "'random_forest_regressor' or 'hist_gradient_boosting_regressor'",
        ),
        (
            "steps: {train_model: {parameters: {training: "
            "{selection_metric: auc, candidates: [{name: a, family: mlp}]}}}}",
            "unknown selection metric 'auc'",
        ),
        (
            "steps: {train_model: {parameters: {training: "
            "{candidates: [{name: a, family: mlp}, {name: a, family: mlp}]}}}}",
            "candidate names must be unique",
        ),
        ("steps: [unclosed", "not valid YAML"),
    ],
)
def test_bad_run_config_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(RunConfigError, match=rf"^run config {path}: .*{__import__('re').escape(message)}"):
        load_training_config(path)


def test_missing_run_config(tmp_path):
    with pytest.raises(RunConfigError, match="no such file"):
        load_training_config(tmp_path / "nope.yaml")


def test_selection_tracks_every_candidate_and_keeps_the_best(wine_spec, wine_splits):
    train, validation, _ = wine_splits
    config = TrainingConfig(
        candidates=[
            CandidateConfig(name="weak", family="logistic_regression", params={"C": 1e-4}),
            CandidateConfig(name="strong", family="logistic_regression", params={"C": 1.0}),
        ],
        selection_metric="log_loss",
    )
    tracked = []
    pipeline, selection = select_model(
        wine_spec, config, train, validation, track=lambda t: tracked.append(t) or f"run-{t.config.name}"
    )
    assert [t.config.name for t in tracked] == ["weak", "strong"]
    scores = {c.name: c for c in selection.candidates}
    assert scores["strong"].validation_metrics["log_loss"] < scores["weak"].validation_metrics["log_loss"]
    assert selection.selected == "strong" and scores["strong"].mlflow_run_id == "run-strong"
    assert list(pipeline.classes_) == wine_spec.target.classes
    assert "strong" in selection.to_html() and selection.summary_metadata()["selected"] == "strong"


def test_higher_is_better_metrics_pick_the_maximum(wine_spec, wine_splits):
    train, validation, _ = wine_splits
    config = TrainingConfig(candidates=[CandidateConfig(name="lr", family="logistic_regression")])
    from headliner.model.training import fit_candidate

    trained = [fit_candidate(wine_spec, c, train, validation) for c in config.candidates * 2]
    trained[1].validation_metrics = {**trained[1].validation_metrics, "accuracy": 2.0}
    assert best_candidate(trained, "accuracy") is trained[1]
    assert best_candidate(trained, "log_loss") is trained[0]  # tie: the first in config order


def test_every_class_must_be_in_the_train_split(wine_spec, wine_splits):
    train, validation, _ = wine_splits
    config = TrainingConfig(candidates=[CandidateConfig(name="lr", family="logistic_regression")])
    with pytest.raises(HeadlinerError, match=r"train_split has no examples of 1 class\(es\) of the spec \(class_2\)"):
        select_model(wine_spec, config, train[train["target"] != "class_2"], validation)


def test_country_names_come_from_pycountry(jukebox_spec, wine_spec):
    names = dict(zip(jukebox_spec.target.classes, class_display_names(jukebox_spec), strict=True))
    assert names["KR"] == "South Korea" and names["US"] == "United States" and names["NO"] == "Norway"
    assert names["TW"] == "Taiwan" and names["BO"] == "Bolivia"
    assert len(set(names.values())) == 72
    assert class_display_names(wine_spec) == ["Cultivar 1", "Cultivar 2", "Cultivar 3"]


def test_model_card_states_use_data_metrics_and_limits(wine_spec, wine_splits):
    from headliner.governance.model_card import build_model_card
    from headliner.model.gates import QualityGateReport, evaluate_gates
    from headliner.model.packaging import package_checked
    from headliner.model.training import evaluate_selected

    train, validation, test = wine_splits
    config = TrainingConfig(candidates=[CandidateConfig(name="lr", family="logistic_regression")])
    pipeline, selection = select_model(wine_spec, config, train, validation)
    report = evaluate_selected(wine_spec, pipeline, "lr", train, test)
    onnx_model, parity = package_checked(wine_spec, pipeline, report, train, test, model_version="7", zenml_run_id="r1")
    assert parity <= 1e-4
    meta = {p.key: p.value for p in onnx_model.metadata_props}
    assert meta["model_version"] == "7" and meta["zenml_run_id"] == "r1" and meta["candidate"] == "lr"
    gates = QualityGateReport(results=evaluate_gates(report, wine_spec.evaluation.quality_gates))
    card = build_model_card(
        wine_spec,
        7,
        onnx_model,
        report,
        selection,
        gates,
        {"train_split": train, "validation_split": validation, "test_split": test},
    ).to_markdown()
    for text in (
        "version 7",
        "## Use case",
        "## Test metrics",
        "| accuracy |",
        "## Limitations",
        wine_spec.limitations[0],
        meta["data_fingerprint"],
    ):
        assert text in card
    assert np.isclose(report.metrics["accuracy"], float(card.split("| accuracy | ")[1].split(" |")[0]), atol=1e-4)
