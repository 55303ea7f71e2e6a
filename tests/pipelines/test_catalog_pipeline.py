"""`run.py catalog --out DIR` on the session's registered jukebox and wine versions: a collection per model,
an item per version that validates offline against the STAC + MLM schemas, links to the ZenML and MLflow
versions, the ONNX file beside its item equal to the registered `onnx_model` artifact; and clear refusals."""

import hashlib
import json
import socket
import urllib.request

import pytest

from headliner.governance.catalog import validate_catalog
from headliner.labels import Artifact, Step
from tests.helpers.cli import run_cli


@pytest.fixture(scope="module")
def written(jukebox_training, wine_training, isolated_env, tmp_path_factory):
    """The catalog of every registered version, written by the CLI; the registering runs' model versions."""
    out = tmp_path_factory.mktemp("stac") / "catalog"
    result = run_cli(["catalog", "--out", str(out)], isolated_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    registered = {
        run.steps[Step.REGISTER_MODEL].model_version.model.name: run.steps[Step.REGISTER_MODEL].model_version
        for run, _ in (jukebox_training, wine_training)
    }
    return out, result.stdout, registered


def registered_numbers(model: str) -> list[int]:
    """Every version of `model` with an ONNX file in the session's store (other tests may add some)."""
    from zenml.client import Client

    client = Client()
    numbers = []
    for version in client.list_model_versions(model, size=1000).items:
        if client.get_model_version(model, version.number).get_artifact(Artifact.ONNX_MODEL) is not None:
            numbers.append(version.number)
    return sorted(numbers)


def item_of(out, model: str, number: int) -> dict:
    return json.loads((out / model / f"{model}-v{number}" / f"{model}-v{number}.json").read_text())


def test_one_collection_per_model_and_one_item_per_version(written):
    out, stdout, registered = written
    root = json.loads((out / "catalog.json").read_text())
    children = sorted(link["href"] for link in root["links"] if link["rel"] == "child")
    assert children == ["./jukebox/collection.json", "./wine/collection.json"]
    counts = {model: len(registered_numbers(model)) for model in ("jukebox", "wine")}
    for model, count in counts.items():
        collection = json.loads((out / model / "collection.json").read_text())
        items = [link for link in collection["links"] if link["rel"] == "item"]
        assert len(items) == count
        assert f"{model} v{registered[model].number}: stage " in stdout
    assert f"Wrote a STAC catalog of {sum(counts.values())} version(s) in 2 collection(s)" in stdout
    assert "Valid: every catalog, collection and item" in stdout


def test_the_catalog_validates_offline(written, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    assert validate_catalog(written[0]) == []


def test_an_item_holds_the_registered_onnx_file_and_the_selected_candidate(written, jukebox_training):
    out, _, registered = written
    version = registered["jukebox"]
    item = item_of(out, "jukebox", version.number)
    onnx_bytes = version.get_artifact(Artifact.ONNX_MODEL).load().SerializeToString()
    asset = item["assets"]["model"]
    assert asset["file:checksum"] == "1220" + hashlib.sha256(onnx_bytes).hexdigest()
    assert asset["file:size"] == len(onnx_bytes)
    assert (out / "jukebox" / f"jukebox-v{version.number}" / asset["href"]).read_bytes() == onnx_bytes
    selection = jukebox_training[0].steps[Step.TRAIN_MODEL].outputs[Artifact.MODEL_SELECTION][0].load()
    selected = next(c for c in selection.candidates if c.name == selection.selected)
    props = item["properties"]
    assert props["mlm:architecture"] == selected.family
    assert props["mlm:hyperparameters"] == selected.params
    assert props["headliner:test_metrics"] == pytest.approx(dict(version.run_metadata["test_metrics"]))
    assert len(props["mlm:input"]) == 13 and props["mlm:output"][0]["result"]["shape"] == [-1, 72]


def test_links_lead_to_the_zenml_and_mlflow_versions(written):
    from headliner.model.registration import mirrored_version

    out, _, registered = written
    for model, version in registered.items():
        links = item_of(out, model, version.number)["links"]
        zenml = next(link for link in links if link["rel"] == "via")
        assert zenml["href"] == f"urn:uuid:{version.id}"  # the embedded store has no dashboard URL
        assert f"promote history --model {model} --version {version.number}" in zenml["title"]
        mlflow_version, _ = mirrored_version(model, version.number)
        assert mlflow_version is not None
        mlflow = next(link for link in links if link["rel"] == "related" and "MLflow" in link["title"])
        assert mlflow["href"] == f"models:/{model}/{mlflow_version}"
        assert f"#/models/{model}/versions/{mlflow_version}" in mlflow["title"]


def test_refusals_are_one_line(written, isolated_env, tmp_path):
    unknown = run_cli(["catalog", "--out", str(tmp_path / "c"), "--model", "no_such_model"], isolated_env)
    assert unknown.returncode == 1 and "no registered model 'no_such_model'" in unknown.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused = run_cli(["catalog", "--out", str(busy), "--model", "wine"], isolated_env)
    assert refused.returncode == 1 and "not empty" in refused.stderr and "Traceback" not in refused.stderr
    assert (busy / "notes.txt").read_text() == "mine"
