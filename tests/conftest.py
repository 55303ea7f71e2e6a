"""Test isolation and the tiers: every test session gets its own ZenML config, store, repository and stack
in a temporary folder, set before ZenML is imported, so the user's global config is never touched; each
test gets the marker of the tier folder it lives in (tests/unit, tests/pipelines, tests/services,
tests/containers, tests/dashboards); and the
session fixtures the tiers share (specs, small packaged models, the training runs) live here."""

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

from headliner.spec import USE_CASES_DIR, UseCaseSpec, load_spec  # noqa: E402
from tests.helpers.cli import FAST_RUN_CONFIG, run_pipeline  # noqa: E402
from tests.helpers.models import packaged_linear_model  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent
TIERS = ("unit", "pipelines", "services", "containers", "dashboards")  # the markers registered in pyproject.toml
LAST_TIER = "dashboards"  # reads every run the other tiers made, so it runs after them


def _tier(item: pytest.Item) -> str:
    return item.path.resolve().relative_to(TESTS_DIR).parts[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the first folder under tests/, so `pytest -m unit` selects a tier; the
    dashboards tier goes last."""
    for item in items:
        tier = _tier(item)
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test lives in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(getattr(pytest.mark, tier))
    items.sort(key=lambda item: _tier(item) == LAST_TIER)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def jukebox_spec() -> UseCaseSpec:
    return load_spec(USE_CASES_DIR / "jukebox.yaml")


@pytest.fixture(scope="session")
def wine_spec() -> UseCaseSpec:
    return load_spec(USE_CASES_DIR / "wine.yaml")


@pytest.fixture(scope="session")
def store_sales_spec() -> UseCaseSpec:
    return load_spec(USE_CASES_DIR / "store_sales.yaml")


@pytest.fixture(scope="session")
def isolated_env() -> dict[str, str]:
    """The environment for subprocesses (the CLI) that must use this session's ZenML state."""
    return {**os.environ, **ISOLATED_ENV}


@pytest.fixture(scope="session")
def local_stack() -> str:
    """The project's local stack, imported and activated in the isolated store as the CLI does."""
    from headliner.stacks.setup import ensure_stack

    return ensure_stack(("orchestrator", "artifact_store"))


@pytest.fixture(scope="session")
def jukebox_training(isolated_env):
    """One training run of jukebox on 60k generated rows (enough for every country) with two quick candidates."""
    return run_pipeline(["--pipeline", "training", "--rows", "60000", "--run-config", FAST_RUN_CONFIG], isolated_env)


@pytest.fixture(scope="session")
def wine_training(isolated_env):
    """One training run of wine on its bundled data with the shipped run config."""
    return run_pipeline(["--pipeline", "training", "--config", "configs/use_cases/wine.yaml"], isolated_env)


@pytest.fixture(scope="session")
def jukebox_onnx_file(jukebox_spec, tmp_path_factory) -> Path:
    """A small packaged jukebox model (version '1') as an .onnx file, for serving and batch tests."""
    path = tmp_path_factory.mktemp("models") / "jukebox.onnx"
    path.write_bytes(packaged_linear_model(jukebox_spec, rows=20_000))
    return path


@pytest.fixture(scope="session")
def wine_onnx_file(wine_spec, tmp_path_factory) -> Path:
    """A small packaged wine model (version '1') as an .onnx file."""
    path = tmp_path_factory.mktemp("models") / "wine.onnx"
    path.write_bytes(packaged_linear_model(wine_spec, rows=None))
    return path


@pytest.fixture(scope="session")
def jukebox_versions(jukebox_onnx_file, jukebox_spec) -> dict[str, bytes]:
    """Versions '1' and '2' of jukebox: linear models fitted on different rows, so their answers differ."""
    return {"1": jukebox_onnx_file.read_bytes(), "2": packaged_linear_model(jukebox_spec, rows=8_000, version="2")}


@pytest.fixture(scope="session")
def predictor(jukebox_onnx_file):
    """The small jukebox model of `jukebox_onnx_file`, loaded."""
    from headliner.model.onnx_packaging import OnnxPredictor

    return OnnxPredictor.from_path(jukebox_onnx_file)


@pytest.fixture(scope="session")
def wine_predictor(wine_onnx_file):
    from headliner.model.onnx_packaging import OnnxPredictor

    return OnnxPredictor.from_path(wine_onnx_file)
