"""One ONNX file is the whole model: the fitted scikit-learn pipeline (imputation, scaling, classifier
or regressor) becomes one graph from raw named features to class probabilities and labels, or to the
forecast in the target's unit, with everything a client needs (task, classes or target, feature schema,
version, metrics, library versions) in its metadata, so no client ever scales features or maps indices
to classes itself, and serving never loads a pickle.

Graph contract (what `package_onnx` writes and `OnnxPredictor` reads):
- inputs: one per feature, named as in the spec, in spec order, float32 of shape [N, 1], raw values
  (missing values as NaN are imputed inside the graph);
- outputs of a classifier (`task` metadata "multiclass_classification", or no `task`: older files), in
  this order: `probabilities` float32 [N, C] (columns in the order of the `class_labels` metadata, which
  is the spec's class order), then `label` string [N];
- output of a regressor (`task` "regression"): `prediction` float32 [N, 1] in the target's unit, which
  the `target` metadata describes (JSON: column, description, unit, min, max), clipped to that range by a
  Clip node after the regressor (an omitted bound clips nothing); `class_labels` is "[]".

This module imports only numpy, onnxruntime and the spec's Task at module level, so `OnnxPredictor`
runs where neither scikit-learn nor pandas is installed; packaging and the parity check import them
when called.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from headliner.errors import ParityError
from headliner.spec import Task

if TYPE_CHECKING:
    import onnx
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from headliner.spec import UseCaseSpec

# ONNX vs scikit-learn (the model contract): max abs difference of probabilities; of a regressor's
# predictions, max |onnx - sklearn| / max(|sklearn|, 1) (relative, absolute below 1 unit)
PARITY_TOLERANCE = 1e-4
PROBABILITIES = "probabilities"
LABELS = "label"
PREDICTION = "prediction"
# the graph's outputs in their order, per task
GRAPH_OUTPUTS_BY_TASK = {Task.MULTICLASS_CLASSIFICATION: (PROBABILITIES, LABELS), Task.REGRESSION: (PREDICTION,)}

# metadata_props keys
USE_CASE = "use_case"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
CLASS_LABELS = "class_labels"
CLASS_NAMES = "class_names"
FEATURE_SCHEMA = "feature_schema"
TOP_K = "top_k"
LIBRARY_VERSIONS = "library_versions"
METRICS = "metrics"
DATA_FINGERPRINT = "data_fingerprint"
DECISION = "decision"
PRESETS = "presets"
EXPLANATION_BACKGROUND = "explanation_background"  # JSON [B, F]: training rows that local explanations mask with
TASK = "task"  # a Task value; older files lack it and are classifiers
TARGET = "target"  # regression: JSON {"column", "description", "unit", "min", "max"}
PACKAGED_KEYS = (USE_CASE, MODEL_NAME, MODEL_VERSION, CLASS_LABELS, FEATURE_SCHEMA, TOP_K, LIBRARY_VERSIONS)
PAGE_KEYS = (DECISION, PRESETS)  # also written by package_onnx, for the service's page; older models lack them
TASK_KEYS = (TASK, TARGET)  # written by package_onnx since regression models exist


def feature_schema(spec: UseCaseSpec) -> list[dict[str, Any]]:
    """The model's inputs as plain data: what a client must send and which values are valid."""
    return [
        {
            "name": feature.name,
            "dtype": feature.dtype.value,
            "min": feature.min,
            "max": feature.max,
            "unit": feature.unit,
            "description": feature.description,
            "default": feature.default,
        }
        for feature in spec.features
    ]


def example_inputs(feature_schema: list[dict[str, Any]]) -> dict[str, Any]:
    """One valid input built from the schema's defaults (mid-range where there is no default), typed as
    the service expects (integers for int and bool features)."""
    example = {}
    for entry in feature_schema:
        value = entry.get("default")
        if value is None:
            low, high = entry.get("min"), entry.get("max")
            value = (low + high) / 2 if low is not None and high is not None else low if low is not None else 0
        example[entry["name"]] = round(value) if entry.get("dtype") in ("int", "bool") else float(value)
    return example


def decision(spec: UseCaseSpec) -> dict[str, str]:
    """How answers are worded for people: the question, the answer template, the nouns."""
    return spec.decision.model_dump(exclude={"top_k"})


def presets(spec: UseCaseSpec) -> list[dict[str, Any]]:
    """The spec's example inputs with every feature set (defaults where a preset leaves one out)."""
    schema = feature_schema(spec)
    typed = {entry["name"]: entry["dtype"] != "float" for entry in schema}
    resolved = []
    for preset in spec.presets:
        values = example_inputs(schema)
        values.update({name: int(value) if typed[name] else value for name, value in preset.values.items()})
        resolved.append({"name": preset.name, "description": preset.description, "values": values})
    return resolved


BACKGROUND_ROWS = 50  # enough for stable SHAP base values; each explained row costs O(rows) model calls
BACKGROUND_SEED = 0


def explanation_background(
    frame: pd.DataFrame, spec: UseCaseSpec, rows: int = BACKGROUND_ROWS, seed: int = BACKGROUND_SEED
) -> dict[str, str]:
    """The metadata entry that lets a service explain answers with nothing but the ONNX file: a seeded
    sample of `rows` complete rows of `frame` (the train split), features in spec order, as JSON
    floats [B, F] under EXPLANATION_BACKGROUND. Rows with a missing value are left out (JSON has no NaN)."""
    from headliner.model.estimators import feature_frame

    features = feature_frame(frame, spec).dropna()  # float32, as the graph takes them
    if features.empty:
        raise ValueError("no complete row to sample an explanation background from")
    sample = features.sample(n=min(rows, len(features)), random_state=seed).sort_index().to_numpy()
    # 9 significant digits hold a float32 exactly, without the noise digits of its float64 expansion
    matrix = [[float(f"{value:.9g}") for value in row] for row in sample]
    return {EXPLANATION_BACKGROUND: json.dumps(matrix)}


def model_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The model's metadata_props as a dict."""
    return {prop.key: prop.value for prop in model.metadata_props}


def target_description(spec: UseCaseSpec) -> dict[str, Any]:
    """What a regressor predicts, as the TARGET metadata holds it."""
    target = spec.target
    return {
        "column": target.column,
        "description": target.description,
        "unit": target.unit,
        "min": target.min,
        "max": target.max,
    }


def _require_spec_classes(classes: Any, spec: UseCaseSpec) -> None:
    classes, expected = [str(c) for c in classes], spec.target.classes
    if classes == expected:
        return
    missing = [c for c in expected if c not in classes]
    unexpected = [c for c in classes if c not in expected]
    detail = f"missing {missing}, unexpected {unexpected}" if missing or unexpected else "same classes in another order"
    raise ValueError(f"the model's classes differ from the spec's target classes ({detail})")


def _packaged_metadata(spec: UseCaseSpec, model_version: str, metadata: dict[str, str]) -> dict[str, str]:
    import onnx
    import skl2onnx
    import sklearn

    clashing = sorted(set(metadata) & {*PACKAGED_KEYS, *PAGE_KEYS, *TASK_KEYS})
    if clashing:
        raise ValueError(f"metadata keys {clashing} are written by package_onnx itself")
    not_strings = sorted(key for key, value in metadata.items() if not isinstance(value, str))
    if not_strings:
        raise ValueError(f"metadata values must be strings; not for {not_strings}")
    versions = {
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }
    task = {TASK: spec.task.value}
    if not spec.is_classification:
        task[TARGET] = json.dumps(target_description(spec))
    return {
        USE_CASE: spec.title,
        MODEL_NAME: spec.name,
        MODEL_VERSION: model_version,
        **task,
        CLASS_LABELS: json.dumps(spec.target.classes),
        FEATURE_SCHEMA: json.dumps(feature_schema(spec)),
        TOP_K: str(spec.decision.top_k),
        LIBRARY_VERSIONS: json.dumps(versions),
        DECISION: json.dumps(decision(spec)),
        PRESETS: json.dumps(presets(spec)),
        **metadata,
    }


def _order_outputs(model: onnx.ModelProto, task: Task) -> None:
    """Check that the graph has exactly the task's contract outputs and put them in contract order."""
    import onnx

    expected = GRAPH_OUTPUTS_BY_TASK[task]
    outputs = {output.name: output for output in model.graph.output}
    if sorted(outputs) != sorted(expected):
        raise ValueError(f"converted graph has outputs {sorted(outputs)}, expected {sorted(expected)}")
    expected_types = {
        PROBABILITIES: onnx.TensorProto.FLOAT,
        LABELS: onnx.TensorProto.STRING,
        PREDICTION: onnx.TensorProto.FLOAT,
    }
    for name in expected:
        actual = outputs[name].type.tensor_type.elem_type
        if actual != expected_types[name]:
            raise ValueError(
                f"converted graph output '{name}' has type {onnx.TensorProto.DataType.Name(actual)}, "
                f"expected {onnx.TensorProto.DataType.Name(expected_types[name])}"
            )
    ordered = [outputs[name] for name in expected]
    del model.graph.output[:]
    model.graph.output.extend(ordered)


UNCLIPPED = "unclipped_prediction"  # the regressor's own output, before the Clip node
CLIP_BOUNDS = ("target_min", "target_max")  # the Clip node's float32 scalar initializers


def _clip_prediction(model: onnx.ModelProto, spec: UseCaseSpec) -> None:
    """Route the regressor's output through a Clip node to the target's range, so that the graph's
    `prediction` is what `training.model_output` answers on scikit-learn's side; no bound, no node."""
    from onnx import helper, numpy_helper

    target = spec.target
    if target.min is None and target.max is None:
        return
    for node in model.graph.node:
        node.output[:] = [UNCLIPPED if name == PREDICTION else name for name in node.output]
    bounds = []
    for name, bound in zip(CLIP_BOUNDS, (target.min, target.max), strict=True):
        if bound is not None:
            model.graph.initializer.append(numpy_helper.from_array(np.array(bound, dtype=np.float32), name))
        bounds.append("" if bound is None else name)  # "": an omitted optional input
    model.graph.node.append(helper.make_node("Clip", [UNCLIPPED, *bounds], [PREDICTION], name="clip_to_target_range"))


def _convert_hist_gradient_boosting_regressor(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter of a HistGradientBoostingRegressor with scikit-learn's own precision: the
    stock converter stores float32 thresholds (and fails on bool attributes), which sends values lying
    between a threshold and its float32 rounding down the other branch. Here the features are cast to
    double and compared with the double thresholds (ai.onnx.ml TreeEnsembleRegressor, opset 3), as
    scikit-learn compares them; a log link (poisson, gamma loss) ends in Exp."""
    from onnx import TensorProto
    from onnx.numpy_helper import from_array
    from sklearn._loss.link import IdentityLink, LogLink

    model = operator.raw_operator
    link = model._loss.link
    if not isinstance(link, IdentityLink | LogLink):
        raise ValueError(f"HistGradientBoostingRegressor with loss '{model.loss}' has no ONNX conversion here")
    attributes: dict[str, list[Any]] = {
        key: []
        for key in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_modes",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "target_treeids",
            "target_nodeids",
        )
    }
    thresholds, leaf_values = [], []
    for tree_id, (predictor,) in enumerate(model._predictors):
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ValueError("HistGradientBoostingRegressor with categorical splits has no ONNX conversion here")
        for node_id, node in enumerate(nodes):
            leaf = bool(node["is_leaf"])
            attributes["nodes_treeids"].append(tree_id)
            attributes["nodes_nodeids"].append(node_id)
            attributes["nodes_featureids"].append(0 if leaf else int(node["feature_idx"]))
            attributes["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            attributes["nodes_truenodeids"].append(0 if leaf else int(node["left"]))
            attributes["nodes_falsenodeids"].append(0 if leaf else int(node["right"]))
            attributes["nodes_missing_value_tracks_true"].append(0 if leaf else int(node["missing_go_to_left"]))
            thresholds.append(0.0 if leaf else float(node["num_threshold"]))
            if leaf:
                attributes["target_treeids"].append(tree_id)
                attributes["target_nodeids"].append(node_id)
                leaf_values.append(float(node["value"]))
    as_double = scope.get_unique_variable_name("features_as_double")
    container.add_node(
        "Cast",
        operator.inputs[0].full_name,
        as_double,
        to=TensorProto.DOUBLE,
        name=scope.get_unique_operator_name("Cast"),
    )
    raw = operator.outputs[0].full_name if isinstance(link, IdentityLink) else scope.get_unique_variable_name("raw")
    container.add_node(
        "TreeEnsembleRegressor",
        as_double,
        raw,
        op_domain="ai.onnx.ml",
        op_version=3,
        name=scope.get_unique_operator_name("TreeEnsembleRegressor"),
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        target_ids=[0] * len(leaf_values),
        nodes_values_as_tensor=from_array(np.asarray(thresholds, dtype=np.float64)),
        target_weights_as_tensor=from_array(np.asarray(leaf_values, dtype=np.float64)),
        base_values_as_tensor=from_array(np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)),
        **attributes,
    )
    if isinstance(link, LogLink):
        container.add_node("Exp", raw, operator.outputs[0].full_name, name=scope.get_unique_operator_name("Exp"))


def package_onnx(
    pipeline: Pipeline, spec: UseCaseSpec, model_version: str, metadata: dict[str, str]
) -> onnx.ModelProto:
    """Convert a fitted pipeline built by `build_pipeline` into one self-describing ONNX model.

    `metadata` (all values strings, e.g. data_fingerprint, metrics JSON, candidate, created_at,
    class_names JSON) is added to the metadata_props next to the keys this function writes
    (PACKAGED_KEYS, PAGE_KEYS, TASK_KEYS). The graph follows the contract in the module docstring.
    """
    import onnx
    import skl2onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.preprocessing import StandardScaler

    # "div": subtract and divide in float32 as scikit-learn does; the default multiplies by 1/scale,
    # and its last-bit differences send values sitting on a tree threshold down the other branch.
    options: dict[Any, dict[str, Any]] = {StandardScaler: {"div": "div"}}
    if spec.is_classification:
        _require_spec_classes(pipeline.classes_, spec)
        options[id(pipeline[-1])] = {"zipmap": False}
        final_types = [
            (LABELS, StringTensorType([None])),
            (PROBABILITIES, FloatTensorType([None, len(spec.target.classes)])),
        ]
        outputs = (
            f"'{PROBABILITIES}' float32 [N, {len(spec.target.classes)}] in the order of the '{CLASS_LABELS}' "
            f"metadata, then '{LABELS}' string [N]"
        )
    else:
        if hasattr(pipeline, "classes_"):
            raise ValueError(f"use case '{spec.name}' is a regression task, but the pipeline is a classifier")
        from headliner.data.features import target_range

        final_types = [(PREDICTION, FloatTensorType([None, 1]))]
        outputs = (
            f"'{PREDICTION}' float32 [N, 1]: {spec.target.description}, in {spec.target.unit}, clipped to the "
            f"target's range {target_range(spec.target)}"
        )
    fitted_features = [str(name) for name in getattr(pipeline, "feature_names_in_", spec.feature_names)]
    if fitted_features != spec.feature_names:
        raise ValueError(f"the pipeline was fitted on features {fitted_features}, the spec has {spec.feature_names}")
    props = _packaged_metadata(spec, model_version, metadata)

    model: onnx.ModelProto = convert_sklearn(
        pipeline,
        name=spec.name,
        initial_types=[(name, FloatTensorType([None, 1])) for name in spec.feature_names],
        options=options,
        final_types=final_types,
        custom_conversion_functions={HistGradientBoostingRegressor: _convert_hist_gradient_boosting_regressor},
        custom_shape_calculators={HistGradientBoostingRegressor: calculate_linear_regressor_output_shapes},
    )
    _order_outputs(model, spec.task)
    if not spec.is_classification:
        _clip_prediction(model, spec)
    model.producer_name = "headliner (skl2onnx)"
    model.producer_version = skl2onnx.__version__
    model.doc_string = (
        f"{spec.title} ({spec.task.value}): {spec.description} Inputs: {len(spec.features)} raw features, "
        f"float32 [N, 1] each, described in the '{FEATURE_SCHEMA}' metadata. Outputs: {outputs}."
    )
    model.graph.name = spec.name
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    return model


def check_parity(
    model: onnx.ModelProto,
    pipeline: Pipeline,
    frame: pd.DataFrame,
    spec: UseCaseSpec,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """ONNX vs scikit-learn over `frame`, raising ParityError above `tolerance`. A classifier: the max
    abs difference of probabilities, and no predicted label may differ where scikit-learn's top two
    probabilities are further apart than the tolerance (a near tie may break either way). A regressor:
    the max relative difference of forecasts, |onnx - sklearn| / max(|sklearn|, 1), both clipped to the
    target's range (scikit-learn's by `training.model_output`)."""
    from headliner.model.estimators import feature_frame
    from headliner.model.training import model_output

    if frame.empty:
        raise ValueError("the parity check needs at least one row")
    features = feature_frame(frame, spec)
    predictor = OnnxPredictor.from_model(model)
    rows = len(features)
    if not spec.is_classification:
        expected = model_output(pipeline, features, spec)
        actual = predictor.predict_values(features).astype(np.float64)
        relative = float((np.abs(actual - expected) / np.maximum(np.abs(expected), 1.0)).max())
        if not relative <= tolerance:  # NaN fails too
            raise ParityError(
                f"ONNX parity failed: max relative difference of predictions {relative:.4g} > {tolerance:g} "
                f"over {rows} rows"
            )
        return relative
    _require_spec_classes(pipeline.classes_, spec)
    expected_probabilities = model_output(pipeline, features, spec)
    expected_labels = np.asarray(pipeline.predict(features)).astype(str)
    labels, probabilities = predictor.predict(features)

    max_difference = float(np.abs(probabilities - expected_probabilities).max())
    if max_difference > tolerance:
        raise ParityError(
            f"ONNX parity failed: max abs difference {max_difference:.4g} > {tolerance:g} over {rows} rows"
        )
    top_two = np.sort(expected_probabilities, axis=1)[:, -2:]
    near_tie = top_two[:, 1] - top_two[:, 0] <= tolerance
    differing = int(((labels != expected_labels) & ~near_tie).sum())
    if differing:
        raise ParityError(f"ONNX parity failed: labels differ from scikit-learn on {differing} of {rows} rows")
    return max_difference


class OnnxPredictor:
    """Predictions from a packaged ONNX model with nothing but onnxruntime and numpy: the task, feature
    names, classes or target and the schema all come from the file.

    `scores` serves both tasks (probabilities [N, C] or predictions [N, 1]); `predict_values` is the
    regressor's, `predict`, `probabilities` and `top_classes` the classifier's: each refuses the other
    task with a ValueError naming it.

    The session runs with one intra-op and one inter-op thread: a request is microseconds of work, so
    a thread pool only adds wake-up and spinning jitter to the latency; serve more traffic with more
    worker processes instead.
    """

    def __init__(self, model_bytes: bytes):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])

        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        missing = [key for key in PACKAGED_KEYS if key not in self.metadata]
        if missing:
            raise ValueError(f"not a packaged headliner model: metadata lacks {missing}")
        try:
            self.task: Task = Task(self.metadata.get(TASK, Task.MULTICLASS_CLASSIFICATION.value))
        except ValueError:
            raise ValueError(
                f"the '{TASK}' metadata '{self.metadata[TASK]}' is not one of {[t.value for t in Task]}"
            ) from None
        self.is_classification: bool = self.task is Task.MULTICLASS_CLASSIFICATION
        self.model_name: str = self.metadata[MODEL_NAME]
        self.model_version: str = self.metadata[MODEL_VERSION]
        self.classes: list[str] = json.loads(self.metadata[CLASS_LABELS])
        self.class_names: list[str] = (
            json.loads(self.metadata[CLASS_NAMES]) if CLASS_NAMES in self.metadata else list(self.classes)
        )
        self.target: dict[str, Any] | None = None if self.is_classification else self._target()
        # what the columns of `scores` are: the classes, or the target column
        self.output_names: list[str] = list(self.classes) if self.target is None else [self.target["column"]]
        self.feature_schema: list[dict[str, Any]] = json.loads(self.metadata[FEATURE_SCHEMA])
        self.feature_names: list[str] = [graph_input.name for graph_input in self._session.get_inputs()]
        self.top_k: int = max(1, min(int(self.metadata[TOP_K]), len(self.classes)))  # classes shown per answer
        self._known_features = frozenset(self.feature_names)
        self.background: np.ndarray | None = self._background()  # [B, F] training rows, None in older files
        self._scores_output = [PROBABILITIES if self.is_classification else PREDICTION]

        outputs = [output.name for output in self._session.get_outputs()]
        expected = GRAPH_OUTPUTS_BY_TASK[self.task]
        if sorted(outputs) != sorted(expected):
            raise ValueError(f"graph outputs {outputs} are not {list(expected)} (a {self.task.value} model)")
        if [entry["name"] for entry in self.feature_schema] != self.feature_names:
            raise ValueError("the feature_schema metadata does not match the graph inputs")

    def _target(self) -> dict[str, Any]:
        try:
            target = json.loads(self.metadata[TARGET])
        except KeyError:
            raise ValueError(f"a {self.task.value} model's metadata lacks '{TARGET}'") from None
        except ValueError:
            raise ValueError(f"the '{TARGET}' metadata is not JSON") from None
        if not isinstance(target, dict) or not isinstance(target.get("column"), str):
            raise ValueError(f"the '{TARGET}' metadata is not an object with a 'column'")
        return target

    def _background(self) -> np.ndarray | None:
        if EXPLANATION_BACKGROUND not in self.metadata:
            return None
        try:
            rows = np.asarray(json.loads(self.metadata[EXPLANATION_BACKGROUND]), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"the '{EXPLANATION_BACKGROUND}' metadata is not a JSON matrix of numbers") from None
        if rows.ndim != 2 or rows.shape[1] != len(self.feature_names) or len(rows) == 0:
            raise ValueError(
                f"the '{EXPLANATION_BACKGROUND}' metadata has shape {list(rows.shape)}, "
                f"expected [rows, {len(self.feature_names)}]"
            )
        return rows

    @classmethod
    def from_bytes(cls, data: bytes) -> OnnxPredictor:
        return cls(data)

    @classmethod
    def from_path(cls, path: str | Path) -> OnnxPredictor:
        return cls(Path(path).read_bytes())

    @classmethod
    def from_model(cls, model: onnx.ModelProto) -> OnnxPredictor:
        return cls(model.SerializeToString())

    def predict(self, features: Mapping[str, Any] | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """A classifier's answers for named feature columns, each of length N ([N] or [N, 1]; a dict or a
        pandas DataFrame) -> (labels [N] str, probabilities [N, C] float32, columns in `classes` order)."""
        self._require_classifier("predict")
        return self._run(self._named_columns(features))

    def predict_values(self, features: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """A regressor's predictions for named feature columns (as `predict` takes them) -> float32 [N],
        in the target's unit."""
        if self.is_classification:
            raise ValueError(
                f"predict_values is for regression models; {self.model_name} is a {self.task.value} model (use predict)"
            )
        prediction: np.ndarray = self._session.run(self._scores_output, self._named_columns(features))[0]
        return prediction.reshape(-1)

    def predict_matrix(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An [N, F] matrix with the features in `feature_names` order -> (labels, probabilities)."""
        self._require_classifier("predict_matrix")
        return self._run(self._columns(matrix))

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        """An [N, F] matrix with the features in `feature_names` order -> float32 [N, K], one column per
        `output_names` entry: a classifier's probabilities [N, C], a regressor's predictions [N, 1]."""
        scores: np.ndarray = self._session.run(self._scores_output, self._columns(matrix))[0]
        return scores

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Like `predict_matrix`, probabilities only: the serving hot path (the label is their argmax)."""
        self._require_classifier("probabilities")
        return self.scores(matrix)

    def top_classes(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, C] probabilities -> (indices [N, k] of the `top_k` most probable classes, most probable
        first; their probabilities [N, k])."""
        self._require_classifier("top_classes")
        if len(probabilities) == 1:  # the serving hot path, without the general fancy indexing
            order = probabilities[0].argsort()[: -self.top_k - 1 : -1]
            return order[None, :], probabilities[0][order][None, :]
        order = np.argsort(-probabilities, axis=1)[:, : self.top_k]
        return order, np.take_along_axis(probabilities, order, axis=1)

    def _require_classifier(self, method: str) -> None:
        if not self.is_classification:
            raise ValueError(
                f"{method} is for classification models; {self.model_name} is a {self.task.value} model "
                "(use predict_values or scores)"
            )

    def _named_columns(self, features: Mapping[str, Any] | pd.DataFrame) -> dict[str, np.ndarray]:
        """Named feature columns -> one float32 [N, 1] input per feature, checked for names and lengths."""
        if not hasattr(features, "keys"):
            raise ValueError("features must map each feature name to a column of values")
        given = [str(name) for name in features]
        missing = [name for name in self.feature_names if name not in given]
        unknown = [name for name in given if name not in self._known_features]
        if missing or unknown:
            raise ValueError(f"features do not match the model's inputs: missing {missing}, unknown {unknown}")
        columns = {name: _feature_column(name, features[name]) for name in self.feature_names}
        lengths = {name: len(column) for name, column in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"feature columns differ in length: {lengths}")
        return columns

    def _columns(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """[N, F] -> one float32 [N, 1] input per feature (views of one transposed copy)."""
        values = np.asarray(matrix)
        if values.ndim != 2 or values.shape[1] != len(self.feature_names):
            raise ValueError(f"expected a matrix of shape [N, {len(self.feature_names)}], got {list(values.shape)}")
        by_feature = np.ascontiguousarray(values.T, dtype=np.float32).reshape(values.shape[1], values.shape[0], 1)
        return dict(zip(self.feature_names, by_feature, strict=True))

    def _run(self, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = self._session.run([LABELS, PROBABILITIES], columns)
        return labels.astype(str), probabilities


def _feature_column(name: str, values: Any) -> np.ndarray:
    """One feature's values as the float32 [N, 1] array the graph takes."""
    try:
        column = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"feature '{name}': values are not numbers") from None
    if column.ndim == 1:
        return column.reshape(-1, 1)
    if column.ndim == 2 and column.shape[1] == 1:
        return column
    raise ValueError(f"feature '{name}': expected shape [N] or [N, 1], got {list(column.shape)}")
