"""The model outside pipelines: `serve` (the BentoML service in the foreground), `export-model` (one ONNX
file of a registered version) and `mlflow-ui` (the MLflow UI on the active stack's tracking store)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from headliner.cli.common import (
    CONFIG_OPTION,
    PIPELINE_COMPONENTS,
    PORT_OPTION,
    STAGE_OPTION,
    VERSION_OPTION,
    fail,
    load_spec,
    ready_stack,
    set_quiet_defaults,
    version_choice,
    version_text,
)


@click.command()
@CONFIG_OPTION
@STAGE_OPTION
@VERSION_OPTION
@click.option(
    "--model-file", type=click.Path(dir_okay=False), help="Serve this .onnx file instead of a registered version."
)
@PORT_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every one).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Worker processes answering on the one port (default: HEADLINER_WORKERS, else 1).",
)
def serve(
    config: str,
    stage: str | None,
    version: str | None,
    model_file: str | None,
    port: int,
    host: str,
    workers: int | None,
) -> None:
    """Run the BentoML service in the foreground (Ctrl+C stops it and flushes the inference log)."""
    chosen = version_choice(stage, version)
    set_quiet_defaults()
    spec = load_spec(config)
    from headliner.deploy.foreground import packaged_model, require_free_port, serve_command
    from headliner.errors import HeadlinerError
    from headliner.serving.settings import ServingSettings
    from headliner.spec import PROJECT_ROOT

    env = dict(os.environ)
    if workers is not None:
        env["HEADLINER_WORKERS"] = str(workers)
    try:
        if model_file:
            if stage or version:
                raise click.UsageError("--model-file cannot be combined with --stage or --version")
            path, predictor = packaged_model(model_file)
            env["HEADLINER_MODEL_FILE"] = str(path)
            model_name = predictor.model_name
            what = f"'{model_name}' version {predictor.model_version} from {path}"
        else:
            from headliner.model.versions import find_model_version
            from headliner.stacks.setup import ensure_stack

            ensure_stack(PIPELINE_COMPONENTS["data"])
            number: int = find_model_version(spec.name, chosen).number
            # production is followed: promotions and rollout policies reach the running service
            env.update(
                HEADLINER_MODEL=spec.name,
                HEADLINER_MODEL_VERSION="production" if stage == "production" else str(number),
            )
            model_name = spec.name
            what = version_text(spec.name, number, chosen)
            if stage == "production":
                what += ", following promotions and rollout policies (python run.py rollout ...)"
        require_free_port(host, port)
        settings = ServingSettings(workers=workers) if workers is not None else ServingSettings()
        log_url = settings.inference_log_display()
    except HeadlinerError as exc:
        fail(str(exc))
    processes = f" by {settings.workers} worker processes" if settings.workers > 1 else ""
    click.echo(f"Serving {what} at http://{host}:{port}{processes}")
    click.echo(f"  open in a browser: http://{host}:{port}/")
    click.echo(f"  POST /predict, POST /v2/models/{model_name}/infer, GET /metrics")
    click.echo(f"  inference log: {log_url}; Ctrl+C stops")
    os.chdir(PROJECT_ROOT)
    os.execvpe(sys.executable, serve_command(host, port), env)


@click.command("export-model")
@CONFIG_OPTION
@click.option("--version", default="latest", show_default=True, help="Version number, 'latest' or a stage.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
def export_model(config: str, version: str, out: str) -> None:
    """Write a registered model version as one ONNX file (all a client needs to predict)."""
    set_quiet_defaults()
    spec = load_spec(config)
    from headliner.errors import HeadlinerError
    from headliner.model.versions import onnx_model_bytes
    from headliner.stacks.setup import ensure_stack

    try:
        ensure_stack(PIPELINE_COMPONENTS["data"])
        number, data = onnx_model_bytes(spec.name, version)
    except HeadlinerError as exc:
        fail(str(exc))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(data)
    click.echo(f"Wrote model '{spec.name}' version {number} ({len(data):,} bytes) to {out}")


@click.command("mlflow-ui")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (MLflow's own default is 4; one starts faster and serves one person).",
)
def mlflow_ui(port: int, host: str, workers: int) -> None:
    """Open the MLflow UI on the active stack's tracking store (runs until Ctrl+C)."""
    set_quiet_defaults()
    ready_stack(("experiment_tracker",))
    from zenml.client import Client
    from zenml.integrations.mlflow.experiment_trackers import MLFlowExperimentTracker

    tracker = Client().active_stack.experiment_tracker
    if not isinstance(tracker, MLFlowExperimentTracker):
        fail(f"the active stack's experiment tracker is not MLflow's: {type(tracker).__name__}")
    tracking_uri = tracker.get_tracking_uri()
    click.echo(f"MLflow UI for {tracking_uri} at http://{host}:{port}")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    os.execvp(sys.executable, command)
