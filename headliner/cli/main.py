"""The root command `cli` (what `python run.py` runs, and what the docs render): the --pipeline options,
and every command registered from its module."""

from __future__ import annotations

import click

from headliner.cli.catalog import catalog
from headliner.cli.common import (
    CONFIG_OPTION,
    PIPELINE_COMPONENTS,
    PORT_OPTION,
    RUN_CONFIG_HELP,
    STAGE_OPTION,
    VERSION_OPTION,
    load_spec,
    reports_dir_option,
    retrain_option,
    set_quiet_defaults,
    version_choice,
)
from headliner.cli.data import generate
from headliner.cli.explain import explain
from headliner.cli.image import image
from headliner.cli.model_card import model_card
from headliner.cli.monitor import MonitoringOptions, feedback, monitor_command, simulate_traffic
from headliner.cli.monitoring_ui import monitoring_ui
from headliner.cli.pipeline import run_pipeline
from headliner.cli.promote import promote
from headliner.cli.rollout import rollout
from headliner.cli.serve import export_model, mlflow_ui, serve
from headliner.cli.stack import kubernetes_manifests, stack_import


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--pipeline",
    type=click.Choice(sorted(PIPELINE_COMPONENTS)),
    help="data = ingest, validate, wrangle, label, split; training = data, then train, evaluate, "
    "gate, package as ONNX, register a model version; deployment = serve a registered version; "
    "batch-inference = score --data FILE; monitoring = drift, quality, fairness and live performance of the "
    "served version's inference log, ok|warn|retrain; all = training, then deploy the new version.",
)
@CONFIG_OPTION
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
@click.option(
    "--run-config",
    type=click.Path(dir_okay=False),
    help=RUN_CONFIG_HELP,
)
@STAGE_OPTION
@VERSION_OPTION
@PORT_OPTION
@click.option(
    "--output", type=click.Path(dir_okay=False), help="batch-inference: predictions file to write (.csv or .parquet)."
)
@click.option(
    "--since", metavar="30m|24h|7d|ISO-TIME", help="monitoring: the window starts then (default: every logged request)."
)
@click.option(
    "--last", type=click.IntRange(min=1), metavar="N", help="monitoring: the window is the newest N requests."
)
@click.option(
    "--inference-log",
    metavar="PATH|URL",
    help="monitoring: the inference log database (default: HEADLINER_INFERENCE_LOG, or the local one).",
)
@retrain_option("monitoring: ")
@reports_dir_option("monitoring: ")
@click.pass_context
def cli(
    ctx: click.Context,
    pipeline: str | None,
    config: str,
    data: str | None,
    rows: int | None,
    no_cache: bool,
    run_config: str | None,
    stage: str | None,
    version: str | None,
    port: int,
    output: str | None,
    since: str | None,
    last: int | None,
    inference_log: str | None,
    retrain: bool | None,
    reports_dir: str,
) -> None:
    """Headliner: from song characteristics to where the song becomes a hit, as ZenML pipelines."""
    if ctx.invoked_subcommand:
        if pipeline:
            raise click.UsageError("--pipeline cannot be combined with a command")
        return
    if not pipeline:
        click.echo(ctx.get_help())
        ctx.exit(2)
    if pipeline == "batch-inference" and not data:
        raise click.UsageError("--pipeline batch-inference needs --data FILE (the songs to score)")
    if since and last:
        raise click.UsageError("give --since or --last, not both")
    chosen = version_choice(stage, version)
    set_quiet_defaults()
    spec = load_spec(config)
    # monitoring without --stage or --version judges the version the inference log shows being served
    monitored = chosen if stage or version else None
    monitoring = MonitoringOptions(monitored, since, last, inference_log, retrain, reports_dir)
    run_pipeline(pipeline, spec, data, rows, no_cache, run_config, chosen, port, output, monitoring)


for command in (
    generate,
    feedback,
    monitor_command,
    export_model,
    serve,
    promote,
    mlflow_ui,
    rollout,
    simulate_traffic,
    monitoring_ui,
    stack_import,
    kubernetes_manifests,
    image,
    catalog,
    model_card,
    explain,
):
    cli.add_command(command)
