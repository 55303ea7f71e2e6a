#!/usr/bin/env python
"""Headliner's one entry point: runs the pipelines and the project's tools from the command line.

Heavy libraries (ZenML, pandas, scikit-learn) are imported inside the commands so `--help` is fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import click

PROJECT_ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = "configs/jukebox.yaml"

# The stack component types each pipeline needs besides an orchestrator and an artifact store.
PIPELINE_COMPONENTS: dict[str, tuple[str, ...]] = {"data": ("orchestrator", "artifact_store")}


def _set_quiet_defaults() -> None:
    """No telemetry (this may run without internet) and plain tracebacks; the user's env wins."""
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("AUTO_OPEN_DASHBOARD", "false")


def _hide_user_error_tracebacks() -> None:
    """Keep tracebacks of the user's own input errors off the terminal (the CLI prints one line);
    ZenML's stored step logs, shown in the dashboard, keep them."""
    import logging

    from headliner.errors import HeadlinerError

    class _DropUserErrorTraceback(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.exc_info and isinstance(record.exc_info[1], HeadlinerError):
                record.exc_info, record.exc_text = None, None
            return True

    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == "ZenMLConsoleHandler":
            handler.addFilter(_DropUserErrorTraceback())


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception, so a step's own error is reported rather than ZenML's wrapper."""
    while exc.__cause__ is not None and exc.__cause__ is not exc:
        exc = exc.__cause__
    return exc


def _load_spec(config: str):
    from headliner.errors import HeadlinerError
    from headliner.spec import load_spec

    path = Path(config)
    if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).exists():
        path = PROJECT_ROOT / path  # the default config works from any working directory
    try:
        return load_spec(path)
    except HeadlinerError as exc:
        _fail(str(exc))


def _run_data_pipeline(spec, data: Optional[str], rows: Optional[int], no_cache: bool):
    from headliner.data.sources import check_source
    from headliner.stack_setup import ensure_stack
    from pipelines.data_engineering import data_engineering

    if data:
        check_source(data)
    _hide_user_error_tracebacks()
    stack = ensure_stack(PIPELINE_COMPONENTS["data"])
    click.echo(f"Running data_engineering for '{spec.name}' on stack '{stack}'")
    run = data_engineering.with_options(enable_cache=not no_cache)(spec=spec, data=data, rows=rows)
    report = run.steps["split_data"].outputs["split_report"][0].load()
    click.echo(f"\nRun '{run.name}' finished: {report.rows_in:,} labelled examples")
    for name in ("train", "validation", "test"):
        click.echo(
            f"  {name + '_split':17} {report.facts[f'{name} rows']:>18}  fingerprint {report.facts[f'{name} fingerprint']}"
        )
    click.echo("Reports and splits are in the ZenML dashboard: zenml login --local")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--pipeline",
    type=click.Choice(sorted(PIPELINE_COMPONENTS)),
    help="The pipeline to run: data = ingest, validate, wrangle, label, split.",
)
@click.option(
    "--config",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Use-case spec (configs/jukebox.yaml or configs/wine.yaml).",
)
@click.option(
    "--data",
    metavar="PATH|URL|s3://...",
    help="Raw data as CSV or Parquet. Default: the spec's source (jukebox: synthetic charts).",
)
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    help="Rows to generate (generated sources), or a seeded sample of that many rows (files).",
)
@click.option("--no-cache", is_flag=True, help="Run every step again instead of reusing cached results.")
@click.pass_context
def cli(ctx: click.Context, pipeline: Optional[str], config: str, data: Optional[str], rows: Optional[int], no_cache: bool):
    """Headliner: from song characteristics to where the song becomes a hit, as ZenML pipelines."""
    if ctx.invoked_subcommand:
        if pipeline:
            raise click.UsageError("--pipeline cannot be combined with a command")
        return
    if not pipeline:
        click.echo(ctx.get_help())
        ctx.exit(2)
    _set_quiet_defaults()
    spec = _load_spec(config)
    from headliner.errors import HeadlinerError

    try:
        _run_data_pipeline(spec, data, rows, no_cache)
    except Exception as exc:  # a failed step surfaces here; show its own message, not a traceback
        cause = _root_cause(exc)
        if isinstance(cause, HeadlinerError):
            _fail(str(cause))
        _fail(f"pipeline '{pipeline}' failed: {type(cause).__name__}: {cause}")


@cli.command()
@click.option("--config", default=DEFAULT_CONFIG, show_default=True, type=click.Path(dir_okay=False))
@click.option("--rows", type=click.IntRange(min=1), help="Rows to generate (default: the spec's).")
@click.option("--seed", type=int, help="Random seed (default: the spec's).")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="File to write: .csv, .csv.gz or .parquet."
)
def generate(config: str, rows: Optional[int], seed: Optional[int], out: str):
    """Write the spec's raw data source to a file (jukebox: synthetic Kaggle-format charts)."""
    spec = _load_spec(config)
    from headliner.data.sources import load_raw_data, table_format
    from headliner.errors import HeadlinerError

    try:
        fmt = table_format(out)
        if seed is not None:
            spec = spec.model_copy(update={"source": spec.source.model_copy(update={"seed": seed})})
        frame = load_raw_data(spec, rows=rows)
    except HeadlinerError as exc:
        _fail(str(exc))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    click.echo(f"Wrote {len(frame):,} rows x {frame.shape[1]} columns to {out}")


@cli.command("mlflow-ui")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
def mlflow_ui(port: int, host: str):
    """Open the MLflow UI on the active stack's tracking store (runs until Ctrl+C)."""
    _set_quiet_defaults()
    from headliner.errors import HeadlinerError
    from headliner.stack_setup import ensure_stack

    try:
        ensure_stack(("experiment_tracker",))
    except HeadlinerError as exc:
        _fail(str(exc))
    from zenml.client import Client

    tracking_uri = Client().active_stack.experiment_tracker.get_tracking_uri()
    click.echo(f"MLflow UI for {tracking_uri} at http://{host}:{port}")
    os.execvp(
        sys.executable,
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port)],
    )


if __name__ == "__main__":
    cli()
