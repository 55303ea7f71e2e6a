"""ONNX packaging: one file is the whole model (raw named inputs, labels and probabilities or the
forecast out, metadata inside), the parity gate catches a wrong graph, and a client needs only
onnxruntime + numpy."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pandas as pd
import pytest

from headliner.data.sources import load_raw_data
from headliner.data.splitting import split_examples
from headliner.data.wrangling import label_examples, wrangle
from headliner.errors import ParityError
from headliner.model.estimators import CandidateConfig, build_pipeline, feature_frame
from headliner.model.onnx_packaging import (
    LABELS,
    PACKAGED_KEYS,
    PARITY_TOLERANCE,
    PREDICTION,
    PROBABILITIES,
    TASK,
    OnnxPredictor,
    check_parity,
    package_onnx,
)
from headliner.model.training import model_output
from headliner.spec import PROJECT_ROOT, USE_CASES_DIR, Task, load_spec
from tests.helpers.models import example_metadata, packaged_model, sales_frame

FAMILY_PARAMS = {
    "logistic_regression": {},
    "mlp": {"hidden_layer_sizes": (16,)},  # small: the test is the packaging, not the fit
    "random_forest": {"n_estimators": 10, "max_depth": 6},
}


def splits(spec, rows=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test examples of a use case, split as the data pipeline splits them."""
    raw = load_raw_data(spec, rows=rows)
    wrangled, _ = wrangle(raw, spec, "test")
    labelled, _ = label_examples(wrangled, spec, "test")
    train, _, test, _ = split_examples(labelled, spec, "test")
    assert set(train[spec.target.column]) == set(spec.target.classes), "every class must be in training"
    return train, test


def fit(spec, train: pd.DataFrame, family: str):
    candidate = CandidateConfig(name="test", family=family, params=FAMILY_PARAMS[family])
    return build_pipeline(spec, candidate).fit(feature_frame(train, spec), train[spec.target.column])


def io_signature(values) -> list[tuple[str, int, list]]:
    """(name, element type, shape) per graph input or output; an unknown dimension is None."""
    return [
        (
            value.name,
            value.type.tensor_type.elem_type,
            [dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim],
        )
        for value in values
    ]


@pytest.fixture(scope="module")
def jukebox_splits(jukebox_spec):
    return splits(jukebox_spec, rows=20_000)


@pytest.fixture(scope="module")
def jukebox_models(jukebox_spec, jukebox_splits):
    """family -> (fitted pipeline, packaged ONNX model)."""
    train, _ = jukebox_splits
    models = {}
    for family in FAMILY_PARAMS:
        pipeline = fit(jukebox_spec, train, family)
        models[family] = pipeline, package_onnx(pipeline, jukebox_spec, "7", example_metadata(jukebox_spec))
    return models


@pytest.fixture(scope="module")
def linear(jukebox_models):
    return jukebox_models["logistic_regression"]


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_graph_takes_raw_named_features_and_returns_probabilities_then_labels(family, jukebox_spec, jukebox_models):
    _, model = jukebox_models[family]
    assert io_signature(model.graph.input) == [
        (name, onnx.TensorProto.FLOAT, [None, 1]) for name in jukebox_spec.feature_names
    ]
    assert io_signature(model.graph.output) == [
        (PROBABILITIES, onnx.TensorProto.FLOAT, [None, 72]),
        (LABELS, onnx.TensorProto.STRING, [None]),
    ]
    onnx.checker.check_model(model)


@pytest.mark.parametrize("family", FAMILY_PARAMS)
def test_onnx_reproduces_scikit_learn_on_held_out_rows(family, jukebox_spec, jukebox_splits, jukebox_models):
    _, test = jukebox_splits
    pipeline, model = jukebox_models[family]
    max_difference = check_parity(model, pipeline, test, jukebox_spec, PARITY_TOLERANCE)
    print(f"\nparity {family}: max abs difference {max_difference:.3g} over {len(test)} rows, {model.ByteSize():,} B")
    assert 0 <= max_difference <= PARITY_TOLERANCE
    _, probabilities = OnnxPredictor.from_model(model).predict(feature_frame(test, jukebox_spec))
    assert probabilities.shape == (len(test), 72)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)


def test_metadata_travels_in_the_file(jukebox_spec, linear):
    _, model = linear
    predictor = OnnxPredictor.from_model(model)
    written = example_metadata(jukebox_spec)
    assert {key: predictor.metadata[key] for key in written} == written
    assert set(PACKAGED_KEYS) <= set(predictor.metadata)
    assert all(isinstance(value, str) for value in predictor.metadata.values())
    assert (predictor.model_name, predictor.model_version, predictor.top_k) == ("jukebox", "7", 5)
    assert predictor.classes == jukebox_spec.target.classes
    assert predictor.class_names == json.loads(written["class_names"])
    assert predictor.feature_names == jukebox_spec.feature_names
    assert [(f["name"], f["min"], f["max"]) for f in predictor.feature_schema] == [
        (f.name, f.min, f.max) for f in jukebox_spec.features
    ]
    assert json.loads(predictor.metadata["library_versions"]).keys() == {
        "scikit-learn",
        "skl2onnx",
        "onnx",
        "onnxruntime",
        "numpy",
    }
    assert model.producer_name.startswith("headliner") and model.graph.name == "jukebox"
    assert PROBABILITIES in model.doc_string and LABELS in model.doc_string
    assert json.loads(predictor.metadata["decision"]) == {
        "question": "In which countries will this song be a hit?",
        "answer_template": "Most likely a hit in: {classes}",
        "item_noun": "song",
        "class_noun": "countries",
    }
    presets = json.loads(predictor.metadata["presets"])  # every feature set: a preset's own values, else defaults
    assert [preset["name"] for preset in presets] == [preset.name for preset in jukebox_spec.presets]
    for preset, given in zip(presets, jukebox_spec.presets, strict=True):
        assert list(preset["values"]) == jukebox_spec.feature_names
        assert preset["values"] == {f.name: given.values.get(f.name, f.default) for f in jukebox_spec.features}
        assert isinstance(preset["values"]["key"], int) and isinstance(preset["values"]["is_explicit"], int)


CLIENT = """
import json, sys
import numpy as np
import onnxruntime as ort

path, songs = sys.argv[1], json.loads(sys.argv[2])
session = ort.InferenceSession(path)
metadata = session.get_modelmeta().custom_metadata_map
feeds = {i.name: np.asarray(songs[i.name], dtype=np.float32).reshape(-1, 1) for i in session.get_inputs()}
labels, probabilities = session.run(["label", "probabilities"], feeds)
assert "sklearn" not in sys.modules and "pandas" not in sys.modules, "a client must need no more"
raw_client = {"classes": json.loads(metadata["class_labels"]), "labels": labels.tolist(),
              "probabilities": probabilities.tolist()}

from headliner.model.onnx_packaging import OnnxPredictor
predictor = OnnxPredictor.from_path(path)
predictor_labels, _ = predictor.predict(feeds)
heavy = sorted({"sklearn", "pandas", "skl2onnx", "onnx"} & set(sys.modules))
assert not heavy, f"OnnxPredictor imported {heavy}"
print(json.dumps({"raw_client": raw_client, "predictor_labels": predictor_labels.tolist()}))
"""


def test_onnx_file_alone_is_enough_for_a_client(jukebox_spec, jukebox_splits, linear, tmp_path):
    _, model = linear
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    songs = feature_frame(jukebox_splits[1], jukebox_spec).head(3)

    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(path), json.dumps({k: v.tolist() for k, v in songs.items()})],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout)
    client = answer["raw_client"]

    expected_labels, expected_probabilities = OnnxPredictor.from_model(model).predict(songs)
    assert client["classes"] == jukebox_spec.target.classes
    assert len(client["labels"]) == 3 and set(client["labels"]) <= set(jukebox_spec.target.classes)
    assert client["labels"] == expected_labels.tolist() == answer["predictor_labels"]
    probabilities = np.array(client["probabilities"])
    assert probabilities.shape == (3, 72)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-7)


def tampered(model: onnx.ModelProto, op_type: str, attribute: str, change) -> onnx.ModelProto:
    """A copy of the model with one attribute of the first `op_type` node replaced by change(values)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    node = next(node for node in copy.graph.node if node.op_type == op_type)
    attr = next(a for a in node.attribute if a.name == attribute)
    values = list(attr.floats) if attr.floats else list(attr.strings)
    node.attribute.remove(attr)
    node.attribute.append(onnx.helper.make_attribute(attribute, change(values)))
    return copy


def test_parity_gate_fails_on_a_changed_coefficient(jukebox_spec, jukebox_splits, linear):
    pipeline, model = linear
    broken = tampered(model, "LinearClassifier", "coefficients", lambda w: [w[0] + 0.5, *w[1:]])
    message = r"^ONNX parity failed: max abs difference [0-9.e-]+ > 0\.0001 over \d+ rows$"
    with pytest.raises(ParityError, match=message):
        check_parity(broken, pipeline, jukebox_splits[1], jukebox_spec)


def test_parity_gate_fails_on_wrong_labels(jukebox_spec, jukebox_splits, linear):
    pipeline, model = linear
    broken = tampered(model, "LinearClassifier", "classlabels_strings", lambda labels: labels[::-1])
    with pytest.raises(ParityError, match=r"labels differ from scikit-learn on \d+ of \d+ rows"):
        check_parity(broken, pipeline, jukebox_splits[1], jukebox_spec)


def test_packaging_refuses_classes_that_differ_from_the_spec(jukebox_spec, jukebox_splits, linear):
    pipeline, model = linear
    classes = jukebox_spec.target.classes
    reordered = jukebox_spec.model_copy(
        update={"target": jukebox_spec.target.model_copy(update={"classes": classes[::-1]})}
    )
    fewer = jukebox_spec.model_copy(update={"target": jukebox_spec.target.model_copy(update={"classes": classes[1:]})})
    with pytest.raises(ValueError, match="another order"):
        package_onnx(pipeline, reordered, "1", {})
    with pytest.raises(ValueError, match=r"unexpected \['AE'\]"):
        package_onnx(pipeline, fewer, "1", {})
    with pytest.raises(ValueError, match="differ from the spec's target classes"):
        check_parity(model, pipeline, jukebox_splits[1], fewer)


def test_packaging_refuses_bad_metadata(jukebox_spec, linear):
    pipeline, _ = linear
    with pytest.raises(ValueError, match=r"\['model_version'\] are written by package_onnx"):
        package_onnx(pipeline, jukebox_spec, "1", {"model_version": "2"})
    with pytest.raises(ValueError, match=r"\['presets'\] are written by package_onnx"):
        package_onnx(pipeline, jukebox_spec, "1", {"presets": "[]"})
    with pytest.raises(ValueError, match=r"must be strings; not for \['accuracy'\]"):
        package_onnx(pipeline, jukebox_spec, "1", {"accuracy": 0.5})


def test_predictor_takes_dicts_frames_and_matrices(jukebox_spec, jukebox_splits, linear):
    predictor = OnnxPredictor.from_model(linear[1])
    frame = feature_frame(jukebox_splits[1], jukebox_spec).head(5)
    labels, probabilities = predictor.predict(frame)
    assert labels.dtype.kind == "U" and probabilities.dtype == np.float32
    for same in (
        predictor.predict({name: column.to_numpy() for name, column in frame.items()}),
        predictor.predict({name: column.to_numpy().reshape(-1, 1) for name, column in frame.items()}),
        predictor.predict({name: column.tolist() for name, column in frame.astype("float64").items()}),
        predictor.predict_matrix(frame.to_numpy()),
    ):
        assert same[0].tolist() == labels.tolist()
        np.testing.assert_array_equal(same[1], probabilities)

    missing_value = frame.copy()
    missing_value.loc[missing_value.index[0], "tempo"] = np.nan
    assert np.isfinite(predictor.predict(missing_value)[1]).all()  # imputed inside the graph
    assert check_parity(linear[1], linear[0], missing_value, jukebox_spec) <= PARITY_TOLERANCE


def test_predictor_names_what_is_wrong_with_the_input(jukebox_spec, linear):
    predictor = OnnxPredictor.from_model(linear[1])
    song = {
        name: [feature.default] for name, feature in zip(jukebox_spec.feature_names, jukebox_spec.features, strict=True)
    }
    with pytest.raises(ValueError, match=r"missing \['tempo'\], unknown \[\]"):
        predictor.predict({k: v for k, v in song.items() if k != "tempo"})
    with pytest.raises(ValueError, match=r"missing \[\], unknown \['bpm'\]"):
        predictor.predict({**song, "bpm": [120.0]})
    with pytest.raises(ValueError, match="feature 'energy': values are not numbers"):
        predictor.predict({**song, "energy": ["loud"]})
    with pytest.raises(ValueError, match=r"feature 'energy': expected shape \[N\] or \[N, 1\], got \[1, 2\]"):
        predictor.predict({**song, "energy": [[0.1, 0.2]]})
    with pytest.raises(ValueError, match="differ in length"):
        predictor.predict({**song, "energy": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"shape \[N, 13\], got \[2, 12\]"):
        predictor.predict_matrix(np.zeros((2, 12)))


def test_wine_packages_with_its_own_features_and_classes(wine_spec):
    train, test = splits(wine_spec)
    pipeline = fit(wine_spec, train, "logistic_regression")
    model = package_onnx(pipeline, wine_spec, "1", {})
    assert [graph_input.name for graph_input in model.graph.input] == wine_spec.feature_names
    assert check_parity(model, pipeline, test, wine_spec) <= PARITY_TOLERANCE
    predictor = OnnxPredictor.from_model(model)
    labels, probabilities = predictor.predict(feature_frame(test, wine_spec))
    assert predictor.classes == predictor.class_names == ["class_0", "class_1", "class_2"]
    assert probabilities.shape == (len(test), 3) and set(labels) <= set(predictor.classes)
    assert (predictor.model_name, predictor.top_k) == ("wine", 3)


# Regression (store_sales): one 'prediction' output in the target's unit, parity per family.

REGRESSION_PARAMS = {
    "ridge": {},
    "random_forest_regressor": {"n_estimators": 20, "max_depth": 8, "min_samples_leaf": 3},
    "hist_gradient_boosting_regressor": {"max_iter": 100},
}


@pytest.fixture(scope="module")
def sales_spec():
    return load_spec(USE_CASES_DIR / "store_sales.yaml")


@pytest.fixture(scope="module")
def sales_splits(sales_spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A store_sales-like frame split by time: the last 8 weeks test, the rest trains."""
    frame = sales_frame(sales_spec, series=24, weeks=90)
    test_start = frame["date"].max() - pd.Timedelta(weeks=7)
    return frame[frame["date"] < test_start], frame[frame["date"] >= test_start]


def fit_regressor(spec, train: pd.DataFrame, family: str, **params):
    candidate = CandidateConfig(name="test", family=family, params={**REGRESSION_PARAMS[family], **params})
    return build_pipeline(spec, candidate).fit(feature_frame(train, spec), train[spec.target.column])


@pytest.fixture(scope="module")
def sales_models(sales_spec, sales_splits):
    """family -> (fitted pipeline, packaged ONNX model)."""
    train, _ = sales_splits
    models = {}
    for family in REGRESSION_PARAMS:
        pipeline = fit_regressor(sales_spec, train, family)
        models[family] = pipeline, package_onnx(pipeline, sales_spec, "3", example_metadata(sales_spec))
    return models


@pytest.mark.parametrize("family", REGRESSION_PARAMS)
def test_regression_graph_returns_one_prediction_in_the_targets_unit(family, sales_spec, sales_models):
    _, model = sales_models[family]
    assert io_signature(model.graph.input) == [
        (name, onnx.TensorProto.FLOAT, [None, 1]) for name in sales_spec.feature_names
    ]
    assert io_signature(model.graph.output) == [(PREDICTION, onnx.TensorProto.FLOAT, [None, 1])]
    onnx.checker.check_model(model)
    assert "(regression)" in model.doc_string and "'prediction' float32 [N, 1]" in model.doc_string
    assert "in units" in model.doc_string


@pytest.mark.parametrize("family", REGRESSION_PARAMS)
def test_regression_onnx_reproduces_scikit_learn_on_held_out_weeks(family, sales_spec, sales_splits, sales_models):
    _, test = sales_splits
    pipeline, model = sales_models[family]
    relative = check_parity(model, pipeline, test, sales_spec, PARITY_TOLERANCE)
    print(f"\nparity {family}: max relative difference {relative:.3g} over {len(test)} rows, {model.ByteSize():,} B")
    assert 0 <= relative <= PARITY_TOLERANCE
    expected = model_output(pipeline, feature_frame(test, sales_spec), sales_spec)  # clipped at 0 sales like the graph
    predicted = OnnxPredictor.from_model(model).predict_values(feature_frame(test, sales_spec))
    assert predicted.dtype == np.float32 and predicted.shape == (len(test),)
    assert np.abs(predicted - expected).max() <= PARITY_TOLERANCE * np.maximum(np.abs(expected), 1).max()


def test_gradient_boosting_with_a_log_link_keeps_parity(sales_spec, sales_splits):
    """A poisson loss predicts exp(raw score): the graph ends in Exp."""
    train, test = sales_splits
    pipeline = fit_regressor(sales_spec, train, "hist_gradient_boosting_regressor", loss="poisson")
    model = package_onnx(pipeline, sales_spec, "1", {})
    assert "Exp" in [node.op_type for node in model.graph.node]
    assert check_parity(model, pipeline, test, sales_spec) <= PARITY_TOLERANCE


def test_tree_thresholds_are_doubles_as_in_scikit_learn(sales_models):
    """HistGradientBoosting compares float64 thresholds: the graph casts the features to double."""
    _, model = sales_models["hist_gradient_boosting_regressor"]
    tree = next(node for node in model.graph.node if node.op_type == "TreeEnsembleRegressor")
    thresholds = next(a for a in tree.attribute if a.name == "nodes_values_as_tensor")
    assert thresholds.t.data_type == onnx.TensorProto.DOUBLE
    assert any(node.op_type == "Cast" for node in model.graph.node)


def test_regression_parity_gate_names_the_relative_difference(sales_spec, sales_splits, sales_models):
    pipeline, model = sales_models["ridge"]
    broken = tampered(model, "LinearRegressor", "intercepts", lambda b: [b[0] + 1.0])
    message = r"^ONNX parity failed: max relative difference of predictions [0-9.e-]+ > 0\.0001 over \d+ rows$"
    with pytest.raises(ParityError, match=message):
        check_parity(broken, pipeline, sales_splits[1], sales_spec)


def test_regressor_metadata_and_predictor_api(sales_spec, sales_splits, sales_models):
    _, model = sales_models["ridge"]
    predictor = OnnxPredictor.from_model(model)
    assert (predictor.task, predictor.is_classification) == (Task.REGRESSION, False)
    assert predictor.metadata[TASK] == "regression" and predictor.metadata["class_labels"] == "[]"
    assert predictor.target == {
        "column": "sales",
        "description": "Units of the product family sold in the store in the week",
        "unit": "units",
        "min": 0.0,
        "max": 10000000.0,
    }
    assert predictor.output_names == ["sales"] and predictor.classes == [] and predictor.top_k == 1
    assert predictor.feature_names == sales_spec.feature_names
    frame = feature_frame(sales_splits[1], sales_spec).head(4)
    scores = predictor.scores(frame.to_numpy())
    assert scores.dtype == np.float32 and scores.shape == (4, 1)
    values = predictor.predict_values(frame)
    np.testing.assert_array_equal(values, scores[:, 0])
    np.testing.assert_array_equal(predictor.predict_values({k: v.tolist() for k, v in frame.items()}), values)
    for method, argument in (
        (predictor.predict, frame),
        (predictor.predict_matrix, frame.to_numpy()),
        (predictor.probabilities, frame.to_numpy()),
        (predictor.top_classes, scores),
    ):
        with pytest.raises(ValueError, match=r"is for classification models; store_sales is a regression model"):
            method(argument)
    with pytest.raises(ValueError, match=r"missing \['price'\]"):
        predictor.predict_values(frame.drop(columns="price"))


def test_classifier_predictor_api_for_both_task_methods(jukebox_spec, jukebox_splits, linear):
    predictor = OnnxPredictor.from_model(linear[1])
    assert (predictor.task, predictor.is_classification, predictor.target) == (
        Task.MULTICLASS_CLASSIFICATION,
        True,
        None,
    )
    assert predictor.metadata[TASK] == "multiclass_classification" and "target" not in predictor.metadata
    assert predictor.output_names == jukebox_spec.target.classes
    matrix = feature_frame(jukebox_splits[1], jukebox_spec).head(3).to_numpy()
    np.testing.assert_array_equal(predictor.scores(matrix), predictor.probabilities(matrix))
    assert predictor.scores(matrix).shape == (3, 72)
    with pytest.raises(ValueError, match="predict_values is for regression models; jukebox is a multiclass"):
        predictor.predict_values(feature_frame(jukebox_splits[1], jukebox_spec).head(3))


def test_a_file_without_task_metadata_is_a_classifier(linear):
    _, model = linear
    older = onnx.ModelProto()
    older.CopyFrom(model)
    kept = [prop for prop in older.metadata_props if prop.key != TASK]
    del older.metadata_props[:]
    older.metadata_props.extend(kept)
    predictor = OnnxPredictor.from_model(older)
    assert predictor.task is Task.MULTICLASS_CLASSIFICATION and predictor.output_names == predictor.classes


def test_predictor_refuses_an_unknown_task_or_a_regressor_without_target(linear, sales_models):
    def with_props(model, **props):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        values = {prop.key: prop.value for prop in copy.metadata_props} | props
        onnx.helper.set_model_props(copy, {k: v for k, v in values.items() if v is not None})
        return copy

    with pytest.raises(ValueError, match=r"'task' metadata 'ranking' is not one of"):
        OnnxPredictor.from_model(with_props(linear[1], task="ranking"))
    with pytest.raises(ValueError, match="a regression model's metadata lacks 'target'"):
        OnnxPredictor.from_model(with_props(sales_models["ridge"][1], target=None))
    with pytest.raises(ValueError, match=r"graph outputs \['probabilities', 'label'\] are not \['prediction'\]"):
        OnnxPredictor.from_model(with_props(linear[1], task="regression", target='{"column": "x"}'))


def test_regression_packaging_refuses_a_classifier_and_written_keys(sales_spec, linear, sales_models):
    with pytest.raises(ValueError, match="store_sales' is a regression task, but the pipeline is a classifier"):
        package_onnx(linear[0], sales_spec, "1", {})
    with pytest.raises(ValueError, match=r"\['target', 'task'\] are written by package_onnx"):
        package_onnx(sales_models["ridge"][0], sales_spec, "1", {"task": "x", "target": "y"})


REGRESSION_CLIENT = """
import json, sys
from headliner.model.onnx_packaging import OnnxPredictor
predictor = OnnxPredictor.from_path(sys.argv[1])
values = predictor.predict_values(json.loads(sys.argv[2]))
heavy = sorted({"sklearn", "pandas", "skl2onnx", "onnx"} & set(sys.modules))
assert not heavy, f"OnnxPredictor imported {heavy}"
print(json.dumps(values.tolist()))
"""


def test_a_regressor_needs_only_onnxruntime_and_numpy(sales_spec, sales_splits, sales_models, tmp_path):
    _, model = sales_models["hist_gradient_boosting_regressor"]
    path = tmp_path / "sales.onnx"
    path.write_bytes(model.SerializeToString())
    weeks = feature_frame(sales_splits[1], sales_spec).head(3)
    result = subprocess.run(
        [sys.executable, "-c", REGRESSION_CLIENT, str(path), json.dumps({k: v.tolist() for k, v in weeks.items()})],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = OnnxPredictor.from_model(model).predict_values(weeks)
    np.testing.assert_array_equal(np.asarray(json.loads(result.stdout), dtype=np.float32), expected)


def test_packaged_model_of_a_regression_use_case_takes_the_data_pipelines_path(sales_spec):
    """The test helper the serving and explanation tests use: generated rows, wrangled, labelled, with
    derived features, split by time, a ridge fitted on the train split."""
    predictor = OnnxPredictor(packaged_model(sales_spec, rows=5000, version="2"))
    assert (predictor.task, predictor.model_version, predictor.output_names) == (Task.REGRESSION, "2", ["sales"])
    assert predictor.metadata["candidate"] == "test" and predictor.background is not None
    assert predictor.background.shape == (50, len(sales_spec.features))
    preset = json.loads(predictor.metadata["presets"])[0]["values"]
    [forecast] = predictor.predict_values({name: [value] for name, value in preset.items()})
    assert 0 < forecast < 10_000  # an ordinary week of about 350 units sold before
