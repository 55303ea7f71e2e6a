"""The local deployment of the service as a ZenML-managed background process: the deployer adapter of
ZenML's BentoML model deployer (see headliner.deploy.deployers).

ZenML 0.98's BentoML local deployment service starts a bento through BentoML's pre-1.2 API whenever the
service object is a `bentoml.Service`, which every 1.4 service is (`'Service' object has no attribute
'runners'`). This subclass starts it with BentoML 1.4's server, and lets the daemon process import it
(the project on PYTHONPATH); everything else (status, logs, stop) is ZenML's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from zenml.integrations.bentoml.model_deployers import BentoMLModelDeployer
from zenml.integrations.bentoml.services import BentoMLLocalDeploymentConfig, BentoMLLocalDeploymentService
from zenml.utils.networking_utils import port_available

from headliner.deploy.deployers import record_and_start
from headliner.errors import DeploymentError
from headliner.spec import PROJECT_ROOT

if TYPE_CHECKING:
    from headliner.deploy.deployment import DeploymentRequest

START_TIMEOUT = 120  # seconds for the service to answer its health check


class BentoServiceDaemon(BentoMLLocalDeploymentService):
    """A bento served by BentoML 1.4 in a ZenML local daemon."""

    def run(self) -> None:
        from _bentoml_impl.server import serve_http
        from bentoml._internal.service import Service as LegacyService
        from bentoml._internal.service.loader import load

        from headliner.serving.settings import ServingSettings

        self.endpoint.prepare_for_start()
        service = load(bento_identifier=self.config.bento_tag, working_dir=self.config.working_dir)
        if isinstance(service, LegacyService):
            raise DeploymentError(f"{self.config.bento_tag}: a pre-1.2 BentoML service; serving/ defines a 1.4 one")
        service.inject_config()
        serve_http(
            self.config.bento_tag,
            working_dir=self.config.working_dir,
            host=self.config.host or "127.0.0.1",
            port=self.endpoint.status.port,
            backlog=self.config.backlog,
            timeout_graceful_shutdown=ServingSettings().drain_seconds,
        )

    def _get_daemon_cmd(self) -> tuple[list[str], dict[str, str]]:
        command, env = super()._get_daemon_cmd()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
        env["HEADLINER_WORKERS"] = str(self.config.workers)  # the service's `workers` (serving/service.py)
        return command, env


def deploy_request(
    deployer: BentoMLModelDeployer, request: DeploymentRequest, timeout: int = START_TIMEOUT
) -> BentoServiceDaemon:
    """The deployer adapter of ZenML's BentoML deployer (headliner.deploy.deployers): start the request's
    bento as a daemon on request.host:port, registered with `deployer`, after stopping and deleting the service
    this pipeline step started before for the model (what `deploy_model` with `continuous_deployment_mode`
    does, with this service class). It runs HEADLINER_WORKERS worker processes (ServingSettings)."""
    from headliner.serving.settings import ServingSettings

    config = BentoMLLocalDeploymentConfig(
        model_name=request.model_name,
        model_version=request.model_version,
        model_uri=request.bento_path,
        bento_tag=request.bento_tag,
        bento_uri=request.bento_path,
        apis=["predict", f"v2/models/{request.model_name}/infer"],
        port=request.port,
        host=request.host,
        workers=ServingSettings().workers,
        working_dir=request.bento_path,
        pipeline_name=request.pipeline_name,
        pipeline_step_name=request.step_name,
    )
    service_type = BentoServiceDaemon.SERVICE_TYPE
    # Not find_model_server(model_name=...): that filters on the model's latest version only.
    for previous in deployer.find_model_server(
        pipeline_name=config.pipeline_name, pipeline_step_name=config.pipeline_step_name, service_type=service_type
    ):
        if previous.config.model_name == config.model_name:
            deployer.delete_model_server(previous.uuid, timeout=timeout, force=False)
    if not port_available(request.port, request.host):
        raise DeploymentError(
            f"port {request.port} is in use (another model's service? see: zenml model-deployer models list); "
            "choose --port"
        )

    def start(uuid: UUID) -> BentoServiceDaemon:
        config.root_runtime_path = deployer.local_path  # after the record is made, as ZenML's deployer does
        # ZenML's __init__ makes the endpoint from the config; the pydantic plugin types the fields' constructor
        service = BentoServiceDaemon(uuid=uuid, config=config)  # type: ignore[call-arg]
        service.endpoint.config.allocate_port = False  # the port asked for, or an error: never another one
        try:
            service.start(timeout=timeout)
        except Exception as exc:
            log_tail = _tail(service.status.log_file)
            service.stop(timeout=timeout, force=True)
            raise DeploymentError(
                f"the service did not start ({exc}); its log {service.status.log_file} ends:\n{log_tail}"
            ) from None
        return service

    return record_and_start(config, service_type, start)


def _tail(path: str | None, lines: int = 15) -> str:
    if not path or not Path(path).is_file():
        return "(no log)"
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
