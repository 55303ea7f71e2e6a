"""Test isolation: every test session gets its own ZenML config, store, repository and stack in a
temporary folder, set before ZenML is imported, so the user's global config is never touched."""

import os
import shutil
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
