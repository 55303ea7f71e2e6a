"""The deployer adapters: the one place that knows which model deployer flavors the deployment pipeline
can deploy with, and how each turns a DeploymentRequest into its own service config, so the pipeline
and its steps are the same on every stack."""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from importlib import import_module
from typing import TYPE_CHECKING, TypeVar, cast
from uuid import UUID

from headliner.errors import DeploymentError

if TYPE_CHECKING:
    from zenml.model_deployers import BaseModelDeployer
    from zenml.models.v2.misc.service import ServiceType
    from zenml.services.service import BaseDeploymentService, ServiceConfig

    from headliner.deploy.deployment import DeploymentRequest

    Adapter = Callable[[BaseModelDeployer, DeploymentRequest], BaseDeploymentService]

Service = TypeVar("Service", bound="BaseDeploymentService")

# Flavor -> "module:attribute" of a function (deployer, request) -> service, imported only when used.
ADAPTERS: dict[str, str] = {
    "bentoml": "headliner.deploy.bento_daemon:deploy_request",  # ZenML's BentoML deployer: a daemon on this machine
    "headliner_kubernetes": "headliner.stacks.kubernetes.deployer:HeadlinerKubernetesModelDeployer.deploy_request",
    "headliner_containers": "headliner.stacks.containers.deployer:HeadlinerContainerModelDeployer.deploy_request",
}


def adapter_for(deployer: BaseModelDeployer) -> Adapter:
    source = ADAPTERS.get(deployer.flavor)
    if source is None:
        raise DeploymentError(
            f"the deployment pipeline cannot deploy with model deployer '{deployer.name}' "
            f"of flavor '{deployer.flavor}'; "
            f"supported flavors: {', '.join(ADAPTERS)}"
        )
    module, _, attribute = source.partition(":")
    # every entry of ADAPTERS names an adapter
    return cast("Adapter", reduce(getattr, attribute.split("."), import_module(module)))


def deploy(request: DeploymentRequest, deployer: BaseModelDeployer | None = None) -> BaseDeploymentService:
    """Deploy with `deployer`, by default the active stack's model deployer."""
    if deployer is None:
        from zenml.client import Client

        stack = Client().active_stack
        if stack.model_deployer is None:
            raise DeploymentError(
                f"the active stack '{stack.name}' has no model deployer; supported flavors: {', '.join(ADAPTERS)}"
            )
        deployer = stack.model_deployer
    return adapter_for(deployer)(deployer, request)


def record_and_start(config: ServiceConfig, service_type: ServiceType, start: Callable[[UUID], Service]) -> Service:
    """What ZenML's `deploy_model` does once it has chosen to deploy (its search for the same service
    ignores the config in ZenML 0.98, so it returns any service of the flavor): record the service in the
    ZenML store, linked to the model version, `start` it with the record's id, then record its state;
    the record goes when it fails to start."""
    from zenml.client import Client
    from zenml.model_deployers.base_model_deployer import get_model_version_id_if_exists

    client = Client()
    response = client.create_service(
        config=config,
        service_type=service_type,
        model_version_id=get_model_version_id_if_exists(config.model_name, config.model_version),
    )
    try:
        service = start(response.id)
    except BaseException:
        client.delete_service(response.id)
        raise
    client.update_service(
        id=service.uuid,
        name=service.config.service_name,
        service_source=service.model_dump().get("type"),
        admin_state=service.admin_state,
        status=service.status.model_dump(),
        endpoint=service.endpoint.model_dump() if service.endpoint else None,
        prediction_url=service.get_prediction_url(),
        health_check_url=service.get_healthcheck_url(),
    )
    return service
