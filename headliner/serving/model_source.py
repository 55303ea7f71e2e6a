"""Where a serving process gets its one ONNX file: a file, a registered version (number, 'latest' or
stage) from the ZenML Model Control Plane, or the BentoML model packed into the bento it runs from."""

from __future__ import annotations

from pathlib import Path

from headliner.errors import HeadlinerError
from headliner.serving.settings import ServingSettings

BENTO_MODEL_FILE = "model.onnx"  # headliner.deploy.deployment.save_bento_model writes it


def model_bytes(settings: ServingSettings, bento_model_dir: Path | None = None) -> tuple[bytes, str]:
    """(ONNX bytes, where they came from). The first that is set wins: the model packed into the bento
    (a bento is built for one model), HEADLINER_MODEL_FILE, HEADLINER_MODEL (+ HEADLINER_MODEL_VERSION)."""
    if bento_model_dir is not None:
        return (bento_model_dir / BENTO_MODEL_FILE).read_bytes(), f"bento model {bento_model_dir.name}"
    if settings.model_file is not None:
        path = Path(settings.model_file)
        if not path.is_file():
            raise HeadlinerError(f"HEADLINER_MODEL_FILE: no such file {path}")
        return path.read_bytes(), f"file {path}"
    if settings.model:
        from headliner.model.versions import onnx_model_bytes

        number, data = onnx_model_bytes(settings.model, settings.model_version)
        return data, f"the registry ({settings.model} version {number})"
    raise HeadlinerError("no model to serve: set HEADLINER_MODEL_FILE, or HEADLINER_MODEL and HEADLINER_MODEL_VERSION")
