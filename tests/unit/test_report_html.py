"""Every visualization the project writes shows its content in a frame sandboxed without scripts (the ZenML
dashboard's and MLflow's viewers): each report kind and the ONNX model card, built from small realistic
inputs (jukebox's 72 classes), has no problem `script_free_problems` finds, stays within
MAX_VISUALIZATION_BYTES, shows its headline figures as text and its figures as decodable inline PNGs; and
the values behind the static views (profile statistics and top values, drift distributions) by hand."""

import base64
import html
import io
import json
import re
from datetime import UTC, datetime

import numpy as np
import onnx
import pandas as pd
import pytest
from PIL import Image

from headliner.data.profiling import (
    EVIDENTLY_FILE,
    TOP_VALUES,
    DataProfile,
    data_profile,
    histogram_counts,
    histogram_edges,
)
from headliner.data.splitting import one_row_per_group
from headliner.data.validation import validate_raw
from headliner.data.wrangling import label_examples, wrangle
from headliner.deploy.deployment import SmokeTestReport
from headliner.labels import class_display_names
from headliner.model.evaluation import evaluate
from headliner.model.gates import QualityGateReport, evaluate_gates
from headliner.model.training import CandidateScore, ModelSelection
from headliner.monitoring.decision import decide
from headliner.monitoring.drift import (
    TOP_CATEGORIES,
    ColumnDrift,
    DriftReport,
    distribution,
    feature_drift,
    prediction_drift,
)
from headliner.monitoring.fairness import fairness
from headliner.monitoring.performance import live_performance
from headliner.monitoring.quality import data_quality
from headliner.monitoring.window import LABEL, LABEL_RANK, PREDICTED, WindowReport, reference_data
from headliner.reports.html import (
    MAX_VISUALIZATION_BYTES,
    Check,
    HtmlReport,
    inline_png,
    script_free_problems,
    write_report_folder,
)
from headliner.serving.batch_scoring import score_frame
from headliner.serving.rollout_report import RolloutReport, VariantFigures
from materializers.onnx_materializer import model_card_html
from tests.helpers.traffic import SHIFT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def inline_images(page: str) -> list[Image.Image]:
    """The page's inline PNG images, decoded (each must be a PNG)."""
    images = []
    for encoded in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        png = base64.b64decode(encoded)
        assert png.startswith(PNG_SIGNATURE)
        images.append(Image.open(io.BytesIO(png)))
    return images


@pytest.fixture(scope="module")
def raw(jukebox_spec) -> pd.DataFrame:
    from headliner.data.sources import load_raw_data

    return load_raw_data(jukebox_spec, rows=100_000)


@pytest.fixture(scope="module")
def labelled(raw, jukebox_spec) -> pd.DataFrame:
    wrangled, _ = wrangle(raw, jukebox_spec, "test")
    return label_examples(wrangled, jukebox_spec, "test")[0]


@pytest.fixture(scope="module")
def frames(labelled, jukebox_onnx_file, jukebox_spec) -> dict[str, pd.DataFrame]:
    """Reference songs and current songs, the current ones as they come and with SHIFT applied, each with
    the class the small jukebox model predicts; `songs`: the current songs with their true country."""
    songs = one_row_per_group(labelled, jukebox_spec).sample(frac=1.0, random_state=3).reset_index(drop=True)
    half = len(songs) // 2
    current = songs.iloc[half:].reset_index(drop=True)
    shifted = current.copy()
    for name, value in SHIFT.items():
        feature = jukebox_spec.feature(name)
        shifted[name] = (shifted[name] + value).clip(feature.min, feature.max)
    model = jukebox_onnx_file.read_bytes()
    return {
        "reference": reference_data(songs.iloc[:half], model, jukebox_spec),
        "current": reference_data(current, model, jukebox_spec),
        "shifted": reference_data(shifted, model, jukebox_spec),
        "songs": current,
    }


@pytest.fixture(scope="module")
def monitoring_reports(frames, jukebox_spec) -> dict[str, HtmlReport]:
    """The monitoring run's reports on the shifted window, as the pipeline builds them."""
    reference, shifted = frames["reference"], frames["shifted"]
    window = WindowReport(
        model_name="jukebox",
        model_version="3",
        selection="all",
        log="sqlite:///inference.sqlite",
        first_at=datetime(2026, 12, 1, tzinfo=UTC),
        last_at=datetime(2026, 12, 2, tzinfo=UTC),
        requests=len(shifted) + 12,
        rejected_requests=12,
        top_errors={"'tempo' must be a number": 12},
        items=len(shifted),
        analysed_items=len(shifted),
        labelled_items=len(shifted),
    )
    labels = frames["songs"][jukebox_spec.target.column].to_numpy()
    live = shifted.assign(
        received_at=pd.date_range("2026-12-01", periods=len(shifted), freq="min", tz="UTC"),
        **{LABEL: labels, LABEL_RANK: np.where(labels == shifted[PREDICTED].to_numpy(), 0, -1)},
    )
    reports: dict[str, HtmlReport] = {
        "window": window,
        "feature_drift": feature_drift(reference, shifted, jukebox_spec),
        "prediction_drift": prediction_drift(reference, shifted, jukebox_spec),
        "data_quality": data_quality(shifted, window, jukebox_spec),
        "fairness": fairness(shifted, reference, jukebox_spec),
        "live_performance": live_performance(live, {"top_k_accuracy": 0.3, "accuracy": 0.1}, jukebox_spec),
    }
    reports["monitoring_summary"] = decide(
        window,
        reports["feature_drift"],
        reports["prediction_drift"],
        reports["data_quality"],
        reports["fairness"],
        reports["live_performance"],
        jukebox_spec,
    )
    return reports


@pytest.fixture(scope="module")
def pages(raw, labelled, monitoring_reports, jukebox_onnx_file, predictor, jukebox_spec) -> dict[str, str]:
    """Every visualization the project writes, by report kind, built from the generated jukebox data."""
    spec = jukebox_spec
    classes = spec.target.classes
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, len(classes), 600)
    proba = rng.dirichlet(np.ones(len(classes)), 600)
    evaluation = evaluate(spec, "jukebox", "logistic_regression", y_true, proba, y_true, class_display_names(spec))
    _, batch = score_frame(predictor, raw.iloc[:400], chunk_rows=150, batch_id="b-1", source="songs.csv")
    reports: dict[str, HtmlReport] = {
        "validation": validate_raw(raw, spec, "generator"),
        "wrangling": wrangle(raw, spec, "generator")[1],
        "data_profile": data_profile(labelled, spec, categorical=[spec.target.column], max_rows=5_000),
        "evaluation": evaluation,
        "quality_gates": QualityGateReport(results=evaluate_gates(evaluation, spec.evaluation.quality_gates)),
        "model_selection": ModelSelection(
            use_case="jukebox",
            selection_metric="top_k_accuracy",
            selected="mlp",
            candidates=[
                CandidateScore(
                    name=name,
                    family=name,
                    params={"alpha": 0.001},
                    fit_seconds=3.2,
                    validation_metrics={"top_k_accuracy": score, "accuracy": score / 3},
                    mlflow_run_id="0123abcd",
                )
                for name, score in [("logistic_regression", 0.31), ("mlp", 0.36)]
            ],
        ),
        **monitoring_reports,
        "smoke_test": SmokeTestReport(
            url="http://127.0.0.1:3000",
            model_name="jukebox",
            model_version="3",
            curl="curl -X POST http://127.0.0.1:3000/predict -d '{\"tempo\": 120}'",
            checks=[Check(name="POST /predict", passed=True, detail="200 in 12 ms")],
        ),
        "batch_scoring": batch,
        "rollout": RolloutReport(
            model_name="jukebox",
            window="the last 2,000 requests",
            policy="canary: 25% to version 4",
            variants=[
                VariantFigures(variant="production", version="3", requests=1500, errors=2, items=1500),
                VariantFigures(variant="candidate", version="4", requests=500, errors=0, items=500, accuracy=0.12),
            ],
            top_k=5,
            compared_versions=["3", "4"],
            agreement=0.8125,
            agreement_items=2000,
        ),
    }
    built = {name: report.to_html() for name, report in reports.items()}
    built["model_card"] = model_card_html(onnx.load_model_from_string(jukebox_onnx_file.read_bytes()))
    return built


REPORT_KINDS = [
    "validation",
    "wrangling",
    "data_profile",
    "evaluation",
    "quality_gates",
    "model_selection",
    "window",
    "feature_drift",
    "prediction_drift",
    "data_quality",
    "fairness",
    "live_performance",
    "monitoring_summary",
    "smoke_test",
    "batch_scoring",
    "rollout",
    "model_card",
]
FIGURES = {"data_profile": 1, "evaluation": 1, "feature_drift": 1, "prediction_drift": 1, "data_quality": 1}


@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_every_visualization_shows_without_scripts_within_its_budget(pages, kind):
    page = pages[kind]
    assert script_free_problems(page) == []
    assert len(page.encode()) < MAX_VISUALIZATION_BYTES
    assert page.lstrip().lower().startswith("<!doctype html>") and "<table>" in page
    images = inline_images(page)
    assert len(images) == FIGURES.get(kind, 0)
    for image in images:
        assert image.size[0] >= 300 and image.size[1] >= 150


def test_headline_figures_appear_as_text(pages, labelled, monitoring_reports):
    feature = monitoring_reports["feature_drift"]
    quality = monitoring_reports["data_quality"]
    summary = monitoring_reports["monitoring_summary"]
    expected = {
        "data_profile": [f"{len(labelled):,}", "random sample of 5,000", "danceability", "country", EVIDENTLY_FILE],
        "feature_drift": [f"{len(feature.drifted)} of 13 drifted", *SHIFT, "DRIFT", EVIDENTLY_FILE],
        "prediction_drift": ["1 of 1 drifted", "predicted", f"its {TOP_CATEGORIES} most frequent categories"],
        "data_quality": [f"{quality.rows:,} scored rows analysed", "12 of", "Window profile: numeric columns"],
        "monitoring_summary": [summary.decision.upper(), *summary.reasons],
        "window": ["jukebox version 3", "'tempo' must be a number"],
    }
    for kind, texts in expected.items():
        for text in texts:
            assert html.escape(text) in pages[kind], (kind, text)


def test_reports_with_evidently_pages_keep_them_as_attachments(pages, monitoring_reports):
    for name in ("feature_drift", "prediction_drift", "data_quality"):
        report = monitoring_reports[name]
        (file_name,) = report.attachments()
        interactive = report.attachments()[file_name]
        assert file_name == EVIDENTLY_FILE
        assert any("<script> element" in problem for problem in script_free_problems(interactive))
        assert len(interactive) > MAX_VISUALIZATION_BYTES and "<script" not in pages[name]
    assert monitoring_reports["window"].attachments() == {}


def test_report_folder_keeps_one_page_per_report_and_attachments_in_subfolders(tmp_path, monitoring_reports):
    written = write_report_folder(tmp_path, monitoring_reports)

    assert {p.stem for p in tmp_path.glob("*.html")} == set(monitoring_reports) == {p.stem for p in written}
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == {"feature_drift", "prediction_drift", "data_quality"}
    drift = monitoring_reports["feature_drift"]
    assert (tmp_path / "feature_drift" / EVIDENTLY_FILE).read_text() == drift.evidently_html
    assert json.loads((tmp_path / "feature_drift.json").read_text())["columns"][0]["column"] == "is_explicit"
    assert script_free_problems((tmp_path / "data_quality.html").read_text()) == []


@pytest.mark.parametrize(
    "page, problem",
    [
        ("<p>x</p><script>alert(1)</script>", "<script> element"),
        ("<div onclick='go()'>x</div>", "event handler onclick="),
        ("<a href='javascript:alert(1)'>x</a>", "javascript: URL in href="),
        ("<iframe srcdoc='x'></iframe>", "<iframe> element"),
        ("<object data='x.svg'></object>", "<object> element"),
        ("<embed src='x.swf'>", "<embed> element"),
        ("<img src='https://example.org/x.png'>", "loads a resource from elsewhere"),
        ("<img src='//cdn.example.org/x.png'>", "loads a resource from elsewhere"),
        ("<img src='figure.png'>", "loads a resource from elsewhere"),
        ("<link rel='stylesheet' href='style.css'>", "<link rel=stylesheet"),
        ("<style>@import url(https://example.org/a.css);</style>", "<style> loads a resource"),
        ("<div style='background:url(https://example.org/x.png)'></div>", "style= of <div> loads a resource"),
    ],
)
def test_script_free_problems_names_what_a_sandbox_blocks(page, problem):
    found = script_free_problems(f"<!doctype html><html><body><h1>Report</h1>{page}</body></html>")
    assert any(problem in f for f in found) and all(f.endswith("(line 1)") for f in found), found


def test_static_pages_links_and_inline_images_pass():
    png = b"\x89PNG\r\n\x1a\nnot really"
    page = (
        "<!doctype html><html><head><style>td{color:red}</style></head><body>"
        f"<a href='https://docs.zenml.io'>docs</a>{inline_png(png, 'a <chart>')}"
        "<p>Costs on a good day: $3</p></body></html>"
    )
    assert script_free_problems(page) == []
    assert 'alt="a &lt;chart&gt;"' in page and 'style="max-width:100%"' in page
    encoded = re.search(r'base64,([^"]+)"', page).group(1)
    assert base64.b64decode(encoded) == png


def test_profile_statistics_histograms_and_top_values_by_hand(labelled, jukebox_spec):
    frame = labelled.sample(n=400, random_state=1).reset_index(drop=True)
    frame.loc[:9, "tempo"] = np.nan
    frame.loc[:19, "country"] = None
    frame.loc[20:219, "country"] = "GB"
    frame.loc[220:279, "country"] = "US"
    profile = data_profile(frame, jukebox_spec, categorical=["country"])

    assert (profile.rows, profile.profiled_rows, profile.columns, profile.missing) == (400, 400, 14, 30)
    tempo = next(c for c in profile.numeric if c.name == "tempo")
    values = frame["tempo"].dropna()
    assert (tempo.count, tempo.missing) == (390, 10) and sum(tempo.bin_counts) == 390
    assert len(tempo.bin_edges) == len(tempo.bin_counts) + 1 == 21
    assert tempo.mean == pytest.approx(values.mean()) and tempo.std == pytest.approx(values.std())
    assert (tempo.min, tempo.max) == (values.min(), values.max())
    assert [tempo.q25, tempo.median, tempo.q75] == pytest.approx(list(values.quantile([0.25, 0.5, 0.75])))
    key = next(c for c in profile.numeric if c.name == "key")  # an integer: one bin per value
    assert key.bin_counts == [int((frame["key"] == k).sum()) for k in range(12)]
    assert key.bin_edges[0] == -0.5 and key.bin_edges[-1] == 11.5

    names = [c.name for c in profile.categorical]
    assert names == ["is_explicit", "country"]  # the bool feature is a category
    explicit = profile.categorical[0]
    assert {v.value: v.count for v in explicit.top} == {
        "True": int((frame["is_explicit"] == 1).sum()),
        "False": int((frame["is_explicit"] == 0).sum()),
    }
    country = profile.categorical[1]
    counts = frame["country"].value_counts()
    assert (country.count, country.missing, country.distinct) == (380, 20, len(counts))
    assert [(v.value, v.count) for v in country.top] == list(counts.head(TOP_VALUES).items())
    assert country.top[0].value == "GB" and country.share(country.top[0]) == pytest.approx(counts["GB"] / 380)
    page = profile.to_html()
    assert f"GB</td><td>{counts['GB']}</td><td>{counts['GB'] / 380:.1%}" in page
    assert f"and {len(counts) - TOP_VALUES:,} more values in {counts.iloc[TOP_VALUES:].sum():,} rows" in page
    assert profile.summary_metadata() == {"rows": 400, "profiled_rows": 400, "columns": 14, "missing_values": 30}
    assert DataProfile.model_validate_json(profile.model_dump_json()) == profile


def test_large_tables_are_profiled_on_a_seeded_sample(labelled, jukebox_spec):
    first = data_profile(labelled, jukebox_spec, max_rows=500)
    again = data_profile(labelled, jukebox_spec, max_rows=500)
    assert (first.rows, first.profiled_rows) == (len(labelled), 500)
    assert all(sum(c.bin_counts) + c.missing == 500 for c in first.numeric)
    assert first.numeric == again.numeric
    assert f"random sample of 500 of {len(labelled):,} rows (seed {jukebox_spec.split.seed})" in first.to_html()


def test_histogram_bins_cover_every_value():
    values = np.array([0.5, 1.0, 1.0, 2.5, np.nan, 3.0])
    edges = histogram_edges(values, bins=5)
    assert edges[0] == 0.5 and edges[-1] == 3.0 and len(edges) == 6
    assert histogram_counts(values, edges) == [1, 2, 0, 0, 2]  # the last bin holds its right edge
    assert histogram_edges(np.array([2.0, 2.0])) == [1.5, 2.5]
    assert histogram_edges(np.array([1.0, 3.0]), integer=True) == [0.5, 1.5, 2.5, 3.5]


def test_drift_distributions_of_a_shifted_column_differ(frames, monitoring_reports, jukebox_spec):
    reference, current, shifted = frames["reference"], frames["current"], frames["shifted"]
    moved = distribution("tempo", reference["tempo"], shifted["tempo"])
    same = distribution("tempo", reference["tempo"], current["tempo"])
    for d in (moved, same):
        assert sum(d.reference_counts) == d.reference_total == len(reference)
        assert sum(d.current_counts) == d.current_total == len(shifted)
    both = pd.concat([reference["tempo"], shifted["tempo"]])
    assert (moved.bin_edges[0], moved.bin_edges[-1]) == (both.min(), both.max())  # bins shared by both sides
    ref_share, cur_share = moved.shares()
    assert 0.5 * np.abs(ref_share - cur_share).sum() > 0.3  # total variation distance
    ref_share, cur_share = same.shares()
    assert 0.5 * np.abs(ref_share - cur_share).sum() < 0.15

    report = monitoring_reports["feature_drift"]
    assert [d.column for d in report.distributions] == jukebox_spec.feature_names
    explicit = report.distributions[0]
    assert explicit.categories and set(explicit.categories) <= {"True", "False"} and not explicit.capped


def test_prediction_drift_keeps_the_top_categories_over_both_sides(frames, monitoring_reports):
    (predicted,) = monitoring_reports["prediction_drift"].distributions
    reference, shifted = frames["reference"][PREDICTED], frames["shifted"][PREDICTED]
    assert len(predicted.categories) == TOP_CATEGORIES < reference.nunique()
    assert predicted.capped and predicted.bin_edges == []
    assert predicted.reference_counts == [int((reference == c).sum()) for c in predicted.categories]
    assert predicted.current_counts == [int((shifted == c).sum()) for c in predicted.categories]
    combined = reference.value_counts(normalize=True).add(shifted.value_counts(normalize=True), fill_value=0)
    assert set(predicted.categories) == set(combined.nlargest(TOP_CATEGORIES).index)


def test_a_report_without_drift_says_so_and_draws_nothing():
    columns = [
        ColumnDrift(column=name, method="wasserstein", score=0.02, threshold=0.1, drifted=False) for name in "ab"
    ]
    page = DriftReport(
        title="Feature drift", reference_rows=10, current_rows=10, columns=columns, evidently_html=""
    ).to_html()
    assert "0 of 2 drifted" in page and "No column drifted" in page and "<img" not in page


def test_a_regressors_model_card_shows_its_task_target_and_forecast_output(store_sales_spec, jukebox_onnx_file):
    from materializers.onnx_materializer import OnnxModelMaterializer
    from tests.helpers.models import packaged_model_from_frame, sales_frame

    model = onnx.load_model_from_string(packaged_model_from_frame(store_sales_spec, sales_frame(store_sales_spec)))
    page = model_card_html(model)
    assert script_free_problems(page) == [] and "<h2>Classes</h2>" not in page
    forecast = page.split("<h2>Forecast</h2>")[1].split("</table>")[0]
    for item, value in [
        ("task", "regression"),
        ("target", "sales: Units of the product family sold in the store in the week"),
        ("unit", "units"),
        ("range", "[0, 10000000]"),
        ("output", "prediction float32 [N, 1], clipped to the range"),
    ]:
        assert f"<td>{item}</td><td>{value}</td>" in forecast
    assert "<td>prediction</td><td>float</td><td>[N, 1]</td>" in page
    assert "<td>task</td>" not in page.split("<h2>Details</h2>")[1]  # shown once, in the Forecast table

    materializer = OnnxModelMaterializer(uri="unused")
    metadata = materializer.extract_metadata(model)
    assert "n_classes" not in metadata
    assert {key: metadata[key] for key in ("task", "target", "target_unit", "target_range", "output")} == {
        "task": "regression",
        "target": "sales",
        "target_unit": "units",
        "target_range": "[0, 10000000]",
        "output": "prediction [N, 1]",
    }
    # a classifier's card and metadata are as before: its classes, no forecast
    classifier = onnx.load_model_from_string(jukebox_onnx_file.read_bytes())
    page = model_card_html(classifier)
    assert "<h2>Classes</h2>" in page and "<h2>Forecast</h2>" not in page and "<td>71</td><td>ZA</td>" in page
    metadata = materializer.extract_metadata(classifier)
    assert metadata["n_classes"] == 72 and "task" not in metadata and "target" not in metadata
