"""The monitoring pipeline through the CLI, on the session's trained jukebox version: traffic from the
reference distribution, then shifted traffic with retraining enabled and an alert webhook. One run each;
the tests assert on the reports, artifacts, the alert received and the training run it started."""

import json
import os
import re
import threading
from datetime import UTC
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from headliner.data.profiling import EVIDENTLY_FILE
from headliner.labels import Artifact, Step
from headliner.reports.html import MAX_VISUALIZATION_BYTES, script_free_problems
from tests.helpers.cli import FAST_RUN_CONFIG, run_cli
from tests.helpers.traffic import SHIFT, log_traffic

FAST_TRAINING = ["--rows", "60000", "--run-config", FAST_RUN_CONFIG]
REPORTS = {
    "monitoring_summary",
    "window",
    "feature_drift",
    "prediction_drift",
    "data_quality",
    "fairness",
    "live_performance",
    "performance_estimate",
}
EVIDENTLY_REPORTS = {"feature_drift", "prediction_drift", "data_quality"}  # their attachment: Evidently's page


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served_version(jukebox_training, jukebox_spec):
    """The trained version, its ONNX bytes and the distinct training songs (the reference distribution)."""
    from headliner.data.splitting import one_row_per_group

    run, _ = jukebox_training
    version = run.steps[Step.REGISTER_MODEL].model_version
    onnx_bytes = version.get_artifact(Artifact.ONNX_MODEL).load().SerializeToString()
    songs = one_row_per_group(version.get_artifact(Artifact.TRAIN_SPLIT).load(), jukebox_spec)
    return version.number, onnx_bytes, songs.sample(n=min(600, len(songs)), random_state=5).reset_index(drop=True)


def _monitor(args, env):
    result = run_cli(["--pipeline", "monitoring", *args], env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    from zenml.client import Client

    run = Client().get_pipeline_run(re.search(r"Run '(monitoring-[^']+)' finished", result.stdout).group(1))
    return run, result.stdout


def test_reference_traffic_is_ok_with_reports_everywhere(served_version, jukebox_spec, isolated_env, tmp_path):
    from zenml.artifacts.utils import load_artifact_visualization
    from zenml.io import fileio

    number, onnx_bytes, songs = served_version
    log = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log_traffic(log, onnx_bytes, songs, jukebox_spec, feedback_rate=0.5)
    run, out = _monitor(
        ["--inference-log", log, "--reports-dir", str(tmp_path / "reports"), "--no-retrain"], isolated_env
    )
    summary = run.steps[Step.DECIDE_ACTION].outputs[Artifact.MONITORING_SUMMARY][0].load()
    assert summary.model_version == str(number) and summary.figures["scored_rows"] == len(songs)
    assert summary.figures["drifted_feature_share"] <= 0.1 and summary.decision in ("ok", "warn"), summary.reasons
    assert not any("features drifted" in r or "live top_k_accuracy" in r for r in summary.reasons), summary.reasons
    assert summary.figures["labelled_rows"] == pytest.approx(len(songs) * 0.5, rel=0.2)
    assert type(summary.figures["labelled_rows"]) is int and type(summary.figures["requests"]) is int
    assert re.search(r"labelled_rows +\d{3} ", out) and not re.search(r"labelled_rows +[\d,]+\.\d", out)
    # the label-free estimate beside the realized and offline figures, and the fairness figures beside SPD
    estimate = run.steps[Step.ESTIMATE_PERFORMANCE].outputs[Artifact.PERFORMANCE_ESTIMATE_REPORT][0]
    assert [v.type.value for v in estimate.visualizations] == ["html"]
    estimated = estimate.load()
    assert 0 < summary.figures["estimated_top_k_accuracy"] == estimated.estimated["top_k_accuracy"] < 1
    assert estimated.labelled == summary.figures["labelled_rows"] and set(estimated.realized_labelled) == {
        "accuracy",
        "top_k_accuracy",
    }
    assert {"live_top_k_accuracy", "offline_top_k_accuracy", "estimated_top_k_accuracy_drop"} <= set(summary.figures)
    fair = run.steps[Step.CHECK_FAIRNESS].outputs[Artifact.FAIRNESS_REPORT][0].load()
    assert [f.name for f in fair.figures] == [
        "disparate_impact_ratio",
        "equal_opportunity_difference",
        "average_odds_difference",
    ]
    for figure in fair.figures:  # n/a (too few rows behind the rates) says why
        assert summary.figures[figure.name] == figure.value and (figure.value is not None or figure.note)
    assert not any("disparate impact" in r for r in summary.reasons), summary.reasons  # within jukebox's limits
    assert f"Decision: {summary.decision.upper()} for jukebox version {number}" in out
    (folder,) = (tmp_path / "reports").iterdir()
    assert {p.stem for p in folder.glob("*.html")} == REPORTS
    assert {p.relative_to(folder).as_posix() for p in folder.glob("*/*")} == {
        f"{name}/{EVIDENTLY_FILE}" for name in EVIDENTLY_REPORTS
    }
    assert json.loads((folder / "monitoring_summary.json").read_text())["decision"] == summary.decision
    # every report is an artifact with a static HTML visualization the dashboard shows (its frame runs no
    # scripts); Evidently's interactive page is a file in the artifact's folder, not a visualization
    for step, name in [
        (Step.CHECK_FEATURE_DRIFT, Artifact.FEATURE_DRIFT_REPORT),
        (Step.CHECK_DATA_QUALITY, Artifact.DATA_QUALITY_REPORT),
        (Step.CHECK_PREDICTION_DRIFT, Artifact.PREDICTION_DRIFT_REPORT),
        (Step.DECIDE_ACTION, Artifact.MONITORING_SUMMARY),
    ]:
        artifact = run.steps[step].outputs[name][0]
        assert [v.type.value for v in artifact.visualizations] == ["html"], name
        page = load_artifact_visualization(artifact).value
        page = page.decode() if isinstance(page, bytes) else page
        assert script_free_problems(page) == [] and len(page.encode()) < MAX_VISUALIZATION_BYTES, name
        assert fileio.exists(os.path.join(artifact.uri, EVIDENTLY_FILE)) == (name != Artifact.MONITORING_SUMMARY)
    performance = run.steps[Step.EVALUATE_LIVE_PERFORMANCE].outputs[Artifact.LIVE_PERFORMANCE_REPORT][0]
    assert [v.type.value for v in performance.visualizations] == ["html", "image"]
    assert run.run_metadata["decision"] == summary.decision
    _assert_published(run, summary, log)


def _assert_published(run, summary, log_url: str) -> None:
    """The run's figures on /metrics' source (the log database's monitoring_figures table) and in the Evidently
    workspace its metadata names, as a snapshot at the run's time."""
    from evidently.ui.workspace import Workspace

    from headliner.monitoring.workspace import MonitoringFigure
    from headliner.serving.monitoring_figures import MonitoringFiguresStore

    (published,) = MonitoringFiguresStore(log_url).read("jukebox")
    assert (published.model_version, published.decision) == (summary.model_version, summary.decision)
    assert published.figures["drifted_feature_share"] == pytest.approx(summary.figures["drifted_feature_share"])
    workspace = Workspace(run.run_metadata["evidently_workspace"])
    project_id = run.run_metadata["evidently_project_id"]
    snapshots = [workspace.get_run(project_id, snapshot) for snapshot in workspace.list_runs(project_id)]
    at_run_time = [s for s in snapshots if s.timestamp == summary.checked_at.astimezone(UTC).replace(tzinfo=None)]
    assert len(at_run_time) == 3  # drift, data quality and the figures
    logged = {
        r.metric_value_location.metric.params["figure"]: r.value
        for s in at_run_time
        for r in s.metric_results.values()
        if r.metric_value_location.metric.params["type"] == MonitoringFigure.__get_type__()
    }
    assert logged["drifted_feature_share"] == pytest.approx(summary.figures["drifted_feature_share"])
    assert logged["estimated_top_k_accuracy"] == pytest.approx(summary.figures["estimated_top_k_accuracy"])


def test_shifted_traffic_retrains_and_alerts(served_version, jukebox_spec, isolated_env, tmp_path):
    from zenml.client import Client

    number, onnx_bytes, songs = served_version
    log = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log_traffic(log, onnx_bytes, songs, jukebox_spec, shift=SHIFT, feedback_rate=0.5)
    versions_before = Client().list_model_versions(model_name_or_id="jukebox", size=100).total
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        env = {**isolated_env, "HEADLINER_ALERT_WEBHOOK": f"http://127.0.0.1:{hook.server_port}/alerts"}
        run, out = _monitor(
            [
                "--inference-log",
                log,
                "--version",
                str(number),
                "--reports-dir",
                str(tmp_path),
                "--retrain",
                *FAST_TRAINING,
            ],
            env,
        )
    finally:
        hook.shutdown()
        hook.server_close()
    summary = run.steps[Step.DECIDE_ACTION].outputs[Artifact.MONITORING_SUMMARY][0].load()
    assert summary.decision == "retrain"
    assert set(SHIFT) <= set(summary.drifted_features)
    assert summary.figures["estimated_top_k_accuracy"] is not None
    _assert_published(run, summary, log)
    (alert,) = _Hook.received
    assert alert["level"] == "critical" and alert["summary"]["decision"] == "retrain"
    assert f"Alert sent to http://127.0.0.1:{hook.server_port}/: answered 204" in out
    # the retraining run records why it started, and so does the version it registered
    training_run = Client().get_pipeline_run(re.search(r"Run '(training-[^']+)' finished", out).group(1))
    assert "retraining" in [tag.name for tag in training_run.tags]
    trigger = training_run.config.parameters["trigger"]
    assert (
        trigger["by"] == "monitoring"
        and trigger["monitoring_run"] == run.name
        and "features drifted" in trigger["reason"]
    )
    new_version = training_run.steps[Step.REGISTER_MODEL].model_version
    assert Client().list_model_versions(model_name_or_id="jukebox", size=100).total == versions_before + 1
    assert new_version.run_metadata["trigger"]["monitoring_run"] == run.name


def test_monitoring_cli_errors(isolated_env, tmp_path, jukebox_training):
    empty = run_cli(["--pipeline", "monitoring", "--inference-log", str(tmp_path / "none.sqlite")], isolated_env)
    assert empty.returncode == 1 and "holds no requests to 'jukebox'" in empty.stderr
    both = run_cli(["--pipeline", "monitoring", "--since", "1h", "--last", "5"], isolated_env)
    assert both.returncode == 2 and "give --since or --last, not both" in both.stderr
    since = run_cli(
        [
            "--pipeline",
            "monitoring",
            "--since",
            "last tuesday",
            "--inference-log",
            str(tmp_path / "none.sqlite"),
            "--version",
            "1",
        ],
        isolated_env,
    )
    assert since.returncode == 1 and "--since 'last tuesday': expected a duration" in since.stderr
