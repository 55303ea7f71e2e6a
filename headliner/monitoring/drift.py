"""Drift of the live inputs and of the prediction (the class, or the forecast and the true values that
arrived) against the served version's training data, with
Evidently's 0.7 API: per-column drift scores and Evidently's drift verdicts, the share of drifted
features that the decision reads, and each column's reference and current distributions, drawn as a
static figure for the drifted ones (Evidently's interactive page is kept as an attachment)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from headliner.data.profiling import (
    EVIDENTLY_FILE,
    EVIDENTLY_NOTE,
    category_labels,
    evidently_dataset,
    histogram_counts,
    histogram_edges,
)
from headliner.monitoring.window import LABEL, PREDICTED
from headliner.reports.html import HtmlReport, figure_png, html_page, html_table, inline_png, small_multiples
from headliner.spec import DerivationKind, FeatureType, UseCaseSpec

if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from matplotlib.axes import Axes

TOP_CATEGORIES = 15  # categories kept per categorical column (the most frequent over both sides)
REFERENCE_COLOUR, CURRENT_COLOUR = "#4c72b0", "#dd8452"


class ColumnDrift(BaseModel):
    """One column's drift test: Evidently's method, score, threshold and verdict."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


class Distribution(BaseModel):
    """One column's values in the reference and the current data, ready to draw: a numeric column as
    counts in shared bins (`bin_edges`), a categorical one as counts of its top categories (`categories`);
    the totals (non-missing values) keep shares true when categories are capped."""

    column: str
    bin_edges: list[float] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    reference_counts: list[int]
    current_counts: list[int]
    reference_total: int
    current_total: int

    def shares(self) -> tuple[np.ndarray, np.ndarray]:
        """Reference and current counts as shares of their side's total."""
        return (
            np.asarray(self.reference_counts) / max(self.reference_total, 1),
            np.asarray(self.current_counts) / max(self.current_total, 1),
        )

    @property
    def capped(self) -> bool:
        """Whether some categories were left out (they hold the rest of either side's values)."""
        return sum(self.reference_counts) < self.reference_total or sum(self.current_counts) < self.current_total

    def draw(self, ax: Axes) -> None:
        reference, current = self.shares()
        if self.bin_edges:
            ax.stairs(reference, self.bin_edges, fill=True, alpha=0.45, color=REFERENCE_COLOUR, label="reference")
            ax.stairs(current, self.bin_edges, fill=True, alpha=0.45, color=CURRENT_COLOUR, label="current")
        else:
            positions = np.arange(len(self.categories))
            ax.bar(positions - 0.2, reference, width=0.4, color=REFERENCE_COLOUR, label="reference")
            ax.bar(positions + 0.2, current, width=0.4, color=CURRENT_COLOUR, label="current")
            ax.set_xticks(positions, self.categories, rotation=90 if len(self.categories) > 4 else 0)
        ax.set_title(self.column, fontsize=9)
        ax.set_ylabel("share", fontsize=7)


def distribution(
    column: str,
    reference: pd.Series,
    current: pd.Series,
    categorical: bool = False,
    flag: bool = False,
    integer: bool = False,
) -> Distribution:
    """A column's distributions on both sides: shared bins for numbers (`integer`: one bin per value of a
    short range), else the TOP_CATEGORIES most frequent categories over both sides by share (`flag`: a
    bool feature's 0/1 as False/True)."""
    if not categorical:
        ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype=float)
        cur = pd.to_numeric(current, errors="coerce").to_numpy(dtype=float)
        edges = histogram_edges(np.concatenate([ref, cur]), integer)
        return Distribution(
            column=column,
            bin_edges=edges,
            reference_counts=histogram_counts(ref, edges),
            current_counts=histogram_counts(cur, edges),
            reference_total=int(np.isfinite(ref).sum()),
            current_total=int(np.isfinite(cur).sum()),
        )
    ref_counts = category_labels(reference, flag).value_counts()
    cur_counts = category_labels(current, flag).value_counts()
    both = ref_counts.div(max(ref_counts.sum(), 1)).add(cur_counts.div(max(cur_counts.sum(), 1)), fill_value=0)
    top = [str(c) for c in both.sort_values(ascending=False, kind="stable").index[:TOP_CATEGORIES]]
    return Distribution(
        column=column,
        categories=top,
        reference_counts=[int(ref_counts.get(c, 0)) for c in top],
        current_counts=[int(cur_counts.get(c, 0)) for c in top],
        reference_total=int(ref_counts.sum()),
        current_total=int(cur_counts.sum()),
    )


class DriftReport(HtmlReport):
    """Drift of some columns between reference and current data: the figures the decision uses, and the
    reference and current distributions of the drifted columns; Evidently's page is an attachment."""

    title: str
    reference_rows: int
    current_rows: int
    columns: list[ColumnDrift]
    distributions: list[Distribution] = Field(default_factory=list)
    evidently_html: str
    meanings: dict[str, str] = Field(default_factory=dict)  # what a column is, for people ("the forecast")

    def column_meaning(self, column: str) -> str:
        return self.meanings.get(column, column)

    @property
    def drifted(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def drifted_share(self) -> float:
        return len(self.drifted) / len(self.columns) if self.columns else 0.0

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {
            "drifted_share": round(self.drifted_share, 4),
            "drifted_columns": ", ".join(self.drifted) or "none",
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
        }

    def attachments(self) -> dict[str, str]:
        return {EVIDENTLY_FILE: self.evidently_html}

    def drifted_png(self) -> bytes | None:
        """Reference vs current distributions of the drifted columns, one panel each; None if none drifted."""
        shown = [d for d in self.distributions if d.column in self.drifted]
        if not shown:
            return None
        single = len(shown) == 1  # e.g. the predicted class: one wide panel for its many categories
        figure, axes = small_multiples(
            len(shown), columns=1 if single else 4, panel=(9.0, 3.2) if single else (2.8, 2.2)
        )
        for ax, column in zip(axes, shown, strict=True):
            column.draw(ax)
        axes[0].legend(fontsize=7)
        figure.suptitle("Reference vs current distributions of the drifted columns (share of rows)", fontsize=10)
        return figure_png(figure)

    def to_html(self) -> str:
        rows = [
            [c.column, c.method, f"{c.score:.4g}", f"{c.threshold:g}", "DRIFT" if c.drifted else "ok"]
            for c in self.columns
        ]
        summary = (
            f"<p>{len(self.drifted)} of {len(self.columns)} drifted ({self.drifted_share:.0%}); reference "
            f"{self.reference_rows:,} rows, current {self.current_rows:,} rows.</p>"
            + html_table(["column", "method", "score", "threshold", "verdict"], rows)
        )
        png = self.drifted_png()
        if png:
            figure = inline_png(png, "reference vs current distributions of " + ", ".join(self.drifted))
            for d in self.distributions:
                reference, current = d.shares()
                if d.column in self.drifted and d.capped:
                    figure += (
                        f"<p>{html.escape(d.column)}: its {len(d.categories)} most frequent categories; the others "
                        f"hold {1 - reference.sum():.1%} of the reference and {1 - current.sum():.1%} of the current "
                        "rows.</p>"
                    )
        elif self.drifted:
            figure = "<p>No distributions were recorded for the drifted columns.</p>"
        else:
            figure = "<p class='ok'>No column drifted: nothing to draw.</p>"
        return html_page(
            self.title,
            [
                ("Drift per column", summary),
                ("Distributions of the drifted columns", figure),
                ("Interactive report", EVIDENTLY_NOTE),
            ],
        )


def drift_snapshot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: UseCaseSpec,
    columns: Sequence[str],
    categorical: Sequence[str] = (),
    methods: dict[str, Any] | None = None,
    timestamp: datetime | None = None,
    tags: Sequence[str] = (),
    numerical: Sequence[str] = (),
) -> Snapshot:
    """Evidently's DataDriftPreset (with its tests) of `columns`, current against reference: the snapshot
    `drift_report` reads and the Evidently workspace keeps (`timestamp`: the snapshot's time, default now).
    `categorical`, `numerical`: the columns of `columns` that are not features of the spec."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    if methods is None:
        methods = {
            "num_method": spec.monitoring.numeric_drift_method,
            "num_threshold": spec.monitoring.numeric_drift_threshold,
        }
    preset = DataDriftPreset(columns=list(columns), **methods)
    return Report([preset], include_tests=True).run(
        current_data=evidently_dataset(current, spec, categorical, numerical),
        reference_data=evidently_dataset(reference, spec, categorical, numerical),
        timestamp=timestamp,
        tags=list(tags),
    )


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: UseCaseSpec,
    columns: Sequence[str],
    categorical: Sequence[str] = (),
    title: str = "Drift",
    methods: dict[str, Any] | None = None,
    numerical: Sequence[str] = (),
) -> DriftReport:
    """Evidently's drift test of each of `columns` (features of the spec, or extra `categorical` and
    `numerical` ones); `methods`: DataDriftPreset's method and threshold arguments (default: the spec's
    numeric ones)."""
    snapshot = drift_snapshot(reference, current, spec, columns, categorical, methods, numerical=numerical)
    result = snapshot.dict()
    drifted = {
        test["metric_config"]["params"]["column"]: str(test["status"]).endswith("FAIL")
        for test in result["tests"]
        if test["metric_config"]["params"].get("type") == "evidently:metric_v2:ValueDrift"
    }
    found = []
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            found.append(
                ColumnDrift(
                    column=config["column"],
                    method=config["method"],
                    score=float(metric["value"]),
                    threshold=float(config["threshold"]),
                    drifted=drifted[config["column"]],
                )
            )
    features = {f.name: f for f in spec.features}
    distributions = []
    for column in columns:
        feature = features.get(column)
        flag = feature is not None and feature.dtype is FeatureType.BOOL
        distributions.append(
            distribution(
                column,
                reference[column],
                current[column],
                categorical=flag or column in categorical,
                flag=flag,
                integer=feature is not None and feature.dtype is FeatureType.INT,
            )
        )
    return DriftReport(
        title=title,
        reference_rows=len(reference),
        current_rows=len(current),
        columns=found,
        distributions=distributions,
        evidently_html=snapshot.get_html_str(as_iframe=False),
    )


def drift_features(spec: UseCaseSpec) -> list[str]:
    """The features whose drift is tested: all but calendar features (the week of the year), whose values a
    window of a few weeks can never share with a reference of other weeks."""
    return [f.name for f in spec.features if f.derive is None or f.derive.kind is not DerivationKind.WEEK_OF_YEAR]


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, spec: UseCaseSpec) -> DriftReport:
    """Drift of every feature of the spec but the calendar ones (`drift_features`)."""
    return drift_report(reference, current, spec, drift_features(spec), title=f"Feature drift of {spec.name}")


def prediction_columns(spec: UseCaseSpec) -> tuple[list[str], list[str]]:
    """The prediction column as Evidently reads it: (categorical, numerical): the predicted class is a
    category, a forecast a number."""
    return ([PREDICTED], []) if spec.is_classification else ([], [PREDICTED])


def prediction_drift(reference: pd.DataFrame, current: pd.DataFrame, spec: UseCaseSpec) -> DriftReport:
    """Drift of the prediction (column `predicted` of both frames): the top-1 class, or the forecast. For a
    regression model with at least `monitoring.min_labels` true values in the window (column `label`), the
    true values drift against the reference's (target drift) as a second column."""
    categorical, numerical = prediction_columns(spec)
    kind = "cat" if spec.is_classification else "num"
    methods = {
        f"{kind}_method": spec.monitoring.prediction_drift_method,
        f"{kind}_threshold": spec.monitoring.prediction_drift_threshold,
    }
    what = "top-1 class" if spec.is_classification else "forecast"
    report = drift_report(
        reference,
        current,
        spec,
        [PREDICTED],
        categorical=categorical,
        numerical=numerical,
        title=f"Prediction drift of {spec.name} ({what})",
        methods=methods,
    )
    report.meanings = {PREDICTED: f"the predicted {'class' if spec.is_classification else 'value'}"}
    labelled = current[current[LABEL].notna()] if LABEL in current else current.iloc[:0]
    if spec.is_classification or len(labelled) < spec.monitoring.min_labels or LABEL not in reference:
        return report
    truth = labelled.assign(**{LABEL: labelled[LABEL].astype(np.float64)})
    target = drift_report(reference, truth, spec, [LABEL], numerical=[LABEL], methods=methods)
    report.title = f"Prediction and target drift of {spec.name}"
    report.columns += target.columns
    report.distributions += target.distributions
    report.meanings[LABEL] = f"the true {spec.target.column} values"
    return report
