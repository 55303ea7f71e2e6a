"""Finding a registered model version's ONNX file in the ZenML Model Control Plane, by number,
'latest' or stage, for exporting and serving."""

from __future__ import annotations

from headliner.errors import HeadlinerError


def onnx_model_bytes(model_name: str, version: str = "latest") -> tuple[int, bytes]:
    """(version number, ONNX file bytes) of a model version; `version` is a number, 'latest' or a stage."""
    import materializers  # noqa: F401  (registers the ONNX materializer)
    from zenml.client import Client

    client = Client()
    if not client.list_models(name=model_name).total:
        raise HeadlinerError(f"no registered model '{model_name}': train it first (python run.py --pipeline training)")
    try:
        model_version = client.get_model_version(model_name, version)
    except KeyError:
        raise HeadlinerError(
            f"model '{model_name}' has no version '{version}'; see: zenml model version list --model={model_name}"
        ) from None
    artifact = model_version.get_artifact("onnx_model")
    if artifact is None:
        raise HeadlinerError(f"model '{model_name}' version {model_version.number} has no onnx_model artifact")
    return model_version.number, artifact.load().SerializeToString()
