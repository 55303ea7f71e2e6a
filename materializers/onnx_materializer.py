"""Stores ONNX models (`onnx.ModelProto`, ZenML ships no materializer for them) as one `model.onnx`
file through the artifact store, and shows a model card built from the file's own metadata: a
classifier's classes, or a regressor's target with its unit and range."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import onnx
from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.metadata.metadata_types import MetadataType

from headliner.data.features import target_range, valid_range
from headliner.model.onnx_packaging import (
    CLASS_LABELS,
    CLASS_NAMES,
    DATA_FINGERPRINT,
    EXPLANATION_BACKGROUND,
    FEATURE_SCHEMA,
    LIBRARY_VERSIONS,
    METRICS,
    MODEL_NAME,
    MODEL_VERSION,
    PREDICTION,
    TARGET,
    TASK,
    model_metadata,
)
from headliner.reports.html import html_page, html_table
from headliner.spec import Feature, FeatureType, Target, Task

MODEL_FILE = "model.onnx"
VISUALIZATION_FILE = "model_card.html"


def _tensor_signature(value: onnx.ValueInfoProto) -> tuple[str, str]:
    """(element type, shape) of a graph input or output; an unknown dimension shows as N."""
    tensor = value.type.tensor_type
    dims = [str(dim.dim_value) if dim.HasField("dim_value") else dim.dim_param or "N" for dim in tensor.shape.dim]
    return onnx.TensorProto.DataType.Name(tensor.elem_type).lower(), f"[{', '.join(dims)}]"


def _feature_range(entry: dict[str, Any]) -> str:
    feature = Feature.model_validate(entry)
    return "0 or 1" if feature.dtype is FeatureType.BOOL else valid_range(feature)


def _metrics_rows(metrics_json: str) -> list[list[str]]:
    metrics = json.loads(metrics_json)
    if not isinstance(metrics, dict):
        return [[METRICS, json.dumps(metrics)]]
    return [
        [name, f"{value:.4f}" if isinstance(value, float) else json.dumps(value)] for name, value in metrics.items()
    ]


def _task(metadata: dict[str, str]) -> Task:
    """The model's task; files from before regression existed are classifiers."""
    return Task(metadata.get(TASK, Task.MULTICLASS_CLASSIFICATION.value))


def _target(metadata: dict[str, str]) -> Target:
    """A regressor's target as its TARGET metadata describes it."""
    return Target.model_validate(json.loads(metadata[TARGET]))


def _prediction_shape(model: onnx.ModelProto) -> str:
    """The shape of a regressor's `prediction` output, e.g. "[N, 1]"."""
    output = next(output for output in model.graph.output if output.name == PREDICTION)
    return _tensor_signature(output)[1]


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1e6:.2f} MB ({size_bytes:,} bytes)"


def model_card_html(model: onnx.ModelProto) -> str:
    """A page for people about one packaged model, from nothing but the model file."""
    metadata = model_metadata(model)
    schema = {entry["name"]: entry for entry in json.loads(metadata.get(FEATURE_SCHEMA, "[]"))}
    classes = json.loads(metadata.get(CLASS_LABELS, "[]"))
    names = json.loads(metadata[CLASS_NAMES]) if CLASS_NAMES in metadata else classes

    inputs = []
    for graph_input in model.graph.input:
        entry = schema.get(graph_input.name)
        described = [_feature_range(entry), entry["unit"] or "", entry["description"]] if entry else ["", "", ""]
        inputs.append([graph_input.name, *_tensor_signature(graph_input), *described])
    outputs = [[output.name, *_tensor_signature(output)] for output in model.graph.output]
    task = _task(metadata)
    if task is Task.MULTICLASS_CLASSIFICATION:
        classes_rows = [[i, c, n] for i, (c, n) in enumerate(zip(classes, names, strict=True))]
        answer = ("Classes", html_table(["#", "code", "name"], classes_rows))
    else:
        target = _target(metadata)
        forecast = [
            ["task", task.value],
            ["target", f"{target.column}: {target.description}"],
            ["unit", target.unit or ""],
            ["range", target_range(target)],
            ["output", f"{PREDICTION} float32 {_prediction_shape(model)}, clipped to the range"],
        ]
        answer = ("Forecast", html_table(["item", "value"], forecast))
    sections = [
        ("Inputs", html_table(["name", "type", "shape", "range", "unit", "description"], inputs)),
        ("Outputs", html_table(["name", "type", "shape"], outputs)),
        answer,
    ]
    if METRICS in metadata:
        sections.append(("Metrics", html_table(["metric", "value"], _metrics_rows(metadata[METRICS]))))
    facts = [
        ["data fingerprint", metadata.get(DATA_FINGERPRINT, "(not recorded)")],
        ["file size", _size(model.ByteSize())],
        ["opset", ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)],
        ["producer", f"{model.producer_name} {model.producer_version}"],
    ]
    if EXPLANATION_BACKGROUND in metadata:  # a JSON matrix of training rows: its size, not its numbers
        rows = json.loads(metadata[EXPLANATION_BACKGROUND])
        facts.append([EXPLANATION_BACKGROUND, f"{len(rows)} training rows x {len(rows[0]) if rows else 0} features"])
    shown = {FEATURE_SCHEMA, CLASS_LABELS, CLASS_NAMES, METRICS, DATA_FINGERPRINT, LIBRARY_VERSIONS}
    shown |= (
        {EXPLANATION_BACKGROUND} if task is Task.MULTICLASS_CLASSIFICATION else {EXPLANATION_BACKGROUND, TASK, TARGET}
    )
    facts += [[key, value] for key, value in sorted(metadata.items()) if key not in shown]
    sections.append(("Details", html_table(["item", "value"], facts)))
    if LIBRARY_VERSIONS in metadata:
        versions = sorted(json.loads(metadata[LIBRARY_VERSIONS]).items())
        sections.append(("Built with", html_table(["library", "version"], versions)))
    title = f"Model card: {metadata.get(MODEL_NAME, model.graph.name)} version {metadata.get(MODEL_VERSION, '?')}"
    return html_page(title, sections)


class OnnxModelMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (onnx.ModelProto,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: type[onnx.ModelProto]) -> onnx.ModelProto:
        with self.artifact_store.open(os.path.join(self.uri, MODEL_FILE), "rb") as handle:
            return onnx.load_model_from_string(handle.read())

    def save(self, data: onnx.ModelProto) -> None:
        with self.artifact_store.open(os.path.join(self.uri, MODEL_FILE), "wb") as handle:
            handle.write(data.SerializeToString())

    def save_visualizations(self, data: onnx.ModelProto) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, VISUALIZATION_FILE)
        with self.artifact_store.open(path, "w") as handle:
            handle.write(model_card_html(data))
        return {path: VisualizationType.HTML}

    def extract_metadata(self, data: onnx.ModelProto) -> dict[str, MetadataType]:
        metadata = model_metadata(data)
        default_opset = next((o.version for o in data.opset_import if o.domain in ("", "ai.onnx")), 0)
        task = _task(metadata)
        if task is Task.MULTICLASS_CLASSIFICATION:
            answers: dict[str, MetadataType] = {"n_classes": len(json.loads(metadata.get(CLASS_LABELS, "[]")))}
        else:
            target = _target(metadata)
            answers = {
                "task": task.value,
                "target": target.column,
                "target_unit": target.unit or "",
                "target_range": target_range(target),
                "output": f"{PREDICTION} {_prediction_shape(data)}",
            }
        return {
            "model_name": metadata.get(MODEL_NAME, data.graph.name),
            "model_version": metadata.get(MODEL_VERSION, ""),
            "n_inputs": len(data.graph.input),
            **answers,
            "size_bytes": data.ByteSize(),
            "opset": default_opset,
        }
