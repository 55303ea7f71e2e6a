"""A deployment request as the deployment pipeline hands it to the stack's model deployer, a model deployer
built from its configuration alone, and the services the stack's model deployer runs, to find and stop them."""

from datetime import datetime
from uuid import uuid4

from headliner.deploy.deployment import DeploymentRequest
from headliner.labels import Step


def deployment_request(version: str = "3") -> DeploymentRequest:
    """Jukebox version `version`, its bento tag named after it, from the pipeline's deploy step."""
    return DeploymentRequest(
        model_name="jukebox",
        model_version=version,
        bento_tag=f"headliner:v{version}",
        bento_path="/nowhere",
        pipeline_name="deployment",
        step_name=Step.DEPLOY_SERVICE,
    )


def deployer_component(deployer_class, flavor: str, config, name: str = "deployer"):
    """A model deployer stack component with `config`, as ZenML builds it from the stack's configuration."""
    from zenml.enums import StackComponentType

    now = datetime.now()
    return deployer_class(
        name=name,
        id=uuid4(),
        config=config,
        flavor=flavor,
        type=StackComponentType.MODEL_DEPLOYER,
        user=None,
        created=now,
        updated=now,
    )


def deployed_services():
    from zenml.integrations.bentoml.model_deployers import BentoMLModelDeployer

    from headliner.deploy.bento_daemon import BentoServiceDaemon

    deployer = BentoMLModelDeployer.get_active_model_deployer()
    return deployer, deployer.find_model_server(service_type=BentoServiceDaemon.SERVICE_TYPE)


def stop_all_services() -> None:
    deployer, services = deployed_services()
    for service in services:
        deployer.delete_model_server(service.uuid, force=False)
