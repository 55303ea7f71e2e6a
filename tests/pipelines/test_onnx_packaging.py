"""The ONNX materializer stores a packaged model through the session's artifact store, loads it back
byte for byte, and writes a model card and metadata for the dashboard."""

import os
import uuid

import onnx

from tests.helpers.models import example_metadata, packaged_linear_model


def test_materializer_round_trip_and_model_card(local_stack, jukebox_spec):
    from zenml.client import Client
    from zenml.enums import VisualizationType

    from materializers.onnx_materializer import OnnxModelMaterializer

    model = onnx.load_from_string(
        packaged_linear_model(jukebox_spec, rows=20_000, version="7", metadata=example_metadata(jukebox_spec))
    )
    store = Client().active_stack.artifact_store
    uri = os.path.join(store.path, "test-onnx", uuid.uuid4().hex)
    store.makedirs(uri)  # as ZenML does before it calls a materializer
    materializer = OnnxModelMaterializer(uri)
    materializer.save(model)
    assert materializer.load(onnx.ModelProto).SerializeToString() == model.SerializeToString()

    visualizations = materializer.save_visualizations(model)
    assert list(visualizations.values()) == [VisualizationType.HTML]
    with store.open(next(iter(visualizations)), "r") as handle:
        card = handle.read()
    assert "jukebox" in card and "version 7" in card
    for text in [*jukebox_spec.feature_names, *jukebox_spec.target.classes, "Name of AE", "0123456789abcdef"]:
        assert f">{text}<" in card, text
    assert ">top_k_accuracy<" in card and ">0.6000<" in card

    assert materializer.extract_metadata(model) == {
        "model_name": "jukebox",
        "model_version": "7",
        "n_inputs": 13,
        "n_classes": 72,
        "size_bytes": model.ByteSize(),
        "opset": next(o.version for o in model.opset_import if o.domain == ""),
    }
