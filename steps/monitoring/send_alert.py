"""Step: a warn or retrain decision is logged as an alert and POSTed to the configured webhook."""

from typing import Annotated

from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.monitoring.decision import Alert, MonitoringSummary, alert_webhook
from headliner.monitoring.decision import send_alert as alert
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def send_alert(monitoring_summary: MonitoringSummary, spec: UseCaseSpec) -> Annotated[Alert, Artifact.ALERT]:
    return alert(monitoring_summary, alert_webhook(spec))
