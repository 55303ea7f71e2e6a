"""Four-eyes promotion on wine versions in the session's isolated store: the happy path, every
refusal, worse-than-production, racing approvals, and the MLflow mirror agreeing and being repaired."""

import subprocess
import sys

import pytest

from headliner.governance import promotion as governance
from headliner.governance.promotion import PromotionError
from headliner.labels import Artifact, Step
from headliner.spec import PROJECT_ROOT

MODEL = "wine"


@pytest.fixture(scope="module")
def new_version(wine_training):
    """A factory of new wine versions holding version 1's artifacts (or another ONNX model)."""
    from zenml import save_artifact
    from zenml.client import Client
    from zenml.model.utils import link_artifact_version_to_model_version

    client = Client()
    source = wine_training[0].steps[Step.REGISTER_MODEL].model_version

    def create(onnx_model=None) -> int:
        version = client.create_model_version(MODEL)
        for name in (Artifact.TEST_SPLIT, Artifact.EVALUATION_REPORT, Artifact.ONNX_MODEL):
            artifact = client.get_artifact_version(source.get_artifact(name).id)
            if name == Artifact.ONNX_MODEL and onnx_model is not None:
                artifact = save_artifact(onnx_model, name=Artifact.ONNX_MODEL)
            link_artifact_version_to_model_version(artifact, version)
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
    assert governance.sync_mlflow_mirror(MODEL) == []  # repaired, not duplicated
    assert (
        sum(
            1
            for v in mlflow_client.search_model_versions(f"name='{MODEL}'")
            if v.tags.get("zenml_model_version") == str(number)
        )
        == 1
    )
