"""The service in the foreground (`run.py serve`): the ONNX file it may serve instead of a registered
version, the free port it needs, and the command that starts it from the project."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from headliner.errors import HeadlinerError

if TYPE_CHECKING:
    from headliner.model.onnx_packaging import OnnxPredictor


def packaged_model(model_file: str) -> tuple[Path, OnnxPredictor]:
    """The resolved path of an ONNX file packaged by this project, and its predictor."""
    from headliner.model.onnx_packaging import OnnxPredictor  # ONNX Runtime: only when a file is served

    path = Path(model_file).resolve()
    if not path.is_file():
        raise HeadlinerError(f"--model-file: no such file {path}")
    try:
        return path, OnnxPredictor.from_path(path)
    except Exception as exc:  # not ONNX, or not packaged by this project
        raise HeadlinerError(f"--model-file {path}: not a packaged Headliner model ({exc})") from None


def require_free_port(host: str, port: int) -> None:
    """Refuse a port something already listens on (e.g. a service the deployment pipeline started)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise HeadlinerError(
                f"port {port} on {host} is in use "
                "(a deployed service? see: zenml model-deployer models list); choose --port"
            ) from None


def serve_command(host: str, port: int) -> list[str]:
    """The command that serves the service in this process's Python (serving/__main__.py: `bentoml serve` with
    the drain timeout of the settings); run it from the project root."""
    return [sys.executable, "-m", "serving", "--host", host, "--port", str(port)]
