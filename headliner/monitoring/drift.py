"""Drift of the live inputs and of the predicted class against the served version's training data, with
Evidently's 0.7 API: per-column drift scores and Evidently's drift verdicts, and the share of drifted
features that the decision reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel

from headliner.data.profiling import evidently_dataset
from headliner.reports.html import HtmlReport, html_table
from headliner.spec import UseCaseSpec

PREDICTED = "predicted"


class ColumnDrift(BaseModel):
    """One column's drift test: Evidently's method, score, threshold and verdict."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


class DriftReport(HtmlReport):
    """Drift of some columns between reference and current data; the HTML is Evidently's own report,
    headed by the figures the decision uses."""

    title: str
    reference_rows: int
    current_rows: int
    columns: list[ColumnDrift]
    evidently_html: str

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

    def to_html(self) -> str:
        rows = [
            [c.column, c.method, f"{c.score:.4g}", f"{c.threshold:g}", "DRIFT" if c.drifted else "ok"]
            for c in self.columns
        ]
        header = (
            f"<div style='font-family:system-ui,sans-serif;margin:1rem'><h1>{self.title}</h1>"
            f"<p>{len(self.drifted)} of {len(self.columns)} drifted ({self.drifted_share:.0%}); reference "
            f"{self.reference_rows:,} rows, current {self.current_rows:,} rows.</p>"
            + html_table(["column", "method", "score", "threshold", "verdict"], rows)
            + "</div>"
        )
        return self.evidently_html.replace("<body>", "<body>" + header, 1)


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: UseCaseSpec,
    columns: Sequence[str],
    categorical: Sequence[str] = (),
    title: str = "Drift",
    methods: dict[str, Any] | None = None,
) -> DriftReport:
    """Evidently's drift test of each of `columns` (features of the spec, or extra `categorical` ones);
    `methods`: DataDriftPreset's method and threshold arguments (default: the spec's numeric ones)."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    if methods is None:
        methods = {
            "num_method": spec.monitoring.numeric_drift_method,
            "num_threshold": spec.monitoring.numeric_drift_threshold,
        }
    preset = DataDriftPreset(columns=list(columns), **methods)
    snapshot = Report([preset], include_tests=True).run(
        current_data=evidently_dataset(current, spec, categorical),
        reference_data=evidently_dataset(reference, spec, categorical),
    )
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
    return DriftReport(
        title=title,
        reference_rows=len(reference),
        current_rows=len(current),
        columns=found,
        evidently_html=snapshot.get_html_str(as_iframe=False),
    )


def feature_drift(reference: pd.DataFrame, current: pd.DataFrame, spec: UseCaseSpec) -> DriftReport:
    """Drift of every feature of the spec."""
    return drift_report(reference, current, spec, spec.feature_names, title=f"Feature drift of {spec.name}")


def prediction_drift(reference: pd.DataFrame, current: pd.DataFrame, spec: UseCaseSpec) -> DriftReport:
    """Drift of the distribution of the predicted top class (column `predicted` of both frames)."""
    methods = {
        "cat_method": spec.monitoring.prediction_drift_method,
        "cat_threshold": spec.monitoring.prediction_drift_threshold,
    }
    return drift_report(
        reference,
        current,
        spec,
        [PREDICTED],
        categorical=[PREDICTED],
        title=f"Prediction drift of {spec.name} (top-1 class)",
        methods=methods,
    )
