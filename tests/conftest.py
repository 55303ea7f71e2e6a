"""Test isolation: every test session gets its own ZenML config, store, repository and stack in a
temporary folder, set before ZenML is imported, so the user's global config is never touched."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="headliner-tests-"))
ISOLATED_ENV = {
    "ZENML_CONFIG_PATH": str(_SESSION_DIR / "zenml-config"),
    "ZENML_REPOSITORY_PATH": str(_SESSION_DIR / "zenml-repo"),
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_ENABLE_RICH_TRACEBACK": "false",
    "AUTO_OPEN_DASHBOARD": "false",
    "BENTOML_HOME": str(_SESSION_DIR / "bentoml"),
}
os.environ.update(ISOLATED_ENV)
os.environ.pop("MLFLOW_TRACKING_URI", None)  # MLflow follows the stack's tracker, not the user's server
Path(ISOLATED_ENV["ZENML_REPOSITORY_PATH"]).mkdir(parents=True)

import pytest  # noqa: E402

from headliner.spec import UseCaseSpec, load_spec  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def jukebox_spec() -> UseCaseSpec:
    return load_spec(PROJECT_ROOT / "configs" / "jukebox.yaml")


@pytest.fixture(scope="session")
def wine_spec() -> UseCaseSpec:
    return load_spec(PROJECT_ROOT / "configs" / "wine.yaml")


@pytest.fixture(scope="session")
def isolated_env() -> dict[str, str]:
    """The environment for subprocesses (the CLI) that must use this session's ZenML state."""
    return {**os.environ, **ISOLATED_ENV}


@pytest.fixture(scope="session")
def local_stack() -> str:
    """The project's local stack, imported and activated in the isolated store as the CLI does."""
    from headliner.stack_setup import ensure_stack

    return ensure_stack(("orchestrator", "artifact_store"))


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python run.py ARGS` in the project, with the given environment."""
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def run_pipeline(args: list[str], env: dict[str, str]):
    """Run a pipeline through the CLI; returns the finished run from the store and the CLI's output."""
    from zenml.client import Client

    result = run_cli(args, env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    run_name = re.search(r"Run '([^']+)' finished", result.stdout).group(1)
    return Client().get_pipeline_run(run_name), result.stdout


FAST_RUN_CONFIG = str(PROJECT_ROOT / "tests" / "training_fast.yaml")


@pytest.fixture(scope="session")
def jukebox_training(isolated_env):
    """One training run of jukebox on 60k generated rows (enough for every country) with two quick candidates."""
    return run_pipeline(["--pipeline", "training", "--rows", "60000", "--run-config", FAST_RUN_CONFIG], isolated_env)


@pytest.fixture(scope="session")
def wine_training(isolated_env):
    return run_pipeline(["--pipeline", "training", "--config", "configs/wine.yaml"], isolated_env)
