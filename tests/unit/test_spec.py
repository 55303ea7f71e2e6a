"""The use-case spec: both shipped specs load, and broken specs fail naming the field."""

import re
from pathlib import Path

import pytest

from headliner.errors import SpecError
from headliner.spec import USE_CASES_DIR, FeatureType, load_spec

JUKEBOX_FEATURES = [
    "is_explicit",
    "duration_ms",
    "danceability",
    "energy",
    "key",
    "loudness",
    "mode",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
    "tempo",
]


def test_jukebox_spec_matches_the_design(jukebox_spec):
    assert jukebox_spec.name == "jukebox"
    assert jukebox_spec.feature_names == JUKEBOX_FEATURES
    classes = jukebox_spec.target.classes
    assert len(classes) == 72 and classes == sorted(classes)
    assert "NO" in classes  # YAML's Norway problem: NO must stay a string
    assert jukebox_spec.target.column == "country"
    assert jukebox_spec.split.group_column == "spotify_id"
    assert jukebox_spec.feature("is_explicit").dtype is FeatureType.BOOL
    assert jukebox_spec.raw_columns[0] == "spotify_id" and jukebox_spec.raw_columns[-1] == "country"


def test_wine_spec_loads_with_label_mapping(wine_spec):
    assert wine_spec.name == "wine"
    assert len(wine_spec.features) == 13
    assert wine_spec.target.raw_values["2"] == "class_2"
    assert wine_spec.split.group_column is None


def test_feature_range_check(jukebox_spec):
    tempo = jukebox_spec.feature("tempo")
    assert tempo.in_range(120.0)
    assert not tempo.in_range(0.0)
    assert not tempo.in_range(float("nan"))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_missing_spec_file_names_the_file(tmp_path):
    with pytest.raises(SpecError, match=r"nope\.yaml: no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_invalid_yaml_is_refused(tmp_path):
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(_write(tmp_path, "name: [unclosed"))


@pytest.mark.parametrize(
    ("mutation", "field"),
    [
        (lambda d: d["split"].update(train=0.9), "split"),
        (lambda d: d["features"][1].update(min=5, max=1), "features.1"),
        (lambda d: d["target"].update(classes=["AE", "AE"]), "target.classes"),
        (lambda d: d.pop("target"), "target"),
        (lambda d: d.update(colour="red"), "colour"),
    ],
)
def test_invalid_spec_names_the_field(tmp_path, mutation, field):
    import yaml

    data = yaml.safe_load((USE_CASES_DIR / "jukebox.yaml").read_text())
    mutation(data)
    with pytest.raises(SpecError, match=rf"field '{field}"):
        load_spec(_write(tmp_path, yaml.safe_dump(data)))


def test_presets_are_valid_inputs_of_their_use_case(jukebox_spec, wine_spec):
    for spec in (jukebox_spec, wine_spec):
        assert len(spec.presets) >= 3
        for preset in spec.presets:
            assert set(preset.values) <= set(spec.feature_names)
            assert all(spec.feature(name).valid(value) for name, value in preset.values.items())


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"bpm": 120}, "preset 'Bad' sets unknown features ['bpm']"),
        ({"tempo": 300}, "preset 'Bad': tempo = 300 is not a valid value"),
        ({"key": 5.5}, "preset 'Bad': key = 5.5 is not a valid value"),
        ({"is_explicit": 2}, "preset 'Bad': is_explicit = 2 is not a valid value"),
    ],
)
def test_an_invalid_preset_is_refused_naming_it_and_the_feature(tmp_path, values, words):
    import yaml

    data = yaml.safe_load((USE_CASES_DIR / "jukebox.yaml").read_text())
    data["presets"] = [{"name": "Bad", "values": values}]
    with pytest.raises(SpecError, match=re.escape(words)):
        load_spec(_write(tmp_path, yaml.safe_dump(data)))


def test_a_preset_must_set_features_without_a_default_and_names_are_unique(tmp_path):
    import yaml

    data = yaml.safe_load((USE_CASES_DIR / "jukebox.yaml").read_text())
    data["features"][12].pop("default")
    data["presets"] = [{"name": "Slow", "values": {"tempo": 70}}, {"name": "No tempo", "values": {}}]
    with pytest.raises(SpecError, match=re.escape("preset 'No tempo' leaves out 'tempo', which has no default")):
        load_spec(_write(tmp_path, yaml.safe_dump(data)))
    data["presets"] = [{"name": "Slow", "values": {"tempo": 70}}, {"name": "Slow", "values": {"tempo": 60}}]
    with pytest.raises(SpecError, match=re.escape("duplicate preset names in ['Slow', 'Slow']")):
        load_spec(_write(tmp_path, yaml.safe_dump(data)))
