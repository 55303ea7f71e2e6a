"""Offline evaluation: a trained model's test-split metrics next to a trivial baseline (the training
class prior), as a report artifact that the quality gates read and the dashboard shows."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel
from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support

from headliner.errors import SpecError
from headliner.labels import Artifact
from headliner.reports.html import HtmlReport, html_page, html_table, inline_png
from headliner.spec import UseCaseSpec

METRIC_NAMES = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "top_k_accuracy",
    "log_loss",
)
LOWER_IS_BETTER = frozenset({"log_loss"})

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


def _lift_over_baseline(metric: str, value: float, baseline: float) -> float:
    """How much better than the baseline a value is; positive is better for every metric."""
    return baseline - value if metric in LOWER_IS_BETTER else value - baseline


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


class ClassMetrics(BaseModel):
    """One class's test scores."""

    label: str
    name: str
    precision: float
    recall: float
    f1: float
    support: int


class EvaluationReport(HtmlReport):
    """A model's test metrics beside the class-prior baseline, per class, and its confusion matrix."""

    use_case: str
    model_name: str
    candidate: str
    split: str = Artifact.TEST_SPLIT.value
    rows: int
    top_k: int
    classes: list[str]
    class_names: list[str]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    per_class: list[ClassMetrics]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class

    def metric(self, name: str) -> float:
        if name not in self.metrics:
            raise KeyError(f"unknown metric '{name}'; known metrics: {', '.join(self.metrics)}")
        return self.metrics[name]

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {**self.metrics, "rows": self.rows, "candidate": self.candidate}

    def png_images(self) -> dict[str, bytes]:
        return {"confusion_matrix": confusion_matrix_png(np.array(self.confusion_matrix), self.classes)}

    def to_html(self) -> str:
        summary = html_table(
            ["use case", "model", "candidate", "split", "rows", "top k"],
            [[self.use_case, self.model_name, self.candidate, self.split, f"{self.rows:,}", self.top_k]],
        )
        metric_rows = [
            [
                f"{name} (lower is better)" if name in LOWER_IS_BETTER else name,
                f"{value:.4f}",
                f"{self.baseline_metrics[name]:.4f}",
                f"{_lift_over_baseline(name, value, self.baseline_metrics[name]):+.4f}",
            ]
            for name, value in self.metrics.items()
        ]
        metrics = html_table(["metric", "model", "baseline (class prior)", "lift over baseline"], metric_rows)
        class_rows = [
            [c.label, c.name, f"{c.support:,}", f"{c.precision:.3f}", f"{c.recall:.3f}", f"{c.f1:.3f}"]
            for c in sorted(self.per_class, key=lambda c: -c.support)
        ]
        per_class = html_table(["class", "name", "support", "precision", "recall", "f1"], class_rows)
        figure = inline_png(self.png_images()["confusion_matrix"], "confusion matrix")
        return html_page(
            f"Evaluation of {self.model_name} ({self.candidate}) on {self.split}",
            [("Summary", summary), ("Metrics", metrics), ("Per class", per_class), ("Confusion matrix", figure)],
        )


def evaluate(
    spec: UseCaseSpec,
    model_name: str,
    candidate: str,
    y_true: np.ndarray,
    proba: np.ndarray,
    train_y: np.ndarray,
    class_names: list[str],
) -> EvaluationReport:
    """Score a model's probabilities on a split against the training class prior."""
    unknown = [name for name in spec.evaluation.metrics if name not in METRIC_NAMES]
    if unknown:
        raise SpecError(f"use case '{spec.name}': unknown evaluation metrics {unknown}; known: {list(METRIC_NAMES)}")
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
        rows=len(y_true),
        top_k=top_k,
        classes=classes,
        class_names=class_names,
        metrics=metrics,
        baseline_metrics=compute_metrics(y_true, baseline, n_classes, top_k),
        per_class=per_class,
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).tolist(),
    )
