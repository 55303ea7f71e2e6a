"""The verdict of a monitoring run: the figures of every check, the spec's thresholds, and `ok`, `warn` or
`retrain` with the reasons; and the alert that a `warn` or `retrain` writes (a log line, and a JSON POST
to a webhook when one is configured).

Rules (thresholds from the spec's `monitoring` block):
- retrain: share of drifted features >= drift_share_retrain, or the live metric (with >= min_labels
  labels) worse than its offline value (below it for accuracy, above it for MAE) by >=
  live_metric_min_drop_to_retrain;
- warn: share of drifted features >= drift_share_warn, the prediction (class or forecast) or the true
  values drifted, a data-quality
  problem, a fairness figure outside its limit (statistical parity, disparate impact, equal opportunity,
  average odds), the live metric down by half the retrain drop, or its label-free estimate (CBPE) below
  the validation split's value by >= estimated_metric_max_drop;
- ok otherwise.

Counts (requests, rows) are ints in the figures and print with thousands separators; other figures are
floats and print with 4 decimals.
"""

from __future__ import annotations

import html
import logging
import os
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from headliner.monitoring.drift import DriftReport
from headliner.monitoring.estimate import PerformanceEstimateReport
from headliner.monitoring.fairness import FairnessReport
from headliner.monitoring.performance import LivePerformanceReport, worse_word
from headliner.monitoring.quality import DataQualityReport
from headliner.monitoring.window import WindowReport
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import UseCaseSpec

logger = logging.getLogger("headliner.monitoring")

Decision = Literal["ok", "warn", "retrain"]
WEBHOOK_ENV = "HEADLINER_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT_SECONDS = 10
Figure = float | int | None


def shown(value: Figure) -> str:
    """A figure for people: a count with thousands separators, a measure with 4 decimals, or n/a."""
    if value is None:
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


class MonitoringSummary(HtmlReport):
    """The machine-readable result of a monitoring run."""

    model_name: str
    model_version: str
    window: str
    checked_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    decision: Decision
    reasons: list[str]
    figures: dict[str, Figure]
    thresholds: dict[str, Figure]  # a figure's limit; `<figure>_max` its upper limit when it has a range
    drifted_features: list[str]

    def summary_metadata(self) -> dict[str, str | int | float]:
        figures = {
            name: value if isinstance(value, int) else round(value, 4)
            for name, value in self.figures.items()
            if value is not None
        }
        return {"decision": self.decision, **figures, "reasons": "; ".join(self.reasons) or "none"}

    def limit(self, name: str) -> str:
        """The figure's limit as people read it: `0.5`, a range `0.8-1.25`, or empty."""
        lower, upper = self.thresholds.get(name), self.thresholds.get(f"{name}_max")
        if upper is not None:
            return f"{lower:g}-{upper:g}"
        return "" if lower is None else f"{lower:g}"

    def lines(self) -> list[str]:
        """The summary for a terminal."""
        out = [f"Decision: {self.decision.upper()} for {self.model_name} version {self.model_version} ({self.window})"]
        out += [f"  - {reason}" for reason in self.reasons]
        for name, value in self.figures.items():
            limit = self.limit(name)
            out.append(f"  {name:34} {shown(value):>10}" + (f"   (limit {limit})" if limit else ""))
        return out

    def to_html(self) -> str:
        colour = {"ok": "ok", "warn": "fail", "retrain": "fail"}[self.decision]
        head = f"<p class='{colour}'><b>{self.decision.upper()}</b></p>" + (
            "<ul>" + "".join(f"<li>{html.escape(reason)}</li>" for reason in self.reasons) + "</ul>"
            if self.reasons
            else "<p>Every check passed.</p>"
        )
        rows = [[name, shown(value), self.limit(name)] for name, value in self.figures.items()]
        return html_page(
            f"Monitoring of {self.model_name} v{self.model_version}: {self.decision}",
            [
                ("Decision", head),
                ("Figures", html_table(["figure", "value", "limit"], rows)),
                ("Window", f"<p>{html.escape(self.window)}</p>"),
            ],
        )


def decide(
    window: WindowReport,
    feature_drift: DriftReport,
    prediction_drift: DriftReport,
    quality: DataQualityReport,
    fairness: FairnessReport,
    performance: LivePerformanceReport,
    spec: UseCaseSpec,
    estimate: PerformanceEstimateReport | None = None,
) -> MonitoringSummary:
    """Apply the spec's thresholds to the checks' figures; `estimate`: the label-free estimate of the
    performance (None: not estimated)."""
    rules = spec.monitoring
    retrain, warn = [], []
    share = feature_drift.drifted_share
    drifted = ", ".join(feature_drift.drifted)
    if share >= rules.drift_share_retrain:
        retrain.append(f"{share:.0%} of features drifted ({drifted}), at or above {rules.drift_share_retrain:.0%}")
    elif share >= rules.drift_share_warn:
        warn.append(f"{share:.0%} of features drifted ({drifted}), at or above {rules.drift_share_warn:.0%}")
    for column in prediction_drift.columns:
        if column.drifted:
            warn.append(
                f"{prediction_drift.column_meaning(column.column)} drifted "
                f"({column.method} {column.score:.3f}, threshold {column.threshold:g})"
            )
    warn += [f"data quality: {problem}" for problem in quality.problems]
    if fairness.passed is False:
        warn.append(
            f"statistical parity difference across {fairness.attribute} is {fairness.max_difference:.3f} "
            f"(class {fairness.classes[0].label}), above {fairness.threshold:g}; validation split: "
            + ("n/a" if fairness.reference_max_difference is None else f"{fairness.reference_max_difference:.3f}")
        )
    for figure in fairness.figures:
        if figure.passed is False:
            reference = (
                "n/a" if figure.reference is None else f"{figure.reference:.3f} (class {figure.reference_label})"
            )
            warn.append(
                f"{figure.name.replace('_', ' ')} across {fairness.attribute} is {figure.value:.3f} "
                f"(class {figure.label}), outside {figure.limit}; validation split: {reference}"
            )
    drop = performance.drop
    metric = rules.live_metric
    if drop is not None and drop >= rules.live_metric_min_drop_to_retrain / 2:
        (retrain if drop >= rules.live_metric_min_drop_to_retrain else warn).append(
            f"live {metric} {performance.metrics[metric]:.3f} is {drop:.3f} "
            f"{worse_word(metric)} offline {performance.offline[metric]:.3f}"
        )
    estimated_drop = estimate.drop if estimate is not None else None
    if estimate is not None and estimated_drop is not None and estimated_drop >= estimate.max_drop:
        warn.append(
            f"estimated {metric} {estimate.estimated[metric]:.3f} (without labels) is {estimated_drop:.3f} "
            f"below its value on the validation split {estimate.reference[metric]:.3f}"
        )
    decision: Decision = "retrain" if retrain else "warn" if warn else "ok"
    figures: dict[str, Figure] = {
        "requests": window.requests,
        "scored_rows": window.items,
        "analysed_rows": window.analysed_items,
        "rejected_share": quality.rejected_share,
        "drifted_feature_share": share,
        "prediction_drift_score": prediction_drift.columns[0].score if prediction_drift.columns else None,
        "statistical_parity_difference": fairness.max_difference,
        **{figure.name: figure.value for figure in fairness.figures},
        "labelled_rows": performance.labelled,
        f"live_{metric}": performance.metrics.get(metric),
        f"estimated_{metric}": estimate.estimated.get(metric) if estimate is not None else None,
        f"offline_{metric}": performance.offline.get(metric),
        f"{metric}_drop": drop,
        f"estimated_{metric}_drop": estimated_drop,
    }
    thresholds: dict[str, Figure] = {
        "rejected_share": rules.max_rejected_share,
        "drifted_feature_share": rules.drift_share_retrain,
        "statistical_parity_difference": rules.fairness_max_parity_difference,
        **{figure.name: figure.lower if figure.lower is not None else figure.upper for figure in fairness.figures},
        **{f"{figure.name}_max": figure.upper for figure in fairness.figures if figure.lower is not None},
        "labelled_rows": rules.min_labels,
        f"{metric}_drop": rules.live_metric_min_drop_to_retrain,
        f"estimated_{metric}_drop": rules.estimated_metric_max_drop,
    }
    return MonitoringSummary(
        model_name=window.model_name,
        model_version=window.model_version,
        window=f"{window.selection}: {window.requests:,} requests, {window.items:,} scored rows",
        decision=decision,
        reasons=retrain + warn,
        figures=figures,
        thresholds=thresholds,
        drifted_features=feature_drift.drifted,
    )


class Alert(BaseModel):
    """What a warn/retrain verdict told the team: the log line always, the webhook when configured."""

    level: Literal["none", "warning", "critical"]
    message: str
    webhook: str | None = None  # scheme://host/ only: the path may hold a secret
    webhook_status: int | None = None
    webhook_error: str | None = None


def alert_webhook(spec: UseCaseSpec) -> str | None:
    return os.environ.get(WEBHOOK_ENV) or spec.retraining.alert_webhook


def send_alert(summary: MonitoringSummary, webhook: str | None) -> Alert:
    """Log the verdict (warning for warn, error for retrain) and POST it as JSON to `webhook`. A webhook
    that fails is reported in the alert and the log, never raised: the verdict is already made."""
    if summary.decision == "ok":
        return Alert(level="none", message=summary.lines()[0])
    level: Literal["warning", "critical"] = "critical" if summary.decision == "retrain" else "warning"
    message = f"{summary.lines()[0]}: " + "; ".join(summary.reasons)
    return post_alert(level, message, {"summary": summary.model_dump(mode="json")}, webhook)


def post_alert(
    level: Literal["warning", "critical"], message: str, details: dict[str, object], webhook: str | None
) -> Alert:
    """Log `message` (as an error when critical) and POST `{level, text, **details}` as JSON to `webhook`; a
    webhook that fails is reported in the alert and the log, never raised."""
    import httpx

    logger.log(logging.ERROR if level == "critical" else logging.WARNING, "ALERT %s", message)
    alert = Alert(level=level, message=message)
    if webhook:
        parts = urlsplit(webhook)
        alert.webhook = f"{parts.scheme}://{parts.netloc}/"
        payload = {"level": level, "text": message, **details}
        try:
            response = httpx.post(webhook, json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS)
            alert.webhook_status = response.status_code
            if response.status_code >= 300:
                alert.webhook_error = f"answered {response.status_code}"
        except httpx.HTTPError as exc:
            alert.webhook_error = f"{type(exc).__name__}: {exc}"
        if alert.webhook_error:
            logger.error("alert webhook %s failed: %s", alert.webhook, alert.webhook_error)
    return alert
