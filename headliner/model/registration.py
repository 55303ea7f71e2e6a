"""Registration of a model version: its metadata in the ZenML Model Control Plane, its mirror in the
stack's model registry (MLflow: the ONNX flavour with the graph's signature, the test metrics beside the
baseline's and what the baseline is), and its model card's files beside the mirrored model in MLflow."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import onnx
import pandas as pd

from headliner.data.splitting import dataframe_fingerprint
from headliner.errors import HeadlinerError, StackSetupError
from headliner.labels import Artifact
from headliner.model.evaluation import EvaluationReport
from headliner.model.versions import EVENT_KEY, MLFLOW_ALIASES
from headliner.spec import UseCaseSpec

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from zenml.client import Client
    from zenml.integrations.mlflow.model_registries import MLFlowModelRegistry
    from zenml.metadata.metadata_types import MetadataType
    from zenml.models import PipelineRunResponse

REGISTRY_VERSION_KEY = "mlflow_registry_version"  # version metadata: set once the MLflow mirror exists
BASELINE_DESCRIPTION_KEY = "baseline_description"  # version metadata: what the baseline's metrics are of
MODEL_CARD_DIR = "model_card"  # the card's files, in the artifacts of the mirrored version's run
MODEL_CARD_TAG = "model_card"  # MLflow version tag: the URI of those files


def version_metadata(
    report: EvaluationReport, splits: dict[str, pd.DataFrame], registry_version: str
) -> dict[str, MetadataType]:
    """What the dashboard shows on the model version."""
    return {
        "task": str(report.task),
        "test_metrics": report.metrics,
        "baseline_metrics": report.baseline_metrics,
        BASELINE_DESCRIPTION_KEY: report.baseline_description,
        "candidate": report.candidate,
        "splits": {
            name: {"rows": len(frame), "fingerprint": dataframe_fingerprint(frame)} for name, frame in splits.items()
        },
        REGISTRY_VERSION_KEY: registry_version,
    }


@dataclass(frozen=True)
class Scores:
    """A version's test metrics, its baseline's on the same rows, and what the baseline is."""

    metrics: dict[str, float]
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    baseline_description: str = ""


def mirror_to_registry(
    spec: UseCaseSpec, onnx_model: onnx.ModelProto, version: int, run: PipelineRunResponse, report: EvaluationReport
) -> str:
    """Register the ONNX file as a new version of the registered model of the same name in the
    stack's model registry (logged to the active MLflow run), with the report's test metrics beside the
    baseline's and a link back to the ZenML `run`; returns the registry's version."""
    scores = Scores(
        metrics=report.metrics,
        baseline_metrics=report.baseline_metrics,
        baseline_description=report.baseline_description,
    )
    return _register_onnx(spec.name, spec.title, onnx_model, version, run, scores)


def onnx_signature(onnx_model: onnx.ModelProto) -> ModelSignature:
    """The MLflow signature of the graph as it is: one named float32 [-1, 1] input per feature; the outputs
    with their types and shapes (a classifier's probabilities [-1, C] and labels [-1], a regressor's
    forecast [-1, 1]), -1 for the batch dimension."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    types: dict[int, np.dtype[Any]] = {
        onnx.TensorProto.FLOAT: np.dtype(np.float32),
        onnx.TensorProto.STRING: np.dtype(str),
    }

    def tensor(value_info: onnx.ValueInfoProto) -> TensorSpec:
        elem_type = value_info.type.tensor_type.elem_type
        if elem_type not in types:
            raise ValueError(f"graph tensor '{value_info.name}' has type {onnx.TensorProto.DataType.Name(elem_type)}")
        dims = value_info.type.tensor_type.shape.dim
        shape = tuple(dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else -1 for dim in dims)
        return TensorSpec(types[elem_type], shape, value_info.name)

    initializers = {initializer.name for initializer in onnx_model.graph.initializer}
    inputs: list[ColSpec | TensorSpec] = [
        tensor(value) for value in onnx_model.graph.input if value.name not in initializers
    ]
    outputs: list[ColSpec | TensorSpec] = [tensor(value) for value in onnx_model.graph.output]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def _mlflow_registry(client: Client) -> MLFlowModelRegistry:
    """The active stack's model registry, which the mirror needs to be MLflow's."""
    from zenml.integrations.mlflow.model_registries import MLFlowModelRegistry

    registry = client.active_stack.model_registry
    if not isinstance(registry, MLFlowModelRegistry):
        raise StackSetupError(f"the active stack's model registry is not MLflow's: {registry}")
    return registry


def run_link(run: PipelineRunResponse) -> dict[str, str]:
    """MLflow tags that lead back to the ZenML run: its id, its name and, when a ZenML server gives one,
    its dashboard URL (the embedded local store has no dashboard URL)."""
    from zenml.utils.dashboard_utils import get_run_url

    tags = {"zenml_run_id": str(run.id), "zenml_run_name": run.name}
    url = get_run_url(run)
    if url:
        tags["zenml_run_url"] = url
    return tags


def metric_tags(metrics: dict[str, float], baseline: dict[str, float] | None = None) -> dict[str, str]:
    """A version's test metrics and its baseline's as MLflow tags, 4 decimals: `test_<metric>`,
    `baseline_<metric>`."""
    return {
        **{f"test_{name}": f"{value:.4f}" for name, value in metrics.items()},
        **{f"baseline_{name}": f"{value:.4f}" for name, value in (baseline or {}).items()},
    }


def version_description(title: str, version: int, scores: Scores, link: dict[str, str]) -> str:
    """The MLflow version's description (Markdown): what it is, its test metrics beside the baseline's, the
    ZenML run."""
    baseline = scores.baseline_metrics
    columns = ["test metric", "value", *(["baseline"] if baseline else [])]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for metric, value in scores.metrics.items():
        compared = [f"{baseline[metric]:.4f}" if metric in baseline else ""] if baseline else []
        lines.append("| " + " | ".join([metric, f"{value:.4f}", *compared]) + " |")
    if not scores.metrics:
        lines.append("| (not recorded) |" + " |" * (len(columns) - 1))
    rows = "\n".join(lines)
    compared_with = f"Baseline: {scores.baseline_description}.\n\n" if scores.baseline_description else ""
    name = link["zenml_run_name"]
    run = (
        f"[{name}]({link['zenml_run_url']})"
        if "zenml_run_url" in link
        else f"`{name}`: see it with `zenml login --local`, then Runs -> {name}"
    )
    return (
        f"{title}: ZenML model version {version} (ONNX, pre- and post-processing included).\n\n"
        f"{rows}\n\n{compared_with}ZenML run: {run}\n"
    )


@contextmanager
def _mlflow_run(name: str) -> Iterator[str]:
    """The id of the active MLflow run (a step's tracker run), or of one started for this block (a repair
    outside a run): a logged model's metrics belong to a run."""
    import mlflow

    active = mlflow.active_run()
    if active:
        yield active.info.run_id
        return
    with mlflow.start_run(run_name=name) as run:
        yield run.info.run_id


def _register_onnx(
    model: str,
    title: str,
    onnx_model: onnx.ModelProto,
    version: int,
    run: PipelineRunResponse,
    scores: Scores,
) -> str:
    import mlflow
    import onnxruntime
    import zenml
    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS
    from zenml.client import Client
    from zenml.model_registries.base_model_registry import ModelRegistryModelMetadata

    registry = _mlflow_registry(Client())
    # The stack's tracking URI, every time: a step's tracker clears MLflow's global URI when it ends, while
    # the registry configures MLflow only when it first makes its client (a repair after a run, in-process).
    registry.configure_mlflow()
    with _mlflow_run(f"register {model} v{version}") as run_id:
        info = mlflow.onnx.log_model(
            onnx_model,
            name=Artifact.ONNX_MODEL.value,
            signature=onnx_signature(onnx_model),
            pip_requirements=[f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"],
        )
        # On the logged model (the version's "Source model" page in the MLflow UI lists them): log_model
        # copied the run's own metrics (a training run's test_*); the rest, e.g. on a repair, here.
        present = {metric.key for metric in mlflow.get_logged_model(info.model_id).metrics or []}
        missing = {f"test_{name}": value for name, value in scores.metrics.items() if f"test_{name}" not in present}
        if missing:
            mlflow.log_metrics(missing, run_id=run_id, model_id=info.model_id)
    # Through the registry's MLflow client with the logged model's id: a tracking server accepts a
    # `models:/m-…` source only with it, and ZenML's register_model_version does not pass it.
    try:
        registry.get_model(name=model)
    except KeyError:
        registry.register_model(name=model)
    metadata = ModelRegistryModelMetadata(
        zenml_version=zenml.__version__,
        zenml_run_name=run.name,
        zenml_pipeline_name=run.pipeline.name if run.pipeline else None,
        zenml_model_version=str(version),
    )
    link = run_link(run)
    tags = {key: str(value) for key, value in metadata.model_dump().items() if value is not None}
    registered = registry.mlflow_client.create_model_version(
        name=model,
        source=info.model_uri,
        model_id=info.model_id,
        description=version_description(title, version, scores, link),
        tags={
            **tags,
            **link,
            **metric_tags(scores.metrics, scores.baseline_metrics),
            **({"baseline": scores.baseline_description} if scores.baseline_description else {}),
            **_task_tags(onnx_model),
        },
    )
    # What mlflow.register_model (and a tracking server) records: the logged model's page links its version.
    registry.mlflow_client.set_logged_model_tags(
        info.model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([{"name": model, "version": str(registered.version)}])}
    )
    return str(registered.version)


def _task_tags(onnx_model: onnx.ModelProto) -> dict[str, str]:
    """The MLflow version's task tag, and a regressor's target unit, from the ONNX file's metadata."""
    from headliner.model.onnx_packaging import TARGET, TASK, model_metadata

    meta = model_metadata(onnx_model)
    tags = {"task": meta.get(TASK, "multiclass_classification")}
    if TARGET in meta:
        tags["target_unit"] = str(json.loads(meta[TARGET]).get("unit") or "")
    return tags


def _mirrors(mlflow_client: Any, model: str, number: int) -> list[Any]:
    """The MLflow versions of `model` mirroring ZenML version `number` (tagged zenml_model_version)."""
    return list(mlflow_client.search_model_versions(f"name='{model}' and tag.zenml_model_version='{number}'"))


def mirrored_version(model: str, number: int) -> tuple[str | None, list[str]]:
    """The MLflow version mirroring ZenML version `number` (None if none does) and the registered model's
    aliases that point at it, as the registry answers now."""
    from zenml.client import Client

    mlflow_client = _mlflow_registry(Client()).mlflow_client
    found = _mirrors(mlflow_client, model, number)
    if not found:
        return None, []
    version = str(found[0].version)
    aliases = mlflow_client.get_registered_model(model).aliases
    return version, sorted(alias for alias, target in aliases.items() if str(target) == version)


def discard_model_version(model: str, number: int) -> list[str]:
    """Remove what a failed training run registered of version `number`: the MLflow versions mirroring it
    (when the registry answers) and the ZenML model version, so no half-registered version remains and
    a re-run registers it whole. Returns what was removed."""
    from zenml.client import Client

    client = Client()
    removed = []
    try:
        mlflow_client = _mlflow_registry(client).mlflow_client
        for mirrored in _mirrors(mlflow_client, model, number):
            mlflow_client.delete_model_version(model, mirrored.version)
            removed.append(f"MLflow version {mirrored.version}")
    except Exception as exc:  # the registry may be what failed; the ZenML version goes all the same
        removed.append(f"(MLflow mirror not checked: {type(exc).__name__})")
    version = client.get_model_version(model, number)
    client.delete_model_version(version.id)
    removed.append(f"ZenML version {number}")
    return removed


def discard_unfinished_versions(model: str, newest: int = 5) -> list[str]:
    """Discard (as `discard_model_version`) each of the `newest` versions of `model` that no run finished
    registering (no REGISTRY_VERSION_KEY metadata) while every run linked to it has failed: what a
    training run leaves when it fails before its step hooks can run (e.g. MLflow unreachable when the
    registration step starts). Returns what was removed."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    client = Client()
    try:
        versions = client.list_model_versions(model, size=newest, sort_by="desc:number").items
    except KeyError:  # no such model yet
        return []
    removed = []
    for version in versions:
        if REGISTRY_VERSION_KEY in client.get_model_version(model, version.number).run_metadata:
            continue
        runs = client.list_pipeline_runs(linked_to_model_version_id=version.id, size=20).items
        if runs and all(run.status == ExecutionStatus.FAILED for run in runs):
            removed += discard_model_version(model, version.number)
    return removed


AUDIT_TAG_EVENTS = 20  # MLflow tag values are size-limited: the newest events


def mirror_version(model: str, versions: list[int] | None = None) -> list[str]:
    """Repair the MLflow mirror of a model from the ZenML store, the source of truth: one MLflow
    version per ZenML version (re-registered from its ONNX file if missing, never duplicated), a
    `zenml_stage` tag and the newest audit events as tags, and the aliases 'staging' and 'champion'
    on the versions holding those stages. `versions` limits the per-version work to those numbers;
    aliases are always checked. Returns the changes made."""
    from zenml.client import Client

    client = Client()
    mlflow_client = _mlflow_registry(client).mlflow_client
    mirrored = {v.tags.get("zenml_model_version"): v for v in mlflow_client.search_model_versions(f"name='{model}'")}
    changes: list[str] = []
    holders: dict[str, str] = {}
    for model_version in client.list_model_versions(model, size=1000).items:
        number = str(model_version.number)
        stage = getattr(model_version.stage, "value", model_version.stage) or "none"
        if stage in MLFLOW_ALIASES and number in mirrored:
            holders[MLFLOW_ALIASES[stage]] = str(mirrored[number].version)
        if versions is not None and model_version.number not in versions:
            continue
        model_version = client.get_model_version(model, model_version.number)  # with its metadata
        if number in mirrored:
            mlflow_version = mirrored[number].version
            tags = mirrored[number].tags
        else:
            artifact = model_version.get_artifact(Artifact.ONNX_MODEL)
            if artifact is None or artifact.producer_pipeline_run_id is None:
                continue
            mlflow_version = _register_onnx(
                model,
                model,
                artifact.load(),
                model_version.number,
                client.get_pipeline_run(artifact.producer_pipeline_run_id),  # the run that packaged it
                Scores(
                    metrics=dict(model_version.run_metadata.get("test_metrics") or {}),  # type: ignore[arg-type]
                    baseline_metrics=dict(model_version.run_metadata.get("baseline_metrics") or {}),  # type: ignore[arg-type]
                    baseline_description=str(model_version.run_metadata.get(BASELINE_DESCRIPTION_KEY) or ""),
                ),
            )
            tags = {}
            changes.append(f"v{number}: re-registered the missing MLflow version (now MLflow version {mlflow_version})")
        events = sorted(
            (
                value
                for key, value in model_version.run_metadata.items()
                if key.startswith(EVENT_KEY) and isinstance(value, dict)
            ),
            key=lambda event: event["at"],
        )[-AUDIT_TAG_EVENTS:]
        wanted_tags = {
            "zenml_stage": stage,
            "promotion_history": json.dumps(
                [f"{e['at']} {e['event']} {e['stage']} by {e['by']}: {e['reason']}" for e in events]
            ),
        }
        for key, value in wanted_tags.items():
            if tags.get(key) != value:
                mlflow_client.set_model_version_tag(model, mlflow_version, key, value)
                changes.append(f"v{number}: MLflow tag {key} set")
        if stage in MLFLOW_ALIASES:
            holders[MLFLOW_ALIASES[stage]] = str(mlflow_version)
    aliases = mlflow_client.get_registered_model(model).aliases if mirrored or changes else {}
    for alias in MLFLOW_ALIASES.values():
        wanted = holders.get(alias)
        current = aliases.get(alias)
        if wanted and str(current) != wanted:
            mlflow_client.set_registered_model_alias(model, alias, wanted)
            changes.append(f"MLflow alias {alias} -> version {wanted}")
        elif not wanted and current is not None:
            mlflow_client.delete_registered_model_alias(model, alias)
            changes.append(f"MLflow alias {alias} removed")
    return changes


def log_model_card(model: str, number: int, files: Callable[[str], dict[str, str]]) -> str:
    """Log a model card's files under MODEL_CARD_DIR/ of the run that logged the MLflow version mirroring ZenML
    version `number` (logging again replaces them) and tag that version with their URI (MODEL_CARD_TAG);
    `files` makes the files (name -> text) from that URI, so the card can say where it is. Returns the URI."""
    from zenml.client import Client

    registry = _mlflow_registry(Client())
    registry.configure_mlflow()
    mlflow_client = registry.mlflow_client
    found = _mirrors(mlflow_client, model, number)
    if not found:
        raise HeadlinerError(
            f"no MLflow version mirrors {model} v{number} (repair: python run.py promote sync --model {model})"
        )
    version = found[0]
    run_id = version.run_id or (
        mlflow_client.get_logged_model(version.model_id).source_run_id if version.model_id else None
    )
    if not run_id:
        raise HeadlinerError(f"MLflow version {version.version} of {model} belongs to no run: nowhere to log its card")
    uri = f"{mlflow_client.get_run(run_id).info.artifact_uri.rstrip('/')}/{MODEL_CARD_DIR}"
    for name, text in files(uri).items():
        mlflow_client.log_text(run_id, text, f"{MODEL_CARD_DIR}/{name}")
    if version.tags.get(MODEL_CARD_TAG) != uri:
        mlflow_client.set_model_version_tag(model, version.version, MODEL_CARD_TAG, uri)
    return uri


def model_card_uri(model: str, number: int) -> str | None:
    """The URI of the card files of the MLflow version mirroring ZenML version `number`, if logged."""
    from zenml.client import Client

    mlflow_client = _mlflow_registry(Client()).mlflow_client
    found = _mirrors(mlflow_client, model, number)
    return found[0].tags.get(MODEL_CARD_TAG) if found else None
