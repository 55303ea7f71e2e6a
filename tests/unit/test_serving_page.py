"""The page for people without a server or a browser: its form comes from the served model's metadata
(labels, ranges, units, defaults, explanations, presets) for jukebox and wine alike, every input has a
label, metadata is escaped everywhere, a model packaged without presets still gets a page, and the
Content-Security-Policy allows exactly the page's own inline style and script."""

import base64
import hashlib
import io
import json
import re
from html.parser import HTMLParser
from urllib.parse import unquote

import onnx
import pandas as pd
import pytest

from headliner.model.onnx_packaging import DECISION, PRESETS, OnnxPredictor
from headliner.serving.batch_scoring import score_csv
from headliner.serving.page import (
    CONTENT_SECURITY_POLICY,
    SCRIPT,
    STYLE,
    example_csv,
    feature_label,
    page_data,
    render_page,
    slider_step,
    valid_values,
)


class Elements(HTMLParser):
    """Every start tag's attributes, the text of each <label> by its `for`, and of each element with an id."""

    VOID = frozenset({"input", "meta", "link", "br", "img"})

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self._open: list[tuple[str, str, list[str]]] = []  # (tag, key, text) of the elements not yet closed
        self._texts: list[tuple[str, list[str]]] = []
        self.feed(page)
        self.labels = {key[4:]: "".join(text).strip() for key, text in self._texts if key.startswith("for:")}
        self.text_by_id = {key[3:]: "".join(text).strip() for key, text in self._texts if key.startswith("id:")}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in self.VOID:
            return
        key = f"for:{attributes['for']}" if tag == "label" else f"id:{attributes['id']}" if "id" in attributes else ""
        text: list[str] = []
        self._open.append((tag, key, text))
        if key:
            self._texts.append((key, text))

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for _, key, text in self._open:
            if key:
                text.append(data)

    def inputs(self) -> list[dict]:
        return [attributes for tag, attributes in self.tags if tag == "input"]


def embedded(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="page-data">(.*?)</script>', page, re.S).group(1))


def test_the_jukebox_form_has_a_labelled_input_per_feature_with_range_unit_default_and_explanation(
    predictor, jukebox_spec
):
    page = render_page(page_data(predictor), auth=False, max_upload_rows=100_000)
    elements = Elements(page)
    inputs = {attributes["id"]: attributes for attributes in elements.inputs()}
    for index, feature in enumerate(jukebox_spec.features):
        field = inputs[f"f{index}"]
        assert field["name"] == feature.name
        assert f"f{index}-hint" in field["aria-describedby"] and f"f{index}-error" in field["aria-describedby"]
        if feature.dtype.value == "bool":
            assert field["type"] == "checkbox" and ("checked" in field) == bool(feature.default)
            continue
        assert field["type"] == "number" and float(field["value"]) == feature.default
        assert (float(field["min"]), float(field["max"])) == (feature.min, feature.max)
        slider = inputs[f"f{index}-slider"]
        assert slider["type"] == "range" and slider["min"] == field["min"] and slider["max"] == field["max"]
        assert elements.labels[f"f{index}-slider"].endswith("(slider)")
    for attributes in elements.inputs():  # every input has a <label for> with text
        assert elements.labels.get(attributes["id"]), attributes
    labels = [elements.labels[f"f{index}"] for index in range(13)]
    assert labels[:4] == ["Is explicit", "Duration", "Danceability", "Energy"] and labels[-1] == "Tempo"
    assert elements.text_by_id["f2-hint"] == "How suitable the song is for dancing, 0 (least) to 1 (most)"
    assert "30 – 250 BPM" in page and "whole number 10,000 – 1,200,000 ms" in page and "-60 – 0 dB" in page
    assert elements.text_by_id["form-title"] == "Describe the song"
    assert elements.text_by_id["all"].startswith("All 72 countries")
    assert "<h1>The Headliner</h1>" in page and "In which countries will this song be a hit?" in page
    assert 'id="token"' not in page


def test_the_presets_come_from_the_spec_through_the_model(predictor, jukebox_spec):
    data = page_data(predictor)
    presets = data["presets"]
    assert [preset["name"] for preset in presets] == ["Typical song", *(preset.name for preset in jukebox_spec.presets)]
    assert presets[0]["values"]["tempo"] == 122.0 and presets[0]["values"]["key"] == 5
    ballad = next(preset for preset in presets if preset["name"] == "Acoustic ballad")
    assert ballad["values"]["acousticness"] == 0.8 and ballad["values"]["instrumentalness"] == 0.0  # a default
    assert list(ballad["values"]) == jukebox_spec.feature_names
    page = render_page(data, auth=False, max_upload_rows=10)
    buttons = [attributes for tag, attributes in Elements(page).tags if tag == "button" and "data-preset" in attributes]
    assert [int(button["data-preset"]) for button in buttons] == list(range(len(presets)))
    assert embedded(page)["presets"] == presets


def test_the_example_file_of_the_page_scores_through_the_batch_path(predictor):
    data = page_data(predictor)
    page = render_page(data, auth=False, max_upload_rows=10)
    href = re.search(r'href="data:text/csv;charset=utf-8,([^"]+)" download="jukebox_examples.csv"', page).group(1)
    content = unquote(href)
    assert content == example_csv(data)
    predictions, report = score_csv(predictor, content.encode(), 10, None, "example")
    assert (report.rows_in, report.rows_scored) == (len(data["presets"]), len(data["presets"]))
    assert pd.read_csv(io.BytesIO(predictions))["example"].tolist() == [preset["name"] for preset in data["presets"]]


def test_the_wine_model_gets_its_own_form(wine_predictor, wine_spec):
    page = render_page(page_data(wine_predictor), auth=True, max_upload_rows=50)
    elements = Elements(page)
    labels = [elements.labels[f"f{index}"] for index in range(13)]
    assert labels[:3] == ["Alcohol", "Malic acid", "Ash"] and labels[-1] == "Proline"
    assert not any(name in page for name in ("tempo", "danceability", "countries", "song"))
    assert "<h1>Wine cultivar</h1>" in page and "Which cultivar does this wine come from?" in page
    assert "0 – 25 % vol" in page and elements.text_by_id["all"].startswith("All 3 cultivars")
    assert elements.text_by_id["f2-hint"] == ""  # 'Ash' says nothing more than its label
    assert "Like cultivar 1" in page and "At most 50 rows" in page
    assert elements.labels["token"] == "API token"
    assert embedded(page)["class_names"] == ["Cultivar 1", "Cultivar 2", "Cultivar 3"]


def test_a_model_packaged_without_presets_or_wording_gets_a_page_from_its_schema(jukebox_onnx_file):
    model = onnx.load(str(jukebox_onnx_file))
    kept = [prop for prop in model.metadata_props if prop.key not in (DECISION, PRESETS)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    data = page_data(OnnxPredictor.from_model(model))
    assert [preset["name"] for preset in data["presets"]] == ["Typical example"]
    assert (data["question"], data["class_noun"]) == ("What does the model predict?", "classes")
    page = render_page(data, auth=False, max_upload_rows=10)
    assert "Describe the example" in page and "All 72 classes" in page


def test_metadata_is_escaped_everywhere_and_cannot_end_the_embedded_json(predictor):
    hostile = '</script><script>alert(1)</script><b onmouseover=x>&amp;"'
    data = page_data(predictor)
    data["title"] = data["question"] = data["item_noun"] = data["class_noun"] = hostile
    data["model"] = {"name": hostile, "version": hostile}
    data["features"][12] = {**data["features"][12], "label": hostile + "!", "description": hostile, "unit": hostile}
    data["class_names"] = [hostile] * 72
    data["presets"][0] = {**data["presets"][0], "name": hostile, "description": hostile}
    page = render_page(data, auth=True, max_upload_rows=10)
    assert "<script>alert" not in page and "<b onmouseover" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2  # the data and the page's script
    assert embedded(page) == data
    elements = Elements(page)
    assert elements.labels["f12"] == hostile + "!" and elements.text_by_id["f12-hint"] == hostile


def test_the_content_security_policy_allows_exactly_the_inline_style_and_script(predictor):
    page = render_page(page_data(predictor), auth=False, max_upload_rows=10)
    digest = lambda text: "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"  # noqa: E731
    assert f"<style>{STYLE}</style>" in page and f"<script>{SCRIPT}</script>" in page
    assert (
        f"script-src {digest(SCRIPT)};" in CONTENT_SECURITY_POLICY
        and f"style-src {digest(STYLE)};" in CONTENT_SECURITY_POLICY
    )
    assert "connect-src 'self'" in CONTENT_SECURITY_POLICY and CONTENT_SECURITY_POLICY.startswith("default-src 'none'")
    for tag, attributes in Elements(page).tags:  # nothing is fetched from elsewhere
        assert "src" not in attributes, tag
        assert not attributes.get("href", "").startswith(("http", "//")), tag
    assert ' style="' not in page


@pytest.mark.parametrize(
    ("entry", "label", "valid", "step"),
    [
        (
            {"name": "duration_ms", "dtype": "int", "unit": "ms", "min": 10000, "max": 1200000},
            "Duration",
            "whole number 10,000 – 1,200,000 ms",
            1,
        ),
        ({"name": "danceability", "dtype": "float", "min": 0, "max": 1}, "Danceability", "0 – 1", 0.01),
        ({"name": "loudness", "dtype": "float", "unit": "dB", "min": -60, "max": 0}, "Loudness", "-60 – 0 dB", 0.1),
        ({"name": "proline", "dtype": "float", "unit": "mg/l", "min": 0, "max": 3000}, "Proline", "0 – 3,000 mg/l", 10),
        ({"name": "is_explicit", "dtype": "bool"}, "Is explicit", "yes or no", None),
        (
            {"name": "weight_kg", "dtype": "float", "unit": "kg", "min": 0.5, "max": None},
            "Weight",
            "at least 0.5 kg",
            None,
        ),
        ({"name": "score", "dtype": "int", "min": None, "max": None}, "Score", "any whole number", None),
    ],
)
def test_labels_valid_values_and_slider_steps(entry, label, valid, step):
    assert (feature_label(entry), valid_values(entry), slider_step(entry)) == (label, valid, step)
