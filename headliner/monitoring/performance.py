"""Live performance: once true labels arrive (POST /feedback, `run.py feedback`), the served answers are
scored with the offline metrics over the window and over time, beside the offline evaluation of the same
version. Classification: top-k accuracy from the logged top-k, accuracy and precision/recall/F1 from the
top-1; regression: MAE, RMSE, MAPE and sMAPE of the logged forecasts against the true values (MAPE left
out of a window or time slice whose true values are all 0, where it is undefined)."""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from headliner.model.evaluation import label_metrics, regression_metrics
from headliner.monitoring.window import LABEL, LABEL_RANK, PREDICTED
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import LIVE_METRICS_BY_TASK, LOWER_IS_BETTER, Task, UseCaseSpec, better_by

PERIODS = 10


class LivePeriod(BaseModel):
    start: datetime
    end: datetime
    labelled: int
    metrics: dict[str, float]


class LivePerformanceReport(HtmlReport):
    live_metric: str
    top_k: int
    labelled: int
    min_labels: int
    metrics: dict[str, float] = Field(default_factory=dict)  # over the whole window; empty without labels
    offline: dict[str, float] = Field(default_factory=dict)  # the version's test metrics
    periods: list[LivePeriod] = Field(default_factory=list)

    @property
    def judged(self) -> bool:
        """Enough labels to compare with the offline evaluation, and the live metric defined on them."""
        return self.labelled >= self.min_labels and self.live_metric in self.metrics

    @property
    def drop(self) -> float | None:
        """How much worse the live metric is than its offline value, in the metric's unit (below it for
        accuracy, above it for MAE; negative: better); None if not judged."""
        if not self.judged or self.live_metric not in self.offline:
            return None
        return -better_by(self.live_metric, self.metrics[self.live_metric], self.offline[self.live_metric])

    def summary_metadata(self) -> dict[str, str | int | float]:
        figures: dict[str, str | int | float] = {"labelled": self.labelled}
        figures.update({f"live_{name}": round(value, 4) for name, value in self.metrics.items()})
        if self.drop is not None:
            figures[f"{self.live_metric}_drop"] = round(self.drop, 4)
        return figures

    def png_images(self) -> dict[str, bytes]:
        return {"live_performance": _chart(self)} if self.periods else {}

    def to_html(self) -> str:
        if not self.metrics:
            return html_page(
                "Live performance",
                [
                    (
                        "No labels yet",
                        "<p>No true labels arrived for this window: send them with "
                        "POST /feedback or python run.py feedback --data FILE.</p>",
                    )
                ],
            )
        names = list(self.metrics)
        rows = [
            [name, f"{self.metrics[name]:.4f}", f"{self.offline[name]:.4f}" if name in self.offline else "-"]
            for name in names
        ]
        if self.drop is not None:
            status = f"{self.live_metric} is {self.drop:+.4f} {worse_word(self.live_metric)} its offline value."
        elif self.live_metric not in self.metrics:
            status = f"{self.live_metric} is undefined on them: every true value is 0."
        else:
            status = f"at least {self.min_labels:,} are needed to judge."
        status = f"<p>{self.labelled:,} labelled answers; {status}</p>"
        periods = [
            [
                f"{p.start:%Y-%m-%d %H:%M:%S}",
                f"{p.end:%Y-%m-%d %H:%M:%S}",
                f"{p.labelled:,}",
                f"{p.metrics[self.live_metric]:.4f}" if self.live_metric in p.metrics else "n/a (all true values 0)",
            ]
            for p in self.periods
        ]
        sections = [
            (
                "Window",
                status
                + html_table(
                    [f"metric (top-k: k={self.top_k:d})" if self.top_k else "metric", "live", "offline (test split)"],
                    rows,
                ),
            ),
            ("Over time", html_table(["from", "to", "labels", self.live_metric], periods)),
        ]
        return html_page("Live performance", sections)


def worse_word(metric: str) -> str:
    """Where a worse value of the metric lies: 'above' (MAE) or 'below' (accuracy)."""
    return "above" if metric in LOWER_IS_BETTER else "below"


def live_metrics(
    labels: np.ndarray, predicted: np.ndarray, label_rank: np.ndarray, classes: list[str], top_k: int
) -> dict[str, float]:
    """The offline metric names for logged answers: class-code `labels` and top-1 `predicted`, and the rank
    of the true class in the logged top-k (-1 when absent)."""
    index = {c: i for i, c in enumerate(classes)}
    y_true = np.array([index[c] for c in labels])
    y_pred = np.array([index[c] for c in predicted])
    rank = np.asarray(label_rank)
    return {
        **label_metrics(y_true, y_pred, len(classes)),
        "top_k_accuracy": float(np.mean((rank >= 0) & (rank < top_k))),
    }


def live_regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """The live metrics of logged forecasts against the true values that arrived (no mape where every
    true value is 0)."""
    metrics = regression_metrics(np.asarray(truth, dtype=np.float64), np.asarray(predicted, dtype=np.float64))
    return {name: metrics[name] for name in LIVE_METRICS_BY_TASK[Task.REGRESSION] if name in metrics}


def live_performance(current: pd.DataFrame, offline: dict[str, float], spec: UseCaseSpec) -> LivePerformanceReport:
    """Live metrics of the labelled items of the window, overall and in up to PERIODS equal time spans."""
    # the service logs the decision's top-k classes; a forecast has no top-k (0)
    top_k = min(spec.evaluation.top_k, spec.decision.top_k) if spec.is_classification else 0
    labelled = current[current[LABEL].notna()]
    report = LivePerformanceReport(
        live_metric=spec.monitoring.live_metric,
        top_k=top_k,
        labelled=len(labelled),
        min_labels=spec.monitoring.min_labels,
        offline=dict(offline),
    )
    if labelled.empty:
        return report
    classes = spec.target.classes

    def score(part: pd.DataFrame) -> dict[str, float]:
        if not spec.is_classification:
            return live_regression_metrics(part[LABEL].to_numpy(), part[PREDICTED].to_numpy())
        return live_metrics(
            part[LABEL].to_numpy(), part[PREDICTED].to_numpy(), part[LABEL_RANK].to_numpy(), classes, top_k
        )

    report.metrics = score(labelled)
    times = labelled["received_at"]
    edges = pd.date_range(times.min(), times.max(), periods=PERIODS + 1) if times.max() > times.min() else None
    if edges is not None:
        buckets = pd.cut(times, edges, include_lowest=True)
        for interval, part in labelled.groupby(buckets, observed=True):
            report.periods.append(
                LivePeriod(
                    start=interval.left.to_pydatetime(warn=False),
                    end=interval.right.to_pydatetime(warn=False),
                    labelled=len(part),
                    metrics=score(part),
                )
            )
    return report


def _chart(report: LivePerformanceReport) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 3.5))
    middles = [p.start + (p.end - p.start) / 2 for p in report.periods]
    # matplotlib converts datetimes through its units registry; its type hints leave them out
    # a time slice without the metric (mape of zero true values) leaves a gap
    values = [p.metrics.get(report.live_metric, np.nan) for p in report.periods]
    axes.plot(middles, values, marker="o", label="live")  # type: ignore[arg-type]
    if report.live_metric in report.offline:
        axes.axhline(report.offline[report.live_metric], color="grey", linestyle="--", label="offline (test split)")
    axes.set_ylabel(report.live_metric)
    axes.set_title(f"Live {report.live_metric} over time ({report.labelled:,} labels)")
    axes.legend()
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
