"""POST /explain and GET /model-card in-process (httpx over ASGI): an explanation names the classes /predict
answers, every feature's contribution with its value and text, contributions that add up to the probability;
too many songs, bad bodies and a model without an explanation background are 4xx naming what is wrong;
explain requests are logged but are not predictions for monitoring; the card is served from the source the
service was given, or 404 saying how to get one; the document and the page carry both."""

import json

import numpy as np
import onnx
import pytest

from headliner.errors import HeadlinerError
from headliner.model.onnx_packaging import EXPLANATION_BACKGROUND, OnnxPredictor
from headliner.monitoring.window import WindowSelection, window_report
from headliner.serving.app import InferenceApp
from headliner.serving.inference_log import read_inference_log
from headliner.serving.model_source import BENTO_CARD_FILE, card_source
from headliner.serving.openapi import openapi_document
from headliner.serving.page import page_data, render_page
from headliner.serving.routing import Routing
from headliner.serving.server import ModelServer
from headliner.serving.settings import ServingSettings
from tests.helpers.payloads import SONG
from tests.helpers.serving import Client, Served

CARD = "<!doctype html><html><body><h1>Model card of jukebox version 1</h1></body></html>"
OPTIONS = {"max_rows": 10, "max_explain": 3}


@pytest.fixture(scope="module")
def served(predictor, tmp_path_factory):
    served = Served(predictor, tmp_path_factory.mktemp("explain"), **OPTIONS, card_source=lambda name, version: CARD)
    yield served
    served.close()


def without_background(model_bytes: bytes) -> OnnxPredictor:
    model = onnx.load_from_string(model_bytes)
    kept = [prop for prop in model.metadata_props if prop.key != EXPLANATION_BACKGROUND]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    return OnnxPredictor(model.SerializeToString())


def test_an_explanation_names_the_predicted_classes_and_adds_up(served, predictor):
    songs = [SONG, {**SONG, "tempo": 90.0, "danceability": 0.9, "is_explicit": False}]
    response = served.client.post("/explain", json=songs, headers={"x-request-id": "why-1"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["model_name"], answer["model_version"], answer["request_id"]) == ("jukebox", "1", "why-1")
    assert response.headers["x-model-version"] == "1"
    predicted = served.client.post("/predict", json=songs).json()["predictions"]
    assert len(answer["explanations"]) == 2
    for song, explanation, prediction in zip(songs, answer["explanations"], predicted, strict=True):
        classes = explanation["classes"]
        assert [c["label"] for c in classes] == [top["code"] for top in prediction["top"]]
        assert [c["name"] for c in classes] == [top["name"] for top in prediction["top"]]
        for entry, top in zip(classes, prediction["top"], strict=True):
            assert entry["probability"] == pytest.approx(top["probability"], abs=1e-6)
            contributions = entry["contributions"]
            assert [c["feature"] for c in contributions] != predictor.feature_names  # ranked, not in input order
            assert sorted(c["feature"] for c in contributions) == sorted(predictor.feature_names)
            assert {c["feature"]: c["value"] for c in contributions} == pytest.approx(
                {name: float(value) for name, value in song.items()}
            )
            sizes = [abs(c["contribution"]) for c in contributions]
            assert sizes == sorted(sizes, reverse=True)
            total = entry["base_probability"] + sum(c["contribution"] for c in contributions)
            assert total == pytest.approx(entry["probability"], abs=1e-6)
            assert all(entry["name"] in c["text"] for c in contributions)
    tempo = next(c for c in answer["explanations"][1]["classes"][0]["contributions"] if c["feature"] == "tempo")
    assert tempo["text"].startswith("Tempo 90 BPM ")


def test_explain_refuses_what_predict_refuses_and_more_than_max_explain_songs(served):
    post = served.client.post
    too_many = post("/explain", json=[SONG] * 4)
    assert too_many.status_code == 422
    assert too_many.json()["error"] == (
        "4 songs in one request; /explain takes at most 3 (HEADLINER_MAX_EXPLAIN): send fewer, or several requests"
    )
    beyond_predict = post("/explain", json=[SONG] * 11)  # over max_rows: refused while parsing, as /predict does
    assert beyond_predict.status_code == 422 and "at most 10" in beyond_predict.json()["error"]
    bad = post("/explain", json={**SONG, "tempo": 400})
    assert bad.status_code == 422 and bad.json()["field"] == "song.tempo"
    assert post("/explain", json={**SONG, "colour": "red"}).status_code == 422
    assert post("/explain", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert post("/explain", content=b"{}", headers={"content-type": "text/plain"}).status_code == 400
    assert served.client.get("/explain").status_code == 405
    assert post("/explain", json=SONG).status_code == 200  # still serving


def test_a_model_without_background_answers_409_and_keeps_serving(jukebox_onnx_file):
    predictor = without_background(jukebox_onnx_file.read_bytes())
    client = Client(InferenceApp(ModelServer(predictor, None)))
    try:
        refused = client.post("/explain", json=SONG)
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error.startswith("model jukebox version 1 cannot be explained: its ONNX file has no ")
        assert "'explanation_background'" in error and error.endswith("train and package a new version")
        assert client.post("/predict", json=SONG).status_code == 200
        assert client.post("/explain", json=SONG).status_code == 409  # asked again: the same answer, no 5xx
    finally:
        client.close()


def test_explanations_need_the_token_and_are_counted_but_are_no_predictions(predictor, tmp_path, jukebox_spec):
    served = Served(predictor, tmp_path, token="t0ken", max_explain=2)
    try:
        auth = {"authorization": "Bearer t0ken"}
        assert served.client.post("/explain", json=SONG).status_code == 401
        assert served.client.post("/explain", json=[SONG, SONG], headers=auth).status_code == 200
        assert served.client.post("/explain", json=[SONG] * 3, headers=auth).status_code == 422
        for _ in range(3):
            assert served.client.post("/predict", json=[SONG, SONG], headers=auth).status_code == 200
        metrics = served.client.get("/metrics", headers=auth).text
        assert 'headliner_requests_total{endpoint="explain",status="200"} 1' in metrics
        assert 'headliner_requests_total{endpoint="explain",status="422"} 1' in metrics
        assert 'headliner_rows_scored_total{endpoint="explain"} 2' in metrics
    finally:
        assert served.close() == 0
    log = read_inference_log(served.url)
    explained = log[log["endpoint"] == "explain"]
    assert list(explained["status"]) == [200, 422] and explained["variant"].isna().all()
    assert list(explained["rows"]) == [2, 0]
    spec = jukebox_spec.model_copy(
        update={"monitoring": jukebox_spec.monitoring.model_copy(update={"min_window_rows": 1})}
    )
    report = window_report(served.url, spec, "1", WindowSelection())
    assert (report.requests, report.rejected_requests, report.items) == (3, 0, 6)  # predictions only


def test_the_model_card_is_served_as_html_or_404_says_how_to_get_one(served, predictor):
    card = served.client.get("/model-card")
    assert card.status_code == 200 and card.text == CARD
    assert card.headers["content-type"] == "text/html; charset=utf-8"
    assert "sandbox" in card.headers["content-security-policy"]
    client = Client(InferenceApp(ModelServer(predictor, None, token="t0ken")))
    try:
        missing = client.get("/model-card")  # open, like the page that links it
        assert missing.status_code == 404
        assert "`python run.py model-card jukebox --version 1`" in missing.json()["error"]
    finally:
        client.close()


def test_the_card_source_follows_the_model_source(tmp_path):
    folder = tmp_path / "bento-model"
    folder.mkdir()
    settings = ServingSettings(model_file=None, model=None)
    assert card_source(settings, folder)("jukebox", "1") is None
    (folder / BENTO_CARD_FILE).write_text(CARD)
    assert card_source(settings, folder)("jukebox", "1") == CARD
    model_file = ServingSettings(model_file=tmp_path / "m.onnx", model=None)
    assert card_source(model_file)("jukebox", "1") is None
    card_file = tmp_path / "card.html"
    card_file.write_text(CARD)
    assert card_source(model_file.model_copy(update={"model_card_file": card_file}))("jukebox", "1") == CARD
    with pytest.raises(HeadlinerError, match=r"HEADLINER_MODEL_CARD_FILE: no such file .*nowhere\.html"):
        card_source(model_file.model_copy(update={"model_card_file": tmp_path / "nowhere.html"}))


def test_the_document_and_the_page_carry_explain_and_the_card(predictor):
    server = ModelServer(predictor, None, max_rows=10, max_explain=3)
    document = openapi_document(Routing(server))
    explain = document["paths"]["/explain"]["post"]
    body = explain["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ExplainRequest"} and body["example"]["tempo"] == 96
    assert set(explain["responses"]) == {"200", "400", "409", "413", "422", "500", "503"}
    schemas = document["components"]["schemas"]
    songs = next(option for option in schemas["ExplainRequest"]["anyOf"] if option.get("type") == "array")
    assert songs["maxItems"] == 3
    assert {"feature", "value", "contribution", "text"} <= set(schemas["FeatureContribution"]["properties"])
    assert set(document["paths"]["/model-card"]["get"]["responses"]) == {"200", "404", "503"}

    page = render_page(page_data(predictor), auth=False, max_upload_rows=10)
    assert '<section id="why" class="why" aria-labelledby="why-title" hidden>' in page
    assert '<h3 id="why-title">Why these countries</h3>' in page
    assert '<a href="model-card" id="model-card-link">model card</a>' in page


def test_the_cli_explains_a_file_of_songs_as_text_or_as_the_endpoints_json(jukebox_onnx_file, predictor, tmp_path):
    from click.testing import CliRunner

    from headliner.cli.explain import explain, text_bar

    songs = tmp_path / "songs.json"
    songs.write_text(json.dumps([SONG, {**SONG, "tempo": 90}]))
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None):
        return runner.invoke(explain, ["--model-file", str(jukebox_onnx_file), *args], input=stdin)

    as_json = run("--json", str(songs), "--output", "json")
    assert as_json.exit_code == 0, as_json.output
    answer = json.loads(as_json.output)
    rows = np.array([list(SONG.values()), [*list(SONG.values())[:-1], 90]], dtype=np.float64)
    expected = ModelServer(predictor, None).explain(rows)
    assert answer["model_name"] == "jukebox" and answer["model_version"] == "1"
    assert answer["explanations"] == [song.model_dump() for song in expected]

    text = run("--json", "-", "--features", "3", stdin=json.dumps(SONG))
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    top = expected[0].classes[0]
    assert lines[0] == f"Why: model 'jukebox' version 1 (from {jukebox_onnx_file.resolve()})"
    assert lines[2].startswith(f"1. {top.name} ({top.label}): {top.probability:.1%}, from an average of ")
    first, bar = top.contributions[0], "█" * 12
    assert lines[3].endswith(f"│{bar} {first.text}" if first.contribution > 0 else f"{bar}│{' ' * 12} {first.text}")
    assert lines[6] == "   ... and 10 smaller"
    assert text_bar(-0.01, 0.02, width=4) == "  ██│    " and text_bar(0.0, 0.02, width=4) == "    │    "

    unknown = run("--json", "-", stdin=json.dumps({**SONG, "colour": 1}))
    assert unknown.exit_code == 1 and unknown.output.startswith("error: stdin: ") and "colour" in unknown.output
    broken = run("--json", "-", stdin="{bad")
    assert broken.exit_code == 1 and broken.output.startswith("error: stdin: invalid JSON")
    missing = runner.invoke(explain, ["--model-file", str(tmp_path / "none.onnx"), "--json", str(songs)])
    assert missing.exit_code == 1 and "--model-file: no such file" in missing.output
    both = run("--version", "2", "--json", str(songs))
    assert both.exit_code == 2 and "--model-file cannot be combined with --model or --version" in both.output


def test_a_registry_card_is_the_versions_newest_read_again_after_a_while(monkeypatch):
    import headliner.governance.model_card as model_card
    from headliner.serving.model_source import registry_cards

    asked: list[tuple[str, int]] = []

    class Card:
        def __init__(self, version: int):
            self.version = version

        def to_html(self) -> str:
            return f"card of v{self.version}, asked {len(asked)} time(s)"

    def load(model: str, version: int) -> Card:
        asked.append((model, version))
        if version == 9:
            raise HeadlinerError("jukebox v9 has no model_card artifact (trained before model cards)")
        return Card(version)

    monkeypatch.setattr(model_card, "load_model_card", load)
    cards = registry_cards(max_age=60)
    assert cards("jukebox", "2") == "card of v2, asked 1 time(s)"
    assert cards("jukebox", "2") == "card of v2, asked 1 time(s)"  # kept
    assert cards("jukebox", "9") is None and cards("jukebox", "9") is None
    assert asked == [("jukebox", 2), ("jukebox", 9)]
    fresh = registry_cards(max_age=0)  # a promotion's refreshed card shows once the kept one is old
    assert fresh("jukebox", "2") == "card of v2, asked 3 time(s)"
    assert fresh("jukebox", "2") == "card of v2, asked 4 time(s)"


def test_a_process_that_cannot_read_registry_cards_has_none(monkeypatch, caplog):
    import headliner.governance.model_card as model_card
    from headliner.serving.model_source import registry_cards

    def load(model: str, version: int):
        raise ModuleNotFoundError("No module named 'sklearn'")  # as in the registry-reading service image

    monkeypatch.setattr(model_card, "load_model_card", load)
    assert registry_cards()("jukebox", "2") is None and registry_cards()("jukebox", "production") is None
    assert "cannot read the model card of jukebox version 2 here: ModuleNotFoundError" in caplog.text


def test_under_a_rollout_production_explains_whatever_the_policy_routes(jukebox_versions):
    from headliner.serving.routing import RolloutPolicy

    primary = ModelServer(OnnxPredictor(jukebox_versions["1"]), None)
    candidate = primary.sibling(OnnxPredictor(jukebox_versions["2"]))
    app = InferenceApp()
    app.route(Routing(primary, candidate, RolloutPolicy(mode="canary", candidate="2", percent=100)))
    client = Client(app)
    try:
        assert client.post("/predict", json=SONG).json()["model_version"] == "2"  # every prediction: the candidate
        explained = client.post("/explain", json=SONG)
        assert explained.json()["model_version"] == "1" and explained.headers["x-model-version"] == "1"
        assert candidate._explainer is None  # nothing built for the candidate
    finally:
        client.close()
