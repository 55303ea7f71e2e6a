"""The page for people (`GET /` of the service): a form generated from the served model's own metadata
(feature schema, classes and their names or the target and its unit, the decision's wording, example inputs),
so the page, the API and the model cannot disagree and every model gets its own correct form with no change
here. A classifier's answer is its top classes as bars; a regressor's, its forecast in words ("About 1,240
units", as /predict words it).

The HTML is rendered here with every metadata value escaped; the model's data travels in the page as
JSON for the script (headliner/serving/static/page.js), which asks the service's own endpoints
(`POST /predict`, `POST /explain` for "why these classes" or "why this forecast": a bar per feature,
`POST /v2/models/{model}/infer` for a classifier's full list, `POST /batch` for a CSV file); it links the
version's card (`GET /model-card`).
The style and the script are inline, nothing is fetched from elsewhere, and the Content-Security-Policy
sent with the page allows exactly these two by hash.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

from headliner.model.onnx_packaging import DECISION, PRESETS, USE_CASE, OnnxPredictor, example_inputs
from headliner.spec import Task

STATIC = Path(__file__).parent / "static"
STYLE = (STATIC / "page.css").read_text()
SCRIPT = (STATIC / "page.js").read_text()
GENERIC_DECISION = {
    "question": "What does the model predict?",
    "answer_template": "Most likely: {classes}",
    "item_noun": "example",
    "class_noun": "classes",
}


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_sha256(SCRIPT)}; style-src {_sha256(STYLE)}; connect-src 'self'; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
)


def feature_label(entry: dict[str, Any]) -> str:
    """A feature's name as words: 'duration_ms' with unit 'ms' -> 'Duration', 'malic_acid' -> 'Malic acid'."""
    words = entry["name"].split("_")
    unit = (entry.get("unit") or "").lower()
    if len(words) > 1 and words[-1].lower() == unit:
        words = words[:-1]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def slider_step(entry: dict[str, Any]) -> float | None:
    """The step of a feature's slider: 1 for whole numbers, about a hundredth of the range (a power of
    ten) for numbers; None when the feature has no range to slide over."""
    low, high = entry.get("min"), entry.get("max")
    if entry["dtype"] == "bool" or low is None or high is None:
        return None
    if entry["dtype"] == "int" or high <= low:
        return 1
    return 10.0 ** math.floor(math.log10((high - low) / 100))


def page_data(predictor: OnnxPredictor) -> dict[str, Any]:
    """What the page shows, from the model's metadata; a model packaged without the decision's wording
    or presets gets generic words and only the schema's typical values."""
    metadata = predictor.metadata
    decision = {**GENERIC_DECISION, **json.loads(metadata.get(DECISION, "{}"))}
    typical = {
        "name": f"Typical {decision['item_noun']}",
        "description": "Every value at its default",
        "values": example_inputs(predictor.feature_schema),
    }
    features = [
        {**entry, "label": feature_label(entry), "step": slider_step(entry)} for entry in predictor.feature_schema
    ]
    return {
        "model": {"name": predictor.model_name, "version": predictor.model_version},
        "title": metadata.get(USE_CASE) or predictor.model_name,
        **decision,
        "task": predictor.task.value,
        "unit": (predictor.target or {}).get("unit") or "",
        "top_k": predictor.top_k,
        "features": features,
        "classes": predictor.classes,
        "class_names": predictor.class_names,
        "presets": [typical, *json.loads(metadata.get(PRESETS, "[]"))],
    }


def _shown(value: float) -> str:
    """A number for people: 1,200,000 and 0.5."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _attribute(value: float) -> str:
    """A number for an input's attribute: no grouping, no exponent."""
    return str(int(value)) if float(value).is_integer() else format(value, ".12g")


def valid_values(entry: dict[str, Any]) -> str:
    """What a feature accepts, in words: '30 – 250 BPM', 'at least 0', 'yes or no'."""
    if entry["dtype"] == "bool":
        return "yes or no"
    low, high, unit = entry.get("min"), entry.get("max"), entry.get("unit")
    whole = "whole number " if entry["dtype"] == "int" else ""
    if low is not None and high is not None:
        text = f"{whole}{_shown(low)} – {_shown(high)}"
    elif low is not None:
        text = f"{whole}at least {_shown(low)}"
    elif high is not None:
        text = f"{whole}at most {_shown(high)}"
    else:
        text = "any whole number" if whole else "any number"
    return f"{text} {unit}" if unit else text


def _field(index: int, entry: dict[str, Any], value: float) -> str:
    e = html.escape
    field_id = f"f{index}"
    described = f'aria-describedby="{field_id}-hint {field_id}-error"'
    description = entry.get("description") or ""
    if description.lower() == entry["label"].lower():  # 'Ash': nothing to add
        description = ""
    hint = f'<p class="hint" id="{field_id}-hint">{e(description)}</p>'
    error = f'<p class="field-error" id="{field_id}-error" hidden></p>'
    head = (
        f'<div class="field-head"><label for="{field_id}">{e(entry["label"])}</label>'
        f'<span class="valid">{e(valid_values(entry))}</span></div>'
    )
    if entry["dtype"] == "bool":
        checked = " checked" if value else ""
        check = (
            f'<div class="field-head check"><input type="checkbox" id="{field_id}" name="{e(entry["name"])}"{checked} '
            f'{described}><label for="{field_id}">{e(entry["label"])}</label>'
            f'<span class="valid">{e(valid_values(entry))}</span></div>'
        )
        return f'<div class="field field-bool" data-feature="{e(entry["name"])}">{check}{hint}{error}</div>'
    limits = "".join(
        f' {bound}="{_attribute(entry[bound])}"' for bound in ("min", "max") if entry.get(bound) is not None
    )
    step = entry["step"]
    number_step = _attribute(step) if step is not None else ("1" if entry["dtype"] == "int" else "any")
    # phone keyboards of these modes have no minus sign
    unsigned = entry.get("min") is not None and entry["min"] >= 0
    mode = f' inputmode="{"numeric" if entry["dtype"] == "int" else "decimal"}"' if unsigned else ""
    number = (
        f'<input type="number" id="{field_id}" name="{e(entry["name"])}" value="{_attribute(value)}"{limits} '
        f'step="{number_step}"{mode} {described}>'
    )
    slider = ""
    if step is not None:
        slider = (
            f'<label class="visually-hidden" for="{field_id}-slider">{e(entry["label"])} (slider)</label>'
            f'<input type="range" id="{field_id}-slider" value="{_attribute(value)}"{limits} step="{_attribute(step)}" '
            f'tabindex="-1">'
        )
    unit = f'<span class="unit">{e(entry.get("unit") or "")}</span>'  # empty too: the inputs line up
    return (
        f'<div class="field" data-feature="{e(entry["name"])}">{head}{hint}'
        f'<div class="controls">{slider}{number}{unit}</div>{error}</div>'
    )


def _preset_button(index: int, preset: dict[str, Any]) -> str:
    e = html.escape
    return (
        f'<button type="button" class="preset" data-preset="{index}">'
        f'<span class="preset-name">{e(preset["name"])}</span>'
        f'<span class="preset-description">{e(preset.get("description") or "")}</span></button>'
    )


def example_csv(data: dict[str, Any]) -> str:
    """The presets as a CSV file to upload: an `example` column (passed through), then the features."""
    names = [entry["name"] for entry in data["features"]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["example", *names])
    for preset in data["presets"]:
        writer.writerow([preset["name"], *(preset["values"][name] for name in names)])
    return out.getvalue()


def _json_for_script(data: dict[str, Any]) -> str:
    """JSON that cannot end the <script> element it sits in, whatever strings it holds."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(data: dict[str, Any], auth: bool, max_upload_rows: int) -> str:
    """The whole page as one HTML document (`data` from `page_data`). With `auth`, the page asks for the
    API token, which its requests then carry."""
    e = html.escape
    model = f"{data['model']['name']} version {data['model']['version']}"
    model_name, model_version = e(data["model"]["name"]), e(data["model"]["version"])
    item, classes = data["item_noun"], data["class_noun"]
    start = data["presets"][0]["values"]
    fields = "".join(_field(index, entry, start[entry["name"]]) for index, entry in enumerate(data["features"]))
    presets = "".join(_preset_button(index, preset) for index, preset in enumerate(data["presets"]))
    columns = ", ".join(f"<code>{e(entry['name'])}</code>" for entry in data["features"])
    example_href = "data:text/csv;charset=utf-8," + quote(example_csv(data))
    token = (
        '<form class="token" id="token-form" novalidate><label for="token">API token</label>'
        '<p class="hint" id="token-hint">This service asks for a token; every answer needs it.</p>'
        '<input type="password" id="token" autocomplete="off" aria-describedby="token-hint"></form>'
        if auth
        else ""
    )
    top_k = data["top_k"]
    if data["task"] == Task.REGRESSION:
        unit = e(data["unit"])
        answer_note = f"The forecast, in {unit}"
        bars = ""
        why_title = "Why this forecast"
        why_note = (
            f"What each feature of this {e(item)} adds to (right) or takes from (left) the forecast, in {unit}, "
            f"from the average forecast over typical {e(item)}s."
        )
        every_class = ""
        batch_note = (
            f"The result has, per row, the forecast (<code>prediction</code>, in {unit}) and an <code>error</code> "
            "column saying why a row was not scored."
        )
    else:
        answer_note = f"Top {top_k} {e(classes)} with their probabilities"
        bars = (
            f'<ol id="top" class="bars" aria-label="Top {top_k} {e(classes)}"></ol>\n'
            '      <p class="section-note">Bar lengths are relative to the first.</p>'
        )
        why_title = f"Why these {e(classes)}"
        why_note = (
            f"What each feature of this {e(item)} adds to (right) or takes from (left) the\n        probability of "
            f"each of these {e(classes)}, in percentage points, from its average over typical {e(item)}s."
        )
        every_class = f"""<details id="all">
        <summary>All {len(data["classes"])} {e(classes)}</summary>
        <div id="all-status" class="section-note" role="status"></div>
        <ol id="all-list" class="bars bars-all"></ol>
      </details>"""
        batch_note = (
            f"The result has, per row, the top {top_k} {e(classes)} (<code>top_1_code</code>,\n    "
            "<code>top_1_name</code>, <code>top_1_probability</code>, …) and an <code>error</code> column saying why "
            "a row\n    was not scored."
        )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(data["title"])} · {e(model)}</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<a class="skip" href="#predict-form">Skip to the form</a>
<header class="masthead">
  <div class="wrap">
    <p class="eyebrow">Model <strong>{model_name}</strong> · version <strong>{model_version}</strong> ·
    <a href="model-card" id="model-card-link">model card</a></p>
    <h1>{e(data["title"])}</h1>
    <p class="question">{e(data["question"])}</p>
  </div>
</header>
<main class="wrap layout">
  <section class="card form-card" aria-labelledby="form-title">
    <h2 id="form-title">Describe the {e(item)}</h2>
    {token}
    <div class="presets" role="group" aria-labelledby="presets-title">
      <p class="section-note" id="presets-title">Start from an example (fills the form and asks the model):</p>
      <div class="preset-list">{presets}</div>
    </div>
    <form id="predict-form" novalidate>
      <div class="fields">{fields}</div>
      <div class="actions"><button type="submit" class="primary" id="predict">Predict</button>
      <span class="section-note">{answer_note}</span></div>
    </form>
  </section>
  <section class="card answer-card" id="answer" aria-labelledby="answer-title">
    <h2 id="answer-title">The answer</h2>
    <div id="alert" class="alert" role="alert"></div>
    <p id="status" class="status" role="status">Pick an example or fill in the form, then press Predict.</p>
    <div id="result" hidden>
      <p id="headline" class="headline"></p>
      {bars}
      <p id="answered-by" class="answered-by"></p>
      <section id="why" class="why" aria-labelledby="why-title" hidden>
        <h3 id="why-title">{why_title}</h3>
        <p class="section-note">{why_note}
        Every bar is drawn to the same scale.</p>
        <p id="why-status" class="section-note" role="status"></p>
        <div id="why-classes"></div>
      </section>
      {every_class}
    </div>
  </section>
  <section class="card batch-card" aria-labelledby="batch-title">
    <h2 id="batch-title">Upload a CSV file, one {e(item)} per row</h2>
    <p class="section-note">A header row names the columns: {columns}.
    Other columns (an id, a name) are copied to the result. At most {max_upload_rows:,} rows.
    <a href="{e(example_href)}" download="{model_name}_examples.csv">Download an example file</a>.</p>
    <form id="batch-form" novalidate>
      <label for="csv-file">CSV file</label>
      <input type="file" id="csv-file" accept=".csv,text/csv" aria-describedby="batch-alert">
      <button type="submit" class="secondary">Score the file</button>
    </form>
    <div id="batch-alert" class="alert" role="alert"></div>
    <p id="batch-status" class="status" role="status"></p>
    <a id="batch-download" class="download" hidden></a>
    <p class="section-note">{batch_note}</p>
  </section>
</main>
<footer class="wrap footer">
  <p>Answered by the model service itself: the same answers as <code>POST /predict</code> and
  <code>POST /v2/models/{model_name}/infer</code>, the reasons as <code>POST /explain</code>; the model's metadata:
  <code>GET /v2/models/{model_name}</code>; what this version is, how it was trained and where it is weak:
  <a href="model-card">its model card</a>.</p>
</footer>
<script type="application/json" id="page-data">{_json_for_script(data)}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""
