"""The Evidently workspace over time: two monitoring runs added to a workspace and read back through Evidently's
workspace API (one project for the model, each kind of snapshot once per run at the run's time, the figures
as logged, none for a figure that was None), the dashboard's panels made once, where the workspace is, and
the UI command's error before any run."""

from datetime import UTC

import pytest
from click.testing import CliRunner

from headliner.cli.monitoring_ui import monitoring_ui
from headliner.errors import MonitoringError
from headliner.monitoring.workspace import (
    DASHBOARD_TAB,
    DATA_QUALITY,
    DRIFT,
    FIGURES,
    WORKSPACE_ENV,
    MonitoringFigure,
    dashboard_panels,
    record_monitoring_run,
    workspace_path,
)
from headliner.serving.settings import local_state_dir
from tests.helpers.evidently_workspace import (
    RUN_FIGURES,
    RUN_TIMES,
    record_two_runs,
    run_summary,
    synthetic_window,
)

PANELS = [
    "Share of drifted features",
    "Predicted-class drift",
    "Drift score per feature",
    "Fairness",
    "Live and estimated performance",
    "Rejected-request share",
]
VALUE_DRIFT = "evidently:metric_v2:ValueDrift"


@pytest.fixture(scope="module")
def recorded(jukebox_spec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evidently") / "workspace"
    return folder, record_two_runs(jukebox_spec, folder)


def _snapshots(folder):
    """The workspace's project of jukebox and its snapshots (SnapshotModel), read as a new process would."""
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(folder))
    projects = workspace.search_project("jukebox")
    assert len(projects) == 1
    project = projects[0]
    return workspace, project, [workspace.get_run(project.id, run) for run in workspace.list_runs(project.id)]


def _results(snapshot, metric: str) -> list:
    """The snapshot's results of one metric type (e.g. evidently:metric_v2:ValueDrift)."""
    return [r for r in snapshot.metric_results.values() if r.metric_value_location.metric.params["type"] == metric]


def _figures(snapshot) -> dict[str, float]:
    return {
        r.metric_value_location.metric.params["figure"]: r.value
        for r in _results(snapshot, MonitoringFigure.__get_type__())
    }


def test_two_runs_are_read_back_by_kind_at_their_run_times(recorded, jukebox_spec):
    folder, records = recorded
    _, project, snapshots = _snapshots(folder)
    assert {r.project_id for r in records} == {str(project.id)}
    assert project.name == "jukebox"
    assert len(snapshots) == 6
    run_times = {t.astimezone(UTC).replace(tzinfo=None) for t in RUN_TIMES}
    for kind in (DRIFT, DATA_QUALITY, FIGURES):
        of_kind = [s for s in snapshots if kind in s.tags]
        assert len(of_kind) == 2, kind
        assert {s.timestamp for s in of_kind} == run_times
        assert all("v3" in s.tags for s in of_kind)
    ids = {str(s_id) for s_id in _snapshots(folder)[0].list_runs(project.id)}
    assert ids == {snapshot for r in records for snapshot in r.snapshot_ids.values()}


def test_figures_come_back_as_logged_and_none_is_left_out(recorded):
    folder, _ = recorded
    _, _, snapshots = _snapshots(folder)
    by_time = sorted((s for s in snapshots if FIGURES in s.tags), key=lambda s: s.timestamp)
    for snapshot, logged in zip(by_time, RUN_FIGURES, strict=True):
        expected = {name: float(value) for name, value in logged.items() if value is not None}
        assert _figures(snapshot) == pytest.approx(expected)
    first = _figures(by_time[0])
    assert "live_top_k_accuracy" not in first and "equal_opportunity_difference" not in first


def test_drift_snapshots_score_every_feature_and_the_shifted_window_drifts(recorded, jukebox_spec):
    folder, _ = recorded
    _, _, snapshots = _snapshots(folder)
    by_time = sorted((s for s in snapshots if DRIFT in s.tags), key=lambda s: s.timestamp)
    drifted_shares = []
    for snapshot in by_time:
        scored = {r.metric_value_location.metric.params["column"] for r in _results(snapshot, VALUE_DRIFT)}
        assert scored == set(jukebox_spec.feature_names)
        (count,) = _results(snapshot, "evidently:metric_v2:DriftedColumnsCount")
        drifted_shares.append(count.share.value)
    assert drifted_shares[0] < 0.2 < drifted_shares[1]


def test_panels_are_made_once_over_the_runs(recorded, jukebox_spec):
    folder, _ = recorded
    workspace, project, _ = _snapshots(folder)
    dashboard = workspace.get_dashboard(project.id)
    assert [panel.title for panel in dashboard.panels] == PANELS
    assert [tab.title for tab in dashboard.tabs] == [DASHBOARD_TAB]
    assert dashboard.tabs[0].panels == [panel.id for panel in dashboard.panels]
    per_feature = dashboard.panels[PANELS.index("Drift score per feature")]
    assert [value.metric_labels["column"] for value in per_feature.values] == jukebox_spec.feature_names
    fairness = dashboard.panels[PANELS.index("Fairness")]
    assert [value.metric_labels["figure"] for value in fairness.values] == [
        "statistical_parity_difference",
        "disparate_impact_ratio",
        "equal_opportunity_difference",
        "average_odds_difference",
    ]
    performance = dashboard.panels[PANELS.index("Live and estimated performance")]
    shown = {value.metric_labels["figure"] for value in performance.values}
    assert {"live_top_k_accuracy", "estimated_top_k_accuracy"} <= shown
    assert [p.title for p in dashboard_panels(jukebox_spec)] == PANELS


def test_a_summary_of_another_model_is_refused(jukebox_spec, wine_spec, tmp_path):
    summary = run_summary(wine_spec, RUN_TIMES[0], RUN_FIGURES[0])
    frame = synthetic_window(jukebox_spec, 50, seed=1)
    with pytest.raises(MonitoringError, match=r"summary\.model_name: 'wine' .* 'jukebox'"):
        record_monitoring_run(frame, frame, summary, jukebox_spec, tmp_path / "workspace")
    assert not (tmp_path / "workspace").exists()


def test_workspace_path_env_then_spec_then_beside_the_inference_log(jukebox_spec, tmp_path, monkeypatch):
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    assert workspace_path(jukebox_spec) == local_state_dir() / "evidently"
    chosen = jukebox_spec.model_copy(
        update={"monitoring": jukebox_spec.monitoring.model_copy(update={"evidently_workspace": str(tmp_path / "s")})}
    )
    assert workspace_path(chosen) == tmp_path / "s"
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "e"))
    assert workspace_path(chosen) == tmp_path / "e"


def test_the_ui_command_says_to_run_monitoring_first(tmp_path):
    result = CliRunner().invoke(monitoring_ui, ["--workspace", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert "run python run.py --pipeline monitoring first" in result.stderr
    assert str(tmp_path / "none") in result.stderr
