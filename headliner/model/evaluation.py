"""Offline evaluation: a trained model's test-split metrics next to a trivial baseline (classification:
the training class prior; regression: the spec's baseline forecast, e.g. seasonal naive, else the train
split's mean target), as a report artifact that the quality gates read and the dashboard shows."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field
from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support

from headliner.errors import SpecError
from headliner.labels import Artifact
from headliner.reports.html import FIGURE_DPI, HtmlReport, figure_png, html_page, html_table, inline_png
from headliner.spec import (
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    METRICS_BY_TASK,
    REGRESSION_METRICS,
    Task,
    UseCaseSpec,
    better_by,
)

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "REGRESSION_METRICS",
    "ClassMetrics",
    "EvaluationReport",
    "baseline_description",
    "baseline_forecast",
    "compute_metrics",
    "confusion_matrix_png",
    "evaluate",
    "evaluate_regression",
    "improvement_over_baseline",
    "label_metrics",
    "prior_probabilities",
    "regression_metrics",
    "require_metric",
]

METRIC_NAMES = CLASSIFICATION_METRICS  # a classifier's metrics, in report order
CLASS_PRIOR = "the class prior (every row gets the train split's class frequencies as its probabilities)"
FIGURE_SAMPLE_ROWS = 2000  # points of the predicted-vs-actual scatter (seeded sample)
RESIDUAL_BINS = 40

if TYPE_CHECKING:
    import pandas as pd

PRIOR_SMOOTHING = 1e-6  # keeps the baseline's log loss finite for classes unseen in training


def _check_inputs(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> None:
    if proba.ndim != 2 or proba.shape != (len(y_true), n_classes):
        raise ValueError(f"expected probabilities of shape ({len(y_true)}, {n_classes}), got {proba.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot evaluate on zero rows")
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(f"class indices must lie in 0..{n_classes - 1}")


def _predicted_classes(proba: np.ndarray) -> NDArray[np.intp]:
    """The most probable class of each row; ties go to the lowest class index."""
    predicted: NDArray[np.intp] = np.argmax(proba, axis=1)
    return predicted


def _per_class_scores(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support of every class, absent ones included (scored 0)."""
    scores: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(n_classes)), average=None, zero_division=0
    )
    return scores


def _top_k_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int) -> float:
    # a stable sort of the negated probabilities ranks tied classes by lowest index, like argmax
    top_k = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top_k == y_true[:, None], axis=1)))


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int, top_k: int) -> dict[str, float]:
    """All METRIC_NAMES for class indices `y_true` and [N, n_classes] probabilities. Averages run over
    all n_classes, so a class missing from both truth and predictions lowers the macro averages."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba)
    _check_inputs(y_true, proba, n_classes)
    return {
        **label_metrics(y_true, _predicted_classes(proba), n_classes),
        "top_k_accuracy": _top_k_accuracy(y_true, proba, min(top_k, n_classes)),
        "log_loss": float(log_loss(y_true, y_proba=proba, labels=list(range(n_classes)))),
    }


def label_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro/weighted precision, recall and F1 of predicted class indices (what live
    monitoring can compute from logged answers, and offline evaluation from probabilities)."""
    precision, recall, f1, support = _per_class_scores(y_true, y_pred, n_classes)
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
        "precision_weighted": float(np.average(precision, weights=support)),
        "recall_weighted": float(np.average(recall, weights=support)),
        "f1_weighted": float(np.average(f1, weights=support)),
    }


def prior_probabilities(train_y: np.ndarray, n_classes: int, n_rows: int) -> np.ndarray:
    """The baseline's [n_rows, n_classes] probabilities: every row the training class frequencies,
    lightly smoothed so that no class has probability 0."""
    counts = np.bincount(np.asarray(train_y), minlength=n_classes).astype(float)
    prior = counts / counts.sum() + PRIOR_SMOOTHING
    prior /= prior.sum()
    return np.tile(prior, (n_rows, 1))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """All REGRESSION_METRICS of predictions against true values, in the target's unit where they have
    one: rmse, mae; mape and smape as fractions (0.1 is 10%); r2.

    MAPE, mean |error| / |truth|, skips the rows whose truth is 0 (their ratio is infinite); with no other
    row it is undefined and left out of the dict (a week of zero sales is normal, so callers cope: see
    `require_metric`). sMAPE, mean 2 |error| / (|truth| + |prediction|), counts a row
    where both are 0 as 0. R2 of constant truth is 1 for exact predictions, else 0 (scikit-learn's finite
    convention)."""
    truth = np.asarray(y_true, dtype=np.float64).reshape(-1)
    predicted = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if truth.shape != predicted.shape:
        raise ValueError(f"expected as many predictions as true values ({len(truth)}), got {len(predicted)}")
    if len(truth) == 0:
        raise ValueError("cannot evaluate on zero rows")
    if not (np.isfinite(truth).all() and np.isfinite(predicted).all()):
        raise ValueError("true values and predictions must be finite numbers")
    errors = predicted - truth
    absolute = np.abs(errors)
    nonzero = truth != 0
    magnitudes = np.abs(truth) + np.abs(predicted)
    symmetric = np.divide(2 * absolute, magnitudes, out=np.zeros_like(absolute), where=magnitudes > 0)
    residual_sum = float(np.sum(errors**2))
    total_sum = float(np.sum((truth - truth.mean()) ** 2))
    constant_truth_r2 = 1.0 if residual_sum == 0 else 0.0
    r2 = 1 - residual_sum / total_sum if total_sum > 0 else constant_truth_r2
    metrics = {"rmse": float(np.sqrt(np.mean(errors**2))), "mae": float(np.mean(absolute))}
    if nonzero.any():
        metrics["mape"] = float(np.mean(absolute[nonzero] / np.abs(truth[nonzero])))
    return {**metrics, "smape": float(np.mean(symmetric)), "r2": float(r2)}


def require_metric(metrics: Mapping[str, float], name: str, where: str) -> float:
    """`metrics[name]`, or a ValueError that says why it is missing from the metrics of `where` (e.g.
    "the validation split"): MAPE where every true value is 0, or a metric that was never computed."""
    if name in metrics:
        return metrics[name]
    if name == "mape" and "mae" in metrics:
        raise ValueError(f"mape is undefined on {where}: every true value is 0 (MAPE divides by the true value)")
    raise ValueError(f"metric '{name}' was not computed on {where}; computed: {', '.join(metrics)}")


def baseline_forecast(spec: UseCaseSpec, train: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """A regression baseline's forecast for the rows of `frame`: the spec's baseline feature (e.g. the
    target a year before: seasonal naive), else the train split's mean target for every row."""
    baseline = spec.evaluation.baseline
    if baseline is not None:
        if baseline.feature not in frame.columns:
            raise ValueError(f"the baseline feature '{baseline.feature}' is not a column of the evaluated rows")
        forecast: np.ndarray = frame[baseline.feature].to_numpy(dtype=np.float64)
        return forecast
    if train.empty:
        raise ValueError("the mean-target baseline needs train rows")
    return np.full(len(frame), float(train[spec.target.column].mean()))


def baseline_description(spec: UseCaseSpec) -> str:
    """What the baseline of a use case is, for people (reports, gate failures, the MLflow run)."""
    if spec.is_classification:
        return CLASS_PRIOR
    baseline = spec.evaluation.baseline
    if baseline is not None:
        return f"{baseline.description} (the '{baseline.feature}' feature taken as the forecast)"
    return f"the train split's mean {spec.target.column} for every row"


def improvement_over_baseline(metric: str, value: float, baseline: float) -> float | None:
    """How much better than the baseline a value is, relative to the baseline's figure (0.1: 10% lower
    for a lower-is-better metric, 10% higher otherwise); None when the baseline's figure is 0 or not a
    number."""
    if baseline == 0 or not np.isfinite(baseline):
        return None
    return better_by(metric, value, baseline) / abs(baseline)


def confusion_matrix_png(matrix: np.ndarray, classes: list[str]) -> bytes:
    """A heat map of the confusion matrix (true class on y, predicted on x), coloured by the share of
    each true class's rows, sized so that every class code stays readable."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix)
    n_classes = len(classes)
    row_totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)
    side_inches = max(5.0, 0.22 * n_classes)
    tick_points = min(10.0, max(5.0, 0.4 * 72 * side_inches / n_classes))

    # a Figure with its own Agg canvas never enters pyplot's global figure registry
    figure = Figure(figsize=(side_inches + 1.5, side_inches), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02, label="share of the true class's rows")
    positions = np.arange(n_classes)
    axes.set_xticks(positions, classes, rotation=90, fontsize=tick_points)
    axes.set_yticks(positions, classes, fontsize=tick_points)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title("Confusion matrix (colour: row-normalised share of each true class)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def predicted_vs_actual_png(actual: list[float], predicted: list[float], unit: str) -> bytes:
    """A scatter of predictions against true values with the line of perfect forecasts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 5), dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.scatter(actual, predicted, s=6, alpha=0.4, linewidths=0)
    low, high = min(min(actual), min(predicted)), max(max(actual), max(predicted))
    axes.plot([low, high], [low, high], color="#c62828", linewidth=1, label="perfect forecast")
    axes.set_xlabel(f"actual ({unit})")
    axes.set_ylabel(f"predicted ({unit})")
    axes.set_title(f"Predicted vs actual ({len(actual):,} rows)")
    axes.legend(loc="upper left")
    return figure_png(figure)


def residual_histogram_png(edges: list[float], counts: list[int], unit: str) -> bytes:
    """A histogram of the residuals (prediction - truth) of every evaluated row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.stairs(counts, edges, fill=True, alpha=0.7)
    axes.axvline(0, color="#c62828", linewidth=1)
    axes.set_xlabel(f"prediction - actual ({unit})")
    axes.set_ylabel("rows")
    axes.set_title("Residuals (left of 0: under-forecast)")
    return figure_png(figure)


class ClassMetrics(BaseModel):
    """One class's test scores."""

    label: str
    name: str
    precision: float
    recall: float
    f1: float
    support: int


class EvaluationReport(HtmlReport):
    """A model's test metrics beside its baseline's: for a classifier the class prior, per class and
    its confusion matrix; for a regressor the baseline forecast, its improvement over it, predicted vs
    actual and the residuals. One type for both tasks: the other task's fields stay empty."""

    use_case: str
    model_name: str
    candidate: str
    task: Task = Task.MULTICLASS_CLASSIFICATION  # reports stored before regression existed are classifiers
    split: str = Artifact.TEST_SPLIT.value
    rows: int
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    baseline_description: str = CLASS_PRIOR
    # classification
    top_k: int = 0
    classes: list[str] = Field(default_factory=list)
    class_names: list[str] = Field(default_factory=list)
    per_class: list[ClassMetrics] = Field(default_factory=list)
    confusion_matrix: list[list[int]] = Field(default_factory=list)  # rows: true class, columns: predicted class
    # regression
    target_unit: str | None = None
    sample_actual: list[float] = Field(default_factory=list)  # a seeded sample of rows for the scatter
    sample_predicted: list[float] = Field(default_factory=list)
    residual_edges: list[float] = Field(default_factory=list)  # histogram of prediction - truth over every row
    residual_counts: list[int] = Field(default_factory=list)

    def metric(self, name: str) -> float:
        if name not in self.metrics:
            raise KeyError(f"unknown metric '{name}'; known metrics: {', '.join(self.metrics)}")
        return self.metrics[name]

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {**self.metrics, "rows": self.rows, "candidate": self.candidate}

    def png_images(self) -> dict[str, bytes]:
        if self.task is Task.MULTICLASS_CLASSIFICATION:
            return {"confusion_matrix": confusion_matrix_png(np.array(self.confusion_matrix), self.classes)}
        unit = self.target_unit or ""
        return {
            "predicted_vs_actual": predicted_vs_actual_png(self.sample_actual, self.sample_predicted, unit),
            "residuals": residual_histogram_png(self.residual_edges, self.residual_counts, unit),
        }

    def _metric_rows(self) -> list[list[str]]:
        rows = []
        for name, value in self.metrics.items():
            baseline = self.baseline_metrics[name]
            improvement = improvement_over_baseline(name, value, baseline)
            row = [
                f"{name} (lower is better)" if name in LOWER_IS_BETTER else name,
                f"{value:.4f}",
                f"{baseline:.4f}",
                f"{better_by(name, value, baseline):+.4f}",
            ]
            if self.task is Task.REGRESSION:
                row.append("n/a" if improvement is None else f"{improvement:+.1%}")
            rows.append(row)
        return rows

    def to_html(self) -> str:
        headers = ["use case", "model", "candidate", "task", "split", "rows"]
        facts = [self.use_case, self.model_name, self.candidate, self.task.value, self.split, f"{self.rows:,}"]
        if self.task is Task.MULTICLASS_CLASSIFICATION:  # a forecast has no top k
            headers.append("top k")
            facts.append(str(self.top_k))
        summary = html_table([*headers, "baseline"], [[*facts, self.baseline_description]])
        if self.task is Task.MULTICLASS_CLASSIFICATION:
            metrics = html_table(
                ["metric", "model", "baseline (class prior)", "lift over baseline"], self._metric_rows()
            )
            class_rows = [
                [c.label, c.name, f"{c.support:,}", f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}"]
                for c in sorted(self.per_class, key=lambda c: -c.support)
            ]
            per_class = html_table(["class", "name", "support", "precision", "recall", "f1"], class_rows)
            figure = inline_png(self.png_images()["confusion_matrix"], "confusion matrix")
            sections = [("Per class", per_class), ("Confusion matrix", figure)]
        else:
            headers = ["metric", "model", "baseline", "lift over baseline", "improvement over baseline"]
            metrics = html_table(headers, self._metric_rows())
            note = (
                f"<p>rmse and mae in {self.target_unit}; mape and smape as fractions (0.1 is 10%); "
                "improvement: relative to the baseline's figure.</p>"
            )
            metrics = note + metrics
            images = self.png_images()
            sections = [
                ("Predicted vs actual", inline_png(images["predicted_vs_actual"], "predicted vs actual")),
                ("Residuals", inline_png(images["residuals"], "residual histogram")),
            ]
        return html_page(
            f"Evaluation of {self.model_name} ({self.candidate}) on {self.split}",
            [("Summary", summary), ("Metrics", metrics), *sections],
        )


def _check_spec_metrics(spec: UseCaseSpec) -> None:
    known = METRICS_BY_TASK[spec.task]
    unknown = [name for name in spec.evaluation.metrics if name not in known]
    if unknown:
        raise SpecError(f"use case '{spec.name}': unknown evaluation metrics {unknown}; known: {list(known)}")


def evaluate(
    spec: UseCaseSpec,
    model_name: str,
    candidate: str,
    y_true: np.ndarray,
    proba: np.ndarray,
    train_y: np.ndarray,
    class_names: list[str],
) -> EvaluationReport:
    """Score a classifier's probabilities on a split against the training class prior."""
    _check_spec_metrics(spec)
    classes = spec.target.classes
    if len(class_names) != len(classes):
        raise ValueError(f"expected {len(classes)} class names, got {len(class_names)}")
    y_true, proba = np.asarray(y_true), np.asarray(proba)
    n_classes, top_k = len(classes), spec.evaluation.top_k
    metrics = compute_metrics(y_true, proba, n_classes, top_k)
    baseline = prior_probabilities(train_y, n_classes, len(y_true))
    y_pred = _predicted_classes(proba)
    precision, recall, f1, support = _per_class_scores(y_true, y_pred, n_classes)
    per_class = [
        ClassMetrics(
            label=classes[i],
            name=class_names[i],
            precision=float(precision[i]),
            recall=float(recall[i]),
            f1=float(f1[i]),
            support=int(support[i]),
        )
        for i in range(n_classes)
    ]
    return EvaluationReport(
        use_case=spec.name,
        model_name=model_name,
        candidate=candidate,
        task=spec.task,
        rows=len(y_true),
        top_k=top_k,
        classes=classes,
        class_names=class_names,
        metrics=metrics,
        baseline_metrics=compute_metrics(y_true, baseline, n_classes, top_k),
        baseline_description=baseline_description(spec),
        per_class=per_class,
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).tolist(),
    )


def evaluate_regression(
    spec: UseCaseSpec,
    model_name: str,
    candidate: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    baseline_pred: np.ndarray,
    seed: int = 0,
) -> EvaluationReport:
    """Score a regressor's predictions on a split beside the baseline forecast of the same rows."""
    _check_spec_metrics(spec)
    truth = np.asarray(y_true, dtype=np.float64).reshape(-1)
    predicted = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    metrics = regression_metrics(truth, predicted)
    baseline_metrics = regression_metrics(truth, np.asarray(baseline_pred, dtype=np.float64).reshape(-1))
    sample = np.random.default_rng(seed).permutation(len(truth))[:FIGURE_SAMPLE_ROWS]
    sample.sort()
    counts, edges = np.histogram(predicted - truth, bins=RESIDUAL_BINS)
    return EvaluationReport(
        use_case=spec.name,
        model_name=model_name,
        candidate=candidate,
        task=spec.task,
        rows=len(truth),
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        baseline_description=baseline_description(spec),
        target_unit=spec.target.unit,
        sample_actual=truth[sample].tolist(),
        sample_predicted=predicted[sample].tolist(),
        residual_edges=edges.tolist(),
        residual_counts=counts.tolist(),
    )
