#!/usr/bin/env python
"""Headliner's one entry point: runs the pipelines and the project's tools from the command line.

Heavy libraries (ZenML, pandas, scikit-learn) are imported inside the commands so `--help` is fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

PROJECT_ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = "configs/use_cases/jukebox.yaml"
DEFAULT_RUN_CONFIG = "configs/runs/training.yaml"
CONFIG_OPTION = click.option(
    "--config",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Use-case spec (configs/use_cases/jukebox.yaml or configs/use_cases/wine.yaml).",
)

# The stack component types each pipeline needs.
PIPELINE_COMPONENTS: dict[str, tuple[str, ...]] = {
    "data": ("orchestrator", "artifact_store"),
    "training": ("orchestrator", "artifact_store", "experiment_tracker", "model_registry"),
    "deployment": ("orchestrator", "artifact_store", "model_deployer"),
    "batch-inference": ("orchestrator", "artifact_store"),
    "monitoring": ("orchestrator", "artifact_store", "experiment_tracker", "model_registry"),
    "all": ("orchestrator", "artifact_store", "experiment_tracker", "model_registry", "model_deployer"),
}
DEFAULT_PORT = 3000


def _set_quiet_defaults() -> None:
    """No telemetry (this may run without internet) and plain tracebacks; the user's env wins."""
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("AUTO_OPEN_DASHBOARD", "false")
    # An MLflow server that is down fails a step in seconds, not after 7 retries with minutes of backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")


def _hide_user_error_tracebacks() -> None:
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


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception, so a step's own error is reported rather than ZenML's wrapper."""
    while exc.__cause__ is not None and exc.__cause__ is not exc:
        exc = exc.__cause__
    return exc


def _project_path(path: str) -> Path:
    """A relative path that does not exist here is looked up in the project (default configs work
    from any working directory)."""
    candidate = Path(path)
    if not candidate.is_absolute() and not candidate.exists() and (PROJECT_ROOT / candidate).exists():
        return PROJECT_ROOT / candidate
    return candidate


def _load_spec(config: str):
    from headliner.errors import HeadlinerError
    from headliner.spec import load_spec

    try:
        return load_spec(_project_path(config))
    except HeadlinerError as exc:
        _fail(str(exc))


def _print_splits(run) -> None:
    report = run.steps["split_data"].outputs["split_report"][0].load()
    click.echo(f"{report.rows_in:,} labelled examples")
    for name in ("train", "validation", "test"):
        click.echo(
            f"  {name + '_split':17} {report.facts[f'{name} rows']:>18}  fingerprint {report.facts[f'{name} fingerprint']}"
        )


def _print_model_version(run) -> None:
    report = run.steps["evaluate_model"].outputs["evaluation_report"][0].load()
    gates = run.steps["check_quality_gates"].outputs["quality_gates"][0].load()
    version = run.steps["register_model"].model_version
    click.echo(f"Registered model '{version.model.name}' version {version.number} (candidate '{report.candidate}')")
    click.echo(f"  {'test metric':22} {'model':>8} {'baseline':>9}")
    for metric, value in report.metrics.items():
        click.echo(f"  {metric:22} {value:8.4f} {report.baseline_metrics[metric]:9.4f}")
    for gate in gates.results:
        click.echo(f"  gate {gate.metric} {gate.bound}: {'passed' if gate.passed else 'FAILED'} ({gate.value:.4f})")
    click.echo("Model version in the dashboard (zenml login --local); runs and registry: python run.py mlflow-ui")


def _print_deployment(run) -> None:
    report = run.steps["smoke_test_service"].outputs["smoke_test"][0].load()
    if not report.applied:
        click.echo(
            f"Dry run: not applied; the service for '{report.model_name}' version {report.model_version} would be at {report.url}"
        )
        return
    click.echo(f"Service for '{report.model_name}' version {report.model_version} is live at {report.url}")
    for check in report.checks:
        click.echo(f"  smoke test {check.name}: {'passed' if check.passed else 'FAILED'} ({check.detail})")
    click.echo(
        f"  Open Inference Protocol: {report.url}/v2/models/{report.model_name}/infer   metrics: {report.url}/metrics"
    )
    click.echo(f"Open the page in a browser: {report.url}/")
    click.echo("Try it:")
    click.echo(f"  {report.curl}")
    click.echo(
        "Running services: zenml model-deployer models list; stop one: zenml model-deployer models delete <uuid>"
    )


def _deploy(spec, version: str, port: int, options: dict):
    """Deploy a registered version (number, 'latest' or stage) with the deployment pipeline."""
    from headliner.model.versions import find_model_version
    from pipelines.deployment import deployment

    number = find_model_version(spec.name, version).number
    click.echo(f"Deploying {_version_text(spec.name, number, version)} on port {port}")
    run = deployment.with_options(**options)(spec=spec, version=str(number), port=port)
    _print_deployment(run)
    return run


def _run_pipeline(
    pipeline_name: str,
    spec,
    data: str | None,
    rows: int | None,
    no_cache: bool,
    run_config: str,
    version: str,
    port: int,
    output: str | None,
    monitoring: dict,
):
    from headliner.data.sources import check_source
    from headliner.stacks.setup import ensure_stack

    if data:
        check_source(data)
    options: dict = {"enable_cache": False} if no_cache else {}
    training_options: dict = {}
    if pipeline_name in ("training", "all", "monitoring"):
        from headliner.model.training import load_training_config

        config_path = _project_path(run_config)
        load_training_config(config_path)
        training_options["config_path"] = str(config_path)
    _hide_user_error_tracebacks()
    stack = ensure_stack(PIPELINE_COMPONENTS[pipeline_name])
    if pipeline_name == "deployment":
        return _deploy(spec, version, port, options)
    if pipeline_name == "batch-inference":
        return _score_batch(spec, data, version, output, options)
    if pipeline_name == "monitoring":
        retrain = dict(spec=spec, data=data, rows=rows, options={**options, **training_options})
        return _monitor(spec, version, options, retrain=retrain, **monitoring)
    if pipeline_name == "data":
        from pipelines.data_engineering import data_engineering as pipeline
    else:
        from pipelines.training import training as pipeline
    click.echo(f"Running {pipeline.name} for '{spec.name}' on stack '{stack}'")
    run = pipeline.with_options(**options, **training_options)(spec=spec, data=data, rows=rows)
    click.echo(f"\nRun '{run.name}' finished: ", nl=False)
    _print_splits(run)
    if pipeline_name == "data":
        click.echo("Reports and splits are in the ZenML dashboard: zenml login --local")
        return run
    _print_model_version(run)
    if pipeline_name == "all":  # try the new version locally: no approval needed for `latest`
        number = run.steps["register_model"].model_version.number
        click.echo("")
        return _deploy(spec, str(number), port, options)
    return run


def _score_batch(spec, data: str, version: str, output: str | None, options: dict):
    """Score a file with a registered version (number, 'latest' or stage) with the batch pipeline."""
    from headliner.model.versions import find_model_version
    from pipelines.batch_inference import batch_inference

    number = find_model_version(spec.name, version).number
    click.echo(f"Scoring {data} with {_version_text(spec.name, number, version)}")
    run = batch_inference.with_options(**options)(spec=spec, data=data, version=str(number), output=output)
    for line in run.steps["score_batch"].outputs["batch_report"][0].load().summary_lines():
        click.echo(line)
    return run


def _monitor(
    spec,
    version: str | None,
    options: dict,
    since: str | None,
    last: int | None,
    log: str | None,
    retrain_flag: bool | None,
    reports_dir: str,
    retrain: dict,
):
    """Judge the served version's window of the inference log; on `retrain`, alert and (when allowed)
    start the training pipeline with the decision as its recorded trigger."""
    from headliner.errors import MonitoringError
    from headliner.model.versions import find_model_version
    from headliner.monitoring.window import WindowSelection, newest_logged_version, parse_since
    from headliner.serving.settings import ServingSettings, url_without_password
    from pipelines.monitoring import monitoring

    log_url = ServingSettings(**({"inference_log": log} if log else {})).inference_log_url()
    selection = WindowSelection(since=parse_since(since) if since else None, last=last)
    if version is None:  # the version that answered the newest request is the one being served
        version = newest_logged_version(log_url, spec.name)
        if version is None:
            raise MonitoringError(
                f"the inference log at {url_without_password(log_url)} holds no requests to '{spec.name}': serve it "
                "(python run.py --pipeline deployment) and send traffic (python run.py simulate-traffic --requests 500)"
            )
    number = find_model_version(spec.name, version).number
    click.echo(
        f"Monitoring {_version_text(spec.name, number, version)}: {selection.describe()} of {url_without_password(log_url)}"
    )
    run = monitoring.with_options(**options)(
        spec=spec, version=str(number), selection=selection, log_url=log_url if log else None
    )
    outputs = {name: run.steps[step].outputs[name][0].load() for step, name in MONITORING_REPORTS}
    summary = outputs["monitoring_summary"]
    click.echo(f"\nRun '{run.name}' finished")
    for line in summary.lines():
        click.echo(line)
    folder = _project_path(reports_dir) / f"{spec.name}-v{number}-{summary.checked_at:%Y%m%d-%H%M%S}"
    from headliner.reports.html import write_report_folder

    write_report_folder(folder, {name.removesuffix("_report"): report for name, report in outputs.items()})
    click.echo(f"Reports: {folder}/ (and in the dashboard: zenml login --local, run '{run.name}')")
    alert = run.steps["send_alert"].outputs["alert"][0].load()
    if alert.webhook:
        click.echo(
            f"Alert sent to {alert.webhook}: "
            + (f"failed ({alert.webhook_error})" if alert.webhook_error else f"answered {alert.webhook_status}")
        )
    if summary.decision != "retrain":
        return run
    allowed = spec.retraining.automatic if retrain_flag is None else retrain_flag
    if not allowed:
        click.echo(
            "Retraining is not automatic (retraining.automatic: false): run python run.py --pipeline training, or add --retrain"
        )
        return run
    from pipelines.training import training

    trigger = {
        "by": "monitoring",
        "monitoring_run": str(run.name),
        "model_version": str(number),
        "reason": "; ".join(summary.reasons),
    }
    click.echo(f"\nRetraining {spec.name}: {trigger['reason']}")
    new_run = training.with_options(**retrain["options"], tags=["retraining"])(
        spec=retrain["spec"], data=retrain["data"], rows=retrain["rows"], trigger=trigger
    )
    click.echo(f"Run '{new_run.name}' finished: ", nl=False)
    _print_splits(new_run)
    _print_model_version(new_run)
    click.echo(
        "The new version serves nothing yet: promote it (python run.py promote request ...) or deploy it (--pipeline deployment)"
    )
    return run


MONITORING_REPORTS = (
    ("decide_action", "monitoring_summary"),
    ("load_inference_window", "window_report"),
    ("check_feature_drift", "feature_drift_report"),
    ("check_prediction_drift", "prediction_drift_report"),
    ("check_data_quality", "data_quality_report"),
    ("check_fairness", "fairness_report"),
    ("evaluate_live_performance", "live_performance_report"),
)


def _version_text(model: str, number: int, chosen: str) -> str:
    """ "'jukebox' version 3 (production)": the version found, and how it was asked for if not by number."""
    return f"'{model}' version {number}" + ("" if chosen.isdigit() else f" ({chosen})")


def _version_choice(stage: str | None, version: str | None) -> str:
    """--stage or --version (a number or 'latest'; default 'latest')."""
    if stage and version:
        raise click.UsageError("give --stage or --version, not both")
    if version and not (version == "latest" or version.isdigit()):
        raise click.BadParameter(f"'{version}' is not a version number or 'latest'", param_hint="--version")
    return stage or version or "latest"


STAGE_OPTION = click.option(
    "--stage", type=click.Choice(["staging", "production"]), help="Use the version a promotion approved for this stage."
)
VERSION_OPTION = click.option("--version", metavar="N|latest", help="Use this version number, or the newest (default).")
PORT_OPTION = click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535), help="Port of the service."
)


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
    default=DEFAULT_RUN_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="ZenML run config of the training pipeline: candidates and selection metric.",
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
@click.option(
    "--retrain/--no-retrain",
    default=None,
    help="monitoring: start training on a `retrain` decision (default: the spec's retraining.automatic).",
)
@click.option(
    "--reports-dir",
    default="reports",
    show_default=True,
    type=click.Path(file_okay=False),
    help="monitoring: where the HTML reports go.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    pipeline: str | None,
    config: str,
    data: str | None,
    rows: int | None,
    no_cache: bool,
    run_config: str,
    stage: str | None,
    version: str | None,
    port: int,
    output: str | None,
    since: str | None,
    last: int | None,
    inference_log: str | None,
    retrain: bool | None,
    reports_dir: str,
):
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
    chosen_version = _version_choice(stage, version)
    _set_quiet_defaults()
    spec = _load_spec(config)
    from headliner.errors import HeadlinerError

    monitoring = dict(since=since, last=last, log=inference_log, retrain_flag=retrain, reports_dir=reports_dir)
    if pipeline == "monitoring" and not (stage or version):
        chosen_version = None  # the version the log shows being served
    try:
        _run_pipeline(pipeline, spec, data, rows, no_cache, run_config, chosen_version, port, output, monitoring)
    except Exception as exc:  # a failed step surfaces here; show its own message, not a traceback
        if pipeline in ("training", "all", "monitoring"):
            _discard_unfinished_versions(spec.name)
        cause = _root_cause(exc)
        if isinstance(cause, HeadlinerError):
            _fail(str(cause))
        _fail(f"pipeline '{pipeline}' failed: {type(cause).__name__}: {cause}")


def _discard_unfinished_versions(model: str) -> None:
    """After a failed training run: no half-registered model version stays (a re-run registers it whole)."""
    from headliner.model.registration import discard_unfinished_versions

    try:
        removed = discard_unfinished_versions(model)
    except Exception as exc:  # the store itself may be what failed; the run's own error is reported next
        click.echo(f"warning: could not check '{model}' for unfinished versions: {type(exc).__name__}: {exc}", err=True)
        return
    if removed:
        click.echo(f"Removed the unfinished registration of the failed run: {', '.join(removed)}", err=True)


@cli.command()
@CONFIG_OPTION
@click.option("--rows", type=click.IntRange(min=1), help="Rows to generate (default: the spec's).")
@click.option("--seed", type=int, help="Random seed (default: the spec's).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write: .csv, .csv.gz or .parquet.")
def generate(config: str, rows: int | None, seed: int | None, out: str):
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


@cli.command()
@CONFIG_OPTION
@click.option(
    "--data",
    "data_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV or Parquet: request_id, label (or the target column), optional item.",
)
@click.option(
    "--inference-log",
    metavar="PATH|URL",
    help="The inference log database (default: HEADLINER_INFERENCE_LOG, or the local one).",
)
def feedback(config: str, data_file: str, inference_log: str | None):
    """Store true labels for served predictions (by request id), for live performance in monitoring."""
    spec = _load_spec(config)
    from headliner.errors import HeadlinerError
    from headliner.serving.feedback import FeedbackStore, feedback_from_file
    from headliner.serving.settings import ServingSettings

    settings = ServingSettings(**({"inference_log": inference_log} if inference_log else {}))
    try:
        labels = feedback_from_file(data_file, spec.target.classes, spec.target.column)
        store = FeedbackStore(settings.inference_log_url())
        try:
            stored = store.write(labels, "file")
        finally:
            store.close()
    except HeadlinerError as exc:
        _fail(str(exc))
    except Exception as exc:  # the database refused them
        _fail(f"could not store the labels in {settings.inference_log_display()}: {type(exc).__name__}: {exc}")
    click.echo(f"Stored {stored:,} labels from {data_file} in {settings.inference_log_display()}")
    click.echo("Live performance: python run.py --pipeline monitoring")


@cli.command("export-model")
@CONFIG_OPTION
@click.option("--version", default="latest", show_default=True, help="Version number, 'latest' or a stage.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
def export_model(config: str, version: str, out: str):
    """Write a registered model version as one ONNX file (all a client needs to predict)."""
    _set_quiet_defaults()
    spec = _load_spec(config)
    from headliner.errors import HeadlinerError
    from headliner.model.versions import onnx_model_bytes
    from headliner.stacks.setup import ensure_stack

    try:
        ensure_stack(PIPELINE_COMPONENTS["data"])
        number, data = onnx_model_bytes(spec.name, version)
    except HeadlinerError as exc:
        _fail(str(exc))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(data)
    click.echo(f"Wrote model '{spec.name}' version {number} ({len(data):,} bytes) to {out}")


@cli.command()
@CONFIG_OPTION
@STAGE_OPTION
@VERSION_OPTION
@click.option(
    "--model-file", type=click.Path(dir_okay=False), help="Serve this .onnx file instead of a registered version."
)
@PORT_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every one).")
def serve(config: str, stage: str | None, version: str | None, model_file: str | None, port: int, host: str):
    """Run the BentoML service in the foreground (Ctrl+C stops it and flushes the inference log)."""
    chosen = _version_choice(stage, version)
    _set_quiet_defaults()
    spec = _load_spec(config)
    from headliner.errors import HeadlinerError
    from headliner.serving.settings import ServingSettings

    env = dict(os.environ)
    try:
        if model_file:
            from headliner.model.onnx_packaging import OnnxPredictor

            if stage or version:
                raise click.UsageError("--model-file cannot be combined with --stage or --version")
            path = Path(model_file).resolve()
            if not path.is_file():
                raise HeadlinerError(f"--model-file: no such file {path}")
            try:
                predictor = OnnxPredictor.from_path(path)
            except Exception as exc:  # not ONNX, or not packaged by this project
                raise HeadlinerError(f"--model-file {path}: not a packaged Headliner model ({exc})") from None
            env["HEADLINER_MODEL_FILE"] = str(path)
            what = f"'{predictor.model_name}' version {predictor.model_version} from {path}"
        else:
            from headliner.model.versions import find_model_version
            from headliner.stacks.setup import ensure_stack

            ensure_stack(PIPELINE_COMPONENTS["data"])
            number = find_model_version(spec.name, chosen).number
            # production is followed: promotions and rollout policies reach the running service
            env.update(
                HEADLINER_MODEL=spec.name,
                HEADLINER_MODEL_VERSION="production" if stage == "production" else str(number),
            )
            what = _version_text(spec.name, number, chosen)
            if stage == "production":
                what += ", following promotions and rollout policies (python run.py rollout ...)"
        _require_free_port(host, port)
        log_url = ServingSettings().inference_log_display()
    except HeadlinerError as exc:
        _fail(str(exc))
    click.echo(f"Serving {what} at http://{host}:{port}")
    click.echo(f"  open in a browser: http://{host}:{port}/")
    click.echo(
        f"  POST /predict, POST /v2/models/{spec.name if not model_file else predictor.model_name}/infer, GET /metrics"
    )
    click.echo(f"  inference log: {log_url}; Ctrl+C stops")
    os.chdir(PROJECT_ROOT)
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:Headliner",
        "--host",
        host,
        "--port",
        str(port),
    ]
    os.execvpe(sys.executable, command, env)


def _require_free_port(host: str, port: int) -> None:
    import socket

    from headliner.errors import HeadlinerError

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise HeadlinerError(
                f"port {port} on {host} is in use (a deployed service? see: zenml model-deployer models list); choose --port"
            ) from None


@cli.group()
def promote():
    """Four-eyes promotion: request a stage for a version, a second person approves or rejects."""


def _governance(action):
    """Run a governance action with the stack ready; refusals are one line and exit 1."""
    _set_quiet_defaults()
    from headliner.errors import HeadlinerError
    from headliner.stacks.setup import ensure_stack

    try:
        ensure_stack(PIPELINE_COMPONENTS["training"])
        return action()
    except HeadlinerError as exc:
        _fail(str(exc))


AS_OPTION = click.option(
    "--as",
    "as_name",
    metavar="NAME",
    help="Who you are, on the single-user local store only (recorded in the audit trail).",
)


@promote.command("request")
@click.option("--model", required=True)
@click.option("--version", required=True, type=click.IntRange(min=1))
@click.option("--to", "to_stage", required=True, type=click.Choice(["staging", "production"]))
@click.option("--reason", required=True)
@AS_OPTION
def promote_request(model: str, version: int, to_stage: str, reason: str, as_name: str | None):
    """Ask for a version to move to staging or production."""
    from headliner.governance import promotion as governance

    request = _governance(
        lambda: governance.request_promotion(model, version, to_stage, reason, governance.acting_user(as_name))
    )
    click.echo(f"Request {request.id}: {model} v{version} {request.from_stage} -> {to_stage} by {request.requested_by}")
    click.echo(f"A second person approves it with: python run.py promote approve {request.id}")


@promote.command("approve")
@click.argument("request_id", required=False)
@click.option("--model", help="With --version, instead of REQUEST_ID: that version's pending request.")
@click.option("--version", type=click.IntRange(min=1), help="With --model, instead of REQUEST_ID.")
@click.option("--reason", default="", help="Why (optional).")
@click.option("--override", metavar="REASON", help="Approve a candidate worse than production, saying why.")
@AS_OPTION
def promote_approve(
    request_id: str | None,
    model: str | None,
    version: int | None,
    reason: str,
    override: str | None,
    as_name: str | None,
):
    """Approve a pending request (not your own); to production this archives the previous version."""
    from headliner.governance import promotion as governance

    if bool(request_id) == bool(model and version):
        raise click.UsageError("give REQUEST_ID, or --model and --version of a version with a pending request")

    def approve():
        chosen = request_id or governance.pending_request_of(model, version).id
        return governance.approve(chosen, governance.acting_user(as_name), reason, override)

    request = _governance(approve)
    click.echo(
        f"Approved {request.id} by {request.decided_by}: {request.model} v{request.version} is now in {request.to_stage}"
    )


@promote.command("reject")
@click.argument("request_id")
@click.option("--reason", required=True)
@AS_OPTION
def promote_reject(request_id: str, reason: str, as_name: str | None):
    """Reject a pending request (not your own)."""
    from headliner.governance import promotion as governance

    request = _governance(lambda: governance.reject(request_id, reason, governance.acting_user(as_name)))
    click.echo(f"Rejected {request.id} by {request.decided_by}: {request.decision_reason}")


@promote.command("list")
@click.option("--model", help="One model (default: all).")
def promote_list(model: str | None):
    """Pending requests, and which version holds which stage."""
    from headliner.governance import promotion as governance

    def listing():
        from zenml.client import Client

        names = [model] if model else [m.name for m in Client().list_models(size=1000).items]
        return [(name, governance.stage_holders(name)) for name in names], governance.pending_requests(model)

    holders, pending = _governance(listing)
    for name, stages in holders:
        held = ", ".join(f"{stage}: {', '.join(f'v{n}' for n in numbers) or '-'}" for stage, numbers in stages.items())
        click.echo(f"{name}  {held}")
    click.echo(f"\n{len(pending)} pending request(s)")
    for r in pending:
        click.echo(
            f"  {r.id}  {r.model} v{r.version} {r.from_stage} -> {r.to_stage}  by {r.requested_by} at {r.requested_at[:19]}Z: {r.reason}"
        )


@promote.command("history")
@click.option("--model", required=True)
@click.option("--version", type=click.IntRange(min=1))
def promote_history(model: str, version: int | None):
    """The audit trail: who did what, when and why."""
    from headliner.governance import promotion as governance

    for e in _governance(lambda: governance.history(model, version)):
        click.echo(f"{e.at[:19]}Z  v{e.version}  {e.event:8} {e.stage:10} by {e.by:12} {e.request_id}  {e.reason}")


@promote.command("sync")
@click.option("--model", required=True)
def promote_sync(model: str):
    """Repair the MLflow registry mirror (aliases, tags, missing versions) from the ZenML store."""
    from headliner.governance import promotion as governance

    changes = _governance(lambda: governance.sync_mlflow_mirror(model))
    click.echo("\n".join(changes) if changes else "MLflow mirror already matches the ZenML store")


@cli.command("mlflow-ui")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True)
def mlflow_ui(port: int, host: str):
    """Open the MLflow UI on the active stack's tracking store (runs until Ctrl+C)."""
    _set_quiet_defaults()
    from headliner.errors import HeadlinerError
    from headliner.stacks.setup import ensure_stack

    try:
        ensure_stack(("experiment_tracker",))
    except HeadlinerError as exc:
        _fail(str(exc))
    from zenml.client import Client

    tracking_uri = Client().active_stack.experiment_tracker.get_tracking_uri()
    click.echo(f"MLflow UI for {tracking_uri} at http://{host}:{port}")
    os.execvp(
        sys.executable,
        [
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
        ],
    )


@cli.group()
def rollout():
    """Serve production and a candidate together (canary, A/B, shadow): set, status, rollback, report."""


ROLLOUT_SERVICE_OPTIONS = [
    click.option(
        "--url",
        default=f"http://127.0.0.1:{DEFAULT_PORT}",
        show_default=True,
        help="The running service, to confirm the change.",
    ),
    click.option(
        "--token", envvar="HEADLINER_API_TOKEN", help="Bearer token of the service (default: env HEADLINER_API_TOKEN)."
    ),
    click.option(
        "--inference-log",
        metavar="PATH|URL",
        help="The inference log database, where the policy is kept (default: HEADLINER_INFERENCE_LOG, or the local one).",
    ),
    CONFIG_OPTION,
]


def _rollout_service_options(command):
    for option in reversed(ROLLOUT_SERVICE_OPTIONS):
        command = option(command)
    return command


def _rollout_store(inference_log: str | None):
    from headliner.serving.rollout import PolicyStore
    from headliner.serving.settings import ServingSettings

    settings = ServingSettings(**({"inference_log": inference_log} if inference_log else {}))
    return PolicyStore(settings.inference_log_url()), settings.inference_log_url()


def _write_policy(spec, policy, as_name: str | None, url: str, token: str | None, inference_log: str | None):
    """Check the versions, store the policy, and wait for the running service to apply it."""
    _set_quiet_defaults()
    from headliner.errors import HeadlinerError
    from headliner.governance import promotion as governance
    from headliner.model.versions import find_model_version
    from headliner.serving.rollout import wait_until_applied
    from headliner.stacks.setup import ensure_stack

    try:
        ensure_stack(PIPELINE_COMPONENTS["data"])
        production = find_model_version(spec.name, "production").number
        if policy.mode != "off":
            candidate = find_model_version(spec.name, policy.candidate).number
            if candidate == production:
                raise HeadlinerError(
                    f"the candidate '{policy.candidate}' is version {candidate}, which is production already"
                )
        store, _ = _rollout_store(inference_log)
        try:
            record = store.write(spec.name, policy, governance.acting_user(as_name))
        finally:
            store.close()
        click.echo(
            f"Rollout policy {record.id} for '{spec.name}' (production v{production}"
            + (f", candidate v{candidate}" if policy.mode != "off" else "")
            + f"), set by {record.set_by}: {policy.describe()}"
        )
        status = wait_until_applied(url, record.id, token)
    except HeadlinerError as exc:
        _fail(str(exc))
    if status is None:
        click.echo(
            f"No service answers at {url}: a service started with `python run.py serve --stage production` applies it when it starts."
        )
    elif not status["rollouts"]:
        click.echo(
            f"warning: the service at {url} serves a fixed model and takes no policy; start it with `python run.py serve --stage production`."
        )
    elif status["policy_id"] != record.id:
        _fail(
            f"the service at {url} has not applied policy {record.id} within 15 s (it shows policy {status['policy_id']}); see its log"
        )
    else:
        candidate_text = f", candidate v{status['candidate_version']}" if status["candidate_version"] else ""
        click.echo(
            f"Applied by the service at {url}: production v{status['production_version']}{candidate_text}; {status['describe']}"
        )


@rollout.command("set")
@click.option(
    "--canary",
    type=click.FloatRange(0, 100, min_open=True),
    metavar="PERCENT",
    help="Send PERCENT % of requests to the candidate.",
)
@click.option(
    "--ab",
    type=click.FloatRange(0, 100, min_open=True),
    metavar="PERCENT",
    help="Send PERCENT % of users (by --ab-header) to the candidate, sticky.",
)
@click.option("--shadow", is_flag=True, help="Production answers; the candidate scores every request, logged only.")
@click.option("--candidate", default="staging", show_default=True, help="The candidate: a stage or a version number.")
@click.option(
    "--ab-header", default="x-user-id", show_default=True, help="ab: the request header that identifies a user."
)
@click.option("--reason", default="", help="Why (kept with the policy).")
@AS_OPTION
@_rollout_service_options
def rollout_set(canary, ab, shadow, candidate, ab_header, reason, as_name, url, token, inference_log, config):
    """Route traffic between production and a candidate; a running `serve --stage production` service applies it."""
    chosen = [name for name, value in (("canary", canary), ("ab", ab), ("shadow", shadow)) if value]
    if len(chosen) != 1:
        raise click.UsageError("give one of --canary PERCENT, --ab PERCENT or --shadow")
    from headliner.serving.rollout import RolloutPolicy

    policy = RolloutPolicy(
        mode=chosen[0], percent=canary or ab or 0.0, candidate=candidate, ab_header=ab_header, reason=reason
    )
    _write_policy(_load_spec(config), policy, as_name, url, token, inference_log)


@rollout.command("rollback")
@click.option("--reason", default="", help="Why (kept with the policy).")
@AS_OPTION
@_rollout_service_options
def rollout_rollback(reason, as_name, url, token, inference_log, config):
    """All traffic back to production at once."""
    from headliner.serving.rollout import RolloutPolicy

    _write_policy(_load_spec(config), RolloutPolicy(mode="off", reason=reason), as_name, url, token, inference_log)


@rollout.command("status")
@_rollout_service_options
def rollout_status(url, token, inference_log, config):
    """The policy in force, its recent history, and what the running service applies."""
    spec = _load_spec(config)
    from headliner.errors import HeadlinerError
    from headliner.serving.rollout import service_status

    store, _ = _rollout_store(inference_log)
    try:
        history = store.history(spec.name, 5)
        status = service_status(url, token)
    except HeadlinerError as exc:
        _fail(str(exc))
    finally:
        store.close()
    if not history:
        click.echo(
            f"No rollout policy for '{spec.name}' yet: production answers every request (python run.py rollout set ...)"
        )
    for index, record in enumerate(history):
        mark = "in force" if index == 0 else "earlier"
        reason = f" ({record.policy.reason})" if record.policy.reason else ""
        click.echo(
            f"{mark:8}  policy {record.id} set {record.set_at:%Y-%m-%d %H:%M:%S} UTC by {record.set_by}: {record.policy.describe()}{reason}"
        )
    if status is None:
        click.echo(f"No service answers at {url}")
    else:
        candidate_text = f", candidate v{status['candidate_version']}" if status["candidate_version"] else ""
        click.echo(
            f"Service at {url}: production v{status['production_version']}{candidate_text}; {status['describe']} (policy {status['policy_id']})"
        )


@rollout.command("report")
@click.option(
    "--since",
    metavar="30m|24h|7d|ISO-TIME",
    help="Only requests since then (default: every request logged under a rollout).",
)
@click.option(
    "--inference-log",
    metavar="PATH|URL",
    help="The inference log database (default: HEADLINER_INFERENCE_LOG, or the local one).",
)
@CONFIG_OPTION
def rollout_report(since: str | None, inference_log: str | None, config: str):
    """Per variant: requests, latency p50/p99, live accuracy; the versions' top-1 agreement (an artifact too)."""
    _set_quiet_defaults()
    spec = _load_spec(config)
    from headliner.errors import HeadlinerError
    from headliner.monitoring.window import parse_since
    from headliner.stacks.setup import ensure_stack

    try:
        moment = parse_since(since) if since else None
        ensure_stack(PIPELINE_COMPONENTS["data"])
        store, log_url = _rollout_store(inference_log)
        try:
            current = store.current(spec.name)
        finally:
            store.close()
        from pipelines.rollout_report import rollout_report as pipeline

        run = pipeline(spec=spec, log_url=log_url, since=moment, policy=current.policy.describe() if current else None)
    except Exception as exc:  # a failed step surfaces here; show its own message
        cause = _root_cause(exc)
        if isinstance(cause, HeadlinerError):
            _fail(str(cause))
        raise
    report = run.steps["report_rollout"].outputs["rollout_report"][0].load()
    click.echo(f"\nRun '{run.name}' finished")
    for line in report.lines():
        click.echo(line)
    click.echo(f"Report: artifact 'rollout_report' of run '{run.name}' (dashboard: zenml login --local)")


@cli.command("simulate-traffic")
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
@click.option(
    "--token", envvar="HEADLINER_API_TOKEN", help="Bearer token of the service (default: env HEADLINER_API_TOKEN)."
)
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
):
    """Send held-out rows of the served version (optionally shifted) to a running service, so monitoring has traffic."""
    _set_quiet_defaults()
    spec = _load_spec(config)
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
        _fail(str(exc))
    for line in report.summary_lines():
        click.echo(line)
    if report.answered == 0:
        _fail(f"none of the {report.requests:,} requests was answered 200")
    click.echo(
        "Next: python run.py --pipeline monitoring" + ("" if config == DEFAULT_CONFIG else f" --config {config}")
    )


@cli.command("stack-import")
@click.argument("stack_file", type=click.Path(dir_okay=False))
@click.option("--set", "activate", is_flag=True, help="Make it the active stack.")
def stack_import(stack_file: str, activate: bool):
    """Import a stack file of stack_configs/ (zenml stack import), registering the project's flavors it names."""
    _set_quiet_defaults()
    from headliner.errors import HeadlinerError
    from headliner.stacks.setup import import_stack_file

    try:
        name = import_stack_file(_project_path(stack_file), activate)
    except HeadlinerError as exc:
        _fail(str(exc))
    click.echo(f"Stack '{name}' imported" + (" and active" if activate else f"; activate it: zenml stack set {name}"))


@cli.command("kubernetes-manifests")
@CONFIG_OPTION
@STAGE_OPTION
@VERSION_OPTION
@click.option(
    "--stack", "stack_name", default="kubernetes", show_default=True, help="The Kubernetes stack to render for."
)
@click.option(
    "--what",
    "part",
    type=click.Choice(["all", "deployer", "orchestrator"]),
    default="all",
    show_default=True,
    help="deployer: what the model deployer applies to serve the version or stage; orchestrator: what one run of each "
    "pipeline creates (token Secret, orchestrator Job, one Job per step); all: both.",
)
@click.option(
    "--zenml-url", help="The ZenML server the pipeline pods talk to (default: the model deployer's zenml_server_url)."
)
@click.option(
    "--run-config",
    default=DEFAULT_RUN_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="ZenML run config the training pipeline is compiled with.",
)
@click.option(
    "--output", type=click.Path(file_okay=False), help="Also write one YAML file per object into this folder."
)
def kubernetes_manifests(
    config: str,
    stage: str | None,
    version: str | None,
    stack_name: str,
    part: str,
    zenml_url: str | None,
    run_config: str,
    output: str | None,
):
    """Dry run of the Kubernetes stack: print (YAML) the objects its model deployer would apply for a version or
    stage and those its orchestrator would create for a run of each pipeline, validated against the Kubernetes
    schemas; nothing is applied, no cluster is needed."""
    _set_quiet_defaults()
    spec = _load_spec(config)
    chosen = _version_choice(stage, version)
    import yaml

    from headliner.errors import HeadlinerError
    from headliner.stacks.kubernetes.dry_run import dry_run
    from headliner.stacks.kubernetes.manifests import KUBERNETES_VERSION

    try:
        groups = dry_run(stack_name, spec, chosen, _project_path(run_config), part, zenml_url)
    except HeadlinerError as exc:
        _fail(str(exc))
    except ValueError as exc:  # a manifest the Kubernetes schemas reject
        _fail(f"invalid manifest: {exc}")
    click.echo(
        "---\n".join(
            f"# {group}: {len(manifests)} objects\n" + yaml.safe_dump_all(manifests, sort_keys=False)
            for group, manifests in groups.items()
        ),
        nl=False,
    )
    manifests = [manifest for group in groups.values() for manifest in group]
    if output:
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
        for manifest in manifests:
            (folder / f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml").write_text(
                yaml.safe_dump(manifest, sort_keys=False)
            )
    click.echo(
        f"# {len(manifests)} objects valid against the Kubernetes {KUBERNETES_VERSION} schemas; nothing was applied",
        err=True,
    )


if __name__ == "__main__":
    cli()
