"""deploy/prometheus/ in a real Prometheus (Debian's, from scripts/install_test_tools.sh): promtool accepts the
scrape config and the alert rules and their unit tests pass; and a Prometheus on a free port of 127.0.0.1,
scraping a running service with its bearer token every second, fires the drift alert once the monitoring
figures of a shifted window are published."""

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from headliner.monitoring.decision import MonitoringSummary, decide
from headliner.monitoring.drift import feature_drift, prediction_drift
from headliner.monitoring.fairness import fairness
from headliner.monitoring.performance import live_performance
from headliner.monitoring.quality import data_quality
from headliner.monitoring.window import ANALYSED, WindowSelection, load_window, reference_data
from headliner.serving.app import InferenceApp
from headliner.serving.inference_log import InferenceLog
from headliner.serving.server import ModelServer
from headliner.spec import PROJECT_ROOT, UseCaseSpec
from steps.monitoring.publish_figures import publish_figures
from tests.helpers.service import ServerProcess
from tests.helpers.serving import serving
from tests.helpers.traffic import SHIFT, held_out_frame, log_traffic

RULES = PROJECT_ROOT / "deploy" / "prometheus"
TOKEN = "prometheus-test-token"
ALERT_SECONDS = 60


class PrometheusServer(ServerProcess):
    READY_PATH = "/-/ready"
    NAME = "Prometheus"

    def alerts(self) -> list[dict]:
        response = self.client.get("/api/v1/alerts")
        response.raise_for_status()
        return response.json()["data"]["alerts"]

    def targets(self) -> list[dict]:
        response = self.client.get("/api/v1/targets")
        response.raise_for_status()
        return response.json()["data"]["activeTargets"]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: run scripts/install_test_tools.sh (Debian's prometheus)"
    return subprocess.run([binary, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_config_and_the_rules_and_their_unit_tests_pass():
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "SUCCESS: 1 rule files found" in config.stdout
    assert "SUCCESS: prometheus.yml is valid prometheus config file syntax" in config.stdout
    rules = promtool("check", "rules", "headliner-alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 12 rules found" in rules.stdout
    tests = promtool("test", "rules", "headliner-alerts_test.yml")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "SUCCESS" in tests.stdout and "FAILED" not in tests.stdout


def shifted_window_summary(url: str, model_bytes: bytes, spec: UseCaseSpec) -> MonitoringSummary:
    """The monitoring judgment of 400 logged requests with seven features shifted, by the pipeline's own
    functions, against held-out rows of the same distribution as unshifted traffic."""
    log_traffic(url, model_bytes, held_out_frame(spec, 400, seed=1), spec, shift=SHIFT, feedback_rate=0.3)
    current, window = load_window(url, spec, "1", WindowSelection())
    analysed = current[current[ANALYSED]]
    reference = reference_data(held_out_frame(spec, 2000, seed=0), model_bytes, spec)
    return decide(
        window,
        feature_drift(reference, analysed, spec),
        prediction_drift(reference, analysed, spec),
        data_quality(current, window, spec),
        fairness(analysed, reference, spec),
        live_performance(current, {spec.monitoring.live_metric: 0.3}, spec),
        spec,
    )


def prometheus_config(folder: Path, service_url: str) -> Path:
    """deploy/prometheus/prometheus.yml scraping `service_url` with the token, every second, with the rules
    from deploy/prometheus."""
    config = yaml.safe_load((RULES / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [service_url.removeprefix("http://")]}]
    token_file = folder / "headliner-token"
    token_file.write_text(TOKEN)
    job["authorization"] = {"type": "Bearer", "credentials_file": str(token_file)}
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_for(condition, what: str, prometheus: PrometheusServer):
    deadline = time.monotonic() + ALERT_SECONDS
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"{what} within {ALERT_SECONDS} s; alerts {prometheus.alerts()}; targets {prometheus.targets()}")


def test_a_real_prometheus_fires_the_drift_alert_after_a_shifted_window(tmp_path, jukebox_onnx_file, jukebox_spec):
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed: run scripts/install_test_tools.sh (Debian's prometheus)"
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    model_bytes = jukebox_onnx_file.read_bytes()
    summary = shifted_window_summary(url, model_bytes, jukebox_spec)
    share = summary.figures["drifted_feature_share"]
    assert share is not None and share >= 0.5 and summary.decision == "retrain", summary.lines()

    from headliner.model.onnx_packaging import OnnxPredictor

    predictor = OnnxPredictor(model_bytes)
    log = InferenceLog(url, predictor.feature_names, flush_seconds=60)
    server = ModelServer(predictor, log, token=TOKEN)
    with serving(InferenceApp(server)) as service_url:
        config = prometheus_config(tmp_path, service_url)

        def command(port: int) -> list[str]:
            return [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ]

        prometheus = PrometheusServer.launch(command, {"PATH": "/usr/bin:/bin"}, tmp_path)
        try:
            wait_for(
                lambda: [t for t in prometheus.targets() if t["health"] == "up"],
                "Prometheus did not scrape the service",
                prometheus,
            )
            assert not prometheus.alerts()  # nothing published yet: the gauges are absent
            publish_figures.entrypoint(summary, log_url=url)
            drift = wait_for(
                lambda: [
                    alert
                    for alert in prometheus.alerts()
                    if alert["labels"]["alertname"] == "HeadlinerFeatureDrift" and alert["state"] == "firing"
                ],
                "the drift alert did not fire",
                prometheus,
            )
            assert drift[0]["labels"] == {  # one alert per model version: no job or instance
                "alertname": "HeadlinerFeatureDrift",
                "severity": "critical",
                "model": "jukebox",
                "version": "1",
            }
            assert float(drift[0]["value"]) == pytest.approx(share)
            shown = f"{share * 100:.4g}%"  # humanizePercentage: 4 significant digits
            assert drift[0]["annotations"]["summary"] == f"jukebox version 1: {shown} of the features drifted"
            firing = {alert["labels"]["alertname"] for alert in prometheus.alerts() if alert["state"] == "firing"}
            assert "HeadlinerRetrainAdvised" in firing
            served = httpx.get(f"{service_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            assert 'headliner_monitoring_decision{model="jukebox",version="1"} 2.0' in served.text
        finally:
            assert prometheus.stop() == 0, prometheus.text()[-3000:]
    log.close()
