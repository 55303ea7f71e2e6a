"""ONNX packaging: one file is the whole model (raw named inputs, labels and probabilities out,
metadata inside), the parity gate catches a wrong graph, and a client needs only onnxruntime + numpy."""

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
    PROBABILITIES,
    OnnxPredictor,
    check_parity,
    package_onnx,
)
from headliner.spec import PROJECT_ROOT
from tests.helpers.models import example_metadata

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
