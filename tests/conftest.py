"""Test isolation: every test session gets its own ZenML config, store, repository and stack in a
temporary folder, set before ZenML is imported, so the user's global config is never touched."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
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
    return load_spec(PROJECT_ROOT / "configs" / "use_cases" / "jukebox.yaml")


@pytest.fixture(scope="session")
def wine_spec() -> UseCaseSpec:
    return load_spec(PROJECT_ROOT / "configs" / "use_cases" / "wine.yaml")


@pytest.fixture(scope="session")
def isolated_env() -> dict[str, str]:
    """The environment for subprocesses (the CLI) that must use this session's ZenML state."""
    return {**os.environ, **ISOLATED_ENV}


@pytest.fixture(scope="session")
def local_stack() -> str:
    """The project's local stack, imported and activated in the isolated store as the CLI does."""
    from headliner.stacks.setup import ensure_stack

    return ensure_stack(("orchestrator", "artifact_store"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for servers the tests start)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    return run_pipeline(["--pipeline", "training", "--config", "configs/use_cases/wine.yaml"], isolated_env)


def packaged_linear_model(spec: UseCaseSpec, rows: int | None, version: str = "1") -> bytes:
    """A logistic-regression model of a use case, packaged as the training pipeline packages it, from
    `rows` generated rows (None: the spec's own source), without ZenML."""
    from headliner.data.sources import load_raw_data
    from headliner.data.splitting import split_examples
    from headliner.data.wrangling import label_examples, wrangle
    from headliner.labels import class_display_names
    from headliner.model.estimators import CandidateConfig, build_pipeline, feature_frame
    from headliner.model.onnx_packaging import package_onnx

    wrangled, _ = wrangle(load_raw_data(spec, rows=rows), spec, "test")
    labelled, _ = label_examples(wrangled, spec, "test")
    train, _, _, _ = split_examples(labelled, spec, "test")
    pipeline = build_pipeline(spec, CandidateConfig(name="test", family="logistic_regression"))
    pipeline.fit(feature_frame(train, spec), train[spec.target.column])
    metadata = {"class_names": json.dumps(class_display_names(spec)), "candidate": "test"}
    return package_onnx(pipeline, spec, version, metadata).SerializeToString()


@pytest.fixture(scope="session")
def jukebox_onnx_file(jukebox_spec, tmp_path_factory) -> Path:
    """A small packaged jukebox model (version '1') as an .onnx file, for serving and batch tests."""
    path = tmp_path_factory.mktemp("models") / "jukebox.onnx"
    path.write_bytes(packaged_linear_model(jukebox_spec, rows=20_000))
    return path


@pytest.fixture(scope="session")
def wine_onnx_file(wine_spec, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "wine.onnx"
    path.write_bytes(packaged_linear_model(wine_spec, rows=None))
    return path


@pytest.fixture(scope="session")
def predictor(jukebox_onnx_file):
    """The small jukebox model of `jukebox_onnx_file`, loaded."""
    from headliner.model.onnx_packaging import OnnxPredictor

    return OnnxPredictor.from_path(jukebox_onnx_file)


@pytest.fixture(scope="session")
def wine_predictor(wine_onnx_file):
    from headliner.model.onnx_packaging import OnnxPredictor

    return OnnxPredictor.from_path(wine_onnx_file)


def log_traffic(
    url: str,
    model_bytes: bytes,
    frame,
    spec: UseCaseSpec,
    shift: dict | None = None,
    feedback_rate: float = 0.0,
    prefix: str = "req",
    seconds_apart: float = 1.0,
) -> list[str]:
    """Write one logged /predict request per row of `frame` (features shifted by `shift`, clipped to the
    spec's ranges) through the real InferenceLog, as the service would, and true labels (the frame's target)
    for a seeded `feedback_rate` share of them. Returns the request ids."""
    import time

    import numpy as np

    from headliner.model.onnx_packaging import OnnxPredictor
    from headliner.serving.feedback import Feedback, FeedbackStore
    from headliner.serving.inference_log import InferenceLog, InferenceRecord

    predictor = OnnxPredictor(model_bytes)
    matrix = frame[spec.feature_names].to_numpy(dtype=np.float64).copy()
    for name, value in (shift or {}).items():
        feature, column = spec.feature(name), spec.feature_names.index(name)
        matrix[:, column] = np.clip(matrix[:, column] + value, feature.min, feature.max)
    order, top = predictor.top_classes(predictor.probabilities(matrix))
    labels = np.asarray(predictor.classes, dtype=object)[order]
    log = InferenceLog(url, spec.feature_names, flush_seconds=60)
    start = time.time() - len(matrix) * seconds_apart
    ids = [f"{prefix}-{i}" for i in range(len(matrix))]
    for i, request_id in enumerate(ids):
        log.append(
            InferenceRecord(
                start + i * seconds_apart,
                request_id,
                "predict",
                predictor.model_name,
                predictor.model_version,
                200,
                1.0,
                1,
                matrix[i : i + 1],
                labels[i : i + 1],
                top[i : i + 1],
                None,
            )
        )
    assert log.close() == 0
    chosen = np.flatnonzero(np.random.default_rng(0).random(len(ids)) < feedback_rate)
    store = FeedbackStore(url)
    store.write([Feedback(ids[i], 0, str(frame[spec.target.column].iloc[i])) for i in chosen], "api")
    store.close()
    return ids


@contextmanager
def serving(app):
    """An ASGI app under uvicorn on a free port of 127.0.0.1 in a background thread; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "uvicorn did not stop"
