"""The STAC catalog of registered versions, from hand-made versions (no registry): an item's MLM fields come
from the ONNX file, its asset's checksum is the file's sha256, the written catalog is self-contained and
validates against the shipped STAC + MLM schemas with the network blocked, and a broken item or catalog is
refused with a problem that names the field or file."""

import hashlib
import json
import socket
import urllib.request
from datetime import UTC, datetime

import pytest

from headliner.errors import HeadlinerError
from headliner.governance.catalog import (
    CATALOG_ID,
    GLOBAL_BBOX,
    MLM_SCHEMA,
    ONNX_MEDIA_TYPE,
    RegisteredVersion,
    RegistryLink,
    offline_validator,
    shipped_schemas,
    validate_catalog,
    validate_stac_dict,
    version_item,
    write_catalog,
)
from headliner.labels import class_display_names


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach a host (a schema fetch) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def versions(jukebox_onnx_file):
    model = jukebox_onnx_file.read_bytes()
    common = {"model": "jukebox", "onnx_bytes": model, "family": "logistic_regression"}
    return [
        RegisteredVersion(
            number=1,
            created=datetime(2026, 3, 1, 12, 0),  # naive, as ZenML gives it: UTC
            stage="archived",
            hyperparameters={"C": 1.0},
            test_metrics={"top_k_accuracy": 0.41, "log_loss": 3.9},
            zenml=RegistryLink("urn:uuid:00000000-0000-0000-0000-000000000001", "ZenML model version jukebox 1"),
            mlflow=RegistryLink("http://127.0.0.1:5000/#/models/jukebox/versions/1", "MLflow model version jukebox 1"),
            **common,
        ),
        RegisteredVersion(number=2, created=datetime(2026, 4, 2, 8, 30, tzinfo=UTC), stage="production", **common),
    ]


def test_an_item_describes_the_onnx_graph_with_mlm_fields(versions, jukebox_spec):
    item = version_item(versions[0]).to_dict()
    props = item["properties"]
    assert item["geometry"] is None and "bbox" not in item
    assert MLM_SCHEMA in item["stac_extensions"]
    assert props["datetime"] == "2026-03-01T12:00:00Z"
    assert (props["mlm:name"], props["mlm:architecture"], props["mlm:tasks"]) == (
        "jukebox",
        "logistic_regression",
        ["classification"],
    )
    assert (props["mlm:framework"], props["mlm:accelerator"], props["mlm:pretrained"]) == ("ONNX", "amd64", False)
    assert props["mlm:hyperparameters"] == {"C": 1.0}
    assert (props["headliner:stage"], props["deprecated"], props["version"]) == ("archived", True, "1")
    assert props["headliner:test_metrics"] == {"top_k_accuracy": 0.41, "log_loss": 3.9}
    inputs = props["mlm:input"]
    assert [entry["name"] for entry in inputs] == jukebox_spec.feature_names
    assert all(
        entry["input"] == {"shape": [-1, 1], "dim_order": ["batch", "feature"], "data_type": "float32"}
        for entry in inputs
    )
    tempo = next(entry for entry in inputs if entry["name"] == "tempo")
    feature = jukebox_spec.feature("tempo")
    assert f"valid range [{feature.min:g}, {feature.max:g}]" in tempo["description"]
    duration = next(entry for entry in inputs if entry["name"] == "duration_ms")
    assert "(int; valid range [10000, 1200000]; unit: ms)" in duration["description"]
    explicit = next(entry for entry in inputs if entry["name"] == "is_explicit")  # a bool: no range in the spec
    assert explicit["description"].startswith(jukebox_spec.feature("is_explicit").description + " (bool)")
    probabilities, label = props["mlm:output"]
    assert probabilities["name"] == "probabilities" and label["name"] == "label"
    assert probabilities["result"]["shape"] == [-1, 72] and probabilities["result"]["data_type"] == "float32"
    classes = probabilities["classification:classes"]
    assert [c["name"] for c in classes] == jukebox_spec.target.classes
    assert [c["value"] for c in classes] == list(range(72))
    assert [c["description"] for c in classes] == class_display_names(jukebox_spec)
    assert "pre_processing_function" not in inputs[0]


def test_the_model_asset_is_the_onnx_file_with_its_sha256(versions):
    data = versions[0].onnx_bytes
    asset = version_item(versions[0]).to_dict()["assets"]["model"]
    assert asset["href"] == "./jukebox-v1.onnx"
    assert asset["type"] == ONNX_MEDIA_TYPE and asset["roles"] == ["mlm:model"]
    assert asset["mlm:artifact_type"] == "onnx"
    assert asset["file:size"] == len(data)
    assert asset["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest()


def test_links_lead_to_the_registries(versions):
    links = {link["rel"]: link for link in version_item(versions[0]).to_dict()["links"]}
    assert links["via"]["href"] == "urn:uuid:00000000-0000-0000-0000-000000000001"
    assert links["related"]["href"] == "http://127.0.0.1:5000/#/models/jukebox/versions/1"
    assert not [link for link in version_item(versions[1]).to_dict()["links"] if link["rel"] in ("via", "related")]


def test_an_item_validates_offline_and_a_broken_one_names_the_field(versions):
    validator = offline_validator()
    item = version_item(versions[0]).to_dict()
    assert validate_stac_dict(item, "item.json", validator) == []
    del item["properties"]["mlm:input"]
    item["properties"]["mlm:output"][0]["result"]["shape"] = ["N", 72]
    del item["assets"]["model"]["mlm:artifact_type"]
    problems = validate_stac_dict(item, "item.json", validator)
    assert any("'mlm:input' is a required property" in p and MLM_SCHEMA in p for p in problems), problems
    assert any("mlm:output/0/result/shape/0: 'N' is not of type 'integer'" in p for p in problems), problems
    assert any("assets/model" in p and "'mlm:artifact_type' is a required property" in p for p in problems), problems
    assert all(p.startswith("item.json: ") for p in problems)


def test_a_schema_that_is_not_shipped_is_reported_not_fetched(versions):
    item = version_item(versions[0]).to_dict()
    item["stac_extensions"].append("https://stac-extensions.github.io/mlm/v1.6.0/schema.json")
    problems = validate_stac_dict(item, "item.json")
    assert len(problems) == 1 and "mlm/v1.6.0" in problems[0] and "not available offline" in problems[0]


def test_the_shipped_schemas_cover_what_mlm_refers_to():
    schemas = shipped_schemas()
    for uri in (
        MLM_SCHEMA,
        "https://stac-extensions.github.io/file/v2.1.0/schema.json",
        "https://stac-extensions.github.io/version/v1.2.0/schema.json",
        "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    ):
        assert uri in schemas


def test_a_written_catalog_is_self_contained_and_valid(versions, tmp_path):
    out = tmp_path / "catalog"
    summary = write_catalog(versions, out, {"jukebox": "Where a song becomes a hit."})
    assert summary.items == {"jukebox": ["jukebox-v1", "jukebox-v2"]} and summary.item_count == 2
    root = json.loads((out / "catalog.json").read_text())
    assert root["id"] == CATALOG_ID and not [link for link in root["links"] if link["rel"] == "self"]
    collection = json.loads((out / "jukebox" / "collection.json").read_text())
    assert collection["description"] == "Where a song becomes a hit."
    assert collection["extent"]["spatial"]["bbox"] == [GLOBAL_BBOX]
    assert collection["extent"]["temporal"]["interval"] == [["2026-03-01T12:00:00Z", "2026-04-02T08:30:00Z"]]
    item_file = out / "jukebox" / "jukebox-v2" / "jukebox-v2.json"
    item = json.loads(item_file.read_text())
    assert all(not link["href"].startswith("/") for link in item["links"])
    assert (item_file.parent / "jukebox-v2.onnx").read_bytes() == versions[1].onnx_bytes
    assert {(link["rel"], link["href"]) for link in item["links"]} >= {
        ("predecessor-version", "../jukebox-v1/jukebox-v1.json")
    }
    first = json.loads((out / "jukebox" / "jukebox-v1" / "jukebox-v1.json").read_text())
    assert {(link["rel"], link["href"]) for link in first["links"]} >= {
        ("successor-version", "../jukebox-v2/jukebox-v2.json"),
        ("latest-version", "../jukebox-v2/jukebox-v2.json"),
    }
    assert validate_catalog(out) == []

    (item_file.parent / "jukebox-v2.onnx").write_bytes(b"not the model")
    item["properties"].pop("mlm:architecture")
    item_file.write_text(json.dumps(item))
    problems = validate_catalog(out)
    assert any(p.startswith("jukebox/jukebox-v2/jukebox-v2.json: ") and "'mlm:architecture'" in p for p in problems)
    assert any("file:checksum does not match" in p for p in problems) and any("file:size" in p for p in problems)


def test_a_previous_catalog_is_replaced_and_another_folder_refused(versions, tmp_path):
    out = tmp_path / "catalog"
    write_catalog(versions, out)
    write_catalog(versions[1:], out)
    assert not (out / "jukebox" / "jukebox-v1").exists() and validate_catalog(out) == []
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(HeadlinerError, match="not empty"):
        write_catalog(versions, other)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(HeadlinerError, match="no registered model version"):
        write_catalog([], tmp_path / "empty")
    assert validate_catalog(tmp_path / "empty") == [
        f"{tmp_path / 'empty'}: no catalog.json; expected the folder of a catalog"
    ]


def test_an_onnx_file_without_the_packaged_metadata_is_refused_by_name(versions):
    import onnx

    model = onnx.load_model_from_string(versions[0].onnx_bytes)
    kept = [prop for prop in model.metadata_props if prop.key not in ("feature_schema", "class_labels")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    bare = RegisteredVersion(
        model="jukebox", number=3, created=datetime(2026, 5, 1), onnx_bytes=model.SerializeToString()
    )
    with pytest.raises(HeadlinerError, match="jukebox-v3: the ONNX file has no feature_schema, class_labels metadata"):
        version_item(bare)


@pytest.fixture
def cli_registry(monkeypatch):
    """The catalog command over a registry stand-in: no stack setup; `registered_versions` answers `answer`."""
    import headliner.governance.catalog as catalog_module
    import headliner.stacks.setup as stack_setup

    answer: list = []
    monkeypatch.setattr(stack_setup, "ensure_stack", lambda components: "local")
    monkeypatch.setattr(catalog_module, "registered_versions", lambda models, progress: (answer, {}))
    return answer


def test_the_command_writes_and_validates_and_refuses_an_empty_catalog(cli_registry, versions, tmp_path):
    from click.testing import CliRunner

    from headliner.cli.main import cli

    empty = CliRunner().invoke(cli, ["catalog", "--out", str(tmp_path / "none")])
    assert empty.exit_code == 1 and "an empty catalog would describe nothing" in empty.output
    assert not (tmp_path / "none").exists()
    cli_registry.extend(versions)
    written = CliRunner().invoke(cli, ["catalog", "--out", str(tmp_path / "catalog")])
    assert written.exit_code == 0, written.output
    assert "Wrote a STAC catalog of 2 version(s) in 1 collection(s) (jukebox: 2)" in written.output
    assert "Valid: every catalog, collection and item" in written.output


@pytest.fixture(scope="module")
def sales_version():
    from headliner.spec import USE_CASES_DIR, load_spec
    from tests.helpers.models import packaged_model

    spec = load_spec(USE_CASES_DIR / "store_sales.yaml")
    model = packaged_model(spec, rows=20_000)
    return spec, RegisteredVersion(
        model="store_sales",
        number=1,
        created=datetime(2026, 6, 1, 9, 0),
        onnx_bytes=model,
        stage="staging",
        family="ridge",
        hyperparameters={"alpha": 1.0},
        test_metrics={"mae": 41.25, "rmse": 63.5, "r2": 0.875},
    )


def test_a_regression_item_describes_the_forecast_in_its_unit(sales_version):
    spec, version = sales_version
    item = version_item(version).to_dict()
    props = item["properties"]
    assert props["mlm:tasks"] == ["regression"] and props["mlm:architecture"] == "ridge"
    assert props["headliner:test_metrics"] == {"mae": 41.25, "rmse": 63.5, "r2": 0.875}
    assert props["headliner:target"] == {
        "column": "sales",
        "description": spec.target.description,
        "unit": "units",
        "min": 0.0,
        "max": 10_000_000.0,
    }
    (output,) = props["mlm:output"]
    assert output["name"] == "prediction" and output["tasks"] == ["regression"]
    assert output["result"] == {"shape": [-1, 1], "dim_order": ["batch", "value"], "data_type": "float32"}
    assert "classification:classes" not in output
    assert output["description"].startswith("The forecast of sales: Units of the product family sold in the store")
    assert "unit: units; valid range [0, 10000000]" in output["description"]
    inputs = {entry["name"]: entry for entry in props["mlm:input"]}
    assert list(inputs) == spec.feature_names  # derived features are inputs like the others
    assert (
        "Units sold the week before (float; valid range [0, 10000000]; unit: units)"
        in (inputs["sales_lag_1"]["description"])
    )
    assert item["assets"]["model"]["description"].endswith("the forecast in the target's unit out.")
    assert validate_stac_dict(item, "item.json", offline_validator()) == []


def test_a_catalog_of_both_tasks_validates_offline(versions, sales_version, tmp_path):
    _, sales = sales_version
    out = tmp_path / "catalog"
    summary = write_catalog([*versions, sales], out)
    assert summary.items == {"jukebox": ["jukebox-v1", "jukebox-v2"], "store_sales": ["store_sales-v1"]}
    collection = json.loads((out / "store_sales" / "collection.json").read_text())
    assert collection["keywords"] == ["machine learning", "regression", "onnx", "store_sales"]
    jukebox = json.loads((out / "jukebox" / "collection.json").read_text())
    assert jukebox["keywords"] == ["machine learning", "classification", "onnx", "jukebox"]
    assert validate_catalog(out) == []
