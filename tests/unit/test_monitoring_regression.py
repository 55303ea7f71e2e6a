"""Monitoring of a regression model (store_sales) as plain functions: the window read back from a real
inference log holds the logged forecasts and the numeric true values, live MAE/RMSE against hand-computed
values, 'worse' read as 'above' for MAE in the decision, the forecast's and the true values' drift, and the
reports that say why a forecast gets no CBPE estimate and no fairness figures."""

import numpy as np
import pandas as pd
import pytest

from headliner.model.onnx_packaging import OnnxPredictor
from headliner.monitoring.decision import decide
from headliner.monitoring.drift import feature_drift, prediction_drift
from headliner.monitoring.estimate import performance_estimate
from headliner.monitoring.fairness import fairness
from headliner.monitoring.performance import LivePerformanceReport, live_performance, live_regression_metrics
from headliner.monitoring.window import ANALYSED, LABEL, PREDICTED, WindowSelection, load_window, reference_data
from tests.helpers.models import packaged_model_from_frame, sales_frame
from tests.helpers.traffic import log_traffic
from tests.unit.test_monitoring import _checks


@pytest.fixture(scope="module")
def sales(store_sales_spec):
    """A small store_sales panel split by time (train: all but the last 16 weeks), its ridge model's bytes."""
    frame = sales_frame(store_sales_spec, series=24, weeks=100)
    cut = frame["date"].sort_values().unique()[-16]
    train, held_out = frame[frame["date"] < cut], frame[frame["date"] >= cut].reset_index(drop=True)
    return train, held_out, packaged_model_from_frame(store_sales_spec, train)


def test_the_window_holds_the_logged_forecasts_and_the_true_values(tmp_path, sales, store_sales_spec):
    _, held_out, model = sales
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    ids = log_traffic(url, model, held_out, store_sales_spec, feedback_rate=0.5)
    current, report = load_window(url, store_sales_spec, "1", WindowSelection())
    assert report.items == len(held_out) and list(current["request_id"]) == ids
    forecasts = OnnxPredictor(model).scores(held_out[store_sales_spec.feature_names].to_numpy(dtype=np.float64))
    np.testing.assert_allclose(current[PREDICTED].to_numpy(), forecasts[:, 0], rtol=1e-6)
    labelled = current[current[LABEL].notna()]
    assert report.labelled_items == len(labelled) > 0.3 * len(held_out)
    truth = held_out.set_index(pd.Index(ids))["sales"]
    np.testing.assert_allclose(labelled[LABEL].to_numpy(dtype=np.float64), truth[labelled["request_id"]].to_numpy())

    performance = live_performance(current, {"mae": 1.0, "rmse": 1.0}, store_sales_spec)
    errors = labelled[PREDICTED].to_numpy() - labelled[LABEL].to_numpy(dtype=np.float64)
    assert performance.metrics["mae"] == pytest.approx(np.abs(errors).mean())
    assert performance.metrics["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))
    assert performance.top_k == 0 and performance.drop == pytest.approx(performance.metrics["mae"] - 1.0)


def test_live_regression_metrics_by_hand():
    metrics = live_regression_metrics(np.array([100.0, 200.0, 0.0, 50.0]), np.array([110.0, 180.0, 0.0, 50.0]))
    assert metrics == pytest.approx(
        {"mae": 7.5, "rmse": np.sqrt(125.0), "mape": (0.1 + 0.1 + 0.0) / 3, "smape": (2 * 10 / 210 + 2 * 20 / 380) / 4}
    )


@pytest.mark.parametrize(
    ("live_mae", "decision", "reason"),
    [
        (300.0, "ok", None),
        (360.0, "warn", "live mae 360.000 is 110.000 above offline 250.000"),
        (460.0, "retrain", "live mae 460.000 is 210.000 above offline 250.000"),
        (150.0, "ok", None),  # better than offline: a negative drop
    ],
)
def test_a_live_mae_above_the_offline_one_is_worse(live_mae, decision, reason, store_sales_spec):
    window, features, prediction, quality, fair, _ = _checks()
    performance = LivePerformanceReport(
        live_metric="mae", top_k=0, labelled=150, min_labels=100, metrics={"mae": live_mae}, offline={"mae": 250.0}
    )
    summary = decide(window, features, prediction, quality, fair, performance, store_sales_spec)
    assert summary.decision == decision
    assert summary.reasons == ([] if reason is None else [reason])
    assert summary.figures["mae_drop"] == pytest.approx(live_mae - 250.0)


def test_forecast_and_true_values_drift_and_no_estimate_or_fairness(tmp_path, sales, store_sales_spec):
    train, held_out, model = sales
    reference = reference_data(held_out, model, store_sales_spec)
    assert reference[LABEL].tolist() == held_out["sales"].tolist()
    doubled = held_out.assign(sales_lag_1=held_out["sales_lag_1"] * 3, sales=held_out["sales"] * 3)
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log_traffic(url, model, doubled, store_sales_spec, feedback_rate=1.0)
    current, _ = load_window(url, store_sales_spec, "1", WindowSelection())

    drift = prediction_drift(reference, current, store_sales_spec)
    assert [column.column for column in drift.columns] == [PREDICTED, LABEL]  # >= min_labels true values
    assert drift.drifted == [PREDICTED, LABEL]
    assert drift.column_meaning(LABEL) == "the true sales values"
    inputs = feature_drift(reference, current, store_sales_spec)
    assert "sales_lag_1" in inputs.drifted
    assert "week_of_year" not in [column.column for column in inputs.columns]  # a calendar feature: not tested
    assert len(inputs.columns) == len(store_sales_spec.features) - 1
    few = prediction_drift(reference, current.assign(**{LABEL: np.nan}), store_sales_spec)
    assert [column.column for column in few.columns] == [PREDICTED]

    estimate = performance_estimate(train, model, current, store_sales_spec)
    assert estimate.drop is None and estimate.rows == int(current[ANALYSED].sum())
    assert "a forecast carries no confidence to calibrate" in estimate.to_html()
    report = fairness(current, current, store_sales_spec)
    assert report.passed is None and report.figures == []


def zero_sales_first_window(rows: int = 200, zero_rows: int = 20) -> pd.DataFrame:
    """Labelled forecasts a minute apart; the first time slice (of PERIODS) only weeks of zero sales
    (forecast 5, true 0), the rest forecast 110 for a true 100."""
    zero = np.arange(rows) < zero_rows
    return pd.DataFrame(
        {
            "received_at": pd.date_range("2026-01-05", periods=rows, freq="min"),
            PREDICTED: np.where(zero, 5.0, 110.0),
            LABEL: np.where(zero, 0.0, 100.0),
        }
    )


def test_a_first_time_slice_of_zero_sales_is_scored_without_mape_and_the_live_mae_judged(store_sales_spec):
    report = live_performance(zero_sales_first_window(), {"mae": 8.0, "mape": 0.05}, store_sales_spec)
    # overall: mae (20 x 5 + 180 x 10) / 200 = 9.5; mape over the 180 non-zero true values 10 / 100;
    # smape 2 x 5 / 5 on a zero week, 2 x 10 / 210 on the others
    assert report.metrics == pytest.approx(
        {
            "rmse": np.sqrt((20 * 25 + 180 * 100) / 200),
            "mae": 9.5,
            "mape": 0.1,
            "smape": (20 * 2 + 180 * 20 / 210) / 200,
        }
    )
    first, *later = report.periods
    assert (first.labelled, first.metrics) == (20, pytest.approx({"rmse": 5.0, "mae": 5.0, "smape": 2.0}))
    assert all(period.metrics["mape"] == pytest.approx(0.1) for period in later) and len(later) == 9
    assert report.judged and report.drop == pytest.approx(1.5)
    assert report.summary_metadata()["mae_drop"] == 1.5
    assert report.png_images()["live_performance"].startswith(b"\x89PNG")
    assert "mae is +1.5000 above its offline value" in report.to_html()


def test_a_live_mape_undefined_on_a_time_slice_leaves_a_gap_and_on_the_window_is_not_judged(store_sales_spec):
    monitoring = store_sales_spec.monitoring.model_copy(update={"live_metric": "mape"})
    spec = store_sales_spec.model_copy(update={"monitoring": monitoring})
    report = live_performance(zero_sales_first_window(), {"mape": 0.05}, spec)
    assert report.judged and report.drop == pytest.approx(0.05)
    page = report.to_html()
    assert page.count("n/a (all true values 0)") == 1 and page.count("<td>0.1000</td>") >= 9
    assert report.png_images()["live_performance"].startswith(b"\x89PNG")  # the slice without mape: a gap

    zeros = live_performance(zero_sales_first_window(zero_rows=200), {"mape": 0.05}, spec)
    assert zeros.metrics["mae"] == 5.0 and "mape" not in zeros.metrics
    assert not zeros.judged and zeros.drop is None and "mape_drop" not in zeros.summary_metadata()
    assert "200 labelled answers; mape is undefined on them: every true value is 0." in zeros.to_html()
