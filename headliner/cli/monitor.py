"""Monitoring from the command line: `--pipeline monitoring` (judge the served version's traffic, write the
reports, and retrain on a `retrain` decision when allowed), `feedback` (true labels for served answers)
and `simulate-traffic` (held-out rows sent to a running service, so monitoring has something to judge)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from headliner.cli.common import (
    CONFIG_OPTION,
    DEFAULT_CONFIG,
    DEFAULT_PORT,
    INFERENCE_LOG_OPTION,
    PIPELINE_COMPONENTS,
    TOKEN_OPTION,
    echo_lines,
    fail,
    inference_log_settings,
    load_spec,
    project_path,
    set_quiet_defaults,
    version_text,
)

if TYPE_CHECKING:
    from headliner.cli.runs import RunOptions
    from headliner.spec import UseCaseSpec


@dataclass(frozen=True)
class MonitoringOptions:
    """The monitoring options of --pipeline: `version` None judges the version the log shows being served."""

    version: str | None
    since: str | None
    last: int | None
    inference_log: str | None
    retrain: bool | None
    reports_dir: str


@dataclass(frozen=True)
class RetrainingRun:
    """How a `retrain` decision runs the training pipeline: the data and options of --pipeline."""

    data: str | None
    rows: int | None
    options: RunOptions


def monitor(spec: UseCaseSpec, options: RunOptions, monitoring: MonitoringOptions, retraining: RetrainingRun) -> None:
    """Judge the version's window of the inference log and write its reports; on `retrain`, alert and (when
    allowed) start the training pipeline with the decision as its recorded trigger."""
    from headliner.cli import runs, summaries
    from headliner.model.versions import find_model_version
    from headliner.monitoring.loop import monitored_version, retraining_allowed, retraining_trigger
    from headliner.monitoring.window import WindowSelection, parse_since
    from headliner.reports.html import write_report_folder
    from headliner.serving.settings import url_without_password

    log_url = inference_log_settings(monitoring.inference_log).inference_log_url()
    since = monitoring.since
    selection = WindowSelection(since=parse_since(since) if since else None, last=monitoring.last)
    version = monitored_version(log_url, spec.name, monitoring.version)
    number: int = find_model_version(spec.name, version).number
    click.echo(
        f"Monitoring {version_text(spec.name, number, version)}: "
        f"{selection.describe()} of {url_without_password(log_url)}"
    )
    run = runs.run_monitoring(spec, number, selection, log_url if monitoring.inference_log else None, options)
    summary, reports = runs.monitoring_reports(run)
    click.echo(f"\nRun '{run.name}' finished")
    echo_lines(summary.lines())
    folder = project_path(monitoring.reports_dir) / f"{spec.name}-v{number}-{summary.checked_at:%Y%m%d-%H%M%S}"
    write_report_folder(folder, {name.removesuffix("_report"): report for name, report in reports.items()})
    click.echo(f"Reports: {folder}/ (and in the dashboard: zenml login --local, run '{run.name}')")
    alert = runs.alert(run)
    if alert.webhook:
        click.echo(
            f"Alert sent to {alert.webhook}: "
            + (f"failed ({alert.webhook_error})" if alert.webhook_error else f"answered {alert.webhook_status}")
        )
    if summary.decision != "retrain":
        return
    if not retraining_allowed(spec, monitoring.retrain):
        click.echo(
            "Retraining is not automatic (retraining.automatic: false): "
            "run python run.py --pipeline training, or add --retrain"
        )
        return
    trigger = retraining_trigger(summary, str(run.name), number)
    click.echo(f"\nRetraining {spec.name}: {trigger['reason']}")
    options = {**retraining.options, "tags": ["retraining"]}
    new_run = runs.run_training(spec, retraining.data, retraining.rows, options, trigger)
    click.echo(f"Run '{new_run.name}' finished: ", nl=False)
    echo_lines(summaries.training_lines(spec.name, new_run))
    click.echo(
        "The new version serves nothing yet: promote it (python run.py promote request ...) "
        "or deploy it (--pipeline deployment)"
    )


@click.command()
@CONFIG_OPTION
@click.option(
    "--data",
    "data_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV or Parquet: request_id, label (or the target column), optional item.",
)
@INFERENCE_LOG_OPTION
def feedback(config: str, data_file: str, inference_log: str | None) -> None:
    """Store true labels for served predictions (by request id), for live performance in monitoring."""
    spec = load_spec(config)
    from headliner.errors import HeadlinerError
    from headliner.serving.feedback import FeedbackStore, feedback_from_file

    settings = inference_log_settings(inference_log)
    try:
        labels = feedback_from_file(data_file, spec.target.classes, spec.target.column)
        store = FeedbackStore(settings.inference_log_url())
        try:
            stored = store.write(labels, "file")
        finally:
            store.close()
    except HeadlinerError as exc:
        fail(str(exc))
    except Exception as exc:  # the database refused them
        fail(f"could not store the labels in {settings.inference_log_display()}: {type(exc).__name__}: {exc}")
    click.echo(f"Stored {stored:,} labels from {data_file} in {settings.inference_log_display()}")
    click.echo("Live performance: python run.py --pipeline monitoring")


@click.command("simulate-traffic")
@click.option(
    "--requests",
    "request_count",
    required=True,
    type=click.IntRange(min=1),
    help="Requests to send, one held-out row each.",
)
@click.option("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}", show_default=True, help="The running service.")
@click.option(
    "--drift",
    multiple=True,
    metavar="FEATURE=SHIFT",
    help="Add SHIFT to FEATURE in its own units (e.g. tempo=30); repeatable.",
)
@click.option(
    "--feedback-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of answered requests whose true label is sent to POST /feedback.",
)
@click.option(
    "--concurrency", default=8, show_default=True, type=click.IntRange(min=1), help="Requests in flight at once."
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Random seed of the rows drawn and the labels sent."
)
@TOKEN_OPTION
@CONFIG_OPTION
def simulate_traffic(
    request_count: int,
    url: str,
    drift: tuple[str, ...],
    feedback_rate: float,
    concurrency: int,
    seed: int,
    token: str | None,
    config: str,
) -> None:
    """Send held-out rows of the served version (optionally shifted) to a running service, so monitoring has traffic."""
    set_quiet_defaults()
    spec = load_spec(config)
    from headliner.errors import HeadlinerError
    from headliner.monitoring import traffic
    from headliner.stacks.setup import ensure_stack

    try:
        shifts = traffic.parse_drift(drift, spec)
        version = traffic.served_version(url, spec.name, token)
        ensure_stack(PIPELINE_COMPONENTS["data"])
        songs, labels = traffic.traffic_songs(
            traffic.held_out_split(spec.name, version), spec, request_count, shifts, seed
        )
        click.echo(f"Sending {request_count:,} held-out rows of '{spec.name}' version {version} to {url}")
        report = traffic.simulate_traffic(url, spec.name, songs, labels, feedback_rate, token, concurrency, seed)
    except HeadlinerError as exc:
        fail(str(exc))
    echo_lines(report.summary_lines())
    if report.answered == 0:
        fail(f"none of the {report.requests:,} requests was answered 200")
    click.echo(
        "Next: python run.py --pipeline monitoring" + ("" if config == DEFAULT_CONFIG else f" --config {config}")
    )
