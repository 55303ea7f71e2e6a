"""The model card of the session's jukebox training run: an artifact of the version with the hash of the very
ONNX file registered, per-group and fairness figures on the test split, the same card as files of the MLflow
version's run. After a request and an approval by another person (on a wine version made for it: the jukebox
version stays unpromoted for the other tests), `model-card` and the MLflow file show both."""

import hashlib
import os

import pytest

from headliner.cli.model_card import model_card
from headliner.cli.promote import promote
from headliner.governance import promotion as governance
from headliner.governance.model_card import ModelCard, card_command, refresh_model_card
from headliner.governance.stage_record import model_stage_record
from headliner.labels import Artifact, Step
from headliner.monitoring.window import reference_rows
from tests.helpers.cli import run_cli

MODEL = "jukebox"
WINE = "wine"


def mlflow_card_file(model: str, number: int, name: str = "model_card.md") -> tuple[str, str]:
    """The MLflow version's `model_card` tag and the text of one of the card's files it points at."""
    import mlflow
    from zenml.client import Client

    registry = Client().active_stack.model_registry
    registry.configure_mlflow()
    (version,) = registry.mlflow_client.search_model_versions(f"name='{model}' and tag.zenml_model_version='{number}'")
    uri = version.tags["model_card"]
    return uri, mlflow.artifacts.load_text(f"{uri}/{name}")


def in_process(args: list):
    """A CLI command run in this process (its store is this session's), output captured: no interpreter start."""
    from click.testing import CliRunner

    command, *rest = args
    return CliRunner().invoke(command, [str(arg) for arg in rest])


@pytest.fixture(scope="module")
def registered(jukebox_training):
    run, _ = jukebox_training
    step = run.steps[Step.REGISTER_MODEL]
    return run, step.model_version.number, step.outputs[Artifact.MODEL_CARD][0]


def test_the_training_run_registers_the_card_in_zenml_and_mlflow(registered, jukebox_spec):
    from zenml.client import Client
    from zenml.io import fileio

    run, number, artifact = registered
    card = artifact.load()
    assert isinstance(card, ModelCard) and (card.model, card.version, card.stage) == (MODEL, number, "none")
    # the run config's automatic staging request is filed before the card is built
    assert [(e.event, e.by, e.stage) for e in card.history] == [("requested", governance.AUTOMATION_USER, "staging")]
    assert "html" in [v.type.value for v in artifact.visualizations]
    assert artifact.run_metadata["onnx_sha256"] == card.onnx_sha256

    onnx_artifact = Client().get_model_version(MODEL, number).get_artifact(Artifact.ONNX_MODEL)
    with fileio.open(os.path.join(onnx_artifact.uri, "model.onnx"), "rb") as handle:
        assert card.onnx_sha256 == hashlib.sha256(handle.read()).hexdigest()

    evaluation = run.steps[Step.EVALUATE_MODEL].outputs[Artifact.EVALUATION_REPORT][0].load()
    test_rows = len(run.steps[Step.SPLIT_DATA].outputs[Artifact.TEST_SPLIT][0].load())
    assert card.metrics == evaluation.metrics and card.baseline_metrics == evaluation.baseline_metrics
    assert {s.name: s.rows for s in card.splits}["test_split"] == test_rows
    assert [g.value for g in card.groups] == ["0", "1"] and sum(g.rows for g in card.groups) == test_rows
    assert all(0 < g.top_k_accuracy <= 1 for g in card.groups)
    figures = {f.name: f for f in card.fairness}
    assert set(figures) == {
        "statistical_parity_difference",
        "disparate_impact_ratio",
        "equal_opportunity_difference",
        "average_odds_difference",
    }
    assert figures["statistical_parity_difference"].value is not None and figures["disparate_impact_ratio"].upper == 8
    for figure in figures.values():  # a figure or why not: few songs leave few classes with 10 rows in both groups
        assert figure.value is not None or "rows behind each rate" in figure.note
    songs = len(reference_rows(run.steps[Step.SPLIT_DATA].outputs[Artifact.TEST_SPLIT][0].load(), jukebox_spec))
    assert card.fairness_note.startswith(f"On {songs:,} test songs, one row each as traffic sends them")
    assert card.selected in [c.name for c in card.candidates] and len(card.candidates) == 2
    # the generated charts' days, as the validation of the raw data recorded them
    raw_dates = run.steps[Step.VALIDATE_DATA].outputs[Artifact.VALIDATION_REPORT][0].load().facts["date range"]
    assert card.date_range == raw_dates and raw_dates.endswith(" days, snapshot_date)"), card.date_range

    uri, text = mlflow_card_file(MODEL, number)
    assert uri == card.mlflow_card_uri and uri.endswith("/model_card")
    assert text == card.to_markdown()
    assert f"ONNX file sha256: {card.onnx_sha256}" in text


@pytest.fixture(scope="module")
def wine_card_version(wine_training):
    """A new wine version holding wine v1's ONNX file and a copy of its card (the jukebox version of the session
    must stay unpromoted, with its automatic request pending, for the training tests), mirrored in MLflow."""
    from zenml import save_artifact
    from zenml.client import Client
    from zenml.model.utils import link_artifact_version_to_model_version
    from zenml.utils import source_utils

    client = Client()
    source = client.get_model_version(WINE, wine_training[0].steps[Step.REGISTER_MODEL].model_version.number)
    version = client.create_model_version(WINE)
    for name in (Artifact.TEST_SPLIT, Artifact.EVALUATION_REPORT, Artifact.ONNX_MODEL):
        link_artifact_version_to_model_version(client.get_artifact_version(source.get_artifact(name).id), version)
    card = source.get_artifact(Artifact.MODEL_CARD)
    copy = card.load().model_copy(update={"version": version.number, "history": []})
    materializer = source_utils.load(card.materializer)
    link_artifact_version_to_model_version(
        save_artifact(copy, name=Artifact.MODEL_CARD, materializer=materializer), version
    )
    governance.sync_mlflow_mirror(WINE, versions=[version.number])
    return version.number


def test_a_request_and_an_approval_refresh_the_card_everywhere(wine_card_version, isolated_env):
    number = wine_card_version
    request = ["promote", "request", "--model", WINE, "--version", str(number), "--to", "staging"]
    asked = run_cli([*request, "--reason", "card review", "--as", "alice"], isolated_env)
    assert asked.returncode == 0, asked.stdout[-3000:] + asked.stderr[-3000:]
    uri, text = mlflow_card_file(WINE, number)
    assert f"Model card (1 event(s)): {card_command(WINE, number)}; MLflow: {uri}" in asked.stdout
    assert "| requested | staging | alice | card review |" in text
    listed = in_process([promote, "list", "--model", WINE])
    assert f"    model card: {card_command(WINE, number)}" in listed.stdout

    request_id = governance.pending_request_of(WINE, number).id
    governance.approve(request_id, "bob", "reviewed the card")
    card, problems = refresh_model_card(WINE, number)  # what `promote approve` does after the decision
    assert problems == [] and (card.version, card.stage) == (number, "staging")
    assert [(e.event, e.by) for e in card.history] == [("requested", "alice"), ("approved", "bob")]

    shown = in_process([model_card, WINE, "--version", str(number)])
    assert shown.exit_code == 0, shown.stderr[-3000:]
    for line in (
        f"| requested | staging | alice | card review | {request_id} |",
        f"| approved | staging | bob | reviewed the card | {request_id} |",
        "Stage now: staging.",
    ):
        assert line in shown.stdout
    _, text = mlflow_card_file(WINE, number)
    assert text == shown.stdout  # the MLflow file shows the same events
    assert model_stage_record(WINE, number).model_card == f"{card_command(WINE, number)}; MLflow: {uri}"


def test_an_unknown_model_or_version_is_one_line(registered):
    for args, message in (
        (["nosuchmodel", "--version", "1"], "error: no registered model 'nosuchmodel'"),
        ([MODEL, "--version", "999"], f"error: model '{MODEL}' has no version '999'"),
    ):
        result = in_process([model_card, *args])
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr
