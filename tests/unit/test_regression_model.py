"""Regression model code: metrics checked by hand, the baseline forecast, the evaluation report, relative
gates, run configs checked against the task, selection, packaging and comparison of a regressor."""

import base64
import io
import json

import numpy as np
import onnx
import onnx.numpy_helper
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from headliner.errors import QualityGateError, RunConfigError
from headliner.model.comparison import predictor_metrics
from headliner.model.estimators import CandidateConfig, build_pipeline, families
from headliner.model.evaluation import (
    EvaluationReport,
    baseline_description,
    baseline_forecast,
    evaluate_regression,
    improvement_over_baseline,
    regression_metrics,
    require_metric,
)
from headliner.model.gates import enforce_gates, evaluate_gates
from headliner.model.onnx_packaging import OnnxPredictor
from headliner.model.packaging import package_checked, parity_key
from headliner.model.training import TrainingConfig, evaluate_selected, load_training_config, select_model
from headliner.reports.html import script_free_problems
from headliner.spec import (
    PROJECT_ROOT,
    REGRESSION_METRICS,
    USE_CASES_DIR,
    QualityGate,
    Task,
    better_by,
    load_spec,
)
from tests.helpers.models import sales_frame

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 4 rows; errors (prediction - truth) 10, 10, -10, -50
HAND_TRUTH = np.array([100.0, 0.0, 50.0, 200.0])
HAND_PREDICTED = np.array([110.0, 10.0, 40.0, 150.0])


@pytest.fixture(scope="module")
def sales_spec():
    return load_spec(USE_CASES_DIR / "store_sales.yaml")


@pytest.fixture(scope="module")
def sales_splits(sales_spec) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A store_sales-like frame split by time: the last 8 weeks test, the 8 before validate."""
    frame = sales_frame(sales_spec, series=16, weeks=90)
    test_start = frame["date"].max() - pd.Timedelta(weeks=7)
    validation_start = test_start - pd.Timedelta(weeks=8)
    return (
        frame[frame["date"] < validation_start],
        frame[(frame["date"] >= validation_start) & (frame["date"] < test_start)],
        frame[frame["date"] >= test_start],
    )


def without_baseline(spec):
    return spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"baseline": None})})


def test_metrics_match_hand_computed_values():
    # mae (10 + 10 + 10 + 50) / 4 = 20; rmse sqrt((100 + 100 + 100 + 2500) / 4) = sqrt(700)
    # mape skips the row whose truth is 0: (10/100 + 10/50 + 50/200) / 3 = 0.55 / 3
    # smape (20/210 + 20/10 + 20/90 + 100/350) / 4
    # r2: mean truth 87.5, total sum 156.25 + 7656.25 + 1406.25 + 12656.25 = 21875 -> 1 - 2800/21875 = 0.872
    metrics = regression_metrics(HAND_TRUTH, HAND_PREDICTED)

    assert tuple(metrics) == ("rmse", "mae", "mape", "smape", "r2") and set(metrics) == set(REGRESSION_METRICS)
    assert metrics["mae"] == pytest.approx(20.0)
    assert metrics["rmse"] == pytest.approx(700**0.5) == pytest.approx(26.457513)
    assert metrics["mape"] == pytest.approx(0.55 / 3)
    assert metrics["smape"] == pytest.approx((20 / 210 + 2.0 + 20 / 90 + 100 / 350) / 4) == pytest.approx(0.650794)
    assert metrics["r2"] == pytest.approx(0.872)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(HAND_TRUTH, HAND_PREDICTED))
    assert metrics["rmse"] == pytest.approx(mean_squared_error(HAND_TRUTH, HAND_PREDICTED) ** 0.5)
    assert metrics["r2"] == pytest.approx(r2_score(HAND_TRUTH, HAND_PREDICTED))


def test_zero_truths_and_predictions_have_defined_percentages():
    metrics = regression_metrics(np.array([0.0, 10.0]), np.array([0.0, 10.0]))
    assert (metrics["smape"], metrics["mape"], metrics["mae"], metrics["r2"]) == (0.0, 0.0, 0.0, 1.0)


def test_mape_is_left_out_when_every_true_value_is_0_and_says_why_when_asked_for():
    # a week of zero sales everywhere: mae 1, rmse 1, smape 2 |1| / (0 + 1) = 2, r2 0 (constant truth)
    metrics = regression_metrics(np.zeros(3), np.ones(3))
    assert metrics == {"rmse": 1.0, "mae": 1.0, "smape": 2.0, "r2": 0.0}
    assert require_metric(metrics, "mae", "the window") == 1.0
    with pytest.raises(ValueError, match=r"^mape is undefined on the window: every true value is 0 \(MAPE divides"):
        require_metric(metrics, "mape", "the window")
    with pytest.raises(ValueError, match=r"^metric 'auc' was not computed on the window; computed: rmse, mae, smape"):
        require_metric(metrics, "auc", "the window")


@pytest.mark.parametrize(
    ("metric", "value", "reference", "better"),
    [("mae", 270.0, 300.0, 30.0), ("mae", 330.0, 300.0, -30.0), ("r2", 0.6, 0.5, 0.1), ("log_loss", 1.0, 1.5, 0.5)],
)
def test_better_by_is_positive_when_the_value_is_better(metric, value, reference, better):
    assert better_by(metric, value, reference) == pytest.approx(better)


def test_r2_of_constant_truth_follows_scikit_learn():
    assert regression_metrics(np.full(3, 5.0), np.full(3, 5.0))["r2"] == 1.0
    assert regression_metrics(np.full(3, 5.0), np.array([5.0, 6.0, 4.0]))["r2"] == 0.0


def test_metrics_refuse_bad_inputs():
    with pytest.raises(ValueError, match="cannot evaluate on zero rows"):
        regression_metrics(np.array([]), np.array([]))
    with pytest.raises(ValueError, match=r"expected as many predictions as true values \(2\), got 3"):
        regression_metrics(np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match="must be finite numbers"):
        regression_metrics(np.array([1.0, 2.0]), np.array([1.0, np.nan]))


def test_improvement_is_relative_to_the_baseline_and_positive_when_better():
    assert improvement_over_baseline("mae", 270.0, 300.0) == pytest.approx(0.1)
    assert improvement_over_baseline("mae", 330.0, 300.0) == pytest.approx(-0.1)
    assert improvement_over_baseline("r2", 0.6, 0.5) == pytest.approx(0.2)
    assert improvement_over_baseline("r2", 0.1, -0.5) == pytest.approx(1.2)
    assert improvement_over_baseline("mae", 1.0, 0.0) is None
    assert improvement_over_baseline("mae", 1.0, float("nan")) is None


def test_baseline_is_the_spec_feature_else_the_train_mean(sales_spec, sales_splits):
    train, _, test = sales_splits
    np.testing.assert_array_equal(baseline_forecast(sales_spec, train, test), test["sales_lag_52"].to_numpy())
    assert baseline_description(sales_spec) == (
        "seasonal naive (the same week a year before) (the 'sales_lag_52' feature taken as the forecast)"
    )
    plain = without_baseline(sales_spec)
    forecast = baseline_forecast(plain, train, test)
    assert forecast.shape == (len(test),) and np.all(forecast == pytest.approx(train["sales"].mean()))
    assert baseline_description(plain) == "the train split's mean sales for every row"
    with pytest.raises(ValueError, match="the baseline feature 'sales_lag_52' is not a column"):
        baseline_forecast(sales_spec, train, test.drop(columns="sales_lag_52"))


@pytest.fixture(scope="module")
def hand_report(sales_spec) -> EvaluationReport:
    baseline = np.array([120.0, 0.0, 30.0, 120.0])  # errors 20, 0, -20, -80: mae 30
    return evaluate_regression(sales_spec, "store_sales", "ridge", HAND_TRUTH, HAND_PREDICTED, baseline)


def test_regression_report_holds_metrics_beside_the_baseline(hand_report):
    assert (hand_report.task, hand_report.rows, hand_report.target_unit) == (Task.REGRESSION, 4, "units")
    assert hand_report.metrics == regression_metrics(HAND_TRUTH, HAND_PREDICTED)
    assert hand_report.baseline_metrics["mae"] == pytest.approx(30.0)
    assert hand_report.baseline_description.startswith("seasonal naive")
    assert (hand_report.classes, hand_report.per_class, hand_report.confusion_matrix, hand_report.top_k) == (
        [],
        [],
        [],
        0,
    )
    assert hand_report.sample_actual == HAND_TRUTH.tolist() and hand_report.sample_predicted == HAND_PREDICTED.tolist()
    assert sum(hand_report.residual_counts) == 4 and len(hand_report.residual_edges) == 41
    assert hand_report.residual_edges[0] == -50.0 and hand_report.residual_edges[-1] == 10.0
    assert EvaluationReport.model_validate_json(hand_report.model_dump_json()) == hand_report


def test_regression_report_page_is_static_with_both_figures(hand_report):
    images = hand_report.png_images()
    assert set(images) == {"predicted_vs_actual", "residuals"}
    for png in images.values():
        assert png.startswith(PNG_SIGNATURE) and Image.open(io.BytesIO(png)).size[0] > 300
    page = hand_report.to_html()
    assert script_free_problems(page) == []
    assert page.count('<img src="data:image/png;base64,') == 2
    encoded = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(encoded).startswith(PNG_SIGNATURE)
    # mae 20 vs the baseline's 30: lift +10, improvement +33.3%
    assert "<td>mae (lower is better)</td><td>20.0000</td><td>30.0000</td><td>+10.0000</td><td>+33.3%</td>" in page
    assert "improvement over baseline" in page and "rmse and mae in units" in page and "seasonal naive" in page
    assert "<th>top k</th>" not in page  # a forecast has no top k


def test_a_report_stored_before_tasks_existed_loads_as_a_classifier():
    stored = {
        "use_case": "wine",
        "model_name": "wine",
        "candidate": "lr",
        "rows": 2,
        "top_k": 1,
        "classes": ["a", "b"],
        "class_names": ["A", "B"],
        "metrics": {"accuracy": 0.5},
        "baseline_metrics": {"accuracy": 0.5},
        "per_class": [],
        "confusion_matrix": [[1, 0], [1, 0]],
    }
    report = EvaluationReport.model_validate_json(json.dumps(stored))
    assert report.task is Task.MULTICLASS_CLASSIFICATION
    assert report.baseline_description.startswith("the class prior")


def with_metric(report: EvaluationReport, name: str, value: float, baseline: float) -> EvaluationReport:
    return report.model_copy(
        update={
            "metrics": {**report.metrics, name: value},
            "baseline_metrics": {**report.baseline_metrics, name: baseline},
        }
    )


def test_improvement_gate_on_mae_passes_at_ten_percent_below_the_baseline(sales_spec, hand_report):
    # the spec: mae at least 10% lower than seasonal naive (300 -> at most 270), r2 >= 0.5
    report = with_metric(with_metric(hand_report, "mae", 270.0, 300.0), "r2", 0.8, 0.4)
    results = enforce_gates(report, sales_spec.evaluation.quality_gates)
    assert [(r.metric, r.bound, r.passed) for r in results] == [
        ("mae", "<= baseline 300.0000 - 10% = 270.0000", True),
        ("r2", ">= 0.5", True),
    ]


def test_improvement_gate_failure_names_metric_value_bound_and_baseline(sales_spec, hand_report):
    report = with_metric(with_metric(hand_report, "mae", 280.0, 300.0), "r2", 0.8, 0.4)
    with pytest.raises(QualityGateError) as failure:
        enforce_gates(report, sales_spec.evaluation.quality_gates)
    message = str(failure.value)
    assert message.startswith(
        "quality gate failed for ridge on 4 test_split rows: mae 280.0000 is above baseline 300.0000 - 10% = "
        "270.0000. The baseline is seasonal naive (the same week a year before) (the 'sales_lag_52' feature "
        "taken as the forecast). Nothing was registered."
    )
    assert "--run-config configs/runs/training_regression.yaml" in message and "\n" not in message


def test_improvement_gate_on_a_higher_is_better_metric_uses_the_baseline_magnitude(hand_report):
    gates = [QualityGate(metric="r2", min_improvement_over_baseline=0.5)]
    # baseline r2 -0.2: at least -0.2 + 0.5 x 0.2 = -0.1
    [result] = evaluate_gates(with_metric(hand_report, "r2", -0.15, -0.2), gates)
    assert (result.bound, result.passed) == (">= baseline -0.2000 + 50% = -0.1000", False)
    [result] = evaluate_gates(with_metric(hand_report, "r2", 0.61, 0.4), gates)
    assert (result.bound, result.passed) == (">= baseline 0.4000 + 50% = 0.6000", True)


def test_a_split_of_zero_sales_gives_a_report_without_mape_and_a_gate_on_mape_fails_clearly(sales_spec):
    zeros = np.zeros(4)
    report = evaluate_regression(sales_spec, "store_sales", "ridge", zeros, HAND_PREDICTED, np.full(4, 5.0))
    assert list(report.metrics) == list(report.baseline_metrics) == ["rmse", "mae", "smape", "r2"]
    assert report.metrics["mae"] == pytest.approx(77.5) and report.baseline_metrics["mae"] == 5.0
    page = report.to_html()
    assert "<td>mae (lower is better)</td><td>77.5000</td><td>5.0000</td><td>-72.5000</td><td>-1450.0%</td>" in page
    assert "<td>mape" not in page
    [mae] = evaluate_gates(report, [QualityGate(metric="mae", max=100.0)])
    assert mae.passed
    with pytest.raises(QualityGateError) as failure:
        evaluate_gates(report, [QualityGate(metric="mape", max=0.2)])
    assert str(failure.value) == (
        "quality gate on mape cannot be checked: mape is undefined on the 4 test_split rows of ridge: every true "
        "value is 0 (MAPE divides by the true value). Nothing was registered. Gate on a metric defined for these "
        "rows (e.g. smape or mae) in the spec's evaluation.quality_gates."
    )


def test_improvement_gate_works_for_classification_too(wine_spec):
    from headliner.model.evaluation import evaluate

    rng = np.random.default_rng(0)
    report = evaluate(
        wine_spec, "wine", "lr", rng.integers(0, 3, 20), rng.dirichlet(np.ones(3), 20), np.arange(3), ["a", "b", "c"]
    )
    gates = [QualityGate(metric="accuracy", min_improvement_over_baseline=0.1)]
    [result] = evaluate_gates(with_metric(report, "accuracy", 0.43, 0.4), gates)
    assert (result.bound, result.passed) == (">= baseline 0.4000 + 10% = 0.4400", False)
    with pytest.raises(QualityGateError, match=r"accuracy 0\.4300 is below baseline 0\.4000 \+ 10% = 0\.4400\. "):
        enforce_gates(with_metric(report, "accuracy", 0.43, 0.4), gates)


def test_a_family_of_the_other_task_is_a_clear_error(sales_spec, wine_spec):
    with pytest.raises(RunConfigError) as failure:
        build_pipeline(sales_spec, CandidateConfig(name="lr", family="logistic_regression"))
    assert str(failure.value) == (
        "candidate 'lr': family 'logistic_regression' is a multiclass_classification family, but the use case's "
        "task is regression; families for regression: ridge, random_forest_regressor, "
        "hist_gradient_boosting_regressor"
    )
    with pytest.raises(RunConfigError, match="candidate 'r': family 'ridge' is a regression family"):
        build_pipeline(wine_spec, CandidateConfig(name="r", family="ridge"))
    assert families(Task.MULTICLASS_CLASSIFICATION) == ["logistic_regression", "mlp", "random_forest"]


def test_run_configs_are_checked_against_the_task(sales_spec, wine_spec, tmp_path):
    regression = load_training_config(PROJECT_ROOT / "configs" / "runs" / "training_regression.yaml", sales_spec)
    assert [c.family for c in regression.candidates] == families(Task.REGRESSION)
    assert regression.selection_metric == "mae"
    fast = load_training_config(PROJECT_ROOT / "tests" / "training_fast_regression.yaml", sales_spec)
    assert [c.family for c in fast.candidates] == ["ridge", "random_forest_regressor"]
    classification = PROJECT_ROOT / "configs" / "runs" / "training.yaml"
    with pytest.raises(RunConfigError) as failure:
        load_training_config(classification, sales_spec)
    assert str(failure.value) == (
        f"run config {classification}: selection_metric 'log_loss' is not a metric of use case 'store_sales' "
        "(regression); expected one of rmse, mae, mape, smape, r2"
    )
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(
        "steps: {train_model: {parameters: {training: {selection_metric: mae, "
        "candidates: [{name: ridge, family: ridge}, {name: forest, family: random_forest}]}}}}"
    )
    with pytest.raises(RunConfigError, match=rf"^run config {mixed}: candidate 'forest': family 'random_forest' is"):
        load_training_config(mixed, sales_spec)
    with pytest.raises(RunConfigError, match="selection_metric 'mae' is not a metric of use case 'wine'"):
        load_training_config(PROJECT_ROOT / "tests" / "training_fast_regression.yaml", wine_spec)


@pytest.fixture(scope="module")
def selected(sales_spec, sales_splits):
    train, validation, _ = sales_splits
    config = load_training_config(PROJECT_ROOT / "tests" / "training_fast_regression.yaml", sales_spec)
    return select_model(sales_spec, config, train, validation)


def test_selection_scores_regressors_on_validation_and_keeps_the_lowest_mae(selected):
    pipeline, selection = selected
    scores = {c.name: c.validation_metrics for c in selection.candidates}
    assert set(scores) == {"ridge", "small_forest"} and all(set(s) == set(REGRESSION_METRICS) for s in scores.values())
    best = min(scores, key=lambda name: scores[name]["mae"])
    assert selection.selected == best and selection.selection_metric == "mae"
    assert "lower is better" in selection.to_html()
    assert not hasattr(pipeline, "classes_")


def test_selection_refuses_a_config_of_the_other_task(sales_spec, sales_splits):
    train, validation, _ = sales_splits
    config = TrainingConfig(candidates=[CandidateConfig(name="lr", family="logistic_regression")])
    with pytest.raises(RunConfigError, match="selection_metric 'log_loss' is not a metric of use case 'store_sales'"):
        select_model(sales_spec, config, train, validation)


def test_evaluation_of_the_selected_regressor_against_seasonal_naive(sales_spec, sales_splits, selected):
    train, _, test = sales_splits
    pipeline, selection = selected
    report = evaluate_selected(sales_spec, pipeline, selection.selected, train, test)
    truth = test["sales"].to_numpy()
    assert report.rows == len(test) and report.task is Task.REGRESSION
    assert report.baseline_metrics == regression_metrics(truth, test["sales_lag_52"].to_numpy())
    from headliner.model.estimators import feature_frame

    forecast = np.clip(pipeline.predict(feature_frame(test, sales_spec)), 0, None)  # the target's min is 0
    assert report.metrics == regression_metrics(truth, forecast)
    assert report.metrics["mae"] < report.baseline_metrics["mae"]
    mean_report = evaluate_selected(without_baseline(sales_spec), pipeline, selection.selected, train, test)
    assert mean_report.baseline_metrics == regression_metrics(truth, np.full(len(test), train["sales"].mean()))


def test_packaged_regressor_carries_its_baseline_and_scores_like_scikit_learn(sales_spec, sales_splits, selected):
    train, _, test = sales_splits
    pipeline, selection = selected
    report = evaluate_selected(sales_spec, pipeline, selection.selected, train, test)
    model, parity = package_checked(sales_spec, pipeline, report, train, test, model_version="4", zenml_run_id="r")
    assert 0 <= parity <= 1e-4
    assert parity_key(sales_spec) == "parity_max_relative_diff"
    predictor = OnnxPredictor.from_model(model)
    assert predictor.metadata["baseline_description"] == report.baseline_description
    assert json.loads(predictor.metadata["metrics"]) == report.metrics
    assert json.loads(predictor.metadata["class_names"]) == []
    metrics = predictor_metrics(predictor, test, sales_spec)
    for name, value in report.metrics.items():
        assert metrics[name] == pytest.approx(value, rel=1e-5)


def test_forecasts_are_clipped_to_the_target_range_in_scikit_learn_and_onnx_alike(sales_spec, sales_splits):
    from headliner.model.estimators import feature_frame
    from headliner.model.onnx_packaging import check_parity, package_onnx
    from headliner.model.training import model_output

    train, validation, test = sales_splits
    rows = pd.concat([train, validation, test])
    pipeline = build_pipeline(sales_spec, CandidateConfig(name="ridge", family="ridge"))
    pipeline.fit(feature_frame(train, sales_spec), train["sales"])
    raw = pipeline.predict(feature_frame(rows, sales_spec))
    assert (raw < 0).sum() > 0  # the linear model alone forecasts negative sales for some weeks
    forecast = model_output(pipeline, feature_frame(rows, sales_spec), sales_spec)
    np.testing.assert_array_equal(forecast, np.clip(raw, 0, 1e7))

    model = package_onnx(pipeline, sales_spec, "1", {})
    onnx_forecast = OnnxPredictor.from_model(model).predict_values(rows[sales_spec.feature_names])
    assert onnx_forecast.min() == 0.0 and np.all(onnx_forecast[raw < 0] == 0.0)
    assert 0 <= check_parity(model, pipeline, rows, sales_spec) <= 1e-4
    clip = model.graph.node[-1]
    assert (clip.op_type, list(clip.input)[1:], list(clip.output)) == (
        "Clip",
        ["target_min", "target_max"],
        ["prediction"],
    )
    bounds = {i.name: onnx.numpy_helper.to_array(i).item() for i in model.graph.initializer if i.name in clip.input}
    assert bounds == {"target_min": 0.0, "target_max": 1e7}
    assert model.doc_string.endswith("in units, clipped to the target's range [0, 10000000].")

    # an omitted bound clips nothing: no minimum, so the Clip node has an empty min input and negatives stay
    unbounded_below = sales_spec.model_copy(update={"target": sales_spec.target.model_copy(update={"min": None})})
    model = package_onnx(pipeline, unbounded_below, "1", {})
    assert list(model.graph.node[-1].input)[1:] == ["", "target_max"]
    onnx_forecast = OnnxPredictor.from_model(model).predict_values(rows[sales_spec.feature_names])
    np.testing.assert_allclose(onnx_forecast, raw, rtol=1e-4, atol=1e-3)
    assert "range [-inf, 10000000]" in model.doc_string
    unbounded = sales_spec.model_copy(
        update={"target": sales_spec.target.model_copy(update={"min": None, "max": None})}
    )
    assert "Clip" not in {node.op_type for node in package_onnx(pipeline, unbounded, "1", {}).graph.node}
