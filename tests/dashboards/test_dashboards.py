"""The dashboards a person reads, checked in a real browser against the real servers. The store holds a data,
training, deployment, governance and monitoring run of jukebox on small data (made here unless an earlier
tier of this session made them; this tier runs last, so with the whole suite it sees every run of every
tier). The ZenML server serves every visualization of every artifact of every run through its REST API;
each is rendered as the ZenML dashboard renders it (HTML in a frame sandboxed without scripts, under the
dashboard's Content-Security-Policy) and must show its content: text, tables, images of non-zero size, ink
in the pane, nothing blocked. The MLflow UI shows the registered model with its aliases and the version's
metrics after each promotion.

Writes what it saw of each visualization to test-artifacts/dashboards/visualizations.md, and one screenshot
per stage to docs/screenshots/ (the docs show them: docs/dashboards.md)."""

import html
import re
from pathlib import Path

import pytest

from headliner.labels import Artifact, Step
from headliner.reports.html import MAX_VISUALIZATION_BYTES, script_free_problems
from headliner.spec import PROJECT_ROOT
from tests.helpers.browser import chromium
from tests.helpers.cli import cli_command, run_cli, run_cli_on_a_free_port, run_pipeline
from tests.helpers.dashboards import (
    DashboardRenderer,
    MlflowUI,
    Seen,
    Visualization,
    ZenMLServer,
    served_visualizations,
    zenml_server_command,
    zenml_server_env,
)
from tests.helpers.deployment import stop_all_services
from tests.helpers.traffic import SHIFT, log_traffic

LISTING = PROJECT_ROOT / "test-artifacts" / "dashboards" / "visualizations.md"
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
MODEL = "jukebox"
MIN_INK = 0.005  # a pane with less than 0.5% non-background pixels is blank to a person
# The visualization of each stage that docs/dashboards.md shows, by (pipeline, artifact).
STAGE_SCREENSHOTS = {
    "data": ("training", Artifact.DATA_PROFILE),
    "training": ("training", Artifact.EVALUATION_REPORT),
    "governance": ("governance", Artifact.MODEL_STAGE_RECORD),
    "deployment": ("deployment", Artifact.SMOKE_TEST),
    "monitoring": ("monitoring", Artifact.FEATURE_DRIFT_REPORT),
}


def _has_completed_run(pipeline: str) -> bool:
    from zenml.client import Client

    return Client().list_pipeline_runs(pipeline_name=pipeline, status="completed", size=1).total > 0


def _cli(args: list[str], env: dict) -> str:
    result = run_cli(args, env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def loop(jukebox_training, jukebox_spec, isolated_env, tmp_path_factory):
    """The loop on jukebox in this session's store: data, training (the session's run), a deployment (its
    service stopped again) and a monitoring run on drifted traffic, so its drift reports have plots to show.
    Returns the trained version's number and the monitoring run."""
    from headliner.data.splitting import one_row_per_group

    folder = tmp_path_factory.mktemp("dashboards")
    version = jukebox_training[0].steps[Step.REGISTER_MODEL].model_version
    if not _has_completed_run("data_engineering"):
        run_pipeline(["--pipeline", "data", "--rows", "4000"], isolated_env)
    if not _has_completed_run("deployment"):
        env = {**isolated_env, "HEADLINER_INFERENCE_LOG": str(folder / "served.sqlite")}
        try:
            _, result = run_cli_on_a_free_port(["--pipeline", "deployment", "--version", str(version.number)], env)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        finally:
            stop_all_services()
    songs = one_row_per_group(version.get_artifact(Artifact.TRAIN_SPLIT).load(), jukebox_spec)
    onnx_bytes = version.get_artifact(Artifact.ONNX_MODEL).load().SerializeToString()
    log = f"sqlite:///{folder / 'traffic.sqlite'}"
    log_traffic(log, onnx_bytes, songs.sample(n=min(400, len(songs)), random_state=3), jukebox_spec, shift=SHIFT)
    monitoring, _ = run_pipeline(
        ["--pipeline", "monitoring", "--inference-log", log, "--version", str(version.number), "--no-retrain"],
        isolated_env,
    )
    return version.number, monitoring


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def mlflow_ui(isolated_env, tmp_path_factory, loop):
    """`python run.py mlflow-ui` on this session's tracking store, on a free port of 127.0.0.1."""

    def command(port: int) -> list[str]:
        return cli_command(["mlflow-ui", "--port", str(port)])

    ui = MlflowUI.launch(command, isolated_env, tmp_path_factory.mktemp("mlflow-ui"))
    yield ui
    ui.stop()


def _mlflow_page_text(browser, url: str, expected: str, screenshot: Path | None = None) -> str:
    """The text of an MLflow UI page once `expected` shows (the UI fills the page with scripts)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(url)
        page.get_by_text(expected).first.wait_for(timeout=30_000)
        if screenshot:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        text: str = page.inner_text("body")
        return text
    finally:
        context.close()


def _version_args(command: str, version: int) -> list[str]:
    return ["promote", command, "--model", MODEL, "--version", str(version)]


def _promote(version: int, stage: str, env: dict) -> None:
    """Alice asks for `stage` (unless a request is pending: training files the staging one), Bob approves:
    the four-eyes path through the CLI."""
    from headliner.governance.promotion import pending_requests

    if not any(r.version == version and r.to_stage == stage for r in pending_requests(MODEL)):
        _cli(
            [
                *_version_args("request", version),
                "--to",
                stage,
                "--reason",
                f"dashboards tier: {stage}",
                "--as",
                "alice",
            ],
            env,
        )
    _cli(
        [*_version_args("approve", version), "--as", "bob", *(["--override", "tier"] if stage == "production" else [])],
        env,
    )


@pytest.fixture(scope="module")
def promoted(loop, mlflow_ui, browser, isolated_env):
    """The trained version promoted to staging, then to production, through the CLI; the MLflow UI's model
    page read after each approval, and the version's page at the end."""
    from zenml.client import Client

    number, _ = loop
    stage = Client().get_model_version(MODEL, number).stage
    assert stage in (None, "none"), f"{MODEL} v{number} is already in stage {stage}: the tier needs a fresh version"
    pages = {}
    _promote(number, "staging", isolated_env)
    pages["staging"] = _mlflow_page_text(browser, f"{mlflow_ui.url}/#/models/{MODEL}", "staging")
    _promote(number, "production", isolated_env)
    pages["production"] = _mlflow_page_text(
        browser, f"{mlflow_ui.url}/#/models/{MODEL}", "champion", SCREENSHOTS / "mlflow-model.png"
    )
    mlflow_version = Client().get_model_version(MODEL, number).run_metadata["mlflow_registry_version"]
    pages["version"] = _mlflow_page_text(
        browser,
        f"{mlflow_ui.url}/#/models/{MODEL}/versions/{mlflow_version}",
        "champion",
        SCREENSHOTS / "mlflow-version.png",
    )
    return number, pages


@pytest.fixture(scope="module")
def zenml_server(promoted, isolated_env, tmp_path_factory):
    """The ZenML server app over this session's store, on a free port of 127.0.0.1, after every run above."""
    folder = tmp_path_factory.mktemp("zenml-server")
    server = ZenMLServer.launch(zenml_server_command, zenml_server_env(isolated_env, folder / "config"), folder)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rendered(zenml_server, browser) -> list[tuple[Visualization, Seen]]:
    """Every visualization the server serves, rendered as the dashboard renders it; the list of what was seen
    is written to test-artifacts/dashboards/visualizations.md and each stage's screenshot to docs/screenshots/."""
    renderer = DashboardRenderer(browser, zenml_server.url)
    try:
        shown = [(v, renderer.render(v)) for v in served_visualizations(zenml_server.client)]
        for stage, (pipeline, artifact) in STAGE_SCREENSHOTS.items():
            newest = [v for v, _ in shown if v.pipeline == pipeline and v.artifact == artifact and v.index == 0]
            assert newest, f"no {artifact} visualization of a {pipeline} run to show for the {stage} stage"
            renderer.screenshot(newest[-1], SCREENSHOTS / f"{stage}.png")
    finally:
        renderer.close()
    LISTING.parent.mkdir(parents=True, exist_ok=True)
    lines = ["| run | step | artifact | type | seen |", "|---|---|---|---|---|"]
    lines += [f"| {v.run} | {v.step} | {v.artifact} #{v.index} | {v.type} | {seen.summary()} |" for v, seen in shown]
    LISTING.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return shown


def _headline(page: str) -> str | None:
    """The text of a page's first <h1>, as a browser shows it."""
    found = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else None


def _problems(visualization: Visualization, seen: Seen) -> list[str]:
    problems = []
    if visualization.type == "html":
        problems += script_free_problems(visualization.value)
        if len(visualization.value.encode()) > MAX_VISUALIZATION_BYTES:
            problems.append(f"{len(visualization.value.encode()):,} bytes, over {MAX_VISUALIZATION_BYTES:,}")
        headline = _headline(visualization.value)
        if headline and not seen.text.startswith(headline):
            problems.append(f"its headline '{headline}' is not the first thing shown")
    if seen.ink_share < MIN_INK:
        problems.append(f"blank pane ({seen.ink_share:.2%} ink)")
    if not seen.text and not seen.images:
        problems.append("no text and no image")
    if seen.broken_images:
        problems.append(f"{seen.broken_images} images did not load")
    problems += [f"blocked: {message}" for message in seen.blocked]
    return problems


def _newest(rendered, run_name: str | None = None, **where: object) -> tuple[Visualization, Seen]:
    found = [
        (v, seen)
        for v, seen in rendered
        if (run_name is None or v.run == run_name) and all(getattr(v, k) == value for k, value in where.items())
    ]
    assert found, f"no visualization with {where} (run {run_name})"
    return found[-1]


def test_every_visualization_of_every_run_shows_its_content_without_scripts(rendered):
    pipelines = {v.pipeline for v, _ in rendered}
    assert {"data_engineering", "training", "deployment", "governance", "monitoring"} <= pipelines, pipelines
    problems = [f"{v.label}: {'; '.join(p)}" for v, seen in rendered if (p := _problems(v, seen))]
    assert not problems, "\n".join(problems) + f"\n(all {len(rendered)} listed in {LISTING})"
    # every report, model card and the splits' tables are among them
    shown = {v.artifact for v, _ in rendered}
    assert {
        Artifact.DATA_PROFILE,
        Artifact.VALIDATION_REPORT,
        Artifact.EVALUATION_REPORT,
        Artifact.QUALITY_GATES,
        Artifact.ONNX_MODEL,
        Artifact.MODEL_CARD,
        Artifact.MODEL_STAGE_RECORD,
        Artifact.SMOKE_TEST,
        Artifact.FEATURE_DRIFT_REPORT,
        Artifact.PREDICTION_DRIFT_REPORT,
        Artifact.DATA_QUALITY_REPORT,
        Artifact.FAIRNESS_REPORT,
        Artifact.LIVE_PERFORMANCE_REPORT,
        Artifact.MONITORING_SUMMARY,
        Artifact.TRAIN_SPLIT,
    } <= shown, shown


def test_the_data_profile_shows_every_feature_and_its_histograms(rendered, jukebox_training, jukebox_spec):
    profile = jukebox_training[0].steps[Step.PROFILE_DATA].outputs[Artifact.DATA_PROFILE][0]
    visualization, seen = _newest(rendered, artifact_version_id=str(profile.id))
    assert visualization.type == "html"
    missing = [name for name in jukebox_spec.feature_names if name not in seen.text]
    assert not missing, f"features not shown in the data profile: {missing}"
    assert seen.images and min(w for w, _ in seen.images) > 200, seen.summary()


def test_the_evaluation_shows_every_test_metric_and_the_confusion_matrix(rendered, jukebox_training):
    artifact = jukebox_training[0].steps[Step.EVALUATE_MODEL].outputs[Artifact.EVALUATION_REPORT][0]
    _, seen = _newest(rendered, artifact_version_id=str(artifact.id), index=0)
    for metric, value in artifact.load().metrics.items():
        assert re.search(rf"{metric}\b.*\s{value:.4f}\s", seen.text), f"{metric} {value:.4f} not shown"
    assert seen.images and min(w for w, _ in seen.images) > 500, seen.summary()


def test_the_drift_reports_show_the_drifted_features_and_their_distributions(rendered, loop):
    _, monitoring = loop
    _, features = _newest(rendered, monitoring.name, artifact=Artifact.FEATURE_DRIFT_REPORT)
    for name in SHIFT:
        assert re.search(rf"{name}\s.*DRIFT", features.text), f"{name} is not shown as drifted:\n{features.text[:3000]}"
    assert features.images and min(w for w, _ in features.images) > 200, features.summary()
    _, prediction = _newest(rendered, monitoring.name, artifact=Artifact.PREDICTION_DRIFT_REPORT)
    assert "predicted" in prediction.text and prediction.images, prediction.summary()


def test_the_dashboard_shows_the_versions_stage_and_promotion_history(rendered, promoted):
    number, _ = promoted
    _, seen = _newest(rendered, pipeline="governance", artifact=Artifact.MODEL_STAGE_RECORD)
    assert f"{MODEL} v{number}" in seen.text and "production" in seen.text, seen.text[:2000]
    for who in ("alice", "bob"):
        assert who in seen.text, f"{who} is missing from the promotion history:\n{seen.text[:3000]}"
    assert seen.text.count("approved") >= 2, seen.text[:3000]


def test_the_mlflow_ui_shows_the_model_its_aliases_and_the_versions_metrics(promoted, loop):
    number, pages = promoted
    assert "staging" in pages["staging"]
    assert "champion" in pages["production"] and MODEL in pages["production"]
    version_page = pages["version"]
    for expected in (
        "champion",
        "onnx_model",
        "zenml_run_name",
        "test_top_k_accuracy",
        rf"zenml_model_version\s+{number}\b",
    ):
        assert re.search(expected, version_page), f"'{expected}' not on the MLflow version page:\n{version_page[:3000]}"


def test_the_listing_and_the_screenshots_are_written(rendered):
    listing = LISTING.read_text()
    assert listing.count("\n") == len(rendered) + 2
    for stage in [*STAGE_SCREENSHOTS, "mlflow-model", "mlflow-version"]:
        path = SCREENSHOTS / f"{stage}.png"
        assert path.stat().st_size > 10_000, f"{path} is missing or nearly empty"
