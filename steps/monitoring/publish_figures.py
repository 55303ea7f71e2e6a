"""Step: the run's figures, their limits and the decision go to the inference log's database, where the
service shows them on `/metrics` for Prometheus to scrape (headliner/serving/monitoring_figures.py)."""

from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.monitoring.decision import MonitoringSummary
from headliner.serving.monitoring_figures import MonitoringFiguresStore, PublishedFigures
from headliner.serving.settings import ServingSettings


@step(enable_cache=False)
def publish_figures(monitoring_summary: MonitoringSummary, log_url: str | None = None) -> None:
    """Replaces the version's previously published figures. `log_url` None: the serving settings' log
    (HEADLINER_INFERENCE_LOG), as the service reads it."""
    store = MonitoringFiguresStore(log_url or ServingSettings().inference_log_url())
    try:
        store.publish(
            PublishedFigures(
                monitoring_summary.model_name,
                monitoring_summary.model_version,
                monitoring_summary.decision,
                monitoring_summary.checked_at,
                monitoring_summary.figures,
                monitoring_summary.thresholds,
            )
        )
    finally:
        store.close()
