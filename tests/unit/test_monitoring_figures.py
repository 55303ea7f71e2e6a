"""The last monitoring run's figures on /metrics: published to the inference log's database by the monitoring
step (a run replaces its version's rows), read back by model, written as Prometheus gauges with model and
version labels that a Prometheus parser reads back, refreshed off the scrape path, and served by the app
beside the serving metrics."""

import logging
import time
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, inspect

from headliner.monitoring.decision import MonitoringSummary
from headliner.serving.monitoring_figures import (
    MonitoringFiguresStore,
    MonitoringGauges,
    PublishedFigures,
    gauge_name,
    prometheus_text,
)
from steps.monitoring.publish_figures import publish_figures
from tests.helpers.serving import Served

CHECKED_AT = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
SHIFTED = PublishedFigures(
    "jukebox",
    "2",
    "retrain",
    CHECKED_AT,
    {
        "requests": 800.0,
        "drifted_feature_share": 7 / 13,
        "live_top_k_accuracy": None,
        "statistical_parity_difference": -0.04,
    },
    {"drifted_feature_share": 0.5, "disparate_impact_ratio": 0.125, "disparate_impact_ratio_max": 8.0},
)


def gauges(text: str) -> dict[str, dict[tuple[str, str], float]]:
    """Prometheus text parsed by prometheus_client: {metric: {(model, version): value}}, every family a gauge."""
    parsed: dict[str, dict[tuple[str, str], float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family
        for sample in family.samples:
            parsed.setdefault(sample.name, {})[(sample.labels["model"], sample.labels["version"])] = sample.value
    return parsed


def test_a_run_replaces_its_versions_figures_and_reads_come_back_by_model(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    store = MonitoringFiguresStore(url)
    assert store.read() == []
    assert not inspect(create_engine(url)).has_table("monitoring_figures")  # reading creates nothing
    ok = PublishedFigures("jukebox", "2", "ok", CHECKED_AT, {"drifted_feature_share": 0.0, "requests": 9.0}, {})
    assert store.publish(ok) == 2
    assert store.publish(PublishedFigures("jukebox", "1", "warn", CHECKED_AT, {"drifted_feature_share": 0.25}, {})) == 1
    assert store.publish(PublishedFigures("wine", "1", "ok", CHECKED_AT, {"requests": 5.0}, {"requests": None})) == 2
    assert store.publish(SHIFTED) == 7
    jukebox = store.read("jukebox")
    assert [(run.model_version, run.decision) for run in jukebox] == [("1", "warn"), ("2", "retrain")]
    assert jukebox[1] == SHIFTED  # the ok run's figures are gone; None stays None; the time is UTC
    assert jukebox[0].figures == {"drifted_feature_share": 0.25} and jukebox[0].limits == {}
    assert [run.model_name for run in store.read()] == ["jukebox", "jukebox", "wine"]
    store.close()


def test_what_cannot_be_published_is_named(tmp_path):
    store = MonitoringFiguresStore(f"sqlite:///{tmp_path / 'log.sqlite'}")
    with pytest.raises(ValueError, match="decision 'panic' is not one of ok, warn, retrain"):
        store.publish(SHIFTED._replace(decision="panic"))
    taken = "figure 'top-5' would be gauge headliner_monitoring_top_5, the gauge of figure 'top_5'"
    with pytest.raises(ValueError, match=taken):
        store.publish(SHIFTED._replace(figures={"top_5": 0.1, "top-5": 0.2}))
    with pytest.raises(ValueError, match="figure 'decision' would be gauge headliner_monitoring_decision"):
        store.publish(SHIFTED._replace(figures={"decision": 1.0}))
    taken = "limit 'requests' would be gauge headliner_monitoring_requests_limit, the gauge of figure 'requests_limit'"
    with pytest.raises(ValueError, match=taken):
        store.publish(SHIFTED._replace(figures={"requests_limit": 1.0}, limits={"requests": 2.0}))
    assert store.read() == []  # nothing was written
    store.close()


def test_prometheus_text_has_a_gauge_per_figure_with_model_and_version_labels():
    other = PublishedFigures(
        'odd"name\\', "7", "ok", CHECKED_AT, {"drifted_feature_share": 0.0, "top-5 share": 0.5}, {"top-5 share": None}
    )
    text = prometheus_text([SHIFTED, other])
    assert gauges(text) == {
        "headliner_monitoring_decision": {("jukebox", "2"): 2.0, ('odd"name\\', "7"): 0.0},
        "headliner_monitoring_last_run_timestamp_seconds": {
            ("jukebox", "2"): CHECKED_AT.timestamp(),
            ('odd"name\\', "7"): CHECKED_AT.timestamp(),
        },
        "headliner_monitoring_requests": {("jukebox", "2"): 800.0},
        "headliner_monitoring_drifted_feature_share": {("jukebox", "2"): 7 / 13, ('odd"name\\', "7"): 0.0},
        "headliner_monitoring_statistical_parity_difference": {("jukebox", "2"): -0.04},
        "headliner_monitoring_top_5_share": {('odd"name\\', "7"): 0.5},
        "headliner_monitoring_drifted_feature_share_limit": {("jukebox", "2"): 0.5},
        "headliner_monitoring_disparate_impact_ratio_limit": {("jukebox", "2"): 0.125},
        "headliner_monitoring_disparate_impact_ratio_max_limit": {("jukebox", "2"): 8.0},
    }
    assert "live_top_k_accuracy" not in text  # a figure the run could not compute has no sample, nor a family
    assert 'headliner_monitoring_drifted_feature_share{model="jukebox",version="2"} 0.5384615384615384\n' in text
    assert "# HELP headliner_monitoring_requests Monitoring figure 'requests' of the last monitoring run\n" in text
    limit_help = "Limit 'disparate_impact_ratio_max' of the spec the last monitoring run applied"
    assert f"# HELP headliner_monitoring_disparate_impact_ratio_max_limit {limit_help}\n" in text
    assert "top_5_share_limit" not in text
    assert prometheus_text([]) == ""
    assert gauge_name("estimated_top_k_accuracy") == "headliner_monitoring_estimated_top_k_accuracy"
    assert (
        gauge_name("estimated_top_k_accuracy_drop", "limit")
        == "headliner_monitoring_estimated_top_k_accuracy_drop_limit"
    )


def test_gauges_refresh_in_a_thread_when_stale_and_keep_the_last_figures_when_the_database_fails(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    store = MonitoringFiguresStore(url)
    store.publish(SHIFTED)
    store.publish(SHIFTED._replace(model_name="wine", model_version="1"))
    monitoring = MonitoringGauges(url, "jukebox", max_age_seconds=60)
    deadline = time.monotonic() + 10
    while not monitoring.text() and time.monotonic() < deadline:  # a scrape starts the read, waits for none
        time.sleep(0.01)
    assert set(gauges(monitoring.text())["headliner_monitoring_decision"]) == {("jukebox", "2")}  # its model only
    store.publish(SHIFTED._replace(decision="ok"))
    time.sleep(0.2)
    assert gauges(monitoring.text())["headliner_monitoring_decision"] == {("jukebox", "2"): 2.0}  # not stale yet
    monitoring.refresh()
    assert gauges(monitoring.text())["headliner_monitoring_decision"] == {("jukebox", "2"): 0.0}
    before = monitoring.text()
    store.close()
    monitoring.close()  # its connections closed: the next read opens the file anew
    for path in tmp_path.glob("log.sqlite*"):
        path.unlink()  # the table is gone
    with caplog.at_level(logging.WARNING, "headliner.serving.monitoring_figures"):
        monitoring.refresh()
    assert monitoring.text() == before
    assert f"monitoring figures from {url}: " in caplog.text and "no such table: monitoring_figures" in caplog.text
    monitoring.close()


def test_the_step_publishes_a_summary_and_the_app_serves_it_beside_the_serving_metrics(tmp_path, predictor):
    served = Served(predictor, tmp_path)
    try:
        summary = MonitoringSummary(
            model_name=predictor.model_name,
            model_version=predictor.model_version,
            window="last 800 requests",
            checked_at=CHECKED_AT,
            decision="warn",
            reasons=["31% of features drifted"],
            figures={"drifted_feature_share": 4 / 13, "labelled_rows": 0},
            thresholds={"drifted_feature_share": 0.5},
            drifted_features=["tempo", "energy", "loudness", "valence"],
        )
        publish_figures.entrypoint(summary, log_url=served.url)
        served.client.get("/metrics")
        served.server.metrics.monitoring.refresh()
        text = served.client.get("/metrics").text
        families = {family.name: family for family in text_string_to_metric_families(text)}
        assert families["headliner_monitoring_decision"].samples[0].value == 1.0
        labels = {"model": predictor.model_name, "version": predictor.model_version}
        share = families["headliner_monitoring_drifted_feature_share"].samples[0]
        assert (share.labels, share.value) == (labels, 4 / 13)
        assert families["headliner_monitoring_labelled_rows"].samples[0].value == 0.0
        assert families["headliner_monitoring_drifted_feature_share_limit"].samples[0].value == 0.5
        assert "headliner_inference_log_rows_pending" in families  # the serving metrics come first, as before
        assert text.index("headliner_inference_log_rows_pending") < text.index("headliner_monitoring_decision")
    finally:
        served.close()
