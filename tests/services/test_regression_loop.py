"""store_sales, the regression use case, through the whole loop once: `python run.py --pipeline all` on 8,000
generated rows with two quick regressors (tests/training_fast_regression.yaml), then checked stage by stage:
the version registered like every task's, the split by time without look-ahead, serving (/predict, /v2),
true values, batch scoring, monitoring's live MAE, and four-eyes promotion. In the side session of
scripts/test.sh (its own ZenML store), beside the containers tier."""

import json
import re
import urllib.request

import numpy as np
import pandas as pd
import pytest

from headliner.governance import promotion as governance
from headliner.governance.promotion import PromotionError
from headliner.governance.stage_record import model_stage_record
from headliner.labels import Artifact, Step
from tests.helpers.cli import (
    FAST_REGRESSION_RUN_CONFIG,
    STORE_SALES_CONFIG,
    STORE_SALES_ROWS,
    finished_run,
    run_cli,
    run_cli_on_a_free_port,
)
from tests.helpers.deployment import stop_all_services
from tests.helpers.training import check_registered_version
from tests.services.test_deployment import run_printed_curl

SPLITS = (Artifact.TRAIN_SPLIT, Artifact.VALIDATION_SPLIT, Artifact.TEST_SPLIT)


@pytest.fixture(scope="module")
def serving_env(isolated_env, tmp_path_factory):
    """The CLI's environment with this module's inference log, written when a service stops; every service is
    stopped afterwards."""
    log = tmp_path_factory.mktemp("serving") / "inference_log.sqlite"
    yield {**isolated_env, "HEADLINER_INFERENCE_LOG": str(log), "HEADLINER_LOG_FLUSH_SECONDS": "600"}, log
    stop_all_services()


@pytest.fixture(scope="module")
def store_sales_all(serving_env):
    """The port of the service, the training run and the CLI's output of one `--pipeline all`."""
    env, _ = serving_env
    args = ["--pipeline", "all", "--config", STORE_SALES_CONFIG, "--rows", STORE_SALES_ROWS]
    port, result = run_cli_on_a_free_port([*args, "--run-config", FAST_REGRESSION_RUN_CONFIG], env)
    return port, finished_run(result), result.stdout


def test_it_registers_a_version_like_every_task(store_sales_all, store_sales_spec):
    _, run, stdout = store_sales_all
    check_registered_version(run, stdout, store_sales_spec)


def test_it_is_judged_on_later_weeks_than_it_learnt_from(store_sales_all):
    """The split by time: the last 8 weeks test, the 8 before validate, every earlier week trains; the lags
    of every example are the sales of earlier weeks of its own series (no look-ahead)."""
    _, run, stdout = store_sales_all
    split = run.steps[Step.SPLIT_DATA].outputs
    train, validation, test = (split[name][0].load() for name in SPLITS)
    assert train["date"].max() < validation["date"].min() <= validation["date"].max() < test["date"].min()
    assert validation["date"].nunique() == test["date"].nunique() == 8
    assert test["date"].max() - validation["date"].min() == pd.Timedelta(weeks=15)

    labelled = run.steps[Step.LABEL_DATA].outputs[Artifact.LABELLED_DATA][0].load()
    derived = pd.concat([train, validation, test])
    for lag in (1, 2, 52):
        earlier = labelled.assign(date=labelled["date"] + pd.Timedelta(weeks=lag))[
            ["date", "store_nbr", "family", "sales"]
        ]
        joined = derived.merge(earlier, on=["date", "store_nbr", "family"], suffixes=("", "_earlier"), validate="1:1")
        assert len(joined) == len(derived)
        np.testing.assert_allclose(joined[f"sales_lag_{lag}"], joined["sales_earlier"])

    for metric in ("rmse", "mae", "r2"):
        assert re.search(rf"^  {metric} +[\d.]+ +[\d.]+$", stdout, re.MULTILINE), stdout[-1500:]
    assert re.search(r"gate mae <= baseline [\d.]+ - 10% = [\d.]+: passed", stdout)
    report = run.steps[Step.EVALUATE_MODEL].outputs[Artifact.EVALUATION_REPORT][0].load()
    assert report.task == "regression" and report.target_unit == "units"
    assert report.baseline_description.startswith("seasonal naive")
    assert report.metrics["mae"] <= 0.9 * report.baseline_metrics["mae"] and report.metrics["r2"] >= 0.5


def test_it_serves_forecasts_takes_true_values_and_monitoring_judges_live_mae(
    store_sales_all, store_sales_spec, serving_env, tmp_path
):
    """Served: a forecast in units on /predict (the printed curl), one FP32 [n, 1] output on /v2; true values fed
    back; every test week batch-scored; monitoring judges the live MAE."""
    env, _ = serving_env
    port, run, stdout = store_sales_all
    number = run.steps[Step.REGISTER_MODEL].model_version.number
    assert re.search(r"smoke test POST /predict: passed \(.*answer: About [\d,]+ units\)", stdout)
    assert "smoke test POST /v2/models/store_sales/infer: passed" in stdout and "prediction FP32 [1, 1]" in stdout

    (forecast,) = run_printed_curl(stdout)["predictions"]
    assert forecast["unit"] == "units" and forecast["prediction"] > 0
    rounded = float(f"{forecast['prediction']:.3g}")  # three significant digits, as people read it
    assert forecast["answer"] == f"About {rounded:,.0f} units"

    weeks = run.steps[Step.SPLIT_DATA].outputs["test_split"][0].load()
    test = weeks.head(3)
    inputs = [
        {"name": name, "shape": [3, 1], "datatype": "FP32", "data": test[name].tolist()}
        for name in store_sales_spec.feature_names
    ]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v2/models/store_sales/infer",
        data=json.dumps({"inputs": inputs}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        (output,) = json.loads(response.read())["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("prediction", "FP32", [3, 1])

    url = f"http://127.0.0.1:{port}"
    traffic_args = ["--url", url, "--requests", "300", "--feedback-rate", "0.5"]
    traffic = run_cli(["simulate-traffic", "--config", STORE_SALES_CONFIG, *traffic_args], env)
    assert traffic.returncode == 0, traffic.stderr[-2000:]
    assert "feedback: 150 true labels sent to POST /feedback, 150 accepted" in traffic.stdout

    data, predictions = tmp_path / "weeks.csv", tmp_path / "forecasts.csv"
    weeks[store_sales_spec.feature_names].to_csv(data, index=False)  # every test week: a table worth a look
    batch_args = ["--data", str(data), "--version", str(number), "--output", str(predictions)]
    batch = run_cli(["--pipeline", "batch-inference", "--config", STORE_SALES_CONFIG, *batch_args], env)
    assert batch.returncode == 0, batch.stdout[-2000:] + batch.stderr[-2000:]
    scored = pd.read_csv(predictions)
    assert len(scored) == len(weeks) and scored["error"].isna().all()
    assert scored["prediction"].head(3).round(2).tolist() == [round(v, 2) for v in output["data"]]

    stop_all_services()  # the service writes its log when it stops (this module's flush interval)
    monitoring = run_cli(["--pipeline", "monitoring", "--config", STORE_SALES_CONFIG, "--version", str(number)], env)
    assert monitoring.returncode == 0, monitoring.stdout[-3000:] + monitoring.stderr[-2000:]
    figures = dict(re.findall(r"^  (\w+) +([\d.,]+|n/a)", monitoring.stdout, re.MULTILINE))
    assert figures["labelled_rows"] == "150" and float(figures["live_mae"]) > 0
    assert float(figures["offline_mae"]) == pytest.approx(
        run.steps[Step.EVALUATE_MODEL].outputs["evaluation_report"][0].load().metrics["mae"], abs=1e-4
    )
    assert figures["estimated_mae"] == "n/a" and figures["statistical_parity_difference"] == "n/a"
    # held-out weeks of the served version: the live MAE stays within the retrain limit of the offline one
    assert float(figures["mae_drop"]) < store_sales_spec.monitoring.live_metric_min_drop_to_retrain
    assert not re.search(r"^  - live mae", monitoring.stdout, re.M), monitoring.stdout[-2500:]


def test_the_version_goes_through_the_same_four_eyes(store_sales_all):
    """store_sales: the staging request its training run filed, a refused self-approval, approval by a second
    person, then production; the stage record and the MLflow aliases follow."""
    _, run, _ = store_sales_all
    number = run.steps[Step.REGISTER_MODEL].model_version.number
    (request,) = [r for r in governance.pending_requests("store_sales") if r.version == number]
    assert (request.to_stage, request.requested_by) == ("staging", "training-pipeline")
    with pytest.raises(PromotionError, match="cannot decide it: a second person must"):
        governance.approve(request.id, "training-pipeline")
    governance.approve(request.id, "bob", reason="MAE well below seasonal naive")
    production = governance.request_promotion("store_sales", number, "production", "forecasts for the stores", "alice")
    governance.approve(production.id, "carol")
    assert governance.stage_holders("store_sales")["production"] == [number]
    record = model_stage_record("store_sales", number)
    assert record.stage == "production" and record.mlflow_aliases == ["champion"]
    assert [(e.event, e.stage, e.by) for e in record.history] == [
        ("requested", "staging", "training-pipeline"),
        ("approved", "staging", "bob"),
        ("requested", "production", "alice"),
        ("approved", "production", "carol"),
    ]
