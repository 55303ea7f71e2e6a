"""`run.py --pipeline NAME`: checks the inputs, readies the stack, runs the pipeline and prints what it
made (data, training, all and deployment here; batch-inference and monitoring in their own modules); a
failed run is one line and exit 1, and leaves no half-registered model version."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from headliner.cli import batch, monitor
from headliner.cli.common import (
    PIPELINE_COMPONENTS,
    echo_lines,
    fail,
    root_cause,
    run_config_path,
    version_text,
)

if TYPE_CHECKING:
    from headliner.cli.runs import RunOptions
    from headliner.spec import UseCaseSpec

TRAINING_PIPELINES = ("training", "all", "monitoring")  # may register a model version (monitoring: retraining)


def run_pipeline(
    pipeline_name: str,
    spec: UseCaseSpec,
    data: str | None,
    rows: int | None,
    no_cache: bool,
    run_config: str | None,
    version: str,
    port: int,
    output: str | None,
    monitoring: monitor.MonitoringOptions,
) -> None:
    """Run `pipeline_name` (a key of PIPELINE_COMPONENTS) with the options of --pipeline; `version` (a number,
    'latest' or a stage) is what deployment and batch-inference use."""
    from headliner.errors import HeadlinerError

    try:
        from headliner.data.sources import check_source
        from headliner.stacks.setup import ensure_stack

        if data:
            check_source(data)
        options: RunOptions = {"enable_cache": False} if no_cache else {}
        training_options: RunOptions = {}
        if pipeline_name in TRAINING_PIPELINES:
            from headliner.model.training import load_training_config

            config_path = run_config_path(run_config, spec)
            load_training_config(config_path, spec)
            training_options["config_path"] = str(config_path)
        hide_user_error_tracebacks()
        stack = ensure_stack(PIPELINE_COMPONENTS[pipeline_name])
        if pipeline_name == "deployment":
            deploy(spec, version, port, options)
        elif pipeline_name == "batch-inference":
            assert data is not None  # the command refuses batch-inference without --data
            batch.score_file(spec, data, version, output, options)
        elif pipeline_name == "monitoring":
            retraining = monitor.RetrainingRun(data=data, rows=rows, options={**options, **training_options})
            monitor.monitor(spec, options, monitoring, retraining)
        else:
            _train(pipeline_name, spec, stack, data, rows, port, options, training_options)
    except Exception as exc:  # a failed step surfaces here; show its own message, not a traceback
        if pipeline_name in TRAINING_PIPELINES:
            discard_unfinished_versions(spec.name)
        cause = root_cause(exc)
        if isinstance(cause, HeadlinerError):
            fail(str(cause))
        fail(f"pipeline '{pipeline_name}' failed: {type(cause).__name__}: {cause}")


def _train(
    pipeline_name: str,
    spec: UseCaseSpec,
    stack: str,
    data: str | None,
    rows: int | None,
    port: int,
    options: RunOptions,
    training_options: RunOptions,
) -> None:
    """data, training, or all (training, then deploy the new version: no approval is needed to try it locally)."""
    from headliner.cli import runs, summaries

    name = "data_engineering" if pipeline_name == "data" else "training"
    click.echo(f"Running {name} for '{spec.name}' on stack '{stack}'")
    if pipeline_name == "data":
        run = runs.run_data_engineering(spec, data, rows, options)
    else:
        run = runs.run_training(spec, data, rows, {**options, **training_options})
    click.echo(f"\nRun '{run.name}' finished: ", nl=False)
    if pipeline_name == "data":
        echo_lines(summaries.split_lines(runs.split_report(run)))
        click.echo("Reports and splits are in the ZenML dashboard: zenml login --local")
        return
    echo_lines(summaries.training_lines(spec.name, run))
    if pipeline_name == "all":
        click.echo("")
        deploy(spec, str(runs.registered_version(run).number), port, options)


def deploy(spec: UseCaseSpec, version: str, port: int, options: RunOptions) -> None:
    """Deploy a registered version (number, 'latest' or stage) with the deployment pipeline."""
    from headliner.cli import runs, summaries
    from headliner.model.versions import find_model_version

    number: int = find_model_version(spec.name, version).number
    click.echo(f"Deploying {version_text(spec.name, number, version)} on port {port}")
    run = runs.run_deployment(spec, number, port, options)
    echo_lines(summaries.deployment_lines(runs.smoke_test(run)))


def discard_unfinished_versions(model: str) -> None:
    """After a failed training run: no half-registered model version stays (a re-run registers it whole)."""
    from headliner.model.registration import discard_unfinished_versions as discard

    try:
        removed = discard(model)
    except Exception as exc:  # the store itself may be what failed; the run's own error is reported next
        click.echo(f"warning: could not check '{model}' for unfinished versions: {type(exc).__name__}: {exc}", err=True)
        return
    if removed:
        click.echo(f"Removed the unfinished registration of the failed run: {', '.join(removed)}", err=True)


def hide_user_error_tracebacks() -> None:
    """Keep tracebacks of the user's own input errors off the terminal (the CLI prints one line);
    ZenML's stored step logs, shown in the dashboard, keep them."""
    import logging

    import zenml  # noqa: F401  (installs the console handler filtered here)

    from headliner.errors import HeadlinerError

    class _DropUserErrorTraceback(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.exc_info and isinstance(record.exc_info[1], HeadlinerError):
                record.exc_info, record.exc_text = None, None
            return True

    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == "ZenMLConsoleHandler":
            handler.addFilter(_DropUserErrorTraceback())
