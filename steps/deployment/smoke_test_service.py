"""Step: prove the deployed service answers real requests with the deployed version (after a dry run,
report where it would answer)."""

from typing import Annotated

import onnx
from zenml import step
from zenml.services.service import BaseDeploymentService

import materializers  # noqa: F401  (registers the report materializer)
from headliner.deploy.deployment import SmokeTestReport, smoke_test_deployment
from headliner.labels import Artifact
from headliner.model.onnx_packaging import OnnxPredictor
from headliner.serving.settings import ServingSettings


@step(enable_cache=False)
def smoke_test_service(
    service: BaseDeploymentService, onnx_model: onnx.ModelProto
) -> Annotated[SmokeTestReport, Artifact.SMOKE_TEST]:
    return smoke_test_deployment(service, OnnxPredictor.from_model(onnx_model), ServingSettings().bearer_token())
