"""The local deployment of the service as a ZenML-managed background process.

ZenML 0.98's BentoML local deployment service starts a bento through BentoML's pre-1.2 API whenever the
service object is a `bentoml.Service`, which every 1.4 service is (`'Service' object has no attribute
'runners'`). This subclass starts it with BentoML 1.4's server, and lets the daemon process import it
(the project on PYTHONPATH); everything else (status, logs, stop) is ZenML's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from zenml.client import Client
from zenml.integrations.bentoml.model_deployers import BentoMLModelDeployer
from zenml.integrations.bentoml.services import BentoMLLocalDeploymentConfig, BentoMLLocalDeploymentService
from zenml.model_deployers.base_model_deployer import get_model_version_id_if_exists
from zenml.utils.networking_utils import port_available

from headliner.errors import DeploymentError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class BentoServiceDaemon(BentoMLLocalDeploymentService):
    """A bento served by BentoML 1.4 in a ZenML local daemon."""

    def run(self) -> None:
        from _bentoml_impl.server import serve_http
        from bentoml._internal.service.loader import load

        self.endpoint.prepare_for_start()
        load(bento_identifier=self.config.bento_tag, working_dir=self.config.working_dir).inject_config()
        serve_http(
            self.config.bento_tag,
            working_dir=self.config.working_dir,
            host=self.config.host or "127.0.0.1",
            port=self.endpoint.status.port,
            backlog=self.config.backlog,
        )

    def _get_daemon_cmd(self) -> tuple[list[str], dict[str, str]]:
        command, env = super()._get_daemon_cmd()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
        return command, env


def deploy(config: BentoMLLocalDeploymentConfig, timeout: int) -> BentoServiceDaemon:
    """Start the bento as a daemon registered with the active stack's BentoML model deployer, after
    stopping and deleting the service this pipeline step started before (what `deploy_model` with
    `continuous_deployment_mode` does, with this service class)."""
    deployer = BentoMLModelDeployer.get_active_model_deployer()
    service_type = BentoServiceDaemon.SERVICE_TYPE
    # Not find_model_server(model_name=...): that filters on the model's latest version only.
    for previous in deployer.find_model_server(
        pipeline_name=config.pipeline_name, pipeline_step_name=config.pipeline_step_name, service_type=service_type
    ):
        if previous.config.model_name == config.model_name:
            deployer.delete_model_server(previous.uuid, timeout=timeout, force=False)
    if not port_available(config.port, config.host):
        raise DeploymentError(
            f"port {config.port} is in use (another model's service? see: zenml model-deployer models list); choose --port"
        )
    client = Client()
    response = client.create_service(
        config=config,
        service_type=service_type,
        model_version_id=get_model_version_id_if_exists(config.model_name, config.model_version),
    )
    config.root_runtime_path = deployer.local_path
    service = BentoServiceDaemon(uuid=response.id, config=config)
    service.endpoint.config.allocate_port = False  # the port asked for, or an error: never another one
    try:
        service.start(timeout=timeout)
    except Exception as exc:
        log_tail = _tail(service.status.log_file)
        service.stop(timeout=timeout, force=True)
        client.delete_service(response.id)
        raise DeploymentError(f"the service did not start ({exc}); its log {service.status.log_file} ends:\n{log_tail}") from None
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


def _tail(path: Optional[str], lines: int = 15) -> str:
    if not path or not Path(path).is_file():
        return "(no log)"
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
