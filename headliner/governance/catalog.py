"""A static STAC catalog of the registered model versions, so that models are found, described and compared in
a catalog the way SharingHub describes every model: one STAC Item per version with the Machine Learning Model
(MLM) extension (its task, inputs, outputs: a classifier's classes or a regressor's forecast with its unit,
hyperparameters, the ONNX file with its checksum, links to the ZenML and MLflow versions), one Collection per
model; and its validation against the STAC core and extension JSON schemas that the installed packages ship,
offline: no schema is ever fetched.

Building an item (`version_item`) is a pure function of a `RegisteredVersion`; `registered_versions` gathers
those from the ZenML Model Control Plane and its MLflow mirror; `write_catalog` writes a self-contained folder
(the ONNX files copied in, every href relative); `validate_catalog` lists the problems of such a folder.

Schema versions: stac-model 0.7.0 writes the MLM v1.6.0 schema URI, but no installed package ships that schema
(pystac-ext-mlm 1.4.2 ships MLM v1.0.0 to v1.4.0), so the items declare MLM v1.4.0, which they satisfy, and
can be validated offline. Pre- and post-processing functions, which the graph holds itself, are left out
rather than written as null: MLM refers to the `processing` extension's schema for them, which no package
ships either.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headliner.errors import HeadlinerError
from headliner.labels import Artifact

if TYPE_CHECKING:
    import pystac
    from pystac.validation import JsonSchemaSTACValidator
    from zenml.models import ModelVersionResponse

STAC_EXTENSIONS = "https://stac-extensions.github.io"
MLM_SCHEMA = f"{STAC_EXTENSIONS}/mlm/v1.4.0/schema.json"
FILE_SCHEMA = f"{STAC_EXTENSIONS}/file/v2.1.0/schema.json"
VERSION_SCHEMA = f"{STAC_EXTENSIONS}/version/v1.2.0/schema.json"
ITEM_EXTENSIONS = (MLM_SCHEMA, FILE_SCHEMA, VERSION_SCHEMA)

CATALOG_ID = "headliner-models"
CATALOG_FILE = "catalog.json"
MODEL_ASSET = "model"
ONNX_MEDIA_TYPE = "application/octet-stream; application=onnx"  # MLM's advice: octet-stream + framework
ONNX_ARTIFACT_TYPE = "onnx"  # mlm:artifact_type: how the file was saved (a serialized onnx.ModelProto)
MODEL_ROLES = ["mlm:model"]
# The models are not geospatial: an Item has a null geometry (and no bbox); a Collection's extent must still
# have a bbox, so it is the whole globe (jukebox answers for 72 countries on every continent).
GLOBAL_BBOX = [-180.0, -90.0, 180.0, 90.0]
SHA256_MULTIHASH_PREFIX = "1220"  # multihash: code 0x12 (sha2-256), length 0x20 (32 bytes)
STAGE = "headliner:stage"
TEST_METRICS = "headliner:test_metrics"
TARGET = "headliner:target"  # a regressor's target: column, description, unit, min, max
MLM_TASKS = {"multiclass_classification": "classification", "regression": "regression"}  # spec task -> mlm:tasks
ONNX_DATA_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 11: "float64"}


@dataclass(frozen=True)
class RegistryLink:
    """A link from an item to where the version is registered: `href` to follow, `title` to read."""

    href: str
    title: str


@dataclass
class RegisteredVersion:
    """What the catalog says of one registered model version, as plain data (so an item is built and
    tested without a registry). `onnx_bytes` is the version's ONNX file; its metadata gives inputs,
    outputs and classes."""

    model: str
    number: int
    created: datetime
    onnx_bytes: bytes
    stage: str = "none"
    family: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    zenml: RegistryLink | None = None
    mlflow: RegistryLink | None = None
    zenml_run: RegistryLink | None = None

    @property
    def item_id(self) -> str:
        return f"{self.model}-v{self.number}"

    @property
    def onnx_file_name(self) -> str:
        return f"{self.item_id}.onnx"


@dataclass
class CatalogSummary:
    """What `write_catalog` wrote: the root catalog file and the item ids per model."""

    root: Path
    items: dict[str, list[str]]

    @property
    def item_count(self) -> int:
        return sum(len(ids) for ids in self.items.values())


def sha256_multihash(data: bytes) -> str:
    """`file:checksum` as the file extension wants it: a hex multihash, here sha2-256."""
    return SHA256_MULTIHASH_PREFIX + hashlib.sha256(data).hexdigest()


def _utc(moment: datetime) -> datetime:
    """ZenML's timestamps are naive UTC; STAC's are explicit."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _shape(value_info: Any) -> list[int]:
    """A graph input's or output's shape, -1 for a dynamic (batch) dimension."""
    dims = value_info.type.tensor_type.shape.dim
    return [dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else -1 for dim in dims]


def _data_type(value_info: Any) -> str:
    """An MLM data type for a graph tensor; strings (the class label) are 'other'."""
    return ONNX_DATA_TYPES.get(value_info.type.tensor_type.elem_type, "other")


def _number(value: float | None, unbounded: str) -> str:
    """A bound as people write it: 1200000, not 1.2e+06; 0.5 stays 0.5."""
    if value is None:
        return unbounded
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _feature_description(entry: dict[str, Any]) -> str:
    """A feature's meaning in words: the spec's description, type, valid range and unit."""
    low, high = entry.get("min"), entry.get("max")
    facts = [str(entry.get("dtype") or "float")]
    if low is not None or high is not None:
        facts.append(f"valid range [{_number(low, '-inf')}, {_number(high, 'inf')}]")
    if entry.get("unit"):
        facts.append(f"unit: {entry['unit']}")
    derive = entry.get("derive")
    if isinstance(derive, dict):
        periods = f" {derive['periods']}" if derive.get("periods") else ""
        facts.append(f"derived from the target's earlier values: {derive.get('kind')}{periods}")
    text = entry.get("description") or entry["name"]
    return f"{text} ({'; '.join(facts)}); raw value: the graph imputes and scales it"


def _target_description(target: dict[str, Any]) -> str:
    """A regressor's output in words: the forecast, its unit and valid range."""
    return (
        f"The forecast of {target.get('column')}: {target.get('description') or ''} (float32, unit: "
        f"{target.get('unit')}; valid range [{_number(target.get('min'), '-inf')}, {_number(target.get('max'), 'inf')}]"
        "), one per row."
    )


def _outputs(version: RegisteredVersion, graph_model: Any, meta: dict[str, str]) -> tuple[str, list[Any]]:
    """The MLM task and outputs of the graph: a classifier's probabilities and labels with its classes, or a
    regressor's one forecast column in the target's unit."""
    from stac_model.output import MLMClassification, ModelOutput, ModelResult

    from headliner.model.onnx_packaging import (
        CLASS_LABELS,
        CLASS_NAMES,
        LABELS,
        PREDICTION,
        PROBABILITIES,
        TARGET,
        TASK,
    )

    task = MLM_TASKS[meta.get(TASK, "multiclass_classification")]
    outputs = {output.name: output for output in graph_model.graph.output}
    if task == "regression":
        if PREDICTION not in outputs:
            raise HeadlinerError(f"{version.item_id}: the ONNX graph lacks the '{PREDICTION}' output")
        prediction = outputs[PREDICTION]
        return task, [
            ModelOutput(
                name=PREDICTION,
                tasks={task},
                result=ModelResult(shape=[-1, 1], dim_order=["batch", "value"], data_type=_data_type(prediction)),
                description=_target_description(json.loads(meta[TARGET])),
            )
        ]
    if PROBABILITIES not in outputs or LABELS not in outputs:
        raise HeadlinerError(f"{version.item_id}: the ONNX graph lacks the '{PROBABILITIES}' or '{LABELS}' output")
    labels = [str(label) for label in json.loads(meta[CLASS_LABELS])]
    names = json.loads(meta[CLASS_NAMES]) if CLASS_NAMES in meta else labels
    classes = [
        MLMClassification(value=index, name=label, description=str(name))
        for index, (label, name) in enumerate(zip(labels, names, strict=True))
    ]
    probabilities, label = outputs[PROBABILITIES], outputs[LABELS]
    return task, [
        ModelOutput(
            name=PROBABILITIES,
            tasks={task},
            result=ModelResult(
                shape=[-1, len(labels)], dim_order=["batch", "class"], data_type=_data_type(probabilities)
            ),
            classes=classes,
            description="The probability of each class, in the order of classification:classes.",
        ),
        ModelOutput(
            name=LABELS,
            tasks={task},
            result=ModelResult(shape=_shape(label) or [-1], dim_order=["batch"], data_type=_data_type(label)),
            classes=classes,
            description="The most likely class label (a string tensor), one per row.",
        ),
    ]


def mlm_properties(version: RegisteredVersion) -> dict[str, Any]:
    """The item's `mlm:*` properties, built with stac-model's pydantic models from the ONNX graph and its
    metadata (the task, the feature schema, the classes or the target, the library versions)."""
    import onnx
    from stac_model.input import InputStructure, ModelInput
    from stac_model.schema import MLModelProperties

    from headliner.model.onnx_packaging import (
        CLASS_LABELS,
        FEATURE_SCHEMA,
        LIBRARY_VERSIONS,
        TARGET,
        TASK,
        model_metadata,
    )

    graph_model = onnx.load_model_from_string(version.onnx_bytes)
    meta = model_metadata(graph_model)
    task = meta.get(TASK, "multiclass_classification")
    if task not in MLM_TASKS:
        raise HeadlinerError(f"{version.item_id}: the ONNX file's task '{task}' is not one of {list(MLM_TASKS)}")
    missing = [key for key in (FEATURE_SCHEMA, TARGET if task == "regression" else CLASS_LABELS) if key not in meta]
    if missing:
        raise HeadlinerError(f"{version.item_id}: the ONNX file has no {', '.join(missing)} metadata")
    schema = {entry["name"]: entry for entry in json.loads(meta[FEATURE_SCHEMA])}
    inputs = []
    for graph_input in graph_model.graph.input:
        entry = schema.get(graph_input.name, {"name": graph_input.name})
        shape = _shape(graph_input)
        inputs.append(
            ModelInput(
                name=graph_input.name,
                bands=[],
                input=InputStructure(
                    shape=shape, dim_order=["batch", "feature"][: len(shape)], data_type=_data_type(graph_input)
                ),
                description=_feature_description(entry),
            )
        )
    mlm_task, output_list = _outputs(version, graph_model, meta)
    libraries = json.loads(meta.get(LIBRARY_VERSIONS, "{}"))
    properties = MLModelProperties(
        name=version.model,
        architecture=version.family or meta.get("candidate") or "unknown",
        tasks={mlm_task},
        framework="ONNX",
        framework_version=libraries.get("onnx"),
        accelerator="amd64",
        accelerator_constrained=False,
        accelerator_summary="CPU: ONNX Runtime's default execution provider",
        input=inputs,
        output=output_list,
        hyperparameters=version.hyperparameters or None,
        pretrained=False,
    )
    dumped: dict[str, Any] = json.loads(properties.model_dump_json(by_alias=True))
    for section in ("mlm:input", "mlm:output"):
        for entry in dumped[section]:
            # null processing functions would need the processing schema; `variables` is MLM v1.5+
            for key in ("pre_processing_function", "post_processing_function", "variables"):
                if not entry.get(key):
                    entry.pop(key, None)
    return dumped


def _target(version: RegisteredVersion) -> dict[str, Any]:
    """A regressor's target as its ONNX file describes it (column, description, unit, min, max)."""
    import onnx

    from headliner.model.onnx_packaging import TARGET as TARGET_KEY
    from headliner.model.onnx_packaging import model_metadata

    target: dict[str, Any] = json.loads(model_metadata(onnx.load_model_from_string(version.onnx_bytes))[TARGET_KEY])
    return target


def version_item(version: RegisteredVersion, asset_href: str | None = None) -> pystac.Item:
    """The STAC Item of one registered version: MLM properties, the stage, the test metrics, the ONNX
    file as the model asset (`asset_href`, default: the file name beside the item) with its size and
    checksum, and links to the ZenML and MLflow versions."""
    import pystac

    mlm = mlm_properties(version)
    regression = "regression" in mlm["mlm:tasks"]
    properties: dict[str, Any] = {
        "title": f"{version.model} version {version.number}",
        "description": f"Model '{version.model}', version {version.number} of the ZenML Model Control Plane "
        f"(stage: {version.stage}); one ONNX file holds the whole model, preprocessing included.",
        "version": str(version.number),
        "deprecated": version.stage == "archived",
        STAGE: version.stage,
        **({TEST_METRICS: version.test_metrics} if version.test_metrics else {}),
        **({TARGET: _target(version)} if regression else {}),
        **mlm,
    }
    item = pystac.Item(
        id=version.item_id,
        geometry=None,
        bbox=None,
        datetime=_utc(version.created),
        properties=properties,
        stac_extensions=list(ITEM_EXTENSIONS),
    )
    item.add_asset(
        MODEL_ASSET,
        pystac.Asset(
            href=asset_href or f"./{version.onnx_file_name}",
            title=f"ONNX model {version.item_id}",
            description="The whole model: raw named features in, "
            + ("the forecast in the target's unit out." if regression else "class probabilities and labels out."),
            media_type=ONNX_MEDIA_TYPE,
            roles=list(MODEL_ROLES),
            extra_fields={
                "mlm:artifact_type": ONNX_ARTIFACT_TYPE,
                "file:size": len(version.onnx_bytes),
                "file:checksum": sha256_multihash(version.onnx_bytes),
            },
        ),
    )
    for rel, link in (("via", version.zenml), ("related", version.mlflow), ("related", version.zenml_run)):
        if link is not None:
            item.add_link(pystac.Link(rel=rel, target=link.href, title=link.title))
    return item


def model_collection(model: str, versions: list[RegisteredVersion], description: str = "") -> pystac.Collection:
    """A model's Collection: its versions' items (linked to their predecessor, successor and latest version),
    a global bbox (see GLOBAL_BBOX) and the time span in which the versions were registered."""
    import pystac

    if not versions:
        raise HeadlinerError(f"model '{model}' has no version with an ONNX file to catalog")
    created = sorted(_utc(version.created) for version in versions)
    collection = pystac.Collection(
        id=model,
        title=f"Model {model}",
        description=description or f"The registered versions of model '{model}'.",
        extent=pystac.Extent(
            pystac.SpatialExtent([list(GLOBAL_BBOX)]), pystac.TemporalExtent([[created[0], created[-1]]])
        ),
        license="other",
    )
    items = [version_item(version) for version in sorted(versions, key=lambda v: v.number)]
    tasks = sorted({task for item in items for task in item.properties["mlm:tasks"]})
    collection.keywords = ["machine learning", *tasks, "onnx", model]
    for older, newer in pairwise(items):  # the version extension's links, to compare versions
        older.add_link(pystac.Link("successor-version", newer, media_type=pystac.MediaType.GEOJSON))
        newer.add_link(pystac.Link("predecessor-version", older, media_type=pystac.MediaType.GEOJSON))
    for item in items:
        if item is not items[-1]:
            item.add_link(pystac.Link("latest-version", items[-1], media_type=pystac.MediaType.GEOJSON))
        collection.add_item(item)
    return collection


def check_catalog_folder(out: str | Path) -> bool:
    """Whether `out` holds a previous catalog of this command (to replace); raises if it is a file or a
    non-empty folder of something else. New or empty: False."""
    out = Path(out)
    if not out.exists():
        return False
    if not out.is_dir():
        raise HeadlinerError(f"--out {out}: is a file; expected a folder for the catalog")
    if not any(out.iterdir()):
        return False
    try:
        is_ours = json.loads((out / CATALOG_FILE).read_text())["id"] == CATALOG_ID
    except (OSError, ValueError, KeyError, TypeError):
        is_ours = False
    if not is_ours:
        raise HeadlinerError(
            f"--out {out}: the folder is not empty and holds no catalog written by this command; "
            "choose a new or empty folder"
        )
    return True


def write_catalog(
    versions: Iterable[RegisteredVersion], out: str | Path, descriptions: dict[str, str] | None = None
) -> CatalogSummary:
    """Write a self-contained static catalog to `out`: catalog.json -> one Collection per model -> one Item
    per version, each ONNX file beside its item, every href relative. A previous catalog there is
    replaced; any other non-empty folder is refused."""
    import pystac

    out = Path(out)
    by_model: dict[str, list[RegisteredVersion]] = {}
    for version in versions:
        by_model.setdefault(version.model, []).append(version)
    if not by_model:
        raise HeadlinerError("no registered model version to catalog")
    if check_catalog_folder(out):
        shutil.rmtree(out)
    catalog = pystac.Catalog(
        id=CATALOG_ID,
        title="Headliner models",
        description="Every registered version of the Headliner models: one collection per model, one item per "
        "version (STAC + Machine Learning Model extension), each with its ONNX file.",
    )
    descriptions = descriptions or {}
    for model, model_versions in sorted(by_model.items()):
        model_versions.sort(key=lambda v: v.number)
        catalog.add_child(model_collection(model, model_versions, descriptions.get(model, "")))
    catalog.normalize_hrefs(str(out.resolve()))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    items: dict[str, list[str]] = {}
    for model, model_versions in sorted(by_model.items()):
        collection = catalog.get_child(model)
        assert collection is not None
        for version in model_versions:
            item = collection.get_item(version.item_id)
            assert item is not None
            item_href = item.get_self_href()
            assert item_href is not None
            (Path(item_href).parent / version.onnx_file_name).write_bytes(version.onnx_bytes)
            items.setdefault(model, []).append(version.item_id)
    return CatalogSummary(root=out / CATALOG_FILE, items=items)


# ---------------------------------------------------------------- validation, offline


def shipped_schemas() -> dict[str, dict[str, Any]]:
    """The STAC extension schemas that pystac's extension packages ship, by schema URI."""
    import importlib.resources

    schemas: dict[str, dict[str, Any]] = {}
    root = importlib.resources.files("pystac.extensions").joinpath("json-schema")
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        for file in folder.iterdir():
            if file.name.endswith(".json"):
                schema = json.loads(file.read_text())
                uri = f"{STAC_EXTENSIONS}/{folder.name}/{file.name.removesuffix('.json')}/schema.json"
                if str(schema.get("$id", "")).rstrip("#") == uri:
                    schemas[uri] = schema
    return schemas


def offline_validator() -> JsonSchemaSTACValidator:
    """pystac's JSON-schema validator with every shipped schema (core and extensions) preloaded and an empty
    allow-list of schema hosts: a schema that is not shipped is reported, never fetched."""
    from pystac.validation import JsonSchemaSTACValidator

    validator = JsonSchemaSTACValidator(allow_list=[])
    validator.schema_cache.update(shipped_schemas())
    return validator


def _error_lines(where: str, schema: str, errors: list[Any]) -> list[str]:
    from jsonschema.exceptions import best_match

    lines = []
    for error in errors:
        path = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        message = error.message
        if error.context:  # oneOf/anyOf: the closest branch says what is wrong
            best = best_match(error.context)
            if best is not None:
                inner = "/".join(str(part) for part in best.absolute_path) or path
                message = f"{inner}: {best.message}" if inner != path else best.message
        lines.append(f"{where}: {schema}: {path}: {message}")
    return lines


def validate_stac_dict(stac: dict[str, Any], where: str, validator: JsonSchemaSTACValidator | None = None) -> list[str]:
    """The problems of one STAC object (a dict) against its core schema and the schema of each extension it
    declares, offline; `where` prefixes each problem (e.g. the file)."""
    from pystac import STACObjectType
    from pystac.errors import STACValidationError
    from pystac.validation.stac_validator import GetSchemaError

    validator = validator or offline_validator()
    object_type = {
        "Catalog": STACObjectType.CATALOG,
        "Collection": STACObjectType.COLLECTION,
        "Feature": STACObjectType.ITEM,
    }.get(str(stac.get("type")))
    if object_type is None:
        return [f"{where}: type is {stac.get('type')!r}; expected Catalog, Collection or Feature"]
    stac_version = str(stac.get("stac_version", ""))
    problems: list[str] = []
    for extension in [None, *stac.get("stac_extensions", [])]:  # None: the core schema
        schema = extension or "STAC core"
        try:
            if extension is None:
                validator.validate_core(stac, object_type, stac_version, href=where)
            else:
                validator.validate_extension(stac, object_type, stac_version, extension, href=where)
        except STACValidationError as exc:
            problems += _error_lines(where, schema, list(exc.source or [])) or [f"{where}: {schema}: {exc}"]
        except GetSchemaError as exc:
            problems.append(f"{where}: {schema}: a schema is not available offline ({exc})")
    return problems


def _asset_problems(stac: dict[str, Any], file: Path, where: str) -> list[str]:
    """A self-contained catalog's assets are relative files that exist, with the size and checksum stated."""
    problems = []
    for key, asset in (stac.get("assets") or {}).items():
        href = str(asset.get("href", ""))
        if "://" in href or href.startswith("/"):
            problems.append(f"{where}: assets/{key}: href {href!r} is not relative to the item")
            continue
        path = file.parent / href
        if not path.is_file():
            problems.append(f"{where}: assets/{key}: file {href} is missing")
            continue
        data = path.read_bytes()
        if "file:size" in asset and asset["file:size"] != len(data):
            problems.append(f"{where}: assets/{key}: file:size {asset['file:size']} but the file has {len(data)} bytes")
        if "file:checksum" in asset and asset["file:checksum"] != sha256_multihash(data):
            problems.append(f"{where}: assets/{key}: file:checksum does not match the file's sha256")
    return problems


def validate_catalog(path: str | Path) -> list[str]:
    """The problems of the catalog in folder `path` (empty if valid): every JSON file under it validated
    against the STAC core schema and the schemas of the extensions it declares (MLM, file, version), from
    the schemas shipped with the installed packages, offline; and every asset present with its size and
    checksum."""
    root = Path(path)
    if not (root / CATALOG_FILE).is_file():
        return [f"{root}: no {CATALOG_FILE}; expected the folder of a catalog"]
    validator = offline_validator()
    problems: list[str] = []
    for file in sorted(root.rglob("*.json")):
        where = str(file.relative_to(root))
        try:
            stac = json.loads(file.read_text())
        except ValueError as exc:
            problems.append(f"{where}: not JSON: {exc}")
            continue
        if not isinstance(stac, dict):
            problems.append(f"{where}: expected a JSON object")
            continue
        problems += validate_stac_dict(stac, where, validator)
        problems += _asset_problems(stac, file, where)
    return problems


# ---------------------------------------------------------------- the registry's versions


def _mlflow_link(model: str, number: int) -> RegistryLink | None:
    """The MLflow model version mirroring ZenML version `number`: the UI page on a tracking server, else a
    `models:/` URI and how to open the UI on the local store."""
    import mlflow
    from zenml.client import Client
    from zenml.integrations.mlflow.model_registries import MLFlowModelRegistry

    from headliner.model.registration import mirrored_version

    registry = Client().active_stack.model_registry
    if not isinstance(registry, MLFlowModelRegistry):
        return None
    mlflow_version, aliases = mirrored_version(model, number)
    if mlflow_version is None:
        return None
    registry.configure_mlflow()
    tracking_uri = mlflow.get_tracking_uri()
    page = f"#/models/{model}/versions/{mlflow_version}"
    named = f"MLflow model version {model} {mlflow_version}" + (f" (aliases: {', '.join(aliases)})" if aliases else "")
    if tracking_uri.startswith(("http://", "https://")):
        return RegistryLink(f"{tracking_uri.rstrip('/')}/{page}", named)
    return RegistryLink(
        f"models:/{model}/{mlflow_version}",
        f"{named} in the tracking store {tracking_uri}: python run.py mlflow-ui, then {page}",
    )


def _zenml_links(version: ModelVersionResponse) -> tuple[RegistryLink, RegistryLink | None]:
    """The ZenML model version (its dashboard page where one exists, else its id as a URN and how to see it)
    and the dashboard page of the run that registered it, if a server gives one."""
    from zenml.client import Client
    from zenml.utils.dashboard_utils import get_model_version_url, get_run_url

    name, number = version.model.name, version.number
    title = f"ZenML model version {name} {number} (id {version.id})"
    url = get_model_version_url(version)
    zenml = (
        RegistryLink(url, title)
        if url
        else RegistryLink(
            f"urn:uuid:{version.id}",
            f"{title}: python run.py promote history --model {name} --version {number}, "
            f"or zenml model version list --model={name}",
        )
    )
    run_link = None
    onnx_artifact = version.get_artifact(Artifact.ONNX_MODEL)
    if onnx_artifact is not None and onnx_artifact.producer_pipeline_run_id is not None:
        run = Client().get_pipeline_run(onnx_artifact.producer_pipeline_run_id)
        run_url = get_run_url(run)
        if run_url:
            run_link = RegistryLink(run_url, f"ZenML run {run.name}, which trained and registered it")
    return zenml, run_link


def _selected_candidate(version: ModelVersionResponse) -> tuple[str | None, dict[str, Any]]:
    """(family, params) of the candidate the version's model selection kept; (None, {}) without one."""
    artifact = version.get_artifact(Artifact.MODEL_SELECTION)
    if artifact is None:
        return None, {}
    selection = artifact.load()
    for candidate in getattr(selection, "candidates", []):
        if candidate.name == selection.selected:
            return str(candidate.family), dict(candidate.params)
    return None, {}


def registered_versions(
    models: list[str] | None = None, progress: Callable[[str], None] | None = None
) -> tuple[list[RegisteredVersion], dict[str, str]]:
    """Every version of the `models` (default: every registered model) that has an ONNX file, read from the
    ZenML Model Control Plane and its MLflow mirror, and each model's description; `progress` is told of
    each version (and of versions left out)."""
    from zenml.client import Client

    from headliner.model.versions import find_model_version, onnx_model_artifact

    client = Client()
    say = progress or (lambda _: None)
    if models:
        for name in models:
            find_model_version(name, "latest")  # an unknown model or one without versions: a clear error
        names = list(models)
    else:
        names = sorted(model.name for model in client.list_models(size=1000).items)
    versions: list[RegisteredVersion] = []
    descriptions: dict[str, str] = {}
    for name in names:
        descriptions[name] = client.get_model(name).description or ""
        for listed in client.list_model_versions(name, size=1000, sort_by="asc:number").items:
            try:  # (this registers the project's materializers, which load the artifacts below)
                _, artifact = onnx_model_artifact(name, str(listed.number))
            except HeadlinerError as exc:
                say(f"{name} v{listed.number}: left out: {exc}")
                continue
            version = client.get_model_version(name, listed.number)
            onnx_bytes = artifact.load().SerializeToString()
            family, params = _selected_candidate(version)
            zenml, run_link = _zenml_links(version)
            try:
                mlflow = _mlflow_link(name, version.number)
            except Exception as exc:  # the catalog is still written, without the mirror's link
                say(f"{name} v{version.number}: no MLflow link ({type(exc).__name__}: {exc})")
                mlflow = None
            stage = getattr(version.stage, "value", version.stage) or "none"
            metrics = version.run_metadata.get("test_metrics")
            registered = RegisteredVersion(
                model=name,
                number=version.number,
                created=version.created,
                onnx_bytes=onnx_bytes,
                stage=str(stage),
                family=family,
                hyperparameters=params,
                test_metrics={k: float(v) for k, v in metrics.items()} if isinstance(metrics, dict) else {},
                zenml=zenml,
                mlflow=mlflow,
                zenml_run=run_link,
            )
            try:  # a file without the packaged metadata cannot be described: left out, the rest is written
                mlm_properties(registered)
            except HeadlinerError as exc:
                say(f"{name} v{version.number}: left out: {exc}")
                continue
            versions.append(registered)
            say(
                f"{name} v{version.number}: stage {stage}, ONNX {len(onnx_bytes):,} bytes, "
                + (mlflow.href if mlflow else "no MLflow mirror")
            )
    return versions, descriptions
