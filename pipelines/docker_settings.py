"""The Docker settings of every pipeline: what a step's image is when the stack runs steps in containers
(the `containers` stack's local Docker orchestrator, the Kubernetes orchestrator); ignored by the local
orchestrator, which builds nothing.

The parent image is the project's steps image (containers/steps.Dockerfile: the base image with a venv and
the pinned requirements of requirements.txt), tagged with the lock's hash, so a new lock means a new image
and an unchanged lock reuses it. ZenML's build on top installs nothing and includes no code (the code goes
through the artifact store), so its layers are cached after the first build.
"""

import hashlib

from zenml.config import DockerSettings

from headliner.spec import PROJECT_ROOT

LOCK_FILE = PROJECT_ROOT / "requirements.txt"
STEPS_IMAGE_REPOSITORY = "localhost/headliner-steps"


def steps_image() -> str:
    """The steps image for the current lock: localhost/headliner-steps:<first 12 hex of its sha256>."""
    digest = hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:12]
    return f"{STEPS_IMAGE_REPOSITORY}:{digest}"


def docker_settings() -> DockerSettings:
    """The pipelines' `docker` settings: the steps image as parent, nothing installed on top (pip, since the
    image has no uv), the code downloaded from the artifact store rather than copied into the image."""
    return DockerSettings(
        parent_image=steps_image(),
        python_package_installer="pip",
        install_stack_requirements=False,
        install_deployment_requirements=False,
        allow_including_files_in_images=False,
        allow_download_from_artifact_store=True,
    )
