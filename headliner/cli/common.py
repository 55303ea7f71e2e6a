"""What every command shares: defaults, the options several commands take, the one-line error exit, the
spec loading and the version choice. Imports nothing heavy (`--help` stays fast)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from headliner.serving.settings import ServingSettings
    from headliner.spec import UseCaseSpec

F = TypeVar("F", bound=Callable[..., object])

DEFAULT_CONFIG = "configs/use_cases/jukebox.yaml"
RUN_CONFIG_HELP = (
    "ZenML run config of the training pipeline: candidates and selection metric. Default: the run config of the "
    "spec's task, configs/runs/training.yaml (classification) or training_regression.yaml (regression)."
)
DEFAULT_PORT = 3000

# The stack component types each pipeline needs.
PIPELINE_COMPONENTS: dict[str, tuple[str, ...]] = {
    "data": ("orchestrator", "artifact_store"),
    "training": ("orchestrator", "artifact_store", "experiment_tracker", "model_registry"),
    "deployment": ("orchestrator", "artifact_store", "model_deployer"),
    "batch-inference": ("orchestrator", "artifact_store"),
    "monitoring": ("orchestrator", "artifact_store", "experiment_tracker", "model_registry"),
    "all": ("orchestrator", "artifact_store", "experiment_tracker", "model_registry", "model_deployer"),
}

CONFIG_OPTION = click.option(
    "--config",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Use-case spec (configs/use_cases/jukebox.yaml, wine.yaml or store_sales.yaml).",
)
STAGE_OPTION = click.option(
    "--stage", type=click.Choice(["staging", "production"]), help="Use the version a promotion approved for this stage."
)
VERSION_OPTION = click.option("--version", metavar="N|latest", help="Use this version number, or the newest (default).")
PORT_OPTION = click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535), help="Port of the service."
)
AS_OPTION = click.option(
    "--as",
    "as_name",
    metavar="NAME",
    help="Who you are, on the single-user local store only (recorded in the audit trail).",
)
TOKEN_OPTION = click.option(
    "--token", envvar="HEADLINER_API_TOKEN", help="Bearer token of the service (default: env HEADLINER_API_TOKEN)."
)


def _sentence(prefix: str, text: str) -> str:
    """A help text after a prefix such as "monitoring: ", or as a sentence of its own."""
    return prefix + text if prefix else text[0].upper() + text[1:]


def retrain_option(help_prefix: str = "", then: str = "") -> Callable[[F], F]:
    """--retrain/--no-retrain of the monitoring commands; unset means the spec's retraining.automatic."""
    return click.option(
        "--retrain/--no-retrain",
        default=None,
        help=_sentence(help_prefix, f"start training on a `retrain` decision{then}")
        + " (default: the spec's retraining.automatic).",
    )


def reports_dir_option(help_prefix: str = "") -> Callable[[F], F]:
    """--reports-dir of the monitoring commands."""
    return click.option(
        "--reports-dir",
        default="reports",
        show_default=True,
        type=click.Path(file_okay=False),
        help=_sentence(help_prefix, "where each run's HTML reports go."),
    )


INFERENCE_LOG_OPTION = click.option(
    "--inference-log",
    metavar="PATH|URL",
    help="The inference log database (default: HEADLINER_INFERENCE_LOG, or the local one).",
)


def set_quiet_defaults() -> None:
    """No telemetry (this may run without internet) and plain tracebacks; the user's env wins."""
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("AUTO_OPEN_DASHBOARD", "false")
    # An MLflow server that is down fails a step in seconds, not after 7 retries with minutes of backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")


def fail(message: str) -> NoReturn:
    """The one line a user error prints (stderr, red), and exit 1."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception, so a step's own error is reported rather than ZenML's wrapper."""
    while exc.__cause__ is not None and exc.__cause__ is not exc:
        exc = exc.__cause__
    return exc


# Project files that moved when the layout changed (0.9), so an old command line gets a clear answer.
MOVED_PATHS = {
    "configs/jukebox.yaml": "configs/use_cases/jukebox.yaml",
    "configs/wine.yaml": "configs/use_cases/wine.yaml",
    "configs/training.yaml": "configs/runs/training.yaml",
}


def run_config_path(run_config: str | None, spec: UseCaseSpec) -> Path:
    """The --run-config file, or the default run config of the spec's task."""
    from headliner.spec import DEFAULT_RUN_CONFIGS

    return project_path(run_config or DEFAULT_RUN_CONFIGS[spec.task])


def project_path(path: str) -> Path:
    """A relative path that does not exist here is looked up in the project (default configs work
    from any working directory)."""
    from headliner.spec import PROJECT_ROOT

    candidate = Path(path)
    if not candidate.is_absolute() and not candidate.exists():
        if (PROJECT_ROOT / candidate).exists():
            return PROJECT_ROOT / candidate
        if candidate.as_posix() in MOVED_PATHS:
            fail(f"{path} has moved to {MOVED_PATHS[candidate.as_posix()]} (docs/architecture.md, 'Moved')")
    return candidate


def load_spec(config: str) -> UseCaseSpec:
    """The use-case spec of --config; an invalid one is a one-line error."""
    from headliner.errors import HeadlinerError
    from headliner.spec import load_spec as load

    try:
        return load(project_path(config))
    except HeadlinerError as exc:
        fail(str(exc))


def ready_stack(components: Iterable[str]) -> str:
    """The active stack, set up if needed, with these component types; a stack that lacks one is a one-line error."""
    from headliner.errors import HeadlinerError
    from headliner.stacks.setup import ensure_stack

    try:
        return ensure_stack(components)
    except HeadlinerError as exc:
        fail(str(exc))


def inference_log_settings(inference_log: str | None) -> ServingSettings:
    """The serving settings, with --inference-log (when given) in place of the configured inference log."""
    from headliner.serving.settings import ServingSettings

    return ServingSettings(inference_log=inference_log) if inference_log else ServingSettings()


def version_choice(stage: str | None, version: str | None) -> str:
    """--stage or --version (a number or 'latest'; default 'latest')."""
    if stage and version:
        raise click.UsageError("give --stage or --version, not both")
    if version and not (version == "latest" or version.isdigit()):
        raise click.BadParameter(f"'{version}' is not a version number or 'latest'", param_hint="--version")
    return stage or version or "latest"


def version_text(model: str, number: int, chosen: str) -> str:
    """ "'jukebox' version 3 (production)": the version found, and how it was asked for if not by number."""
    return f"'{model}' version {number}" + ("" if chosen.isdigit() else f" ({chosen})")


def echo_lines(lines: Iterable[str]) -> None:
    for line in lines:
        click.echo(line)


def with_options(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator, listed in the order --help shows them."""

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
