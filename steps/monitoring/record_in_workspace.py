"""Step: the run's drift, data quality and figures added to the model's project in the Evidently workspace
(its dashboard shows them over time); the run's metadata names the workspace and the project."""

import pandas as pd
from zenml import get_step_context, log_metadata, step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.monitoring.decision import MonitoringSummary
from headliner.monitoring.window import ANALYSED
from headliner.monitoring.workspace import record_monitoring_run
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def record_in_workspace(
    reference_data: pd.DataFrame, current_window: pd.DataFrame, monitoring_summary: MonitoringSummary, spec: UseCaseSpec
) -> None:
    """The run's metadata (dashboard: the run's metadata tab) says where to look: `python run.py
    monitoring-ui --workspace <evidently_workspace>`, project `evidently_project_id`."""
    record = record_monitoring_run(reference_data, current_window[current_window[ANALYSED]], monitoring_summary, spec)
    log_metadata(
        metadata={
            "evidently_workspace": record.workspace,
            "evidently_project_id": record.project_id,
            "evidently_snapshots": record.snapshot_ids,
            "evidently_ui": f"python run.py monitoring-ui --workspace {record.workspace}",
        },
        run_id_name_or_prefix=get_step_context().pipeline_run.id,
    )
