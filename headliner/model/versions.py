"""Finding a registered model version's ONNX file in the ZenML Model Control Plane, by number,
'latest' or stage, for exporting, serving and batch scoring."""

from __future__ import annotations

from typing import TYPE_CHECKING

from headliner.errors import HeadlinerError
from headliner.labels import Artifact

STAGES = ("staging", "production", "archived")
MLFLOW_ALIASES = {"staging": "staging", "production": "champion"}  # ZenML stage -> alias of its MLflow mirror
EVENT_KEY = "promotion_event."  # version metadata key prefix of audit events (ZenML allows no colons)

if TYPE_CHECKING:
    from zenml.models import ArtifactVersionResponse, ModelVersionResponse


def find_model_version(model_name: str, version: str | int = "latest") -> ModelVersionResponse:
    """The ZenML model version for a number, 'latest' or a stage, with an error the user can act on."""
    from zenml.client import Client

    client = Client()
    if not client.list_models(name=model_name).total:
        raise HeadlinerError(f"no registered model '{model_name}': train it first (python run.py --pipeline training)")
    try:
        return client.get_model_version(model_name, version)
    except KeyError:
        hint = (
            f"a second person must approve a promotion first (python run.py promote list --model {model_name})"
            if version in STAGES
            else f"see: zenml model version list --model={model_name}"
        )
        raise HeadlinerError(f"model '{model_name}' has no version '{version}'; {hint}") from None


def onnx_model_artifact(model_name: str, version: str = "latest") -> tuple[int, ArtifactVersionResponse]:
    """(version number, `onnx_model` artifact version) of a model version; `version` is a number,
    'latest' or a stage. A pipeline can take the artifact as a step input, which keeps the lineage."""
    import materializers  # noqa: F401  (registers the ONNX materializer)

    model_version = find_model_version(model_name, version)
    artifact = model_version.get_artifact(Artifact.ONNX_MODEL)
    if artifact is None:
        raise HeadlinerError(f"model '{model_name}' version {model_version.number} has no onnx_model artifact")
    return model_version.number, artifact


def onnx_model_bytes(model_name: str, version: str = "latest") -> tuple[int, bytes]:
    """(version number, ONNX file bytes) of a model version; `version` is a number, 'latest' or a stage."""
    number, artifact = onnx_model_artifact(model_name, version)
    return number, artifact.load().SerializeToString()
