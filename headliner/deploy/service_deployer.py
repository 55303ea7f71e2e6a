"""The part of a model deployer that every project deployer flavor shares (containers, Kubernetes): its
service object does the work, so stopping, starting and deleting a model server are the service's own
stop and start."""

from __future__ import annotations

from zenml.model_deployers.base_model_deployer import DEFAULT_DEPLOYMENT_START_STOP_TIMEOUT, BaseModelDeployer
from zenml.services.service import BaseService


class ServiceLifecycleDeployer(BaseModelDeployer):
    """A model deployer whose services start and stop themselves; deleting one stops it."""

    def perform_stop_model(
        self, service: BaseService, timeout: int = DEFAULT_DEPLOYMENT_START_STOP_TIMEOUT, force: bool = False
    ) -> BaseService:
        service.stop(timeout=timeout, force=force)
        return service

    def perform_start_model(
        self, service: BaseService, timeout: int = DEFAULT_DEPLOYMENT_START_STOP_TIMEOUT
    ) -> BaseService:
        service.start(timeout=timeout)
        return service

    def perform_delete_model(
        self, service: BaseService, timeout: int = DEFAULT_DEPLOYMENT_START_STOP_TIMEOUT, force: bool = False
    ) -> None:
        service.stop(timeout=timeout, force=force)
