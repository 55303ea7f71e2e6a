"""Four-eyes promotion on wine versions in the session's isolated store: the happy path, every
refusal, worse-than-production, racing approvals, the MLflow mirror agreeing and being repaired, and
where a person sees it: the MLflow version's metrics, run link and aliases, and the stage record of
the registration step and of the `governance` run each `promote` decision makes."""

import json
import subprocess
import sys

import pytest

from headliner.governance import promotion as governance
from headliner.governance.promotion import PromotionError
from headliner.governance.stage_record import model_stage_record
from headliner.labels import Artifact, Step
from headliner.spec import PROJECT_ROOT
from tests.helpers.cli import finished_run, run_cli

MODEL = "wine"


@pytest.fixture(scope="module")
def new_version(wine_training):
    """A factory of new wine versions holding version 1's artifacts and test metrics (or another ONNX model)."""
    from zenml import log_metadata, save_artifact
    from zenml.client import Client
    from zenml.model.utils import link_artifact_version_to_model_version

    client = Client()
    source = wine_training[0].steps[Step.REGISTER_MODEL].model_version
    metrics = client.get_model_version(MODEL, source.number).run_metadata["test_metrics"]

    def create(onnx_model=None) -> int:
        version = client.create_model_version(MODEL)
        for name in (Artifact.TEST_SPLIT, Artifact.EVALUATION_REPORT, Artifact.ONNX_MODEL):
            artifact = client.get_artifact_version(source.get_artifact(name).id)
            if name == Artifact.ONNX_MODEL and onnx_model is not None:
                artifact = save_artifact(onnx_model, name=Artifact.ONNX_MODEL)
            link_artifact_version_to_model_version(artifact, version)
        log_metadata({"test_metrics": metrics}, model_version_id=version.id)
        return version.number

    return create


def stage_of(number: int) -> str:
    from zenml.client import Client

    stage = Client().get_model_version(MODEL, number).stage
    return getattr(stage, "value", stage) or "none"


def promote(number: int, stage: str, requester="alice", approver="bob", **approval) -> governance.PromotionRequest:
    request = governance.request_promotion(MODEL, number, stage, f"move v{number} to {stage}", requester)
    return governance.approve(request.id, approver, **approval)


def test_happy_path_archives_the_previous_production_version(new_version):
    first, second = new_version(), new_version()
    promote(first, "staging")
    assert stage_of(first) == "staging"
    promote(first, "production")
    promote(second, "staging")
    approved = promote(second, "production", reason="release 2")
    assert approved.status == "approved" and approved.decided_by == "bob" and approved.decision_reason == "release 2"
    assert stage_of(second) == "production" and stage_of(first) == "archived"
    assert governance.stage_holders(MODEL)["production"] == [second]
    events = [(e.version, e.event, e.stage, e.by) for e in governance.history(MODEL) if e.version in (first, second)]
    assert events[-3:] == [
        (second, "requested", "production", "alice"),
        (second, "approved", "production", "bob"),
        (first, "archived", "archived", "bob"),
    ]
    assert all(e.at for e in governance.history(MODEL, first))


def test_rollback_from_archived_to_production(new_version):
    old, new = new_version(), new_version()
    for number in (old, new):
        promote(number, "staging")
        promote(number, "production")
    assert stage_of(old) == "archived"
    promote(old, "production", reason="rollback")
    assert stage_of(old) == "production" and stage_of(new) == "archived"


def test_self_approval_is_refused(new_version):
    request = governance.request_promotion(MODEL, new_version(), "staging", "mine", "alice")
    with pytest.raises(PromotionError, match=r"^alice filed request .* and cannot decide it: a second person must$"):
        governance.approve(request.id, "alice")
    with pytest.raises(PromotionError, match="cannot decide it"):
        governance.reject(request.id, "no", "alice")


@pytest.mark.parametrize(
    ("setup", "target", "message"),
    [
        ([], "production", r"is in stage none: it cannot move to production \(from none it can only go to staging\)"),
        (
            ["staging"],
            "staging",
            r"is in stage staging: it cannot move to staging \(from staging it can only go to production\)",
        ),
    ],
)
def test_moves_outside_the_workflow_are_refused(new_version, setup, target, message):
    number = new_version()
    for stage in setup:
        promote(number, stage)
    with pytest.raises(PromotionError, match=message):
        governance.request_promotion(MODEL, number, target, "skip", "alice")


def test_unknown_request_and_deciding_twice(new_version):
    with pytest.raises(
        PromotionError, match=r"^unknown request 'wine-v999-staging-beef'; see: python run.py promote list$"
    ):
        governance.approve("wine-v999-staging-beef", "bob")
    request = governance.request_promotion(MODEL, new_version(), "staging", "try", "alice")
    governance.reject(request.id, "not documented", "bob")
    with pytest.raises(PromotionError, match=r"was already rejected by bob"):
        governance.approve(request.id, "carol")
    assert governance.find_request(request.id).decision_reason == "not documented"
    assert request.id not in [r.id for r in governance.pending_requests(MODEL)]


def test_the_pending_request_of_a_version(new_version):
    number = new_version()
    with pytest.raises(
        PromotionError, match=rf"^no pending request for wine v{number} \(python run.py promote list --model wine\)$"
    ):
        governance.pending_request_of(MODEL, number)
    request = governance.request_promotion(MODEL, number, "staging", "try", "alice")
    assert governance.pending_request_of(MODEL, number).id == request.id


def test_duplicate_pending_request_and_missing_reason(new_version):
    number = new_version()
    governance.request_promotion(MODEL, number, "staging", "once", "alice")
    with pytest.raises(PromotionError, match="already asks to move"):
        governance.request_promotion(MODEL, number, "staging", "twice", "alice")
    with pytest.raises(PromotionError, match="needs a --reason"):
        governance.request_promotion(MODEL, new_version(), "staging", "  ", "alice")


@pytest.fixture(scope="module")
def worse_onnx_model(wine_spec):
    """A deliberately weak wine model (almost no regularisation budget), packaged like a real one."""
    from headliner.data.sources import load_raw_data
    from headliner.data.wrangling import label_examples, wrangle
    from headliner.model.estimators import CandidateConfig, build_pipeline, feature_frame
    from headliner.model.onnx_packaging import package_onnx

    labelled, _ = label_examples(wrangle(load_raw_data(wine_spec), wine_spec, "t")[0], wine_spec, "t")
    weak = labelled.groupby("target").head(3)
    pipeline = build_pipeline(wine_spec, CandidateConfig(name="weak", family="logistic_regression", params={"C": 1e-4}))
    pipeline.fit(feature_frame(weak, wine_spec), weak["target"])
    return package_onnx(pipeline, wine_spec, "0", {})


def test_a_candidate_worse_than_production_needs_an_override(new_version, worse_onnx_model):
    good, bad = new_version(), new_version(worse_onnx_model)
    for stage in ("staging", "production"):
        promote(good, stage)
    promote(bad, "staging")
    request = governance.request_promotion(MODEL, bad, "production", "cheaper", "alice")
    with pytest.raises(
        PromotionError,
        match=rf"v{bad} is worse than production v{good} on the current test split "
        r"\(36 rows\): accuracy 0\.\d{4} vs 1\.0000; approve with --override",
    ):
        governance.approve(request.id, "bob")
    assert stage_of(bad) == "staging" and stage_of(good) == "production"
    approved = governance.approve(request.id, "bob", override="accepted for the A/B test")
    assert approved.override == "accepted for the A/B test" and stage_of(bad) == "production"


def test_racing_approvals_leave_exactly_one_production_version(new_version, isolated_env):
    numbers = [new_version(), new_version()]
    requests = []
    for number in numbers:
        promote(number, "staging")
        requests.append(governance.request_promotion(MODEL, number, "production", "race", "alice").id)
    code = (
        "import sys; from headliner.governance import promotion as governance; governance.approve(sys.argv[1], 'bob')"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", code, request_id],
            cwd=PROJECT_ROOT,
            env=isolated_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for request_id in requests
    ]
    results = [racer.communicate(timeout=300) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], [err[-800:] for _, err in results]
    assert len(governance.stage_holders(MODEL)["production"]) == 1
    assert sorted(stage_of(n) for n in numbers) == ["archived", "production"]


def test_zenml_and_mlflow_agree_and_the_mirror_is_repaired(new_version):
    from zenml.client import Client

    number = new_version()
    for stage in ("staging", "production"):
        promote(number, stage)
    mlflow_client = Client().active_stack.model_registry.mlflow_client

    def mirror():
        versions = {
            v.tags.get("zenml_model_version"): v for v in mlflow_client.search_model_versions(f"name='{MODEL}'")
        }
        return versions, mlflow_client.get_registered_model(MODEL).aliases

    versions, aliases = mirror()
    assert str(versions[str(number)].version) == str(aliases["champion"])
    assert versions[str(number)].tags["zenml_stage"] == "production"
    assert "approved production by bob" in versions[str(number)].tags["promotion_history"]
    for zenml_number, version in versions.items():
        if (
            zenml_number
            and zenml_number.isdigit()
            and int(zenml_number) != number
            and stage_of(int(zenml_number)) != "production"
        ):
            assert version.tags.get("zenml_stage", "none") != "production"

    mlflow_client.delete_registered_model_alias(MODEL, "champion")  # drift
    mlflow_client.delete_model_version(MODEL, versions[str(number)].version)
    changes = governance.sync_mlflow_mirror(MODEL)
    assert any("re-registered the missing MLflow version" in c for c in changes)
    repaired, aliases = mirror()
    assert str(aliases["champion"]) == str(repaired[str(number)].version)
    # re-registered whole: the same metrics and way back to the run as a training run writes
    assert {
        key: value for key, value in repaired[str(number)].tags.items() if key.startswith(("test_", "zenml_run"))
    } == {key: value for key, value in versions[str(number)].tags.items() if key.startswith(("test_", "zenml_run"))}
    assert repaired[str(number)].description == versions[str(number)].description
    assert governance.sync_mlflow_mirror(MODEL) == []  # repaired, not duplicated
    assert (
        sum(
            1
            for v in mlflow_client.search_model_versions(f"name='{MODEL}'")
            if v.tags.get("zenml_model_version") == str(number)
        )
        == 1
    )


def mlflow_version_of(number: int):
    """The MLflow registry's version mirroring wine version `number`, and its registered model's aliases."""
    from zenml.client import Client

    mlflow_client = Client().active_stack.model_registry.mlflow_client
    (version,) = mlflow_client.search_model_versions(f"name='{MODEL}' and tag.zenml_model_version='{number}'")
    return version, mlflow_client.get_registered_model(MODEL).aliases


def logged_model(mlflow_version):
    """The logged model behind an MLflow version (its `models:/m-…` source)."""
    import mlflow
    from zenml.client import Client

    Client().active_stack.model_registry.configure_mlflow()
    return mlflow.get_logged_model(mlflow_version.source.removeprefix("models:/"))


def logged_model_metrics(mlflow_version) -> dict[str, float]:
    return {metric.key: metric.value for metric in logged_model(mlflow_version).metrics}


def test_the_training_run_registers_a_complete_mlflow_version_and_its_stage_record(wine_training):
    from zenml.client import Client

    run = wine_training[0]
    step = run.steps[Step.REGISTER_MODEL]
    number = step.model_version.number
    metrics = Client().get_model_version(MODEL, number).run_metadata["test_metrics"]
    version, _ = mlflow_version_of(number)
    assert {key: version.tags[key] for key in ("zenml_run_id", "zenml_run_name", "zenml_model_version")} == {
        "zenml_run_id": str(run.id),
        "zenml_run_name": run.name,
        "zenml_model_version": str(number),
    }
    assert "zenml_run_url" not in version.tags  # the embedded store has no dashboard URL: the description says how
    assert {key: value for key, value in version.tags.items() if key.startswith("test_")} == {
        f"test_{name}": f"{value:.4f}" for name, value in metrics.items()
    }
    assert f"| accuracy | {metrics['accuracy']:.4f} |" in version.description
    assert f"ZenML run: `{run.name}`: see it with `zenml login --local`, then Runs -> {run.name}" in version.description
    assert version.source.startswith("models:/m-")  # the ONNX model logged in the run
    logged = logged_model_metrics(version)
    assert {name: logged[f"test_{name}"] for name in metrics} == pytest.approx(metrics)
    assert json.loads(logged_model(version).tags["mlflow.modelVersions"]) == [
        {"name": MODEL, "version": str(version.version)}
    ]

    artifact = step.outputs[Artifact.MODEL_STAGE_RECORD][0]
    assert "html" in [v.type.value for v in artifact.visualizations]
    record = artifact.load()
    assert (record.model, record.version, record.stage) == (MODEL, number, "none")
    assert (record.mlflow_version, record.mlflow_aliases) == (str(version.version), [])
    assert artifact.run_metadata["stage"] == "none"
    assert f"<h1>{MODEL} v{number} — none</h1>" in record.to_html()


def record_metric(number: int, name: str) -> float:
    from zenml.client import Client

    return Client().get_model_version(MODEL, number).run_metadata["test_metrics"][name]


def test_after_a_request_and_an_approval_the_record_and_the_mlflow_version_show_both(new_version, wine_training):
    number = new_version()
    request = promote(number, "staging", reason="first candidate")
    record = model_stage_record(MODEL, number)
    assert record.stage == "staging" and (number, "staging") in [(v.version, v.stage) for v in record.versions]
    assert [(e.event, e.stage, e.by, e.request_id) for e in record.history] == [
        ("requested", "staging", "alice", request.id),
        ("approved", "staging", "bob", request.id),
    ]
    assert record.history[0].at < record.history[1].at
    assert request.id not in [r.id for r in record.pending]
    page = record.to_html()
    assert f"<h1>{MODEL} v{number} — staging</h1>" in page and ">alice<" in page and ">bob<" in page

    version, aliases = mlflow_version_of(number)
    assert record.mlflow_version == str(version.version) and record.mlflow_aliases == ["staging"]
    assert str(aliases["staging"]) == str(version.version)
    assert version.tags["zenml_stage"] == "staging"
    assert version.tags["zenml_run_id"] == str(wine_training[0].id)  # the run that packaged its ONNX file
    assert version.tags["test_accuracy"] == f"{record_metric(number, 'accuracy'):.4f}"
    assert logged_model_metrics(version)["test_accuracy"] == pytest.approx(record_metric(number, "accuracy"))


def test_each_promote_decision_is_a_governance_run_with_the_stage_record(new_version, isolated_env):
    number = new_version()
    request = ["promote", "request", "--model", MODEL, "--version", str(number), "--to", "staging"]
    asked = run_cli([*request, "--reason", "cli", "--as", "alice"], isolated_env)
    request_run = finished_run(asked)
    assert (
        f"Run '{request_run.name}' finished: {MODEL} v{number} — none, 1 event(s), MLflow aliases: none" in asked.stdout
    )
    approved = run_cli(["promote", "approve", "--model", MODEL, "--version", str(number), "--as", "bob"], isolated_env)
    run = finished_run(approved)
    assert f"{MODEL} v{number} is now in staging" in approved.stdout
    assert (
        f"Run '{run.name}' finished: {MODEL} v{number} — staging, 2 event(s), MLflow aliases: staging"
        in approved.stdout
    )
    where = f"(zenml login --local, then Runs -> {run.name})"
    assert f"Stage record: artifact 'model_stage_record' of run '{run.name}' {where}" in approved.stdout
    assert run.pipeline.name == "governance" and run.name.startswith("governance-")
    step = run.steps[Step.RECORD_MODEL_STAGE]
    assert step.model_version.number == number  # linked to the version it records
    artifact = step.outputs[Artifact.MODEL_STAGE_RECORD][0]
    record = artifact.load()
    assert record.stage == stage_of(number) == "staging" and artifact.run_metadata["stage"] == "staging"
    assert [(e.event, e.by) for e in record.history] == [("requested", "alice"), ("approved", "bob")]
    assert "html" in [v.type.value for v in artifact.visualizations]
    assert request_run.steps[Step.RECORD_MODEL_STAGE].outputs[Artifact.MODEL_STAGE_RECORD][0].load().stage == "none"
