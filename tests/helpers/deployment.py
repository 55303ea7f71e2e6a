"""A deployment request as the deployment pipeline hands it to the stack's model deployer."""

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
