"""A model version's governance state as people see it without ZenML Pro: the stage record's page and
figures (headliner/governance/stage_record.py), the MLflow version's tags and description
(headliner/model/registration.py), and a decision that stands when recording it as a run fails."""

import re

import pytest

from headliner.governance.promotion import AuditEvent, PromotionRequest
from headliner.governance.stage_record import ModelStageRecord, VersionStage
from headliner.model.registration import Scores, metric_tags, version_description


def event(at: str, kind: str, by: str, stage: str, reason: str, version: int = 3) -> AuditEvent:
    return AuditEvent(
        at=at,
        event=kind,
        request_id=f"jukebox-v{version}-{stage}-beef",
        by=by,
        model="jukebox",
        version=version,
        stage=stage,
        reason=reason,
    )


@pytest.fixture
def record() -> ModelStageRecord:
    return ModelStageRecord(
        model="jukebox",
        version=3,
        stage="production",
        recorded_at="2026-12-07T08:00:00+00:00",
        mlflow_version="5",
        mlflow_aliases=["champion"],
        versions=[VersionStage(version=2, stage="archived"), VersionStage(version=3, stage="production")],
        history=[
            event("2026-12-07T07:01:02.000001+00:00", "requested", "alice", "production", "better data"),
            event("2026-12-07T07:05:09.000002+00:00", "approved", "bob", "production", "looks good"),
        ],
        pending=[
            PromotionRequest(
                id="jukebox-v4-staging-cafe",
                model="jukebox",
                version=4,
                from_stage="none",
                to_stage="staging",
                requested_by="carol",
                requested_at="2026-12-07T07:30:00.000000+00:00",
                reason="retrained",
            )
        ],
    )


def cells(page: str) -> list[list[str]]:
    """Every table row's cells, in page order."""
    return [re.findall(r"<t[dh]>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", page)]


def test_the_page_leads_with_the_version_and_its_stage_then_who_did_what_when(record):
    page = record.to_html()
    assert page.index("<h1>jukebox v3 — production</h1>") < page.index("<h2>Summary</h2>")
    rows = cells(page)
    assert ["jukebox", "3", "production", "5", "champion", "2026-12-07T08:00:00Z"] in rows
    history = [row for row in rows if row and row[1] in ("requested", "approved")]
    assert history == [
        ["2026-12-07T07:01:02Z", "requested", "production", "alice", "better data", "jukebox-v3-production-beef"],
        ["2026-12-07T07:05:09Z", "approved", "production", "bob", "looks good", "jukebox-v3-production-beef"],
    ]
    assert ["jukebox-v4-staging-cafe", "4", "none -&gt; staging", "carol", "2026-12-07T07:30:00Z", "retrained"] in rows
    assert ["2", "archived"] in rows and ["3", "production"] in rows
    assert page.index("Promotion history of v3") < page.index("Pending requests of jukebox")
    assert "<script" not in page and "src=" not in page and "href=" not in page


def test_the_figures_shown_as_artifact_metadata(record):
    assert record.summary_metadata() == {
        "model": "jukebox",
        "version": 3,
        "stage": "production",
        "events": 2,
        "pending_requests": 1,
        "mlflow_aliases": "champion",
    }


def test_a_new_version_without_events_and_an_unchecked_registry_say_so():
    record = ModelStageRecord(
        model="wine",
        version=1,
        stage="none",
        recorded_at="2026-12-07T08:00:00+00:00",
        mlflow_note="ConnectionError: refused",
        versions=[VersionStage(version=1, stage="none")],
    )
    page = record.to_html()
    assert "<h1>wine v1 — none</h1>" in page
    assert ["wine", "1", "none", "none", "not checked (ConnectionError: refused)", "2026-12-07T08:00:00Z"] in cells(
        page
    )
    assert (
        "No promotion events yet. Request one with: python run.py promote request --model wine --version 1 "
        "--to staging --reason TEXT" in page
    )
    assert "No pending requests." in page
    assert record.summary_metadata()["events"] == 0
    assert record.summary_metadata()["mlflow_aliases"] == "not checked (ConnectionError: refused)"
    checked_none = record.model_copy(update={"mlflow_aliases": [], "mlflow_note": ""})
    assert checked_none.aliases_text() == "none"


def test_the_mlflow_version_carries_its_metrics_and_the_way_back_to_the_zenml_run():
    metrics = {"accuracy": 0.123456, "top_k_accuracy": 0.5}
    assert metric_tags(metrics) == {"test_accuracy": "0.1235", "test_top_k_accuracy": "0.5000"}
    local = version_description("Jukebox", 3, Scores(metrics), {"zenml_run_id": "x", "zenml_run_name": "training-1"})
    assert local.startswith("Jukebox: ZenML model version 3 (ONNX")
    assert "| accuracy | 0.1235 |\n| top_k_accuracy | 0.5000 |" in local
    assert "ZenML run: `training-1`: see it with `zenml login --local`, then Runs -> training-1" in local
    served = version_description(
        "Jukebox", 3, Scores(metrics), {"zenml_run_name": "training-1", "zenml_run_url": "http://127.0.0.1:8237/r/1"}
    )
    assert "ZenML run: [training-1](http://127.0.0.1:8237/r/1)" in served


def test_a_regression_version_carries_its_baseline_and_a_forecast_signature():
    import onnx

    from headliner.model.registration import _task_tags, onnx_signature
    from headliner.spec import USE_CASES_DIR, load_spec
    from tests.helpers.models import packaged_model

    scores = Scores(
        metrics={"mae": 41.25, "r2": 0.875},
        baseline_metrics={"mae": 55.0, "r2": 0.7},
        baseline_description="seasonal naive (the same week a year before)",
    )
    assert metric_tags(scores.metrics, scores.baseline_metrics) == {
        "test_mae": "41.2500",
        "test_r2": "0.8750",
        "baseline_mae": "55.0000",
        "baseline_r2": "0.7000",
    }
    text = version_description("Store sales", 2, scores, {"zenml_run_name": "training-9"})
    assert (
        "| test metric | value | baseline |\n|---|---|---|\n| mae | 41.2500 | 55.0000 |\n| r2 | 0.8750 | 0.7000 |"
        in text
    )
    assert "Baseline: seasonal naive (the same week a year before).\n\nZenML run: `training-9`" in text

    spec = load_spec(USE_CASES_DIR / "store_sales.yaml")
    model = onnx.load_model_from_string(packaged_model(spec, rows=20_000))
    signature = onnx_signature(model)
    assert [(i.name, i.shape, str(i.type)) for i in signature.inputs.inputs] == [
        (name, (-1, 1), "float32") for name in spec.feature_names
    ]
    assert [(o.name, o.shape, str(o.type)) for o in signature.outputs.inputs] == [("prediction", (-1, 1), "float32")]
    assert _task_tags(model) == {"task": "regression", "target_unit": "units"}


def test_a_classifier_signature_has_its_probabilities_and_labels(jukebox_onnx_file):
    import onnx

    from headliner.model.registration import _task_tags, onnx_signature

    model = onnx.load(jukebox_onnx_file)
    outputs = onnx_signature(model).outputs.inputs
    assert [(o.name, o.shape, str(o.type)) for o in outputs] == [
        ("probabilities", (-1, 72), "float32"),
        ("label", (-1,), "<U0"),  # numpy's str dtype
    ]
    assert _task_tags(model) == {"task": "multiclass_classification"}


def test_a_decision_stands_when_recording_it_as_a_run_fails(monkeypatch, capsys):
    from headliner.cli import promote, runs

    def broken(model, version):
        raise RuntimeError("wrapper") from OSError("artifact store is read-only")

    monkeypatch.setattr(runs, "run_governance", broken)
    promote.record_decision("jukebox", 3)  # returns: the command exits 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        "warning: the decision is stored, but recording it as a governance run failed: OSError: artifact store is "
        "read-only; record it with: python run.py promote record --model jukebox --version 3"
    )


def test_a_regression_candidate_and_evaluation_are_tracked_with_the_forecast_and_the_baseline(tmp_path, monkeypatch):
    import mlflow

    from headliner.model.estimators import CandidateConfig
    from headliner.model.evaluation import EvaluationReport
    from headliner.model.tracking import evaluation_tags, log_candidate
    from headliner.model.training import fit_candidate
    from headliner.spec import USE_CASES_DIR, Task, load_spec
    from tests.helpers.models import sales_frame

    spec = load_spec(USE_CASES_DIR / "store_sales.yaml")
    frame = sales_frame(spec, series=4, weeks=70)
    train, validation = frame.iloc[:-20], frame.iloc[-20:]
    trained = fit_candidate(spec, CandidateConfig(name="ridge", family="ridge"), train, validation)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("candidates")  # not the experiment an earlier test made active in another store
    with mlflow.start_run():
        run_id = log_candidate(spec, trained, validation, {"use_case": "store_sales"})
    run = mlflow.get_run(run_id)
    assert run.data.params["family"] == "ridge"
    assert run.data.metrics["validation_mae"] == pytest.approx(trained.validation_metrics["mae"])
    (logged,) = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")
    outputs = mlflow.models.get_model_info(logged.model_uri).signature.outputs.inputs
    assert [(o.shape, str(o.type)) for o in outputs] == [((-1, 1), "float32")]  # as feature_frame gives

    report = EvaluationReport(
        use_case="store_sales",
        model_name="store_sales",
        candidate="ridge",
        task=Task.REGRESSION,
        rows=20,
        metrics={"mae": 1.0},
        baseline_metrics={"mae": 2.0},
        baseline_description="seasonal naive (the same week a year before)",
        target_unit="units",
    )
    assert evaluation_tags(report) == {
        "selected_candidate": "ridge",
        "task": "regression",
        "baseline": "seasonal naive (the same week a year before)",
        "target_unit": "units",
    }
