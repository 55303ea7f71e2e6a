"""Monitoring logic as plain functions: the window read from a real inference log (counts, sampling,
labels joined by request id, clear errors for empty and small windows), drift with Evidently, fairness
(statistical parity, disparate impact, equal opportunity, average odds) and live metrics against
hand-computed values, the decision rules and how the summary prints its figures, the alert webhook, and
true labels through POST /feedback and from a file."""

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from headliner.data.profiling import EVIDENTLY_FILE, DataProfile
from headliner.data.splitting import one_row_per_group
from headliner.errors import FeedbackError, MonitoringError
from headliner.model.onnx_packaging import OnnxPredictor
from headliner.monitoring.decision import decide, send_alert
from headliner.monitoring.drift import ColumnDrift, DriftReport, feature_drift, prediction_drift
from headliner.monitoring.estimate import PerformanceEstimateReport
from headliner.monitoring.fairness import (
    AVERAGE_ODDS_DIFFERENCE,
    DISPARATE_IMPACT_RATIO,
    EQUAL_OPPORTUNITY_DIFFERENCE,
    ClassParity,
    FairnessFigure,
    FairnessReport,
    fairness,
    parity_differences,
)
from headliner.monitoring.performance import LivePerformanceReport, live_metrics, live_performance
from headliner.monitoring.quality import DataQualityReport, data_quality
from headliner.monitoring.window import (
    ANALYSED,
    LABEL,
    LABEL_RANK,
    PREDICTED,
    WindowReport,
    WindowSelection,
    load_window,
    newest_logged_version,
    parse_since,
    reference_data,
    window_report,
)
from headliner.serving.feedback import Feedback, FeedbackStore, feedback_from_file, parse_feedback
from headliner.serving.inference_log import InferenceLog, InferenceRecord, read_inference_log
from headliner.serving.payloads import RequestError
from headliner.spec import Monitoring
from tests.helpers.ports import refused_url
from tests.helpers.serving import Served
from tests.helpers.traffic import SHIFT, log_traffic


@pytest.fixture(scope="module")
def songs(jukebox_spec):
    """Generated songs (one row per song) with their country, split in two halves from one distribution."""
    from headliner.data.sources import load_raw_data
    from headliner.data.wrangling import label_examples, wrangle

    wrangled, _ = wrangle(load_raw_data(jukebox_spec, rows=150_000), jukebox_spec, "test")
    labelled, _ = label_examples(wrangled, jukebox_spec, "test")
    distinct = one_row_per_group(labelled, jukebox_spec).sample(frac=1.0, random_state=3).reset_index(drop=True)
    half = len(distinct) // 2
    return distinct.iloc[:half].reset_index(drop=True), distinct.iloc[half:].reset_index(drop=True)


@pytest.fixture(scope="module")
def model_bytes(jukebox_onnx_file) -> bytes:
    return jukebox_onnx_file.read_bytes()


@pytest.fixture(scope="module")
def reference(songs, model_bytes, jukebox_spec) -> pd.DataFrame:
    return reference_data(songs[0], model_bytes, jukebox_spec)


def _log(tmp_path, name="log.sqlite") -> str:
    return f"sqlite:///{tmp_path / name}"


def test_parse_since_durations_and_times():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-11-20T08:00", now) == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    with pytest.raises(MonitoringError, match="--since 'yesterday'"):
        parse_since("yesterday", now)
    with pytest.raises(ValueError, match="one of since, within and last"):
        WindowSelection(since=now, last=5)
    with pytest.raises(ValueError, match="one of since, within and last"):
        WindowSelection(within=timedelta(hours=1), last=5)
    within = WindowSelection(within=timedelta(minutes=90))
    assert within.start(now) == now - timedelta(minutes=90) and within.describe() == "the 90m before the run"
    # a scheduled run's selection travels as JSON in the pipeline's snapshot
    assert WindowSelection.model_validate_json(within.model_dump_json()) == within


def test_window_counts_labels_joined_by_request_id_and_rejections(tmp_path, songs, model_bytes, jukebox_spec):
    url = _log(tmp_path)
    frame = songs[1].iloc[:300]
    ids = log_traffic(url, model_bytes, frame, jukebox_spec, feedback_rate=0.3)
    store = FeedbackStore(url)  # a correction: the later label for the same item wins
    store.write([Feedback(ids[0], 0, "JP")], "api")
    store.close()
    log = InferenceLog(url, jukebox_spec.feature_names, flush_seconds=60)
    for i in range(20):
        log.append(
            InferenceRecord(
                1.7e9 + i,
                f"bad-{i}",
                "predict",
                "jukebox",
                "1",
                422,
                0.1,
                0,
                None,
                None,
                None,
                "'tempo' must be a number",
            )
        )
    log.close()

    current, report = load_window(url, jukebox_spec, "1", WindowSelection())
    assert (report.requests, report.rejected_requests, report.items, report.analysed_items) == (320, 20, 300, 300)
    assert report.top_errors == {"'tempo' must be a number": 20}
    assert list(current["request_id"]) == ids
    np.testing.assert_allclose(
        current[jukebox_spec.feature_names].to_numpy(), frame[jukebox_spec.feature_names].to_numpy()
    )
    labelled = current[current[LABEL].notna()]
    assert report.labelled_items == len(labelled) > 60
    by_id = dict(zip(ids, frame[jukebox_spec.target.column], strict=True))
    by_id[ids[0]] = "JP"
    assert all(
        label == by_id[request_id] for request_id, label in zip(labelled["request_id"], labelled[LABEL], strict=True)
    )
    predictor = OnnxPredictor(model_bytes)
    order, _ = predictor.top_classes(predictor.probabilities(frame[jukebox_spec.feature_names].to_numpy()))
    tops = np.asarray(predictor.classes)[order]
    assert list(current[PREDICTED]) == list(tops[:, 0])
    for row in labelled.itertuples():
        top = list(tops[ids.index(row.request_id)])
        assert row.label_rank == (top.index(row.label) if row.label in top else -1)
    assert newest_logged_version(url, "jukebox") == "1"


def test_window_last_n_and_since(tmp_path, songs, model_bytes, jukebox_spec):
    url = _log(tmp_path)
    ids = log_traffic(url, model_bytes, songs[1].iloc[:500], jukebox_spec, seconds_apart=60)  # one a minute
    current, report = load_window(url, jukebox_spec, "1", WindowSelection(last=320))
    assert report.requests == 320 and list(current["request_id"]) == ids[-320:]
    current, report = load_window(url, jukebox_spec, "1", WindowSelection(since=parse_since("350m")))
    assert 349 <= report.requests <= 351 and list(current["request_id"]) == ids[-report.requests :]
    current, report = load_window(url, jukebox_spec, "1", WindowSelection(within=timedelta(minutes=350)))
    assert 349 <= report.requests <= 351 and report.selection == "the 350m before the run"


def test_large_windows_are_sampled_but_every_label_is_kept(tmp_path, songs, model_bytes, jukebox_spec):
    url = _log(tmp_path)
    log_traffic(url, model_bytes, songs[1].iloc[:1000], jukebox_spec, feedback_rate=0.1)
    spec = jukebox_spec.model_copy(
        update={"monitoring": jukebox_spec.monitoring.model_copy(update={"max_analysis_rows": 300})}
    )
    current, report = load_window(url, spec, "1", WindowSelection())
    assert report.items == 1000
    assert 230 <= report.analysed_items <= 370  # a 30% Bernoulli sample
    assert report.labelled_items == int(current[LABEL].notna().sum()) > 70
    assert len(current) == int((current[ANALYSED] | current[LABEL].notna()).sum())


def test_multi_song_requests_sampled_items_keep_their_values_labels_and_times(
    tmp_path, songs, model_bytes, jukebox_spec
):
    """Requests of 1 to 4 songs, a 30% sample, labels on chosen items: every item read back is the song at
    (request, item), with that item's label and its request's time, and every labelled item is there."""
    url = _log(tmp_path)
    frame = songs[1].iloc[:1000].reset_index(drop=True)
    matrix = frame[jukebox_spec.feature_names].to_numpy(dtype=np.float64)
    predictor = OnnxPredictor(model_bytes)
    order, top = predictor.top_classes(predictor.probabilities(matrix))
    codes = np.asarray(predictor.classes, dtype=object)[order]
    log = InferenceLog(url, jukebox_spec.feature_names, flush_seconds=60)
    expected, start, request = {}, 0, 0
    while start < len(frame):
        size = min(1 + request % 4, len(frame) - start)
        rows = slice(start, start + size)
        log.append(
            InferenceRecord(
                1.7e9 + request,
                f"r{request}",
                "predict",
                "jukebox",
                "1",
                200,
                1.0,
                size,
                matrix[rows],
                codes[rows],
                top[rows],
                None,
            )
        )
        for item in range(size):
            expected[(f"r{request}", item)] = (start + item, 1.7e9 + request)
        start, request = start + size, request + 1
    assert log.close() == 0
    labels = {
        key: str(frame[jukebox_spec.target.column].iloc[row]) for key, (row, _) in expected.items() if row % 7 == 3
    }
    store = FeedbackStore(url)
    store.write([Feedback(request_id, item, label) for (request_id, item), label in labels.items()], "file")
    store.close()
    spec = jukebox_spec.model_copy(
        update={"monitoring": jukebox_spec.monitoring.model_copy(update={"max_analysis_rows": 300})}
    )

    current, report = load_window(url, spec, "1", WindowSelection())

    assert report.items == 1000 and report.requests == request and 230 <= report.analysed_items <= 370
    read = {
        (r, i): position for position, (r, i) in enumerate(zip(current["request_id"], current["item"], strict=True))
    }
    assert set(labels) <= set(read) and len(read) == len(current)
    rows = [expected[key][0] for key in read]
    np.testing.assert_allclose(current[jukebox_spec.feature_names].to_numpy(), matrix[rows])
    assert list(current[PREDICTED]) == list(codes[rows, 0])
    assert [label for label in current[LABEL] if label is not None] == [labels[key] for key in read if key in labels]
    times = [expected[key][1] for key in read]
    np.testing.assert_allclose(current["received_at"].astype("int64").to_numpy() / 1e9, times, atol=1e-3)


def test_empty_and_small_windows_say_what_to_do(tmp_path, songs, model_bytes, jukebox_spec):
    with pytest.raises(MonitoringError, match=r"no inference log at .*simulate-traffic"):
        load_window(_log(tmp_path, "missing.sqlite"), jukebox_spec, "1", WindowSelection())
    url = _log(tmp_path)
    log_traffic(url, model_bytes, songs[1].iloc[:40], jukebox_spec)
    with pytest.raises(
        MonitoringError, match=r"holds 40 scored rows; at least 300 are needed \(monitoring.min_window_rows\)"
    ):
        load_window(url, jukebox_spec, "1", WindowSelection())
    with pytest.raises(MonitoringError, match=r"no requests to jukebox version 7 .*holds v1 \(40 requests\)"):
        load_window(url, jukebox_spec, "7", WindowSelection())
    with pytest.raises(MonitoringError, match="no requests to jukebox version 1 in the window"):
        load_window(url, jukebox_spec, "1", WindowSelection(since=datetime.now(UTC) + timedelta(hours=1)))
    # the same checks from the counts alone, which the CLI runs before it starts a pipeline
    with pytest.raises(MonitoringError, match=r"holds 40 scored rows; at least 300 are needed"):
        window_report(url, jukebox_spec, "1", WindowSelection())
    small = jukebox_spec.model_copy(
        update={"monitoring": jukebox_spec.monitoring.model_copy(update={"min_window_rows": 40})}
    )
    report = window_report(url, small, "1", WindowSelection(within=timedelta(hours=1)))
    assert (report.requests, report.items, report.analysed_items) == (40, 40, 0)  # counted, no row read


def test_no_drift_on_reference_traffic_and_drift_on_shifted(songs, reference, model_bytes, jukebox_spec):
    current = reference_data(songs[1].iloc[:800], model_bytes, jukebox_spec)
    same = feature_drift(reference, current, jukebox_spec)
    assert len(same.columns) == 13 and same.drifted_share <= 0.1, [(c.column, c.score) for c in same.columns]
    assert not prediction_drift(reference, current, jukebox_spec).drifted
    shifted_rows = songs[1].iloc[:800].copy()
    for name, value in SHIFT.items():
        feature = jukebox_spec.feature(name)
        shifted_rows[name] = (shifted_rows[name] + value).clip(feature.min, feature.max)
    shifted = reference_data(shifted_rows, model_bytes, jukebox_spec)
    moved = feature_drift(reference, shifted, jukebox_spec)
    assert set(SHIFT) <= set(moved.drifted) and moved.drifted_share >= 0.5
    assert prediction_drift(reference, shifted, jukebox_spec).drifted
    page = moved.to_html()
    assert f"{len(moved.drifted)} of 13 drifted" in page and page.count("<img") == 1
    assert "No column drifted" in same.to_html() or same.drifted


def test_statistical_parity_difference_by_hand(jukebox_spec):
    # explicit: A A B C (A: 0.5, B: 0.25, C: 0.25); not explicit: A B B B B D (A: 1/6, B: 4/6, D: 1/6)
    explicit = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    predicted = ["A", "A", "B", "C", "A", "B", "B", "B", "B", "D"]
    parity = parity_differences(np.array(explicit), np.array(predicted))
    assert parity[0].label == "B" and parity[0].difference == pytest.approx(0.25 - 4 / 6)
    assert {p.label: round(p.difference, 6) for p in parity} == {
        "A": round(0.5 - 1 / 6, 6),
        "B": round(0.25 - 4 / 6, 6),
        "C": 0.25,
        "D": round(-1 / 6, 6),
    }
    frame = pd.DataFrame({"is_explicit": explicit, PREDICTED: predicted})
    report = fairness(frame, frame, jukebox_spec)
    assert report.max_difference == pytest.approx(4 / 6 - 0.25) and report.passed is False
    assert report.reference_max_difference == pytest.approx(4 / 6 - 0.25)
    one_group = fairness(frame.assign(is_explicit=0), frame, jukebox_spec)
    assert one_group.max_difference is None and one_group.passed is None and "not computable" in one_group.note


def _fairness_frame(copies: int = 2) -> pd.DataFrame:
    """80 rows, `copies` times. Explicit (40): label A 20 (predicted A 15, B 5), label B 20 (A 5, B 15).
    Not explicit (40): label A 20 (A 8, B 12), label B 20 (A 4, B 16)."""
    groups = [(1, "A", "A", 15), (1, "A", "B", 5), (1, "B", "A", 5), (1, "B", "B", 15)]
    groups += [(0, "A", "A", 8), (0, "A", "B", 12), (0, "B", "A", 4), (0, "B", "B", 16)]
    rows = [(flag, label, predicted) for flag, label, predicted, n in groups for _ in range(n * copies)]
    return pd.DataFrame(rows, columns=["is_explicit", LABEL, PREDICTED])


def test_disparate_impact_equal_opportunity_and_average_odds_by_hand(jukebox_spec):
    literature = {  # the spec's defaults; jukebox widens them
        name: Monitoring.model_fields[name].default
        for name in (
            "fairness_min_disparate_impact_ratio",
            "fairness_max_disparate_impact_ratio",
            "fairness_max_equal_opportunity_difference",
            "fairness_max_average_odds_difference",
        )
    }
    assert list(literature.values()) == [0.8, 1.25, 0.1, 0.1]
    spec = jukebox_spec.model_copy(update={"monitoring": jukebox_spec.monitoring.model_copy(update=literature)})
    frame = _fairness_frame()
    report = fairness(frame, frame, spec, labelled=frame)
    figures = {figure.name: figure for figure in report.figures}
    # selection rate of A: 20/40 explicit, 12/40 not -> DIR 1.667 (B: 0.5 / 0.7 = 0.714 is nearer 1)
    dir_ = figures[DISPARATE_IMPACT_RATIO]
    assert dir_.value == pytest.approx(0.5 / 0.3) and dir_.label == "A" and dir_.classes == 2
    assert dir_.passed is False and dir_.limit == "0.8-1.25" and dir_.reference == pytest.approx(0.5 / 0.3)
    # TPR of A: 15/20 vs 8/20 -> EOD 0.35 (B: 15/20 vs 16/20, 0.05)
    eod = figures[EQUAL_OPPORTUNITY_DIFFERENCE]
    assert eod.value == pytest.approx(0.35) and eod.label == "A" and eod.passed is False and eod.rows == 160
    # AOD of A: (TPR gap 0.35 + FPR gap 5/20 - 4/20) / 2 = 0.2; two classes: B's is -0.2
    aod = figures[AVERAGE_ODDS_DIFFERENCE]
    assert aod.value == pytest.approx(0.2) and aod.passed is False and aod.reference == pytest.approx(0.2)
    page = report.to_html()
    assert "disparate_impact_ratio" in page and "1.6667 (A)" in page and "OUTSIDE" in page
    assert report.summary_metadata()[EQUAL_OPPORTUNITY_DIFFERENCE] == pytest.approx(0.35)

    # below monitoring.min_labels (100) labels: n/a, with the reference's own figure still shown
    few = fairness(frame, frame, spec, labelled=frame.iloc[::4])
    few_eod = next(f for f in few.figures if f.name == EQUAL_OPPORTUNITY_DIFFERENCE)
    assert few_eod.value is None and few_eod.passed is None and few_eod.reference == pytest.approx(0.35)
    assert "40 labelled rows in the window; at least 100 are needed" in few_eod.note
    # a class with fewer than 10 rows behind a rate is left out: here every one
    small = _fairness_frame(copies=1).iloc[::3]
    unlabelled = fairness(small, small.drop(columns=LABEL), spec)
    assert [(f.name, f.value, f.reference) for f in unlabelled.figures] == [
        (DISPARATE_IMPACT_RATIO, None, None),
        (EQUAL_OPPORTUNITY_DIFFERENCE, None, None),
        (AVERAGE_ODDS_DIFFERENCE, None, None),
    ]
    assert "no class has 10 rows" in unlabelled.figures[0].note


def test_live_metrics_by_hand(jukebox_spec):
    classes = ["A", "B", "C"]
    labels = np.array(["A", "B", "C", "A"])
    predicted = np.array(["A", "C", "C", "B"])
    ranks = np.array([0, 3, 0, 1])  # B was 4th (outside top-2), A was 2nd
    metrics = live_metrics(labels, predicted, ranks, classes, top_k=2)
    assert metrics["accuracy"] == 0.5
    assert metrics["top_k_accuracy"] == 0.75
    # precision A 1/1, B 0/1, C 1/2; recall A 1/2, B 0/1, C 1/1
    assert metrics["precision_macro"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert metrics["recall_macro"] == pytest.approx((0.5 + 0 + 1) / 3)


def test_live_performance_over_time_against_offline(jukebox_spec):
    times = pd.date_range("2026-11-22", periods=200, freq="min", tz="UTC")
    frame = pd.DataFrame(
        {
            "received_at": times,
            PREDICTED: ["GB"] * 200,
            LABEL: ["GB"] * 50 + ["US"] * 50 + [None] * 100,
            LABEL_RANK: [0] * 50 + [-1] * 50 + [-1] * 100,
        }
    )
    report = live_performance(frame, {"top_k_accuracy": 0.9, "accuracy": 0.8}, jukebox_spec)
    assert report.labelled == 100 and report.metrics["top_k_accuracy"] == 0.5
    assert report.drop == pytest.approx(0.4) and report.judged
    assert report.periods[0].metrics["top_k_accuracy"] == 1.0
    assert sum(p.labelled for p in report.periods) == 100
    assert report.png_images()["live_performance"].startswith(b"\x89PNG")
    few = live_performance(frame.iloc[:60], {"top_k_accuracy": 0.9}, jukebox_spec)
    assert few.labelled == 60 and few.drop is None  # below monitoring.min_labels (100)


def _drift(share_drifted: int, total: int = 10, name="f") -> DriftReport:
    columns = [
        ColumnDrift(column=f"{name}{i}", method="m", score=0.5, threshold=0.1, drifted=i < share_drifted)
        for i in range(total)
    ]
    return DriftReport(title="t", reference_rows=1, current_rows=1, columns=columns, evidently_html="<body></body>")


def _checks(drifted=0, predicted_drift=False, rejected=0, spd=0.05, live=None, dir_=1.1):
    window = WindowReport(
        model_name="jukebox",
        model_version="1",
        selection="all",
        log="x",
        requests=1000,
        rejected_requests=rejected,
        items=1000,
        analysed_items=1000,
    )
    quality = DataQualityReport(
        rows=1000,
        missing={},
        out_of_range={},
        requests=1000,
        rejected_requests=rejected,
        max_rejected_share=0.05,
        top_errors={},
        profile=DataProfile(
            title="p", rows=1000, profiled_rows=1000, seed=0, numeric=[], categorical=[], evidently_html=""
        ),
    )
    fair = FairnessReport(
        attribute="is_explicit",
        threshold=0.2,
        max_difference=spd,
        reference_max_difference=0.1,
        classes=[ClassParity(label="CH", rate_with=spd, rate_without=0)],
        figures=[
            FairnessFigure(
                name=DISPARATE_IMPACT_RATIO,
                lower=0.8,
                upper=1.25,
                value=dir_,
                label="DO",
                reference=1.1,
                reference_label="DO",
            ),
            FairnessFigure(name=EQUAL_OPPORTUNITY_DIFFERENCE, upper=0.1, note="too few labels"),
        ],
    )
    performance = LivePerformanceReport(
        live_metric="top_k_accuracy",
        top_k=5,
        labelled=500 if live is not None else 0,
        min_labels=100,
        metrics={"top_k_accuracy": live} if live is not None else {},
        offline={"top_k_accuracy": 0.30},
    )
    prediction = _drift(1 if predicted_drift else 0, 1, "predicted")
    prediction.meanings = {"predicted0": "the predicted class"}
    return window, _drift(drifted), prediction, quality, fair, performance


def _estimate(estimated: float = 0.28) -> PerformanceEstimateReport:
    """The label-free estimate of top-5 accuracy, against 0.30 on the validation split (limit 0.05)."""
    return PerformanceEstimateReport(
        live_metric="top_k_accuracy",
        top_k=5,
        reference_rows=900,
        rows=1000,
        estimated={"accuracy": 0.05, "top_k_accuracy": estimated},
        reference={"accuracy": 0.06, "top_k_accuracy": 0.30},
        max_drop=0.05,
    )


@pytest.mark.parametrize(
    "checks, estimated, decision, reason",
    [
        (dict(), 0.28, "ok", None),
        (dict(drifted=2), 0.28, "warn", "20% of features drifted"),
        (dict(drifted=5), 0.28, "retrain", "50% of features drifted"),
        (dict(predicted_drift=True), 0.28, "warn", "predicted class drifted"),
        (dict(rejected=60), 0.28, "warn", "6.0% of requests rejected"),
        (
            dict(spd=0.25),
            0.28,
            "warn",
            "statistical parity difference across is_explicit is 0.250 (class CH), above 0.2; validation split: 0.100",
        ),
        (
            dict(dir_=1.6),
            0.28,
            "warn",
            "disparate impact ratio across is_explicit is 1.600 (class DO), outside 0.8-1.25; "
            "validation split: 1.100 (class DO)",
        ),
        (dict(dir_=0.79), 0.28, "warn", "disparate impact ratio across is_explicit is 0.790"),
        (
            dict(),
            0.24,
            "warn",
            "estimated top_k_accuracy 0.240 (without labels) is 0.060 below its value on the validation split 0.300",
        ),
        (dict(live=0.26), 0.28, "ok", None),
        (dict(live=0.24), 0.28, "warn", "live top_k_accuracy 0.240 is 0.060 below offline 0.300"),
        (dict(live=0.19), 0.28, "retrain", "live top_k_accuracy 0.190 is 0.110 below offline 0.300"),
    ],
)
def test_decision_rules(checks, estimated, decision, reason, jukebox_spec):
    summary = decide(*_checks(**checks), jukebox_spec, _estimate(estimated))
    assert summary.decision == decision
    assert (summary.reasons == []) if reason is None else any(reason in r for r in summary.reasons), summary.reasons


def test_summary_prints_counts_as_integers_and_the_new_figures(jukebox_spec):
    window, *checks = _checks(live=0.27)
    window = window.model_copy(update={"requests": 12_345, "items": 12_000, "analysed_items": 12_000})
    summary = decide(window, *checks, jukebox_spec, _estimate(0.24))
    figures = summary.figures
    for count in ("requests", "scored_rows", "analysed_rows", "labelled_rows"):
        assert type(figures[count]) is int, count
    assert figures["labelled_rows"] == 500 and figures["requests"] == 12_345
    assert figures["estimated_top_k_accuracy"] == 0.24 and figures["live_top_k_accuracy"] == 0.27
    assert figures["offline_top_k_accuracy"] == 0.30 and figures["estimated_top_k_accuracy_drop"] == pytest.approx(0.06)
    assert figures["disparate_impact_ratio"] == 1.1 and figures["equal_opportunity_difference"] is None
    lines = "\n".join(summary.lines())
    assert re.search(r"requests +12,345\n", lines) and re.search(r"labelled_rows +500 +\(limit 100\)", lines)
    assert re.search(r"estimated_top_k_accuracy +0\.2400\n", lines)
    assert re.search(r"disparate_impact_ratio +1\.1000 +\(limit 0\.8-1\.25\)", lines)
    assert re.search(r"equal_opportunity_difference +n/a +\(limit 0\.1\)", lines)
    assert "<td>12,345</td>" in summary.to_html() and "<td>0.8-1.25</td>" in summary.to_html()
    metadata = summary.summary_metadata()
    assert metadata["labelled_rows"] == 500 and type(metadata["labelled_rows"]) is int
    assert "equal_opportunity_difference" not in metadata  # n/a figures are left out of the metadata
    # the JSON the webhook and the materializer write keeps counts as ints
    again = type(summary).model_validate_json(summary.model_dump_json())
    assert type(again.figures["requests"]) is int and type(again.figures["rejected_share"]) is float


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_alert_goes_to_the_log_and_the_webhook(jukebox_spec, caplog):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hooks/s3cret"
        ok = decide(*_checks(), jukebox_spec)
        assert send_alert(ok, url).level == "none" and _Hook.received == []
        retrain = decide(*_checks(drifted=6), jukebox_spec)
        with caplog.at_level("WARNING", logger="headliner.monitoring"):
            alert = send_alert(retrain, url)
        assert (
            alert.level == "critical"
            and alert.webhook_status == 200
            and alert.webhook == f"http://127.0.0.1:{server.server_port}/"
        )
        assert "ALERT Decision: RETRAIN" in caplog.text and "60% of features drifted" in caplog.text
        (payload,) = _Hook.received
        assert payload["level"] == "critical" and payload["summary"]["decision"] == "retrain"
        assert payload["summary"]["figures"]["drifted_feature_share"] == 0.6
        _Hook.status = 500
        failed = send_alert(retrain, url)
        assert failed.webhook_error == "answered 500"
    finally:
        server.shutdown()
        server.server_close()
    with refused_url() as nobody:
        unreachable = send_alert(retrain, f"{nobody}/")
    assert unreachable.level == "critical" and unreachable.webhook_error.startswith("ConnectError")


def test_data_quality_counts_invalid_values_and_rejections(songs, jukebox_spec):
    frame = songs[1].iloc[:200][jukebox_spec.feature_names].astype(float).assign(**{PREDICTED: "GB"})
    frame.loc[:4, "tempo"] = 400.0
    frame.loc[:1, "energy"] = np.nan
    window = WindowReport(
        model_name="jukebox", model_version="1", selection="all", log="x", requests=210, rejected_requests=10, items=200
    )
    report = data_quality(frame, window, jukebox_spec)
    assert report.out_of_range["tempo"] == 5 and report.missing["energy"] == 2
    assert report.problems == ["2 missing values of 'energy'", "5 values of 'tempo' outside its valid range"]
    tempo = next(c for c in report.profile.numeric if c.name == "tempo")
    assert tempo.max == 400.0 and tempo.count == 200 and report.profile.missing == 2
    assert "<script" in report.attachments()[EVIDENTLY_FILE] and "<script" not in report.to_html()


def test_feedback_payloads_name_the_field(jukebox_spec):
    classes = jukebox_spec.target.classes
    assert parse_feedback({"request_id": "abc", "label": "GB"}, classes, 10)[0] == ("abc", 0, "GB")
    assert parse_feedback([{"request_id": "abc", "label": "GB", "item": 2}], classes, 10)[0].item == 2
    for payload, field, message in [
        ({"request_id": "abc", "label": "XX"}, "label", "'XX' is not a class"),
        ({"label": "GB"}, "request_id", "'request_id' must be"),
        ({"request_id": "abc", "label": "GB", "item": -1}, "item", "'item' must be"),
        ({"request_id": "abc", "label": "GB", "country": "GB"}, "country", "unknown field 'country'"),
        ([], "request_id", "non-empty list"),
        ([{"request_id": "a", "label": "GB"}, {"request_id": "b", "label": "ZZ"}], "label", "(entry 1)"),
    ]:
        with pytest.raises(RequestError, match=re.escape(message)) as error:
            parse_feedback(payload, classes, 10)
        assert error.value.status == 422 and error.value.field == field


def test_feedback_endpoint_stores_labels(predictor, tmp_path, jukebox_spec):
    served = Served(predictor, tmp_path)
    served.server.feedback = FeedbackStore(served.url)
    try:
        answer = served.client.post(
            "/predict",
            json=[{n: f.default for n, f in zip(jukebox_spec.feature_names, jukebox_spec.features, strict=True)}] * 2,
        )
        request_id = answer.json()["request_id"]
        stored = served.client.post(
            "/feedback",
            json=[{"request_id": request_id, "label": "GB"}, {"request_id": request_id, "item": 1, "label": "US"}],
        )
        assert stored.status_code == 200 and stored.json()["accepted"] == 2
        bad = served.client.post("/feedback", json={"request_id": request_id, "label": "Narnia"})
        assert bad.status_code == 422 and bad.json()["field"] == "label"
        assert served.client.get("/feedback").status_code == 405
        labels = served.server.feedback.read()
        assert sorted(zip(labels["item"], labels["label"], strict=True)) == [(0, "GB"), (1, "US")]
        assert 'headliner_requests_total{endpoint="feedback",status="200"} 1' in served.client.get("/metrics").text
    finally:
        served.server.feedback.close()
        assert served.close() == 0
    assert list(read_inference_log(served.url)["endpoint"]) == ["predict"]  # labels are not inference requests


def test_feedback_file_is_checked_whole(tmp_path, jukebox_spec):
    classes, target = jukebox_spec.target.classes, jukebox_spec.target.column
    good = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["a", "b"], target: ["GB", "US"], "item": [0, 3]}).to_csv(good, index=False)
    assert feedback_from_file(good, classes, target) == [("a", 0, "GB"), ("b", 3, "US")]
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"request_id": ["a", "b", "c"], "label": ["GB", "Narnia", "US"], "item": [0, 0, -2]}).to_csv(
        bad, index=False
    )
    with pytest.raises(
        FeedbackError, match=r"2 bad row\(s\), nothing stored: row 3: label 'Narnia' is not a class; row 4: item -2"
    ):
        feedback_from_file(bad, classes, target)
    missing = tmp_path / "missing.csv"
    pd.DataFrame({"id": ["a"], "label": ["GB"]}).to_csv(missing, index=False)
    with pytest.raises(FeedbackError, match="missing column 'request_id'"):
        feedback_from_file(missing, classes, target)
    with pytest.raises(FeedbackError, match="no such file"):
        feedback_from_file(tmp_path / "nope.csv", classes, target)
