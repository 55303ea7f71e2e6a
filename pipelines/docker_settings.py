"""The Docker settings of every pipeline: what a step's image is when the stack runs steps in containers
(the `containers` stack's local Docker orchestrator, the Kubernetes orchestrator); ignored by the local
orchestrator, which builds nothing.

ZenML builds the image itself from containers/steps.Dockerfile (the base image, a venv, the pinned
requirements of requirements.txt) and installs nothing on top; the code goes through the artifact store,
not into the image. So the image changes only with the lock or the Dockerfile, and a rebuild is all cached
layers (podman's cache: no registry is needed to reuse it).
"""

from zenml.config import DockerSettings
from zenml.config.docker_settings import DockerBuildConfig, DockerBuildOptions

from headliner.deploy.service_image import BASE_IMAGE
from headliner.spec import PROJECT_ROOT

STEPS_DOCKERFILE = PROJECT_ROOT / "containers" / "steps.Dockerfile"


def docker_settings(base_image: str = BASE_IMAGE) -> DockerSettings:
    """The pipelines' `docker` settings: the steps Dockerfile over `base_image`, its context the project with
    only the lock in it, nothing installed on top (pip, since the image has no uv), no code in the image."""
    return DockerSettings(
        dockerfile=str(STEPS_DOCKERFILE),
        build_context_root=str(PROJECT_ROOT),
        parent_image_build_config=DockerBuildConfig(
            build_options=DockerBuildOptions(build_args={"BASE_IMAGE": base_image}),
            dockerignore=f"{STEPS_DOCKERFILE}.dockerignore",
        ),
        python_package_installer="pip",
        install_stack_requirements=False,
        install_deployment_requirements=False,
        allow_including_files_in_images=False,
        allow_download_from_artifact_store=True,
    )
