"""The monitoring loop around the monitoring pipeline: which version a run judges (by default the one the
inference log shows being served), whether its `retrain` decision starts the training pipeline, with the
trigger that training run records, and (on a schedule, with nobody at the terminal) the staging request
for the retrained version and the alert that names it."""

from __future__ import annotations

import logging

from headliner.errors import MonitoringError
from headliner.governance.promotion import PromotionRequest, pending_requests, request_promotion
from headliner.monitoring.decision import Alert, MonitoringSummary, alert_webhook, post_alert
from headliner.monitoring.window import newest_logged_version
from headliner.serving.settings import url_without_password
from headliner.spec import UseCaseSpec

logger = logging.getLogger(__name__)

SCHEDULER_USER = "monitoring-schedule"  # who files the staging requests of scheduled retraining


def monitored_version(log_url: str, model_name: str, chosen: str | None) -> str:
    """`chosen` (a number, 'latest' or a stage), or when None the version that answered the newest
    logged request, i.e. the one being served."""
    if chosen is not None:
        return chosen
    served = newest_logged_version(log_url, model_name)
    if served is None:
        raise MonitoringError(
            f"the inference log at {url_without_password(log_url)} holds no requests to '{model_name}': serve it "
            "(python run.py --pipeline deployment) and send traffic (python run.py simulate-traffic --requests 500)"
        )
    return served


def retraining_allowed(spec: UseCaseSpec, requested: bool | None) -> bool:
    """Whether a `retrain` decision starts training: as asked (--retrain/--no-retrain), else as the spec's
    retraining.automatic says."""
    return spec.retraining.automatic if requested is None else requested


def retraining_trigger(summary: MonitoringSummary, monitoring_run: str, version: int) -> dict[str, str]:
    """Why the training run starts, recorded in its parameters and on the version it registers."""
    return {
        "by": "monitoring",
        "monitoring_run": monitoring_run,
        "model_version": str(version),
        "reason": "; ".join(summary.reasons),
    }


def awaiting_staging(model_name: str) -> PromotionRequest | None:
    """The scheduler's staging request of the model still pending, if any: until a person decides it, a
    scheduled `retrain` does not train yet another version."""
    pending = [r for r in pending_requests(model_name) if r.requested_by == SCHEDULER_USER and r.to_stage == "staging"]
    return pending[-1] if pending else None


def _refresh_card(model: str, version: int) -> None:
    """The version's model card with the request in its history; a failure is a warning (the request stands)."""
    from headliner.governance.model_card import refresh_model_card

    try:
        _, problems = refresh_model_card(model, version)
    except Exception as exc:
        problems = [f"{type(exc).__name__}: {exc}"]
    for problem in problems:
        logger.warning(
            "staging request of %s v%s filed; its model card was not fully refreshed: %s", model, version, problem
        )


def request_staging(spec: UseCaseSpec, version: int, trigger: dict[str, str]) -> tuple[PromotionRequest, Alert]:
    """File the staging request of a version retrained on a scheduled `retrain` decision (by SCHEDULER_USER,
    so a person approves it: the four-eyes rule), and alert (log line and webhook) naming both."""
    reason = f"retrained after monitoring run '{trigger['monitoring_run']}' decided retrain: {trigger['reason']}"
    request = request_promotion(spec.name, version, "staging", reason, SCHEDULER_USER)
    _refresh_card(spec.name, version)
    message = (
        f"{spec.name} v{version} was retrained after monitoring run '{trigger['monitoring_run']}' of "
        f"v{trigger['model_version']} decided retrain; staging request {request.id} awaits a second person: "
        f"python run.py promote approve {request.id} (or promote reject {request.id} --reason TEXT)"
    )
    details: dict[str, object] = {"request": request.model_dump(mode="json"), "trigger": trigger}
    return request, post_alert("warning", message, details, alert_webhook(spec))
