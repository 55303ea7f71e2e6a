"""POST /explain and GET /model-card of the real BentoML service on 127.0.0.1: a song's explanation over HTTP
(auth, the per-request limit, the inference log's 'explain' rows), the card of the served version from
HEADLINER_MODEL_CARD_FILE, the card the deployment packs beside model.onnx read back as the bento's card, and
`python run.py explain` on a registered version."""

import json
import re
import subprocess
import sys
import time

from headliner.serving.inference_log import read_inference_log
from headliner.serving.model_source import BENTO_CARD_FILE, BENTO_MODEL_FILE
from headliner.spec import PROJECT_ROOT
from tests.helpers.cli import run_cli
from tests.helpers.payloads import SONG
from tests.helpers.service import RunningService, bentoml_command

TOKEN = "explain-test-token"
CARD = "<!doctype html><html><body><h1>jukebox version 1</h1><p>What this version is.</p></body></html>"


def test_the_service_explains_songs_and_shows_its_card(jukebox_onnx_file, isolated_env, tmp_path):
    card = tmp_path / "model_card.html"
    card.write_text(CARD)
    log_url = f"sqlite:///{tmp_path / 'inference.sqlite'}"
    env = {key: value for key, value in isolated_env.items() if not key.startswith("HEADLINER_")}
    env.update(
        HEADLINER_MODEL_FILE=str(jukebox_onnx_file),
        HEADLINER_MODEL_CARD_FILE=str(card),
        HEADLINER_INFERENCE_LOG=str(tmp_path / "inference.sqlite"),
        HEADLINER_LOG_FLUSH_SECONDS="0.2",
        HEADLINER_MAX_EXPLAIN="2",
        HEADLINER_API_TOKEN=TOKEN,
    )
    service = RunningService.launch(bentoml_command, env, tmp_path, log_url, token=TOKEN)
    try:
        started = time.perf_counter()
        first = service.score("explain", "/explain", json=SONG)
        first_seconds = time.perf_counter() - started
        assert first.status_code == 200, first.text
        started = time.perf_counter()
        second = service.score("explain", "/explain", json=[SONG, {**SONG, "tempo": 90}])
        second_seconds = time.perf_counter() - started
        print(f"POST /explain: {first_seconds * 1000:.0f} ms (first, 1 song), {second_seconds * 1000:.0f} ms (2 songs)")
        assert first_seconds < 5 and second_seconds < 5  # no compilation at the first request
        answer = second.json()
        assert answer["model_name"] == "jukebox" and answer["model_version"] == "1"
        predicted = service.score("predict", "/predict", json=[SONG, {**SONG, "tempo": 90}]).json()["predictions"]
        for explanation, prediction in zip(answer["explanations"], predicted, strict=True):
            assert [c["label"] for c in explanation["classes"]] == [top["code"] for top in prediction["top"]]
            assert all(len(c["contributions"]) == len(SONG) for c in explanation["classes"])
        too_many = service.score("explain", "/explain", json=[SONG] * 3)
        assert too_many.status_code == 422 and "HEADLINER_MAX_EXPLAIN" in too_many.json()["error"]
        assert service.client.post("/explain", json=SONG).status_code == 401  # the token, like /predict

        shown = service.client.get("/model-card")  # no token: the page links it
        assert shown.status_code == 200 and shown.text == CARD
        assert shown.headers["content-type"].startswith("text/html")
        page = service.client.get("/").text
        assert 'href="model-card"' in page and 'id="why"' in page
        metrics = service.client.get("/metrics", headers=service.authorized).text
        assert 'headliner_requests_total{endpoint="explain",status="200"} 2' in metrics
    finally:
        service.stop()
    log = read_inference_log(log_url, endpoint="explain")
    assert sorted(zip(log["request_id"], log["status"], strict=True)) == sorted(
        (request_id, status) for endpoint, status, request_id in service.scored if endpoint == "explain"
    )
    assert list(log["rows"]) == [1, 2, 0]


def test_the_deployment_packs_the_card_beside_the_model_and_the_service_reads_it(jukebox_onnx_file, tmp_path):
    """save_bento_model in a BentoML home of its own (a process of its own: BentoML reads BENTOML_HOME once);
    the service's card source reads the model folder it wrote, as a bento's service does."""
    home = tmp_path / "bentoml"
    script = """
import json, pathlib, sys
import bentoml
from headliner.deploy.deployment import save_bento_model
from headliner.serving.model_source import card_source
from headliner.serving.settings import ServingSettings

data, card = pathlib.Path(sys.argv[1]).read_bytes(), sys.argv[2]
settings = ServingSettings(model=None, model_file=None)
tags = [save_bento_model(data, card), save_bento_model(data, card)]  # the same files: stored once
folder = pathlib.Path(bentoml.models.get(tags[0]).path)
with_card = card_source(settings, folder)("jukebox", "1")
tags.append(save_bento_model(data, None))  # a version without a card: stored again, without one
folder = pathlib.Path(bentoml.models.get(tags[-1]).path)
without = card_source(settings, folder)("jukebox", "1")
files = sorted(path.name for path in folder.iterdir())
print(json.dumps({"tags": tags, "with_card": with_card, "without": without, "files": files}))
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(jukebox_onnx_file), CARD],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["tags"] == ["jukebox:v1"] * 3
    assert result["with_card"] == CARD and result["without"] is None
    assert BENTO_MODEL_FILE in result["files"] and BENTO_CARD_FILE not in result["files"]


def test_the_cli_explains_a_registered_version(jukebox_training, isolated_env, tmp_path):
    songs = tmp_path / "songs.json"
    songs.write_text(json.dumps([SONG, {**SONG, "tempo": 90}]))
    result = run_cli(["explain", "--model", "jukebox", "--version", "latest", "--json", str(songs)], isolated_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    number = re.fullmatch(r"Why: model 'jukebox' version (\d+) \(registered as version (\d+) \(latest\)\)", lines[0])
    assert number and number.group(1) == number.group(2)
    assert lines[2] == "Song 1 of 2" and "Song 2 of 2" in lines
    assert re.fullmatch(r"1\. .+ \([A-Z]{2}\): \d+\.\d%, from an average of \d+\.\d%", lines[3])
    assert re.fullmatch(r" +[+-]\d+\.\d\d pts +█*│█* .+ points?", lines[4]) or "hardly changes" in lines[4]


def test_the_deployment_fetches_the_registered_versions_card(jukebox_training, jukebox_onnx_file, caplog):
    import onnx

    from headliner.deploy.deployment import registered_model_card
    from headliner.governance.model_card import load_model_card
    from headliner.model.onnx_packaging import MODEL_VERSION
    from headliner.model.versions import onnx_model_bytes

    number, data = onnx_model_bytes("jukebox", "latest")
    assert registered_model_card(data) == load_model_card("jukebox", number).to_html()
    unregistered = onnx.load_from_string(jukebox_onnx_file.read_bytes())
    next(prop for prop in unregistered.metadata_props if prop.key == MODEL_VERSION).value = "999"
    assert registered_model_card(unregistered.SerializeToString()) is None  # deployed all the same, without a card
    assert "deploying jukebox version 999 without its model card" in caplog.text
