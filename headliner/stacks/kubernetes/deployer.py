"""The model deployer flavor `headliner_kubernetes`: serves a model stage or version on Kubernetes as
the manifests of headliner.stacks.kubernetes.manifests (Deployment + Service + HPA + PodDisruptionBudget),
applied with server-side apply. With `dry_run: true` it renders and validates them and applies nothing.
The deployment pipeline deploys with it through `HeadlinerKubernetesModelDeployer.deploy_request`
(headliner.deploy.deployers).

Registered from the stack config (stack_configs/kubernetes.yaml names it in `flavor_source`), or by hand:
    zenml model-deployer flavor register headliner.stacks.kubernetes.deployer.HeadlinerKubernetesModelDeployerFlavor
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, cast
from uuid import UUID

from pydantic import Field
from zenml.client import Client
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
from headliner.deploy.service_image import source_tag
from headliner.errors import DeploymentError
from headliner.stacks.kubernetes.manifests import (
    SERVICE_PORT,
    ServingDeploymentSettings,
    service_name,
    serving_manifests,
    validate_manifests,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.dynamic.resource import Resource

    from headliner.deploy.deployment import DeploymentRequest

FLAVOR = "headliner_kubernetes"
FIELD_MANAGER = "headliner"


class KubernetesDeployerConfig(BaseModelDeployerConfig, ServingDeploymentSettings):
    """The stack component's configuration: where the cluster is and how the service runs there."""

    kubernetes_context: str | None = None  # a kubeconfig context; None: the current one
    # always the pod's service account; without it, only when running in a pod (a step on the Kubernetes orchestrator)
    incluster: bool = False
    dry_run: bool = False
    ready_timeout: int = 600  # seconds the deployment pipeline waits for a ready replica (image pull, model load)


class KubernetesServiceConfig(ServiceConfig):
    """One deployment: the model, its version or stage, and the settings it was rendered with."""

    settings: ServingDeploymentSettings
    kubernetes_context: str | None = None
    incluster: bool = False
    dry_run: bool = False

    def manifests(self) -> list[dict[str, Any]]:
        return serving_manifests(self.settings, self.model_name, self.model_version)


def _api_client(config: KubernetesServiceConfig) -> ApiClient:
    from kubernetes import client
    from kubernetes import config as kube_config

    if config.incluster or "KUBERNETES_SERVICE_HOST" in os.environ:
        kube_config.load_incluster_config()
    else:
        kube_config.load_kube_config(context=config.kubernetes_context)
    return client.ApiClient()


class KubernetesModelService(BaseDeploymentService):
    """The model server on the cluster, reached in the cluster at its Service's DNS name."""

    SERVICE_TYPE: ClassVar[ServiceType] = ServiceType(
        name="headliner-kubernetes", type="model-serving", flavor=FLAVOR, description="Headliner service on Kubernetes"
    )
    config: KubernetesServiceConfig
    status: ServiceStatus = Field(default_factory=ServiceStatus)

    @property
    def name(self) -> str:
        return service_name(self.config.model_name, self.config.model_version)

    @property
    def base_url(self) -> str:
        return f"http://{self.name}.{self.config.settings.namespace}.svc.cluster.local:{SERVICE_PORT}"

    @property
    def prediction_url(self) -> str | None:
        """The service's root (/predict, /v2/... below it), as ZenML's BentoML services have it."""
        return self.base_url

    @property
    def healthcheck_url(self) -> str | None:
        return f"{self.base_url}/v2/health/ready"

    def _resources(self) -> Iterator[tuple[Resource, dict[str, Any]]]:
        from kubernetes.dynamic import DynamicClient

        dynamic = DynamicClient(_api_client(self.config))
        for manifest in self.config.manifests():
            yield dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"]), manifest

    def provision(self) -> None:
        manifests = self.config.manifests()
        validate_manifests(manifests)
        if self.config.dry_run:
            return
        for resource, manifest in self._resources():
            resource.server_side_apply(
                body=manifest,
                namespace=self.config.settings.namespace,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )

    def deprovision(self, force: bool = False) -> None:
        if self.config.dry_run:
            return
        from kubernetes.dynamic.exceptions import NotFoundError

        for resource, manifest in reversed(list(self._resources())):
            with contextlib.suppress(NotFoundError):
                resource.delete(name=manifest["metadata"]["name"], namespace=self.config.settings.namespace)

    def check_status(self) -> tuple[ServiceState, str]:
        if self.config.dry_run:
            return ServiceState.INACTIVE, "dry run: rendered and validated, not applied"
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            deployment = client.AppsV1Api(_api_client(self.config)).read_namespaced_deployment(
                self.name, self.config.settings.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return ServiceState.INACTIVE, f"no Deployment {self.name}"
            return ServiceState.ERROR, f"Kubernetes API: {exc.reason}"
        ready = deployment.status.ready_replicas or 0
        if ready >= 1:
            return ServiceState.ACTIVE, f"{ready} of {deployment.spec.replicas} replicas ready"
        return ServiceState.PENDING_STARTUP, f"0 of {deployment.spec.replicas} replicas ready"

    def get_logs(self, follow: bool = False, tail: int | None = None) -> Generator[str, bool, None]:
        if self.config.dry_run:
            return
        from kubernetes import client

        core = client.CoreV1Api(_api_client(self.config))
        pods = core.list_namespaced_pod(
            self.config.settings.namespace, label_selector=f"app.kubernetes.io/instance={self.name}"
        )
        for pod in pods.items:
            text = core.read_namespaced_pod_log(pod.metadata.name, self.config.settings.namespace, tail_lines=tail)
            yield from text.splitlines()


class HeadlinerKubernetesModelDeployer(ServiceLifecycleDeployer):
    """Deploys a model stage or version as the service on Kubernetes; one service per model and version."""

    NAME: ClassVar[str] = "Headliner Kubernetes"
    FLAVOR: ClassVar[type[BaseModelDeployerFlavor]]

    @property
    def config(self) -> KubernetesDeployerConfig:
        return cast(KubernetesDeployerConfig, self._config)

    def service_config(
        self, model_name: str, model_version: str, pipeline_name: str = "", step_name: str = ""
    ) -> KubernetesServiceConfig:
        """What this component would deploy for a model version or stage."""
        settings = ServingDeploymentSettings(
            **{key: getattr(self.config, key) for key in ServingDeploymentSettings.model_fields}
        )
        settings.image_tag = settings.image_tag or source_tag()  # pinned in the service's record
        return KubernetesServiceConfig(
            model_name=model_name,
            model_version=model_version,
            pipeline_name=pipeline_name,
            pipeline_step_name=step_name,
            settings=settings,
            kubernetes_context=self.config.kubernetes_context,
            incluster=self.config.incluster,
            dry_run=self.config.dry_run,
        )

    def deploy_request(self, request: DeploymentRequest) -> KubernetesModelService:
        """The deployment pipeline's adapter (headliner.deploy.deployers): apply the service of the request's model
        version (the pods read it from the registry; the bento, host and port are for local deployers),
        wait for a ready replica, then delete the services of other versions this pipeline step deployed
        for the model. The same version is applied in place (a rolling update). A dry run applies nothing."""
        config = self.service_config(
            request.model_name, request.model_version, request.pipeline_name, request.step_name
        )
        name = service_name(request.model_name, request.model_version)
        service_type = KubernetesModelService.SERVICE_TYPE
        earlier = [
            cast(KubernetesModelService, service)
            for service in self.find_model_server(
                pipeline_name=request.pipeline_name, pipeline_step_name=request.step_name, service_type=service_type
            )
            if service.config.model_name == request.model_name
        ]
        for service in earlier:
            if service.name == name:  # only the record: the apply below updates its objects
                Client().delete_service(service.uuid)

        def start(uuid: UUID) -> KubernetesModelService:
            return self.perform_deploy_model(uuid, config=config, timeout=self.config.ready_timeout)

        deployed = record_and_start(config, service_type, start)
        if not config.dry_run and not deployed.is_running:
            raise DeploymentError(
                f"{name} has no ready replica after {self.config.ready_timeout} s ({deployed.status.last_error}); "
                f"see: kubectl -n {config.settings.namespace} describe deployment {name}"
            )
        for service in earlier:
            if service.name != name:
                self.delete_model_server(service.uuid, timeout=self.config.ready_timeout)
        return deployed

    def perform_deploy_model(
        self, id: UUID, config: ServiceConfig, timeout: int = DEFAULT_DEPLOYMENT_START_STOP_TIMEOUT
    ) -> KubernetesModelService:
        service = KubernetesModelService(uuid=id, config=config)
        service.start(timeout=0 if cast(KubernetesServiceConfig, config).dry_run else timeout)
        return service

    @staticmethod
    def get_model_server_info(service_instance: BaseService) -> dict[str, str | None]:
        service = cast(KubernetesModelService, service_instance)
        return {
            "PREDICTION_URL": service.prediction_url,
            "HEALTH_CHECK_URL": service.healthcheck_url,
            "NAMESPACE": service.config.settings.namespace,
        }


class HeadlinerKubernetesModelDeployerFlavor(BaseModelDeployerFlavor):
    """The flavor ZenML registers: `zenml model-deployer flavor register` with this class's source."""

    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[KubernetesDeployerConfig]:
        return KubernetesDeployerConfig

    @property
    def implementation_class(self) -> type[HeadlinerKubernetesModelDeployer]:
        return HeadlinerKubernetesModelDeployer


HeadlinerKubernetesModelDeployer.FLAVOR = HeadlinerKubernetesModelDeployerFlavor
