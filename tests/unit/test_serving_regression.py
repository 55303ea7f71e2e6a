"""The service with a regression model (a packaged store_sales forecaster): /predict answers the forecast with
its unit and in words ("About 1,240 units"), /v2 returns FP32 [n, 1], bad input is a 422 naming the item's
field, the log keeps the forecasts (logged_items' `prediction` column), /feedback takes true numbers, batch
scoring writes a `prediction` column, /explain explains the forecast, and the OpenAPI document and the page
describe the regression answer."""

import io
import json
import math

import jsonschema
import numpy as np
import pandas as pd
import pytest
from openapi_spec_validator import validate

from headliner.model.onnx_packaging import OnnxPredictor
from headliner.serving.batch_scoring import prediction_columns, score_frame
from headliner.serving.feedback import FeedbackStore, feedback_from_file, parse_feedback
from headliner.serving.inference_log import InferenceLog, logged_items, read_inference_log
from headliner.serving.page import page_data, render_page
from headliner.serving.payloads import RequestError
from headliner.serving.server import ModelServer
from headliner.spec import load_spec
from tests.helpers.models import packaged_model
from tests.helpers.payloads import STORE_WEEK
from tests.helpers.serving import Served

ITEM = STORE_WEEK
ITEMS = [ITEM, {**ITEM, "onpromotion": 40, "price": 3.6}, {**ITEM, "sales_lag_1": 2400.0, "is_holiday": True}]
FEATURES = list(ITEM)


@pytest.fixture(scope="module")
def sales_spec():
    return load_spec("configs/use_cases/store_sales.yaml")


@pytest.fixture(scope="module")
def sales_predictor(sales_spec) -> OnnxPredictor:
    """A ridge forecaster packaged as the training pipeline packages it, from 6,000 generated raw rows."""
    return OnnxPredictor(packaged_model(sales_spec, rows=6_000))


@pytest.fixture
def served(sales_predictor, tmp_path):
    served = Served(sales_predictor, tmp_path)
    served.server.feedback = FeedbackStore(served.url)
    yield served
    served.close()


def expected(predictor: OnnxPredictor, items: list[dict]) -> np.ndarray:
    return predictor.predict_values({name: [float(item[name]) for item in items] for name in FEATURES})


def for_people(value: float) -> str:
    """3 significant digits, thousands separated, worked out apart from the service's own rounding."""
    digits = 3 - 1 - math.floor(math.log10(abs(value)))
    rounded = round(value, digits)
    return f"{rounded:,.0f}" if digits <= 0 else f"{rounded:,.{digits}f}".rstrip("0").rstrip(".")


def test_predict_answers_each_forecast_with_its_unit_and_in_words(served, sales_predictor):
    response = served.client.post("/predict", json=ITEMS)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["model_name"], answer["model_version"]) == ("store_sales", "1")
    values = expected(sales_predictor, ITEMS)
    assert len(answer["predictions"]) == 3
    for prediction, value in zip(answer["predictions"], values, strict=True):
        assert set(prediction) == {"prediction", "unit", "answer"}
        assert np.float32(prediction["prediction"]) == value  # the model's float32, exactly
        assert prediction["unit"] == "units"
        assert prediction["answer"] == f"About {for_people(float(value))} units"
    single = served.client.post("/predict", json=ITEM).json()["predictions"]
    assert len(single) == 1 and np.float32(single[0]["prediction"]) == values[0]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1238.6, "About 1,240 units"),
        (85.34, "About 85.3 units"),
        (9.876, "About 9.88 units"),
        (0.0, "About 0 units"),
        (1_234_567.0, "About 1,230,000 units"),
    ],
)
def test_the_answer_rounds_to_three_significant_digits_with_thousands_separators(sales_predictor, value, words):
    assert ModelServer(sales_predictor, None).answer(value) == words


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**ITEM, "price": -1}, "item.price", "item.price: expected a number in [0.01, 1000] USD, got -1"),
        ([ITEM, {**ITEM, "week_of_year": 54}], "items[1].week_of_year", "expected an integer in [1, 53], got 54"),
        ({k: v for k, v in ITEM.items() if k != "sales_lag_52"}, "item.sales_lag_52", "missing field 'sales_lag_52'"),
        ({**ITEM, "sales_lag_1": "350"}, "item.sales_lag_1", "got the string '350'"),
        ([], None, "the list of items is empty"),
    ],
)
def test_invalid_items_are_422_naming_the_field(served, body, field, message):
    response = served.client.post("/predict", json=body)
    assert response.status_code == 422
    assert response.json().get("field") == field
    assert message in response.json()["error"]


def test_v2_infer_returns_the_forecasts_as_fp32_n_by_1(served, sales_predictor):
    request = {
        "inputs": [
            {"name": name, "shape": [3, 1], "datatype": "FP32", "data": [float(item[name]) for item in ITEMS]}
            for name in FEATURES
        ]
    }
    response = served.client.post("/v2/models/store_sales/infer", json=request)
    assert response.status_code == 200
    outputs = response.json()["outputs"]
    assert [(o["name"], o["datatype"], o["shape"]) for o in outputs] == [("prediction", "FP32", [3, 1])]
    np.testing.assert_array_equal(np.float32(outputs[0]["data"]), expected(sales_predictor, ITEMS))
    asked = served.client.post("/v2/models/store_sales/infer", json={**request, "outputs": [{"name": "prediction"}]})
    assert asked.json()["outputs"][0]["name"] == "prediction"
    wrong = served.client.post("/v2/models/store_sales/infer", json={**request, "outputs": [{"name": "label"}]})
    assert wrong.status_code == 400
    assert wrong.json() == {"error": "unknown output 'label'; this model has ['prediction']", "field": "outputs"}

    metadata = served.client.get("/v2/models/store_sales").json()
    assert metadata["outputs"] == [{"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}]
    assert [entry["name"] for entry in metadata["inputs"]] == FEATURES  # derived features are ordinary inputs
    assert metadata["parameters"]["task"] == "regression"
    assert metadata["parameters"]["target"] == {
        "column": "sales",
        "description": "Units of the product family sold in the store in the week",
        "unit": "units",
        "min": 0.0,
        "max": 10_000_000.0,
    }


def test_the_log_keeps_the_forecasts_and_logged_items_has_a_prediction_column(served, sales_predictor):
    served.client.post("/predict", json=ITEMS[:2])
    served.client.post("/predict", json={**ITEM, "price": -1})  # refused: logged, no items
    served.client.post(
        "/v2/models/store_sales/infer",
        json={
            "inputs": [{"name": name, "shape": [1], "datatype": "FP64", "data": [ITEMS[2][name]]} for name in FEATURES]
        },
    )
    served.log.flush()
    logged = read_inference_log(served.url)
    assert logged["endpoint"].tolist() == ["predict", "predict", "v2"]
    values = expected(sales_predictor, ITEMS)
    outputs = json.loads(logged["outputs"].iloc[0])  # the float32 forecasts, in their shortest form
    assert list(outputs) == ["prediction"]
    np.testing.assert_array_equal(np.float32(outputs["prediction"]), values[:2, None])
    assert logged["outputs"].iloc[1] is None and logged["status"].iloc[1] == 422

    items = logged_items(logged)
    assert list(items.columns) == ["request_id", "item", *FEATURES, "received_at", "model_version", "prediction"]
    assert items["prediction"].dtype == np.float64
    np.testing.assert_array_equal(items["prediction"].to_numpy(np.float32), values)
    assert items["item"].tolist() == [0, 1, 0]
    assert items["is_holiday"].tolist() == [0.0, 0.0, 1.0]


def test_feedback_takes_a_true_number_and_refuses_anything_else_naming_the_label(served):
    request_id = served.client.post("/predict", json=ITEMS).json()["request_id"]
    stored = served.client.post(
        "/feedback",
        json=[{"request_id": request_id, "label": 361.5}, {"request_id": request_id, "item": 2, "label": 7}],
    )
    assert stored.status_code == 200 and stored.json()["accepted"] == 2
    labels = served.server.feedback.read()
    assert labels[["item", "label"]].values.tolist() == [[0, "361.5"], [2, "7.0"]]
    assert pd.to_numeric(labels["label"]).tolist() == [361.5, 7.0]
    for label in ("361.5", True, None, -1, 20_000_000):
        refused = served.client.post("/feedback", json={"request_id": request_id, "label": label})
        assert refused.status_code == 422
        assert refused.json()["field"] == "label"
        assert refused.json()["error"] == (
            f"'label' {label!r} is not a true value of this model; expected a number in [0, 10000000] units "
            "(the true sales)"
        )


def test_feedback_of_a_classifier_still_takes_only_its_classes(predictor):
    assert parse_feedback({"request_id": "r", "label": "GB"}, predictor.classes, 10)[0].label == "GB"
    with pytest.raises(RequestError) as refused:
        parse_feedback({"request_id": "r", "label": 3.5}, predictor.classes, 10)
    assert (refused.value.status, refused.value.field) == (422, "label")
    assert "is not a class of this model" in refused.value.message


def test_a_feedback_file_of_a_regression_model_holds_numbers(tmp_path, sales_predictor):
    path = tmp_path / "truth.csv"
    path.write_text("request_id,item,sales\nabc,0,410\nabc,1,12.5\n")
    labels = feedback_from_file(path, [], "sales", sales_predictor.target)
    assert [(f.request_id, f.item, f.label) for f in labels] == [("abc", 0, "410.0"), ("abc", 1, "12.5")]
    path.write_text("request_id,sales\nabc,many\n")
    with pytest.raises(
        Exception, match=r"row 2: label 'many' is not a true value: expected a number in \[0, 10000000\]"
    ):
        feedback_from_file(path, [], "sales", sales_predictor.target)


def test_batch_scoring_writes_a_prediction_column_with_its_unit(sales_predictor, tmp_path):
    frame = pd.DataFrame([{"store": "s1", **item} for item in ITEMS] + [{"store": "s2", **ITEM, "price": 0}])
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log = InferenceLog(url, sales_predictor.feature_names, flush_seconds=60)
    try:
        predictions, report = score_frame(sales_predictor, frame, log=log, batch_id="b")
        log.flush()
    finally:
        log.close()
    assert prediction_columns(sales_predictor) == ["prediction", "error"]
    assert list(predictions.columns) == ["store", "prediction", "error"]
    np.testing.assert_array_equal(predictions["prediction"].to_numpy()[:3], expected(sales_predictor, ITEMS))
    assert np.isnan(predictions["prediction"].iloc[3])
    assert predictions["error"].iloc[3] == "price: expected a number in [0.01, 1000] USD, got 0"
    assert predictions.attrs["units"] == {"prediction": "units"}
    assert (report.rows_scored, report.rows_rejected, report.top_k, report.unit) == (3, 1, 0, "units")
    report.output_file = "out.parquet"
    assert "  predictions (prediction in units): out.parquet" in report.summary_lines()
    items = logged_items(read_inference_log(url))
    np.testing.assert_array_equal(items["prediction"].to_numpy(np.float32), expected(sales_predictor, ITEMS))
    predictions.to_parquet(tmp_path / "out.parquet")
    assert pd.read_parquet(tmp_path / "out.parquet").attrs["units"] == {"prediction": "units"}


def test_a_csv_upload_is_answered_with_the_prediction_column(served, sales_predictor):
    body = pd.DataFrame([{"id": "a", **ITEM}]).to_csv(index=False).encode()
    response = served.client.post("/batch", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 200
    answered = pd.read_csv(io.BytesIO(response.content))
    assert list(answered.columns) == ["id", "prediction", "error"]
    assert np.float32(answered["prediction"].iloc[0]) == expected(sales_predictor, [ITEM])[0]


def test_explain_gives_the_forecast_from_the_mean_forecast_and_the_contributions_in_units(served, sales_predictor):
    response = served.client.post("/explain", json=ITEMS[:2])
    assert response.status_code == 200
    explanations = response.json()["explanations"]
    values = expected(sales_predictor, ITEMS[:2])
    for explanation, value in zip(explanations, values, strict=True):
        assert (explanation["output"], explanation["unit"]) == ("sales", "units")
        assert explanation["prediction"] == pytest.approx(float(value), rel=1e-6)
        total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
        assert total == pytest.approx(explanation["prediction"], abs=1e-3)
        assert {c["feature"] for c in explanation["contributions"]} == set(FEATURES)
        assert all(c["text"].endswith(" units") or "hardly" in c["text"] for c in explanation["contributions"])
    served.log.flush()
    logged = read_inference_log(served.url)
    assert logged["endpoint"].tolist() == ["explain"]
    assert np.allclose(json.loads(logged["outputs"].iloc[0])["prediction"], [[e["prediction"]] for e in explanations])


def test_the_openapi_document_describes_the_forecast_and_the_answers_match_it(served):
    document = served.client.get("/docs.json").json()
    validate(document)
    schemas = document["components"]["schemas"]

    def schema(name: str) -> dict:
        return {**schemas[name], "components": document["components"]}

    ok = document["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ForecastResponse"}
    assert set(schemas["Forecast"]["properties"]) == {"prediction", "unit", "answer"}
    assert "PredictResponse" not in schemas and "InferenceResponse" not in schemas
    jsonschema.validate(served.client.post("/predict", json=ITEMS).json(), schema("ForecastResponse"))
    assert jsonschema.Draft202012Validator(schema("PredictRequest")).is_valid(ITEMS)
    assert not jsonschema.Draft202012Validator(schema("PredictRequest")).is_valid({**ITEM, "price": -1})
    example = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert example == {**ITEM, "sales_lag_52": 330.0}  # the spec's first preset, "Ordinary week"

    infer = document["paths"]["/v2/models/{model}/infer"]["post"]
    assert infer["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ForecastInferenceResponse"
    )
    v2 = {"inputs": [{"name": n, "shape": [1, 1], "datatype": "FP32", "data": [float(ITEM[n])]} for n in FEATURES]}
    jsonschema.validate(
        served.client.post("/v2/models/store_sales/infer", json=v2).json(), schema("ForecastInferenceResponse")
    )
    assert schemas["RequestOutput"]["properties"]["name"] == {"const": "prediction", "title": "Name", "type": "string"}

    label = schemas["FeedbackLabel"]["properties"]["label"]
    assert (label["type"], label["minimum"], label["maximum"]) == ("number", 0.0, 10_000_000.0)
    feedback_example = document["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert jsonschema.Draft202012Validator(schema("FeedbackRequest")).is_valid(feedback_example)
    explained = served.client.post("/explain", json=ITEM).json()
    jsonschema.validate(explained, schema("ForecastExplainResponse"))


def test_the_page_has_a_form_of_every_feature_and_answers_in_the_targets_unit(sales_predictor):
    data = page_data(sales_predictor)
    assert (data["task"], data["unit"], data["answer_template"]) == ("regression", "units", "About {value} {unit}")
    assert [entry["name"] for entry in data["features"]] == FEATURES
    assert [preset["name"] for preset in data["presets"]] == [
        "Typical store-week",
        "Ordinary week",
        "Promotion week",
        "Christmas week",
    ]
    page = render_page(data, auth=False, max_upload_rows=1000)
    for index, name in enumerate(FEATURES):
        assert f'id="f{index}" name="{name}"' in page
    assert '<span class="unit">units</span>' in page and '<span class="unit">USD</span>' in page
    assert "Units sold the week before" in page and "0 – 10,000,000 units" in page
    assert "The forecast, in units" in page and "Why this forecast" in page
    assert "<code>prediction</code>, in units" in page
    markup = page[: page.index('<script type="application/json"')]
    markup = markup[markup.index("</style>") :]  # the page's own markup, not its style or script
    assert 'id="all"' not in markup and 'id="top"' not in markup and "probabilit" not in markup


def test_the_rollout_report_of_a_regression_model_gives_live_mae_and_how_far_the_forecasts_are(
    sales_spec, sales_predictor, tmp_path
):
    from headliner.serving.feedback import Feedback
    from headliner.serving.rollout_report import rollout_report
    from headliner.serving.routing import CANDIDATE, PRODUCTION

    versions = {"1": packaged_model(sales_spec, rows=6_000), "2": packaged_model(sales_spec, rows=9_000, version="2")}
    servers = {version: ModelServer(OnnxPredictor(model), None) for version, model in versions.items()}
    matrix = servers["1"].rules.songs_matrix(ITEMS, len(ITEMS))
    forecasts = {version: server.scores(matrix)[0][:, 0] for version, server in servers.items()}
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log = InferenceLog(url, FEATURES, flush_seconds=60)
    for index in range(3):  # item 0 and 2 to production, item 1 to the candidate
        version, variant = ("2", CANDIDATE) if index == 1 else ("1", PRODUCTION)
        server, rows = servers[version], matrix[index : index + 1]
        logged = server.logged(server.scores(rows))
        log.append(server.record(1.7e9 + index, f"r{index}", "predict", 200, 1.0 + index, rows, logged, None, variant))
    assert log.close() == 0
    truth = [100.0, 250.0, 1000.0]
    store = FeedbackStore(url)
    store.write([Feedback(f"r{index}", 0, repr(value)) for index, value in enumerate(truth)], "api")
    store.close()

    report = rollout_report(url, "store_sales", versions.get)

    production, candidate = report.variants
    assert (production.version, production.labelled, candidate.version, candidate.labelled) == ("1", 2, "2", 1)
    expected_mae = np.mean([abs(truth[0] - forecasts["1"][0]), abs(truth[2] - forecasts["1"][2])])
    assert production.mae == pytest.approx(expected_mae, rel=1e-6)
    assert candidate.mae == pytest.approx(abs(truth[1] - forecasts["2"][1]), rel=1e-6)
    assert production.accuracy is None and report.regression and report.unit == "units"
    difference = np.mean(np.abs(forecasts["1"].astype(np.float64) - forecasts["2"]))
    assert report.forecast_difference == pytest.approx(difference, rel=1e-6) and report.agreement is None
    assert report.agreement_items == 3 and report.compared_versions == ["1", "2"]
    headers, rows = report.table()
    assert headers[-1] == "MAE (units)" and headers[4] == "items"
    assert rows[0][-1] == f"{production.mae:,.2f}"
    assert report.agreement_text().startswith(f"forecasts of v1 and v2 differ by {difference:,.3g} units on average")


def test_a_rollout_report_without_true_values_still_speaks_of_forecasts(tmp_path, sales_spec):
    from headliner.serving.rollout_report import rollout_report
    from headliner.serving.routing import PRODUCTION

    versions = {"1": packaged_model(sales_spec, rows=6_000)}
    server = ModelServer(OnnxPredictor(versions["1"]), None)
    rows = server.rules.songs_matrix(ITEMS, len(ITEMS))[:1]
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log = InferenceLog(url, FEATURES, flush_seconds=60)
    log.append(
        server.record(1.7e9, "r0", "predict", 200, 1.0, rows, server.logged(server.scores(rows)), None, PRODUCTION)
    )
    assert log.close() == 0

    report = rollout_report(url, "store_sales", versions.get)

    assert report.regression and report.unit == "units" and report.variants[0].labelled == 0
    headers, _ = report.table()
    assert headers[4] == "items" and headers[-1] == "MAE (units)" and "accuracy" not in " ".join(headers)


def test_a_canary_and_a_shadow_of_a_regression_model_answer_with_the_version_that_computed_them(sales_spec, tmp_path):
    from headliner.serving.app import InferenceApp
    from headliner.serving.routing import CANDIDATE, PRODUCTION, SHADOW, RolloutPolicy, Routing
    from tests.helpers.serving import Client

    versions = {"1": packaged_model(sales_spec, rows=6_000), "2": packaged_model(sales_spec, rows=9_000, version="2")}
    forecasts = {v: [float(expected(OnnxPredictor(b), [item])[0]) for item in ITEMS] for v, b in versions.items()}
    assert forecasts["1"] != forecasts["2"]
    for policy in (RolloutPolicy(mode="shadow"), RolloutPolicy(mode="canary", percent=50)):
        mode = policy.mode
        url = f"sqlite:///{tmp_path / f'{mode}.sqlite'}"
        log = InferenceLog(url, FEATURES, flush_seconds=60)
        primary = ModelServer(OnnxPredictor(versions["1"]), log)
        app = InferenceApp()
        app.route(Routing(primary, primary.sibling(OnnxPredictor(versions["2"])), policy))
        client = Client(app)
        answered = {}
        try:
            for index in range(40):
                body = client.post("/predict", json=ITEMS[index % 3]).json()
                version, (forecast,) = body["model_version"], body["predictions"]
                assert forecast["prediction"] == pytest.approx(forecasts[version][index % 3], rel=1e-6)
                answered[body["request_id"]] = version
        finally:
            client.close()
            assert log.close() == 0
        frame = read_inference_log(url)
        if mode == "shadow":  # every answer is production's; the candidate's forecast is logged beside it
            assert set(answered.values()) == {"1"} and len(frame) == 80
            shadowed = frame[frame["variant"] == SHADOW]
            assert set(shadowed["model_version"]) == {"2"} and shadowed["request_id"].tolist() == list(answered)
            logged = [json.loads(o)["prediction"][0][0] for o in shadowed["outputs"]]
            assert logged == pytest.approx([forecasts["2"][i % 3] for i in range(40)], rel=1e-6)
        else:
            assert 8 <= sum(v == "2" for v in answered.values()) <= 32  # 40 requests at 50%
            variants = dict(zip(frame["request_id"], frame["variant"], strict=True))
            assert all(variants[r] == (CANDIDATE if v == "2" else PRODUCTION) for r, v in answered.items())
