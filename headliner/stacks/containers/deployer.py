"""The model deployer flavor `headliner_containers`: serves a registered model version as a container of the
service image (serving/Dockerfile's `service` target; `python run.py` builds this checkout's before a deployment
when missing) through the Docker API of podman's socket, published on 127.0.0.1:PORT. The version's ONNX file is
exported into Headliner's folder of ZenML's local stores, which is mounted at the same path (as the local Docker
orchestrator mounts it into the steps), and served as HEADLINER_MODEL_FILE: the image's ZenML client cannot
open the local SQLite store (it has no `zenml[local]`). The inference log goes beside it, where the local
process-served service writes it. The deployment pipeline deploys with it through
`HeadlinerContainerModelDeployer.deploy_request` (headliner.deploy.deployers).

Registered from the stack config (stack_configs/containers.yaml names it in `flavor_source`), or by hand:
    zenml model-deployer flavor register headliner.stacks.containers.deployer.HeadlinerContainerModelDeployerFlavor
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast
from uuid import UUID

from pydantic import Field
from zenml.enums import ServiceState
from zenml.model_deployers.base_model_deployer import (
    DEFAULT_DEPLOYMENT_START_STOP_TIMEOUT,
    BaseModelDeployerConfig,
    BaseModelDeployerFlavor,
)
from zenml.models.v2.misc.service import ServiceType
from zenml.services.service import BaseDeploymentService, BaseService, ServiceConfig
from zenml.services.service_status import ServiceStatus

from headliner.deploy.deployers import record_and_start
from headliner.deploy.service_deployer import ServiceLifecycleDeployer
from headliner.deploy.service_image import REPOSITORY, service_image
from headliner.errors import DeploymentError
from headliner.stacks.containers.podman import socket_path

if TYPE_CHECKING:
    from docker import DockerClient  # type: ignore[import-untyped]
    from docker.models.containers import Container  # type: ignore[import-untyped]

    from headliner.deploy.deployment import DeploymentRequest

FLAVOR = "headliner_containers"
SERVICE_PORT = 3000  # the port the service image listens on
STOP_SECONDS = 30  # SIGTERM, then SIGKILL: the service drains (HEADLINER_DRAIN_SECONDS, 20) and flushes its log


class ContainerDeployerConfig(BaseModelDeployerConfig):
    """The stack component's configuration: which image serves, with how many workers, and how long a start
    may take."""

    image_repository: str = REPOSITORY
    image_tag: str | None = None  # None: this checkout's tag, as `python run.py image build --registry` gives it
    workers: int = Field(
        1, ge=1, le=64, description="Worker processes the container serves its port with (HEADLINER_WORKERS)."
    )
    ready_timeout: int = 120  # seconds until /v2/health/ready answers (container start, model load)


class ContainerServiceConfig(ServiceConfig):
    """One deployment: the model version, the image, where it publishes, and what it mounts and reads."""

    image: str
    host: str
    port: int
    user: str  # the deployer's uid: the mounted local stores are its files
    environment: dict[str, str]
    volumes: dict[str, dict[str, str]]

    @property
    def container_name(self) -> str:
        return container_name(self.model_name, self.model_version)


def container_name(model_name: str, model_version: str) -> str:
    return f"headliner-{model_name}-v{model_version}"


def model_file(local_stores: Path, model_name: str, model_version: str) -> Path:
    """Where a deployed version's ONNX file goes: Headliner's folder of the local stores (mounted)."""
    return local_stores / "headliner" / "deployed" / f"{model_name}-v{model_version}.onnx"


def service_environment(model: Path, local_stores: Path, workers: int) -> dict[str, str]:
    """What the service container reads: the ONNX file `model`, where it logs: Headliner's folder of the
    local stores, as the process-served service does (headliner.serving.settings.local_state_dir), and how
    many worker processes serve (ServingSettings.workers)."""
    return {
        "HEADLINER_MODEL_FILE": str(model),
        "HEADLINER_INFERENCE_LOG": f"sqlite:///{local_stores / 'headliner' / 'inference_log.sqlite'}",
        "HEADLINER_WORKERS": str(workers),
    }


def _docker_client() -> DockerClient:
    """The Docker API of podman's socket: DOCKER_HOST when set, else the socket in the local stores (mounted
    into the step containers, so the deployment step reaches it too)."""
    import docker

    return docker.DockerClient(base_url=os.environ.get("DOCKER_HOST") or f"unix://{socket_path()}")


class ContainerModelService(BaseDeploymentService):
    """The model server as a container on this machine, at http://host:port."""

    SERVICE_TYPE: ClassVar[ServiceType] = ServiceType(
        name="headliner-container", type="model-serving", flavor=FLAVOR, description="Headliner service in a container"
    )
    config: ContainerServiceConfig
    status: ServiceStatus = Field(default_factory=ServiceStatus)

    @property
    def prediction_url(self) -> str | None:
        """The service's root (/predict, /v2/... below it), as ZenML's BentoML services have it."""
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def healthcheck_url(self) -> str | None:
        return f"{self.prediction_url}/v2/health/ready"

    def _container(self) -> Container | None:
        import docker

        try:
            return _docker_client().containers.get(self.config.container_name)
        except docker.errors.NotFound:
            return None

    def provision(self) -> None:
        """Run the container (replacing a same-named one: a redeploy of the version)."""
        self.deprovision()
        _docker_client().containers.run(
            self.config.image,
            name=self.config.container_name,
            detach=True,
            user=self.config.user,
            environment=self.config.environment,
            volumes=self.config.volumes,
            ports={f"{SERVICE_PORT}/tcp": (self.config.host, self.config.port)},
            labels={"headliner.model": self.config.model_name, "headliner.model_version": self.config.model_version},
        )

    def deprovision(self, force: bool = False) -> None:
        """SIGTERM (the service writes its queued log rows), SIGKILL after STOP_SECONDS, then remove."""
        container = self._container()
        if container is not None:
            container.stop(timeout=0 if force else STOP_SECONDS)
            container.remove(force=True)

    def check_status(self) -> tuple[ServiceState, str]:
        container = self._container()
        if container is None:
            return ServiceState.INACTIVE, f"no container {self.config.container_name}"
        if container.status != "running":
            return ServiceState.ERROR, f"container {self.config.container_name} is {container.status}"
        try:
            with urllib.request.urlopen(cast(str, self.healthcheck_url), timeout=2) as response:
                if response.status == 200:
                    return ServiceState.ACTIVE, f"container {self.config.container_name} ready"
        except (urllib.error.URLError, OSError):
            pass
        return ServiceState.PENDING_STARTUP, f"container {self.config.container_name} starting"

    def get_logs(self, follow: bool = False, tail: int | None = None) -> Generator[str, bool, None]:
        container = self._container()
        if container is None:
            return
        text = container.logs(tail=tail if tail is not None else "all").decode(errors="replace")
        yield from text.splitlines()


class HeadlinerContainerModelDeployer(ServiceLifecycleDeployer):
    """Deploys a registered model version as the service image's container; one per model version."""

    NAME: ClassVar[str] = "Headliner containers"
    FLAVOR: ClassVar[type[BaseModelDeployerFlavor]]

    @property
    def config(self) -> ContainerDeployerConfig:
        return cast(ContainerDeployerConfig, self._config)

    @property
    def image(self) -> str:
        """The service image it runs: this checkout's, unless the configuration pins a tag."""
        return service_image(self.config.image_repository, self.config.image_tag)

    def service_config(self, request: DeploymentRequest) -> ContainerServiceConfig:
        """What this component runs for a request: the registered version's file (the bento is for local
        deployers)."""
        from zenml.config.global_config import GlobalConfiguration

        local_stores = Path(GlobalConfiguration().local_stores_path)
        return ContainerServiceConfig(
            model_name=request.model_name,
            model_version=request.model_version,
            pipeline_name=request.pipeline_name,
            pipeline_step_name=request.step_name,
            image=self.image,
            host=request.host,
            port=request.port,
            user=str(os.getuid()),
            environment=service_environment(
                model_file(local_stores, request.model_name, request.model_version), local_stores, self.config.workers
            ),
            volumes={str(local_stores): {"bind": str(local_stores), "mode": "rw"}},
        )

    def deploy_request(self, request: DeploymentRequest) -> ContainerModelService:
        """The deployment pipeline's adapter (headliner.deploy.deployers): export the request's version as its
        ONNX file, stop and delete the services this pipeline step deployed before for the model (they may hold
        the port), run the version's container and wait until it answers its readiness check."""
        import docker

        from headliner.deploy.deployment import registered_model_card
        from headliner.model.versions import onnx_model_bytes

        config = self.service_config(request)
        try:
            _docker_client().images.get(config.image)
        except docker.errors.ImageNotFound:
            raise DeploymentError(
                f"no service image {config.image} (this checkout's code): build it with python run.py image build "
                "--registry"
            ) from None
        _, data = onnx_model_bytes(request.model_name, request.model_version)
        path = Path(config.environment["HEADLINER_MODEL_FILE"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        card = registered_model_card(data)  # the service's GET /model-card; the container has no registry access
        if card is not None:
            card_path = path.with_suffix(".model_card.html")
            card_path.write_text(card, encoding="utf-8")
            config.environment["HEADLINER_MODEL_CARD_FILE"] = str(card_path)
        service_type = ContainerModelService.SERVICE_TYPE
        for previous in self.find_model_server(
            pipeline_name=request.pipeline_name, pipeline_step_name=request.step_name, service_type=service_type
        ):
            if previous.config.model_name == request.model_name:
                self.delete_model_server(previous.uuid, timeout=STOP_SECONDS + 10, force=False)

        def start(uuid: UUID) -> ContainerModelService:
            return self.perform_deploy_model(uuid, config=config, timeout=self.config.ready_timeout)

        deployed = record_and_start(config, service_type, start)
        if not deployed.is_running:
            logs = "\n".join(list(deployed.get_logs(tail=40)))
            deployed.stop(timeout=STOP_SECONDS, force=True)
            raise DeploymentError(
                f"{config.container_name} did not answer {deployed.healthcheck_url} within "
                f"{self.config.ready_timeout} s ({deployed.status.last_error}); its log ends:\n{logs}"
            )
        return deployed

    def perform_deploy_model(
        self, id: UUID, config: ServiceConfig, timeout: int = DEFAULT_DEPLOYMENT_START_STOP_TIMEOUT
    ) -> ContainerModelService:
        service = ContainerModelService(uuid=id, config=config)
        service.start(timeout=timeout)
        return service

    @staticmethod
    def get_model_server_info(service_instance: BaseService) -> dict[str, str | None]:
        service = cast(ContainerModelService, service_instance)
        return {
            "PREDICTION_URL": service.prediction_url,
            "HEALTH_CHECK_URL": service.healthcheck_url,
            "CONTAINER": service.config.container_name,
        }


class HeadlinerContainerModelDeployerFlavor(BaseModelDeployerFlavor):
    """The flavor ZenML registers: `zenml model-deployer flavor register` with this class's source."""

    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[ContainerDeployerConfig]:
        return ContainerDeployerConfig

    @property
    def implementation_class(self) -> type[HeadlinerContainerModelDeployer]:
        return HeadlinerContainerModelDeployer


HeadlinerContainerModelDeployer.FLAVOR = HeadlinerContainerModelDeployerFlavor
