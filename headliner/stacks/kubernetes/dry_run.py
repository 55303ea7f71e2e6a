"""The paper check of the `kubernetes` stack behind `python run.py kubernetes-manifests`, importable so it is
tested: what the stack's model deployer would apply for a model version, what one run of each pipeline
would create on its Kubernetes orchestrator, and the CronJob of the monitoring pipeline's schedule, all
validated against the Kubernetes schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zenml.stack import Stack

from headliner.errors import StackSetupError
from headliner.model.training import load_training_config
from headliner.spec import UseCaseSpec
from headliner.stacks.kubernetes.deployer import HeadlinerKubernetesModelDeployer
from headliner.stacks.kubernetes.manifests import validate_manifests
from headliner.stacks.kubernetes.orchestrator_manifests import (
    load_stack,
    orchestrator_manifests,
    scheduled_monitoring_manifests,
)
from headliner.stacks.setup import project_client

PARTS = ("all", "deployer", "orchestrator")
DEPLOYER_GROUP = "model deployer"
SCHEDULE_GROUP = "schedule monitoring"


def deployer_manifests(stack: Stack, model_name: str, version: str) -> list[dict[str, Any]]:
    """The objects the stack's headliner_kubernetes model deployer applies for `model_name` at `version`
    (a number, 'latest' or a stage), validated."""
    deployer = stack.model_deployer
    if not isinstance(deployer, HeadlinerKubernetesModelDeployer):
        raise StackSetupError(f"stack '{stack.name}' has no headliner_kubernetes model deployer")
    manifests = deployer.service_config(model_name, version).manifests()
    validate_manifests(manifests)
    return manifests


def dry_run(
    stack_name: str,
    spec: UseCaseSpec,
    version: str,
    run_config: Path,
    part: str = "all",
    zenml_url: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Validated manifests by group: 'model deployer', then 'pipeline <name>' for each pipeline, then
    'schedule monitoring' (the monitoring pipeline on the spec's schedule); `part` is one of PARTS.
    `zenml_url` is the ZenML server the pipeline pods talk to (default: the model deployer's
    `zenml_server_url`). Raises StackSetupError (or RunConfigError) for the user's setup,
    ValueError for a manifest the schemas reject."""
    if part not in PARTS:
        raise ValueError(f"part '{part}' is not one of {', '.join(PARTS)}")
    project_client()  # the project's repository and source root: the pipelines compile from its sources
    try:
        stack = load_stack(stack_name)
    except KeyError:
        raise StackSetupError(
            f"no stack '{stack_name}' in this ZenML store; "
            "import one: python run.py stack-import stack_configs/kubernetes.yaml"
        ) from None
    groups: dict[str, list[dict[str, Any]]] = {}
    if part in ("all", "deployer"):
        groups[DEPLOYER_GROUP] = deployer_manifests(stack, spec.name, version)
    if part in ("all", "orchestrator"):
        deployer = stack.model_deployer
        url = zenml_url or (
            deployer.config.zenml_server_url if isinstance(deployer, HeadlinerKubernetesModelDeployer) else None
        )
        if not url:
            raise StackSetupError(f"stack '{stack_name}' names no ZenML server for the pipeline pods: give --zenml-url")
        load_training_config(run_config, spec)
        rendered = orchestrator_manifests(stack, spec, version, url, run_config)
        groups.update({f"pipeline {name}": manifests for name, manifests in rendered.items()})
        groups[SCHEDULE_GROUP] = scheduled_monitoring_manifests(stack, spec, version, url)
    return groups


def images_named(manifests: list[dict[str, Any]]) -> list[str]:
    """The container images the manifests' pods run (Deployments, Jobs and CronJobs), each once, in order of
    appearance: what must be in the cluster's registry before they are applied."""
    images: dict[str, None] = {}
    for manifest in manifests:
        spec = manifest.get("spec", {})
        pod = spec.get("jobTemplate", {}).get("spec", spec).get("template", {}).get("spec", {})
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            images[container["image"]] = None
    return list(images)
