"""Monitoring over time: every monitoring run adds its Evidently snapshots (feature drift, data quality, and
the run's own figures as metrics) to a local Evidently workspace, one project per model, the run time as the
snapshot time; the project's dashboard draws each watched figure across runs (`evidently ui` serves it)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from evidently.core.metric_types import SingleValue, SingleValueCalculation, SingleValueMetric
from pydantic import BaseModel

from headliner.errors import MonitoringError
from headliner.monitoring.decision import MonitoringSummary
from headliner.monitoring.drift import drift_features, drift_snapshot, prediction_columns
from headliner.serving.settings import local_state_dir
from headliner.spec import UseCaseSpec

if TYPE_CHECKING:
    from evidently.core.datasets import Dataset
    from evidently.core.report import Context, Snapshot
    from evidently.sdk.models import DashboardPanelPlot
    from evidently.ui.workspace import Project, Workspace

WORKSPACE_ENV = "HEADLINER_EVIDENTLY_WORKSPACE"
DASHBOARD_TAB = "Monitoring over time"
# The kinds of snapshot a run adds, each its snapshots' tag.
DRIFT, DATA_QUALITY, FIGURES = "feature_drift", "data_quality", "figures"
FAIRNESS_FIGURES = (
    "statistical_parity_difference",
    "disparate_impact_ratio",
    "equal_opportunity_difference",
    "average_odds_difference",
)


class MonitoringFigure(SingleValueMetric):  # type: ignore[misc]  # evidently ships no types
    """One figure of a monitoring run (`MonitoringSummary.figures`), read from the run's one-row table of
    figures: Evidently keeps it as a metric of the snapshot, so the dashboard can draw it over time."""

    figure: str


class MonitoringFigureCalculation(SingleValueCalculation[MonitoringFigure]):  # type: ignore[misc]
    def calculate(self, context: Context, current_data: Dataset, reference_data: Dataset | None) -> SingleValue:
        return self.result(float(current_data.column(self.metric.figure).data.iloc[0]))

    def display_name(self) -> str:
        return str(self.metric.figure)


class WorkspaceRecord(BaseModel):
    """Where a monitoring run's snapshots went: the workspace folder, the model's project, and the id of
    each snapshot by kind (feature_drift, data_quality, figures)."""

    workspace: str
    project_id: str
    project_name: str
    snapshot_ids: dict[str, str]


def workspace_path(spec: UseCaseSpec | None = None) -> Path:
    """HEADLINER_EVIDENTLY_WORKSPACE, else the spec's `monitoring.evidently_workspace`, else `evidently` beside
    the local inference log (in ZenML's local stores folder)."""
    chosen = os.environ.get(WORKSPACE_ENV) or (spec.monitoring.evidently_workspace if spec else None)
    return Path(chosen).expanduser() if chosen else local_state_dir() / "evidently"


def _figure_panel(title: str, description: str, figures: Sequence[str]) -> DashboardPanelPlot:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    values = [
        PanelMetric(legend=name, metric=MonitoringFigure.__get_type__(), metric_labels={"figure": name})
        for name in figures
    ]
    return line_plot_panel(title, values, description, size="half")


def dashboard_panels(spec: UseCaseSpec) -> list[DashboardPanelPlot]:
    """The project's panels, each a figure (or figures) of every run over time."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    metric = spec.monitoring.live_metric
    per_feature = [
        PanelMetric(legend=name, metric="ValueDrift", metric_labels={"column": name}) for name in spec.feature_names
    ]
    return [
        _figure_panel(
            "Share of drifted features",
            f"drifted_feature_share; retrain at {spec.monitoring.drift_share_retrain:g}, "
            f"warn at {spec.monitoring.drift_share_warn:g}",
            ["drifted_feature_share"],
        ),
        _figure_panel(
            "Predicted-class drift",
            "prediction_drift_score: the top-1 class of the window against the validation split",
            ["prediction_drift_score"],
        ),
        line_plot_panel(
            "Drift score per feature",
            per_feature,
            "Evidently's drift score of each feature, window against the training split",
            size="full",
        ),
        _figure_panel(
            "Fairness",
            f"across {spec.monitoring.fairness_attribute or 'the protected attribute'}",
            FAIRNESS_FIGURES,
        ),
        _figure_panel(
            "Live and estimated performance",
            f"{metric}: realized on labelled rows, estimated without labels, offline on the test split",
            [f"live_{metric}", f"estimated_{metric}", f"offline_{metric}"],
        ),
        _figure_panel(
            "Rejected-request share",
            f"rejected_share; warn above {spec.monitoring.max_rejected_share:g}",
            ["rejected_share"],
        ),
    ]


def model_project(workspace: Workspace, spec: UseCaseSpec) -> Project:
    """The model's project (named by the model), created on first use, with the dashboard's panels: those
    missing by title are added, so later runs neither duplicate nor overwrite them."""
    from evidently.sdk.models import DashboardTabModel

    found = workspace.search_project(spec.name)
    project = found[0] if found else workspace.create_project(spec.name, f"Monitoring runs of model {spec.name}")
    dashboard = workspace.get_dashboard(project.id)
    present = {panel.title for panel in dashboard.panels}
    missing = [panel for panel in dashboard_panels(spec) if panel.title not in present]
    if missing:
        tab = next((t for t in dashboard.tabs if t.title == DASHBOARD_TAB), None)
        if tab is None:
            tab = DashboardTabModel(title=DASHBOARD_TAB, panels=[])
            dashboard.tabs.append(tab)
        dashboard.panels.extend(missing)
        tab.panels.extend(panel.id for panel in missing)
        workspace.save_dashboard(project.id, dashboard)
    return project


def figures_snapshot(summary: MonitoringSummary, timestamp: datetime, tags: Sequence[str]) -> Snapshot:
    """The run's figures as Evidently metrics (MonitoringFigure); a figure missing or None is left out."""
    from evidently import DataDefinition, Dataset, Report

    figures = {
        name: float(value)
        for name, value in summary.figures.items()
        if value is not None and math.isfinite(float(value))
    }
    table = pd.DataFrame([figures])
    data = Dataset.from_pandas(table, data_definition=DataDefinition(numerical_columns=list(figures)))
    report = Report([MonitoringFigure(figure=name) for name in figures])
    return report.run(current_data=data, reference_data=None, timestamp=timestamp, tags=list(tags))


def record_monitoring_run(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    summary: MonitoringSummary,
    spec: UseCaseSpec,
    workspace: Path | None = None,
) -> WorkspaceRecord:
    """Add a monitoring run to the workspace (default: `workspace_path(spec)`, created if missing): feature
    drift and data quality of `current` (the window's analysed rows) against `reference` (the training split
    with its predicted class), and the summary's figures, all at the run's time `summary.checked_at`."""
    from evidently import Report
    from evidently.presets import DataSummaryPreset
    from evidently.ui.workspace import Workspace

    from headliner.data.profiling import evidently_dataset

    if summary.model_name != spec.name:
        raise MonitoringError(f"summary.model_name: '{summary.model_name}' is not the spec's model '{spec.name}'")
    folder = workspace or workspace_path(spec)
    folder.mkdir(parents=True, exist_ok=True)
    store = Workspace(str(folder))
    project = model_project(store, spec)
    # Evidently's own timestamps are naive (its default is datetime.now()): the run time as naive UTC
    at = summary.checked_at.astimezone(UTC).replace(tzinfo=None)
    version = f"v{summary.model_version}"
    snapshots = {
        DRIFT: drift_snapshot(reference, current, spec, drift_features(spec), timestamp=at, tags=[DRIFT, version]),
        DATA_QUALITY: Report([DataSummaryPreset()]).run(
            current_data=evidently_dataset(current, spec, *prediction_columns(spec)),
            reference_data=evidently_dataset(reference, spec, *prediction_columns(spec)),
            timestamp=at,
            tags=[DATA_QUALITY, version],
        ),
        FIGURES: figures_snapshot(summary, at, [FIGURES, version]),
    }
    ids = {}
    for kind, snapshot in snapshots.items():
        name = f"{kind} of {spec.name} {version} at {at:%Y-%m-%d %H:%M:%S} UTC"
        ids[kind] = str(store.add_run(project.id, snapshot, name=name).id)
    return WorkspaceRecord(
        workspace=str(folder.resolve()), project_id=str(project.id), project_name=spec.name, snapshot_ids=ids
    )
