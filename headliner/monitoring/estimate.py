"""Performance before the labels arrive (the truth about a hit comes weeks later): confidence-based
performance estimation (CBPE, the method of NannyML, implemented here because nannyml cannot install
beside BentoML's pins).

The served version's confidence is calibrated on its validation split, where the labels are known:
isotonic regression of "top-1 correct" on the top-1 probability, and of "label in the top k" on the
probability mass of the top k. The estimate of a metric on a window is the mean calibrated probability
over its rows: the expected share of right answers, as long as the link between confidence and
correctness holds (inputs may shift; the meaning of the label must not).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import Field

from headliner.monitoring.window import ANALYSED, LABEL, PREDICTED, reference_rows
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import UseCaseSpec

if TYPE_CHECKING:
    from sklearn.isotonic import IsotonicRegression

ESTIMATED_METRICS = ("accuracy", "top_k_accuracy")


class PerformanceEstimateReport(HtmlReport):
    live_metric: str
    top_k: int
    reference_rows: int
    rows: int  # the window's analysed rows, which the estimate covers
    estimated: dict[str, float]  # the window's estimate of each of ESTIMATED_METRICS
    reference: dict[str, float]  # realized on the validation split (what the calibration learned from)
    labelled: int = 0
    estimated_labelled: dict[str, float] = Field(default_factory=dict)  # the estimate on the labelled rows only
    realized_labelled: dict[str, float] = Field(default_factory=dict)  # their realized value
    max_drop: float
    not_estimated: str = ""  # why there is no estimate (e.g. a regression model), if there is none

    @property
    def drop(self) -> float | None:
        """How far the estimate of the live metric is below its value on the validation split; None when
        the live metric has no confidence-based estimate (e.g. F1)."""
        if self.live_metric not in self.estimated:
            return None
        return self.reference[self.live_metric] - self.estimated[self.live_metric]

    def summary_metadata(self) -> dict[str, str | int | float]:
        figures: dict[str, str | int | float] = {"rows": self.rows, "labelled": self.labelled}
        figures.update({f"estimated_{name}": round(value, 4) for name, value in self.estimated.items()})
        figures.update({f"reference_{name}": round(value, 4) for name, value in self.reference.items()})
        figures.update({f"realized_{name}": round(value, 4) for name, value in self.realized_labelled.items()})
        return figures

    def to_html(self) -> str:
        def shown(values: dict[str, float], name: str) -> str:
            return f"{values[name]:.4f}" if name in values else "-"

        rows = [
            [
                name if name != "top_k_accuracy" else f"top_k_accuracy (k={self.top_k})",
                shown(self.estimated, name),
                shown(self.reference, name),
                shown(self.estimated_labelled, name),
                shown(self.realized_labelled, name),
            ]
            for name in ESTIMATED_METRICS
        ]
        headers = [
            "metric",
            f"estimated, window ({self.rows:,} rows)",
            f"realized, validation split ({self.reference_rows:,} rows)",
            f"estimated, labelled rows ({self.labelled:,})",
            "realized, labelled rows",
        ]
        if self.not_estimated:
            return html_page("Performance estimated without labels", [("No estimate", f"<p>{self.not_estimated}</p>")])
        if self.drop is None:
            verdict = f"<p>{self.live_metric} has no confidence-based estimate; accuracy and top-k accuracy do.</p>"
        else:
            within = "below" if self.drop < self.max_drop else "AT OR ABOVE"
            verdict = (
                f"<p>Estimated {self.live_metric} <b>{self.estimated[self.live_metric]:.4f}</b> is "
                f"{self.drop:+.4f} below the validation split's {self.reference[self.live_metric]:.4f}: "
                f"{within} the limit {self.max_drop:g}.</p>"
            )
        method = (
            "<p>Confidence-based performance estimation: the model's top-1 probability and its top-k "
            "probability mass, calibrated by isotonic regression on the validation split, averaged over "
            "the window. No labels are needed; it assumes the link between confidence and correctness "
            "has not changed.</p>"
        )
        return html_page(
            "Performance estimated without labels",
            [("Estimate", verdict + html_table(headers, rows)), ("Method", method)],
        )


def confidences(probabilities: np.ndarray, top_k: int) -> dict[str, np.ndarray]:
    """Per row, the confidence each estimated metric is calibrated on: the top-1 probability (accuracy)
    and the summed probability of the top k classes (top_k_accuracy)."""
    ranked = -np.sort(-np.asarray(probabilities, dtype=np.float64), axis=1)
    return {"accuracy": ranked[:, 0], "top_k_accuracy": ranked[:, :top_k].sum(axis=1)}


def hits(probabilities: np.ndarray, labels: np.ndarray, top_k: int) -> dict[str, np.ndarray]:
    """Per row, whether the answer was right: the true class index is the top-1, or among the top k
    (ties ranked by lowest class index, as the offline evaluation does)."""
    order = np.argsort(-np.asarray(probabilities), axis=1, kind="stable")[:, :top_k]
    labels = np.asarray(labels)[:, None]
    return {"accuracy": order[:, 0] == labels[:, 0], "top_k_accuracy": np.any(order == labels, axis=1)}


def calibrate(probabilities: np.ndarray, labels: np.ndarray, top_k: int) -> dict[str, IsotonicRegression]:
    """One isotonic regression per estimated metric: P(right | confidence), learnt on labelled rows."""
    from sklearn.isotonic import IsotonicRegression

    right = hits(probabilities, labels, top_k)
    calibration = {}
    for name, confidence in confidences(probabilities, top_k).items():
        regression = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        calibration[name] = regression.fit(confidence, right[name].astype(np.float64))
    return calibration


def estimate(calibration: dict[str, IsotonicRegression], probabilities: np.ndarray, top_k: int) -> dict[str, float]:
    """The expected value of each metric on these rows: the mean calibrated probability of being right."""
    return {
        name: float(np.mean(calibration[name].predict(confidence)))
        for name, confidence in confidences(probabilities, top_k).items()
    }


def estimate_performance(
    reference_probabilities: np.ndarray,
    reference_labels: np.ndarray,
    window_probabilities: np.ndarray,
    labelled_probabilities: np.ndarray,
    labelled_labels: np.ndarray,
    spec: UseCaseSpec,
) -> PerformanceEstimateReport:
    """CBPE of a window from probabilities [N, C] and class indices: calibrated on the reference,
    estimated on the window, and on its labelled rows beside their realized values."""
    top_k = min(spec.evaluation.top_k, spec.decision.top_k)  # as live performance: the logged top-k
    calibration = calibrate(reference_probabilities, reference_labels, top_k)

    def realized(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        return {name: float(np.mean(right)) for name, right in hits(probabilities, labels, top_k).items()}

    report = PerformanceEstimateReport(
        live_metric=spec.monitoring.live_metric,
        top_k=top_k,
        reference_rows=len(reference_labels),
        rows=len(window_probabilities),
        estimated=estimate(calibration, window_probabilities, top_k),
        reference=realized(reference_probabilities, reference_labels),
        labelled=len(labelled_labels),
        max_drop=spec.monitoring.estimated_metric_max_drop,
    )
    if len(labelled_labels):
        report.estimated_labelled = estimate(calibration, labelled_probabilities, top_k)
        report.realized_labelled = realized(labelled_probabilities, labelled_labels)
    return report


def labelled_reference(
    validation_split: pd.DataFrame, model_bytes: bytes, spec: UseCaseSpec
) -> tuple[pd.DataFrame, np.ndarray]:
    """The validation split as traffic sends it (`reference_rows`): features, the true class (LABEL) and the
    class the version predicts (PREDICTED); and the version's probabilities [N, C] for its rows."""
    frame = reference_rows(validation_split, spec)
    labels = frame[spec.target.column].astype(str).to_numpy()
    frame = frame[spec.feature_names].astype(np.float64).assign(**{LABEL: labels})
    probabilities = model_probabilities(frame, model_bytes, spec)
    predicted = np.asarray(spec.target.classes, dtype=object)[probabilities.argmax(axis=1)]
    return frame.assign(**{PREDICTED: predicted}), probabilities


def model_probabilities(frame: pd.DataFrame, model_bytes: bytes, spec: UseCaseSpec) -> np.ndarray:
    """[N, C] probabilities of the version's ONNX model for the frame's features (classes in spec order)."""
    from headliner.model.onnx_packaging import OnnxPredictor

    if frame.empty:
        return np.empty((0, len(spec.target.classes)))
    return OnnxPredictor(model_bytes).probabilities(frame[spec.feature_names].to_numpy(dtype=np.float64))


def performance_estimate(
    validation_split: pd.DataFrame, model_bytes: bytes, current: pd.DataFrame, spec: UseCaseSpec
) -> PerformanceEstimateReport:
    """CBPE of the window `current` (the inference log's rows, ANALYSED and LABEL columns) for the version
    whose ONNX model is `model_bytes`, calibrated on its validation split. The window's rows are scored
    again by the same model: the log keeps the probabilities of the served top k only. A regression model
    gets a report that says why it has no estimate."""
    from headliner.model.estimators import class_indices

    if not spec.is_classification:
        return PerformanceEstimateReport(
            live_metric=spec.monitoring.live_metric,
            top_k=0,
            reference_rows=0,
            rows=int(current[ANALYSED].sum()),
            estimated={},
            reference={},
            max_drop=spec.monitoring.estimated_metric_max_drop,
            not_estimated="Confidence-based performance estimation calibrates a classifier's confidence on "
            "its validation split; a forecast carries no confidence to calibrate, so a regression model's "
            f"{spec.monitoring.live_metric} is judged from true values only (live performance).",
        )

    reference, reference_probabilities = labelled_reference(validation_split, model_bytes, spec)
    labelled = current[current[LABEL].notna()]
    return estimate_performance(
        reference_probabilities,
        class_indices(reference[LABEL], spec),
        model_probabilities(current[current[ANALYSED]], model_bytes, spec),
        model_probabilities(labelled, model_bytes, spec),
        class_indices(labelled[LABEL], spec),
        spec,
    )
