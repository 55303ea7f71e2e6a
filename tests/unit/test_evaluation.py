"""Offline evaluation and quality gates: metrics checked by hand and against scikit-learn, the class-prior
baseline, the report artifact and the gate decisions with their messages."""

import base64
import io
import math

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from sklearn.metrics import (
    accuracy_score,
    log_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from headliner.errors import QualityGateError, SpecError
from headliner.model.evaluation import (
    METRIC_NAMES,
    EvaluationReport,
    compute_metrics,
    confusion_matrix_png,
    evaluate,
    prior_probabilities,
)
from headliner.model.gates import QualityGateReport, enforce_gates, evaluate_gates
from headliner.spec import QualityGate, Task

# 3 classes, 6 rows; supports 3, 2, 1.
HAND_Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
HAND_PROBA = np.array(
    [
        [0.7, 0.2, 0.1],  # true 0, predicted 0; top-2 {0, 1}: hit
        [0.2, 0.5, 0.3],  # true 0, predicted 1; top-2 {1, 2}: miss
        [0.4, 0.4, 0.2],  # true 0, tie 0/1 -> predicted 0; top-2 {0, 1}: hit
        [0.1, 0.6, 0.3],  # true 1, predicted 1; top-2 {1, 2}: hit
        [0.1, 0.4, 0.5],  # true 1, predicted 2; top-2 {2, 1}: hit
        [0.3, 0.3, 0.4],  # true 2, predicted 2; top-2 {2, 0}: hit
    ]
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def random_case(rows: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_classes, rows), rng.dirichlet(np.ones(n_classes), rows)


@pytest.fixture(scope="module")
def wine_report(wine_spec) -> EvaluationReport:
    y_true, proba = random_case(60, 3)
    train_y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    names = [wine_spec.target.display_names[c] for c in wine_spec.target.classes]
    return evaluate(wine_spec, "wine", "logistic_regression", y_true, proba, train_y, names)


def test_metrics_match_hand_computed_values():
    # predicted [0, 1, 0, 1, 2, 2]; correct rows 0, 2, 3, 5 -> accuracy 4/6
    # class 0: predicted twice, both right -> P 1,   R 2/3, F1 2*(2/3)/(5/3) = 4/5
    # class 1: predicted twice, one right  -> P 1/2, R 1/2, F1 1/2
    # class 2: predicted twice, one right  -> P 1/2, R 1/1, F1 2*(1/2)/(3/2) = 2/3
    # macro:    P (1 + 1/2 + 1/2)/3 = 2/3,  R (2/3 + 1/2 + 1)/3 = 13/18,  F1 (4/5 + 1/2 + 2/3)/3 = 59/90
    # weighted: P (3*1 + 2*1/2 + 1*1/2)/6 = 3/4,  R (3*2/3 + 2*1/2 + 1*1)/6 = 2/3,
    #           F1 (3*4/5 + 2*1/2 + 1*2/3)/6 = 61/90
    # top-2: 5 of 6 rows; log loss -(ln .7 + ln .2 + ln .4 + ln .6 + ln .4 + ln .4)/6 = 0.870968
    metrics = compute_metrics(HAND_Y_TRUE, HAND_PROBA, n_classes=3, top_k=2)

    assert tuple(metrics) == METRIC_NAMES
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision_macro"] == pytest.approx(2 / 3)
    assert metrics["recall_macro"] == pytest.approx(13 / 18)
    assert metrics["f1_macro"] == pytest.approx(59 / 90)
    assert metrics["precision_weighted"] == pytest.approx(3 / 4)
    assert metrics["recall_weighted"] == pytest.approx(2 / 3)
    assert metrics["f1_weighted"] == pytest.approx(61 / 90)
    assert metrics["top_k_accuracy"] == pytest.approx(5 / 6)
    expected_log_loss = -sum(math.log(p) for p in (0.7, 0.2, 0.4, 0.6, 0.4, 0.4)) / 6
    assert expected_log_loss == pytest.approx(0.870968, abs=1e-6)
    assert metrics["log_loss"] == pytest.approx(expected_log_loss)


def test_metrics_agree_with_scikit_learn():
    n_classes, k = 7, 3
    y_true, proba = random_case(300, n_classes, seed=1)
    labels = list(range(n_classes))
    y_pred = proba.argmax(axis=1)

    metrics = compute_metrics(y_true, proba, n_classes, top_k=k)

    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=0
        )
        assert metrics[f"precision_{average}"] == pytest.approx(precision)
        assert metrics[f"recall_{average}"] == pytest.approx(recall)
        assert metrics[f"f1_{average}"] == pytest.approx(f1)
    assert metrics["top_k_accuracy"] == pytest.approx(top_k_accuracy_score(y_true, proba, k=k, labels=labels))
    assert metrics["log_loss"] == pytest.approx(log_loss(y_true, y_proba=proba, labels=labels))


def test_a_class_absent_from_truth_and_predictions_scores_zero_in_macro_averages():
    # 4 classes; class 3 is never true and never predicted; the 3 others are all predicted right.
    # Macro averages count class 3 as 0 (so 3/4); weighted averages give it weight 0 (so 1).
    y_true = np.array([0, 1, 2, 0, 1, 2])
    proba = np.full((6, 4), 0.05)
    proba[np.arange(6), y_true] = 0.85

    metrics = compute_metrics(y_true, proba, n_classes=4, top_k=1)

    assert metrics["accuracy"] == 1.0
    assert metrics["precision_macro"] == pytest.approx(3 / 4)
    assert metrics["recall_macro"] == pytest.approx(3 / 4)
    assert metrics["f1_macro"] == pytest.approx(3 / 4)
    assert metrics["f1_weighted"] == pytest.approx(1.0)
    assert math.isfinite(metrics["log_loss"])


def test_prior_probabilities_are_the_training_class_frequencies():
    train_y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])  # class 4 never seen

    prior = prior_probabilities(train_y, n_classes=5, n_rows=7)

    assert prior.shape == (7, 5)
    assert np.allclose(prior, [0.4, 0.3, 0.2, 0.1, 0.0], atol=1e-5)
    assert np.allclose(prior.sum(axis=1), 1.0)
    assert prior[0, 4] > 0  # smoothed: log loss stays finite when class 4 shows up in the test split


def test_baseline_top_k_accuracy_is_the_share_of_rows_in_the_most_frequent_training_classes():
    train_y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])  # the 2 most frequent classes: 0 and 1
    test_y = np.array([0, 1, 2, 3, 4, 0, 1, 1])  # 5 of 8 rows are class 0 or 1

    metrics = compute_metrics(test_y, prior_probabilities(train_y, 5, len(test_y)), n_classes=5, top_k=2)

    assert metrics["top_k_accuracy"] == pytest.approx(5 / 8)
    assert metrics["accuracy"] == pytest.approx(2 / 8)  # always predicts class 0
    assert math.isfinite(metrics["log_loss"])


def test_evaluate_fills_model_baseline_per_class_and_confusion_matrix(wine_report, wine_spec):
    assert wine_report.top_k == wine_spec.evaluation.top_k == 2
    assert wine_report.rows == 60
    assert set(wine_report.metrics) == set(wine_report.baseline_metrics) == set(METRIC_NAMES)
    # the prior ranks classes 0, 1, 2, so top-2 covers the test rows of classes 0 and 1
    y_true, _ = random_case(60, 3)
    assert wine_report.baseline_metrics["top_k_accuracy"] == pytest.approx(np.isin(y_true, [0, 1]).mean())
    assert [c.label for c in wine_report.per_class] == wine_spec.target.classes
    assert [c.name for c in wine_report.per_class] == ["Cultivar 1", "Cultivar 2", "Cultivar 3"]
    assert [c.support for c in wine_report.per_class] == np.bincount(y_true, minlength=3).tolist()
    matrix = np.array(wine_report.confusion_matrix)
    assert matrix.shape == (3, 3)
    assert matrix.sum(axis=1).tolist() == [c.support for c in wine_report.per_class]
    assert np.trace(matrix) / 60 == pytest.approx(wine_report.metric("accuracy"))


def test_a_classification_report_names_its_task_and_baseline_and_has_no_regression_figures(wine_report):
    assert wine_report.task is Task.MULTICLASS_CLASSIFICATION and wine_report.target_unit is None
    assert wine_report.baseline_description == (
        "the class prior (every row gets the train split's class frequencies as its probabilities)"
    )
    assert (wine_report.sample_actual, wine_report.residual_counts) == ([], [])
    assert set(wine_report.png_images()) == {"confusion_matrix"}
    page = wine_report.to_html()
    assert "<td>multiclass_classification</td>" in page and "improvement over baseline" not in page
    summary = page.split("<table>")[1]  # the first table: what was evaluated, with the top k of top_k_accuracy
    assert "<th>rows</th><th>top k</th><th>baseline</th>" in summary
    assert f"<td>{wine_report.rows:,}</td><td>{wine_report.top_k}</td><td>the class prior" in summary


def test_evaluate_refuses_a_spec_asking_for_an_unknown_metric(wine_spec):
    spec = wine_spec.model_copy(
        update={"evaluation": wine_spec.evaluation.model_copy(update={"metrics": ["accuracy", "auc"]})}
    )
    y_true, proba = random_case(10, 3)

    with pytest.raises(SpecError, match=r"unknown evaluation metrics \['auc'\]"):
        evaluate(spec, "wine", "mlp", y_true, proba, y_true, ["a", "b", "c"])


def test_unknown_metric_lookup_names_the_known_metrics(wine_report):
    with pytest.raises(KeyError, match="known metrics: accuracy, precision_macro"):
        wine_report.metric("auc")


def test_report_html_shows_model_and_baseline_side_by_side_with_the_figure(wine_report):
    page = wine_report.to_html()

    for name in METRIC_NAMES:
        assert name in page
    assert "model" in page and "baseline (class prior)" in page and "lift over baseline" in page
    assert "Cultivar 3" in page
    assert '<img src="data:image/png;base64,' in page
    encoded = page.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(encoded).startswith(PNG_SIGNATURE)


def test_report_png_is_decodable_and_grows_with_the_class_count(wine_report, jukebox_spec):
    png = wine_report.png_images()["confusion_matrix"]
    assert png.startswith(PNG_SIGNATURE)
    small = Image.open(io.BytesIO(png))
    classes = jukebox_spec.target.classes
    large = Image.open(io.BytesIO(confusion_matrix_png(np.eye(len(classes), dtype=int), classes)))

    assert small.size[0] > 300 and small.size[1] > 300
    assert large.size[0] > 2 * small.size[0] and large.size[1] > 2 * small.size[1]


def test_report_summary_metadata_and_json_round_trip(wine_report):
    metadata = wine_report.summary_metadata()

    assert {name: metadata[name] for name in METRIC_NAMES} == wine_report.metrics
    assert metadata["rows"] == 60 and metadata["candidate"] == "logistic_regression"
    assert EvaluationReport.model_validate_json(wine_report.model_dump_json()) == wine_report


def with_metrics(report: EvaluationReport, name: str, value: float, baseline: float) -> EvaluationReport:
    return report.model_copy(
        update={
            "metrics": {**report.metrics, name: value},
            "baseline_metrics": {**report.baseline_metrics, name: baseline},
        }
    )


def test_gates_pass(wine_report, wine_spec):
    report = with_metrics(wine_report, "accuracy", 0.85, 0.4)

    results = enforce_gates(report, wine_spec.evaluation.quality_gates)

    assert [(r.metric, r.bound, r.passed) for r in results] == [("accuracy", ">= 0.8", True)]
    gate_report = QualityGateReport(results=results)
    assert "&gt;= 0.8" in gate_report.to_html() and "passed" in gate_report.to_html()
    assert gate_report.summary_metadata() == {"gates": 1, "passed": 1}
    assert QualityGateReport.model_validate_json(gate_report.model_dump_json()) == gate_report


def test_gate_fails_below_min(wine_report, wine_spec):
    report = with_metrics(wine_report, "accuracy", 0.75, 0.4)

    with pytest.raises(QualityGateError) as failure:
        enforce_gates(report, wine_spec.evaluation.quality_gates)

    assert str(failure.value).startswith(
        "quality gate failed for logistic_regression on 60 test_split rows: accuracy 0.7500 is below 0.8 "
        "(baseline 0.4000). The baseline is the class prior"
    )


def test_gate_fails_above_max_on_log_loss(wine_report):
    report = with_metrics(wine_report, "log_loss", 3.1, 1.1)
    gates = [QualityGate(metric="log_loss", max=2.5)]

    [result] = evaluate_gates(report, gates)
    assert (result.bound, result.passed) == ("<= 2.5", False)
    with pytest.raises(QualityGateError, match=r"rows: log_loss 3\.1000 is above 2\.5 \(baseline 1\.1000\)\. "):
        enforce_gates(report, gates)


def test_gate_fails_on_lift_over_baseline_with_one_line_message_that_says_what_to_try(wine_report, jukebox_spec):
    # the figures of the run issue 22 reports: the fast config on 30,000 generated rows
    report = with_metrics(wine_report, "top_k_accuracy", 0.11050328, 0.06892779).model_copy(
        update={"rows": 914, "use_case": "jukebox"}
    )

    [result] = evaluate_gates(report, jukebox_spec.evaluation.quality_gates)
    assert result.bound == ">= baseline 0.0689 + 0.05 = 0.1189" and result.from_baseline and not result.passed
    with pytest.raises(QualityGateError) as failure:
        enforce_gates(report, jukebox_spec.evaluation.quality_gates)

    assert str(failure.value) == (
        "quality gate failed for logistic_regression on 914 test_split rows: top_k_accuracy 0.1105 is below "
        "baseline 0.0689 + 0.05 = 0.1189. The baseline is the class prior (every row gets the train split's "
        "class frequencies as its probabilities). Nothing was registered. To pass, try more rows (a larger "
        "--rows, or no --rows for the whole source), the full run config (--run-config "
        "configs/runs/training.yaml, the default), or a lower bound in the spec's evaluation.quality_gates "
        "(docs/training.md, 'Quality gates', has the figures measured per data size)."
    )
    assert "\n" not in str(failure.value)


def test_lift_on_a_lower_is_better_metric_means_below_the_baseline(wine_report, jukebox_spec):
    gates = [QualityGate(metric="log_loss", min_lift_over_baseline=0.1)]
    spec = jukebox_spec.model_copy(
        update={"evaluation": jukebox_spec.evaluation.model_copy(update={"quality_gates": gates})}
    )

    [good] = enforce_gates(with_metrics(wine_report, "log_loss", 4.0, 4.2767), spec.evaluation.quality_gates)
    assert good.bound == "<= baseline 4.2767 - 0.1 = 4.1767" and good.passed
    with pytest.raises(QualityGateError, match=r"log_loss 4\.2000 is above baseline 4\.2767 - 0\.1 = 4\.1767"):
        enforce_gates(with_metrics(wine_report, "log_loss", 4.2, 4.2767), spec.evaluation.quality_gates)


def test_every_failed_bound_is_named_on_one_line(wine_report):
    report = with_metrics(with_metrics(wine_report, "accuracy", 0.5, 0.4), "log_loss", 3.0, 1.1)
    gates = [
        QualityGate(metric="accuracy", min=0.8, min_lift_over_baseline=0.05),
        QualityGate(metric="log_loss", max=2.5),
    ]

    with pytest.raises(QualityGateError) as failure:
        enforce_gates(report, gates)

    assert str(failure.value).startswith(
        "quality gate failed for logistic_regression on 60 test_split rows: accuracy 0.5000 is below 0.8 "
        "(baseline 0.4000); log_loss 3.0000 is above 2.5 (baseline 1.1000). The baseline is"
    )
    assert [r.passed for r in evaluate_gates(report, gates)] == [False, True, False]


def test_a_negative_lift_over_baseline_is_refused():
    with pytest.raises(ValidationError, match=r"min_lift_over_baseline\n  Input should be greater than or equal to 0"):
        QualityGate(metric="top_k_accuracy", min_lift_over_baseline=-0.05)


def test_a_gate_result_stored_before_from_baseline_existed_still_loads():
    stored = '{"metric": "accuracy", "value": 0.9, "baseline": 0.4, "bound": ">= 0.8", "passed": true}'

    assert QualityGateReport.model_validate_json(f'{{"results": [{stored}]}}').results[0].from_baseline is False


def test_gate_on_an_unknown_metric_names_it_and_the_known_metrics(wine_report):
    with pytest.raises(QualityGateError, match=r"unknown metric 'auc'; known metrics: accuracy, .*log_loss"):
        evaluate_gates(wine_report, [QualityGate(metric="auc", min=0.9)])
