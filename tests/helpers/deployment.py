"""A deployment request as the deployment pipeline hands it to the stack's model deployer, and the services
the stack's model deployer runs, to find and stop them."""

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


def deployed_services():
    from zenml.integrations.bentoml.model_deployers import BentoMLModelDeployer

    from headliner.deploy.bento_daemon import BentoServiceDaemon

    deployer = BentoMLModelDeployer.get_active_model_deployer()
    return deployer, deployer.find_model_server(service_type=BentoServiceDaemon.SERVICE_TYPE)


def stop_all_services() -> None:
    deployer, services = deployed_services()
    for service in services:
        deployer.delete_model_server(service.uuid, force=False)
