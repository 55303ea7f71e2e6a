"""Step: deploy the bento's model version with the active stack's model deployer, whichever it is,
replacing the service an earlier run of this step deployed for the model."""

from typing import Annotated

from bentoml import Bento
from zenml import get_step_context, step
from zenml.services.service import BaseDeploymentService

from headliner.deploy.deployers import deploy
from headliner.deploy.deployment import DeploymentRequest
from headliner.labels import Artifact


@step(enable_cache=False)
def deploy_service(bento: Bento, port: int) -> Annotated[BaseDeploymentService, Artifact.SERVICE]:
    context = get_step_context()
    return deploy(
        DeploymentRequest.for_bento(bento, port, pipeline_name=context.pipeline.name, step_name=context.step_run.name)
    )
