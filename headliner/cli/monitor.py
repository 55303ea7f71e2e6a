"""Monitoring from the command line: `--pipeline monitoring` (judge the served version's traffic, write the
reports, and retrain on a `retrain` decision when allowed), `monitor --every` (the same on a schedule, each
run judging the traffic since the previous one; a retrained version gets a staging request),
`feedback` (true labels for served answers) and `simulate-traffic` (held-out rows sent to a running
service, so monitoring has something to judge)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from headliner.cli.common import (
    CONFIG_OPTION,
    DEFAULT_CONFIG,
    DEFAULT_PORT,
    INFERENCE_LOG_OPTION,
    PIPELINE_COMPONENTS,
    RUN_CONFIG_HELP,
    STAGE_OPTION,
    TOKEN_OPTION,
    echo_lines,
    fail,
    inference_log_settings,
    load_spec,
    project_path,
    reports_dir_option,
    retrain_option,
    root_cause,
    run_config_path,
    set_quiet_defaults,
    version_choice,
    version_text,
)

if TYPE_CHECKING:
    from headliner.cli.runs import RunOptions
    from headliner.monitoring.decision import Alert
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
    request_staging: bool = False  # file a staging request for the new version (runs nobody watches)


def monitor(spec: UseCaseSpec, options: RunOptions, monitoring: MonitoringOptions, retraining: RetrainingRun) -> None:
    """Judge the version's window of the inference log and write its reports; on `retrain`, alert and (when
    allowed) start the training pipeline with the decision as its recorded trigger, then (when
    `retraining.request_staging`) file the new version's staging request and alert naming it."""
    from headliner.cli import runs, summaries
    from headliner.model.versions import find_model_version
    from headliner.monitoring.loop import (
        awaiting_staging,
        monitored_version,
        request_staging,
        retraining_allowed,
        retraining_trigger,
    )
    from headliner.monitoring.window import WindowSelection, parse_since, window_report
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
    # an empty or too small window stops here in one line, before a pipeline run fails on it
    window_report(log_url, spec, str(number), selection, url_without_password(log_url))
    run = runs.run_monitoring(spec, number, selection, log_url if monitoring.inference_log else None, options)
    summary, reports = runs.monitoring_reports(run)
    click.echo(f"\nRun '{run.name}' finished")
    echo_lines(summary.lines())
    folder = project_path(monitoring.reports_dir) / f"{spec.name}-v{number}-{summary.checked_at:%Y%m%d-%H%M%S}"
    write_report_folder(folder, {name.removesuffix("_report"): report for name, report in reports.items()})
    click.echo(f"Reports: {folder}/ (and in the dashboard: zenml login --local, run '{run.name}')")
    echo_webhook(runs.alert(run))
    if summary.decision != "retrain":
        return
    if not retraining_allowed(spec, monitoring.retrain):
        click.echo(
            "Retraining is not automatic (retraining.automatic: false): "
            "run python run.py --pipeline training, or add --retrain"
        )
        return
    awaiting = awaiting_staging(spec.name) if retraining.request_staging else None
    if awaiting:
        click.echo(
            f"Not retraining: staging request {awaiting.id} of v{awaiting.version}, filed on an earlier retrain, "
            f"awaits a person's decision (python run.py promote approve|reject {awaiting.id})"
        )
        return
    trigger = retraining_trigger(summary, str(run.name), number)
    click.echo(f"\nRetraining {spec.name}: {trigger['reason']}")
    options = {**retraining.options, "tags": ["retraining"]}
    new_run = runs.run_training(spec, retraining.data, retraining.rows, options, trigger)
    click.echo(f"Run '{new_run.name}' finished: ", nl=False)
    echo_lines(summaries.training_lines(spec.name, new_run))
    if not retraining.request_staging:
        click.echo(
            "The new version serves nothing yet: promote it (python run.py promote request ...) "
            "or deploy it (--pipeline deployment)"
        )
        return
    request, alert = request_staging(spec, runs.registered_version(new_run).number, trigger)
    click.echo(
        f"Staging request {request.id} filed by {request.requested_by}: another person approves it "
        f"(python run.py promote approve {request.id}) or rejects it"
    )
    echo_webhook(alert)


def echo_webhook(alert: Alert) -> None:
    """Where an alert went besides the log, if anywhere, and how the webhook answered."""
    if alert.webhook:
        click.echo(
            f"Alert sent to {alert.webhook}: "
            + (f"failed ({alert.webhook_error})" if alert.webhook_error else f"answered {alert.webhook_status}")
        )


def _interval(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    from headliner.errors import MonitoringError
    from headliner.monitoring.schedule import parse_interval

    try:
        return parse_interval(value)
    except MonitoringError as exc:
        raise click.BadParameter(str(exc).removeprefix("--every "), ctx, param) from None


@click.command("monitor")
@click.option(
    "--every",
    required=True,
    metavar="30s|15m|1h|1d",
    callback=_interval,
    help="Run the monitoring pipeline this often, one run at a time, until SIGTERM or Ctrl-C.",
)
@CONFIG_OPTION
@STAGE_OPTION
@click.option(
    "--version", metavar="N|latest", help="Judge this version number, or `latest` (default: the version being served)."
)
@click.option(
    "--since", metavar="30m|24h|7d|ISO-TIME", help="The first run's window starts then (default: one interval back)."
)
@INFERENCE_LOG_OPTION
@retrain_option(then=", then file a staging request for the new version")
@reports_dir_option()
@click.option(
    "--run-config",
    type=click.Path(dir_okay=False),
    help=RUN_CONFIG_HELP,
)
def monitor_command(
    every: timedelta,
    config: str,
    stage: str | None,
    version: str | None,
    since: str | None,
    inference_log: str | None,
    retrain: bool | None,
    reports_dir: str,
    run_config: str | None,
) -> None:
    """Monitoring on a schedule: every interval, the monitoring pipeline judges the traffic since the previous
    run (as --pipeline monitoring does); a `retrain` decision, when retraining is allowed, trains a new version
    and files its staging request for a second person to approve. Without --version or --stage, each run judges
    the version the inference log shows being served. One scheduler per model (a lock); SIGTERM or Ctrl-C lets
    the current run finish, then stops."""
    set_quiet_defaults()
    spec = load_spec(config)
    chosen = version_choice(stage, version) if stage or version else None
    import threading

    from headliner.errors import HeadlinerError
    from headliner.model.registration import discard_unfinished_versions
    from headliner.model.training import load_training_config
    from headliner.monitoring.schedule import Tick, lock_path, run_every, run_lock, stop_on_signals
    from headliner.monitoring.window import duration_text, parse_since
    from headliner.serving.settings import local_state_dir
    from headliner.stacks.setup import ensure_stack

    try:
        first_since = parse_since(since) if since else None
        config_path = run_config_path(run_config, spec)
        load_training_config(config_path, spec)
    except HeadlinerError as exc:
        fail(str(exc))
    retraining = RetrainingRun(data=None, rows=None, options={"config_path": str(config_path)}, request_staging=True)

    def monitoring_run(tick: Tick) -> None:
        monitoring = MonitoringOptions(chosen, tick.since.isoformat(), None, inference_log, retrain, reports_dir)
        try:
            monitor(spec, {}, monitoring, retraining)
        except Exception as exc:  # reported by the schedule, which goes on; no half-registered version stays
            removed = discard_unfinished_versions(spec.name)
            if removed:
                click.echo(f"Removed the unfinished registration of the failed run: {', '.join(removed)}", err=True)
            raise root_cause(exc) from None

    try:
        with run_lock(lock_path(local_state_dir(), spec.name)):
            ensure_stack(PIPELINE_COMPONENTS["monitoring"])
            click.echo(
                f"Monitoring {spec.name} every {duration_text(every)} (pid {os.getpid()}); stop with SIGTERM or Ctrl-C"
            )
            stop = threading.Event()
            with stop_on_signals(stop, click.echo):
                run_every(every, monitoring_run, stop, click.echo, first_since)
    except HeadlinerError as exc:
        fail(str(exc))


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
    from headliner.model.onnx_packaging import target_description
    from headliner.serving.feedback import FeedbackStore, feedback_from_file

    settings = inference_log_settings(inference_log)
    target = None if spec.is_classification else target_description(spec)
    try:
        labels = feedback_from_file(data_file, spec.target.classes, spec.target.column, target)
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
