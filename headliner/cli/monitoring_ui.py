"""`monitoring-ui`: Evidently's own UI over the workspace the monitoring runs add their snapshots to, where each
model's dashboard draws drift, fairness, performance and rejected requests across runs (served on 127.0.0.1;
its pages and scripts come with the evidently wheel, so it works offline)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from headliner.cli.common import CONFIG_OPTION, fail, load_spec

HOST = "127.0.0.1"


def has_projects(workspace: Path) -> bool:
    """Whether `workspace` is an Evidently workspace holding a project (a folder with its metadata.json)."""
    return workspace.is_dir() and any(workspace.glob("*/metadata.json"))


@click.command("monitoring-ui")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    help="The Evidently workspace (default: HEADLINER_EVIDENTLY_WORKSPACE, the spec's monitoring.evidently_workspace, "
    "or the one beside the local inference log).",
)
@CONFIG_OPTION
def monitoring_ui(port: int, workspace: Path | None, config: str) -> None:
    """Open Evidently's UI on the monitoring runs' workspace: a project per model, its dashboard over time
    (runs until Ctrl+C)."""
    from headliner.monitoring.workspace import workspace_path

    folder = workspace or workspace_path(load_spec(config))
    if not has_projects(folder):
        fail(
            f"no Evidently workspace with a monitoring run at {folder}: run python run.py --pipeline monitoring "
            "first (or give --workspace PATH)"
        )
    click.echo(f"Evidently UI for {folder} at http://{HOST}:{port} (the model's project: its Dashboard tab)")
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's usage telemetry: off, this may run offline
    command = [sys.executable, "-m", "evidently.cli", "ui", "--workspace", str(folder)]
    os.execvp(sys.executable, [*command, "--host", HOST, "--port", str(port)])
