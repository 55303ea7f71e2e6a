"""A model version's governance state as people see it without ZenML Pro: the stage record's page and
figures (headliner/governance/stage_record.py), the MLflow version's tags and description
(headliner/model/registration.py), and a decision that stands when recording it as a run fails."""

import re

import pytest

from headliner.governance.promotion import AuditEvent, PromotionRequest
from headliner.governance.stage_record import ModelStageRecord, VersionStage
from headliner.model.registration import metric_tags, version_description


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
    local = version_description("Jukebox", 3, metrics, {"zenml_run_id": "x", "zenml_run_name": "training-1"})
    assert local.startswith("Jukebox: ZenML model version 3 (ONNX")
    assert "| accuracy | 0.1235 |\n| top_k_accuracy | 0.5000 |" in local
    assert "ZenML run: `training-1`: see it with `zenml login --local`, then Runs -> training-1" in local
    served = version_description(
        "Jukebox", 3, metrics, {"zenml_run_name": "training-1", "zenml_run_url": "http://127.0.0.1:8237/r/1"}
    )
    assert "ZenML run: [training-1](http://127.0.0.1:8237/r/1)" in served


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
