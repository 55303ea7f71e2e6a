"""Step: run the bento with the active stack's model deployer, replacing this pipeline's earlier service."""

from typing import Annotated

from bentoml import Bento
from zenml import get_step_context, step
from zenml.integrations.bentoml.services import BentoMLLocalDeploymentService

from headliner.deployment import deploy_bento


@step(enable_cache=False)
def deploy_service(bento: Bento, port: int) -> Annotated[BentoMLLocalDeploymentService, "service"]:
    context = get_step_context()
    return deploy_bento(bento, port=port, pipeline_name=context.pipeline.name, step_name=context.step_run.name)
