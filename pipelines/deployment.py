"""The deployment pipeline: a registered model version -> bento -> running service -> smoke test."""

from zenml import pipeline
from zenml.client import Client
from zenml.enums import ExecutionMode

from headliner.labels import Artifact
from headliner.spec import UseCaseSpec
from pipelines.docker_settings import docker_settings
from steps.deployment import build_bento, deploy_service, smoke_test_service


@pipeline(
    name="deployment",
    execution_mode=ExecutionMode.FAIL_FAST,
    enable_cache=False,
    settings={"docker": docker_settings()},
)
def deployment(spec: UseCaseSpec, version: str = "latest", port: int = 3000) -> None:
    """Deploys version `version` (a number, 'latest' or a stage) of the model `spec.name` with the active
    stack's model deployer, whichever it is (headliner.deploy.deployers); `port` is for a deployer that runs the
    service on this machine.

    The version's existing `onnx_model` artifact is the steps' input, so the run's lineage shows which
    model version it deployed; the service is linked to the model version in the model deployer. ZenML
    resolves the version when the steps run: check it exists first (headliner.model.versions)."""
    onnx_model = Client().get_model_version(spec.name, version).get_artifact(Artifact.ONNX_MODEL)
    bento = build_bento(onnx_model)
    service = deploy_service(bento, port=port)
    smoke_test_service(service, onnx_model)
