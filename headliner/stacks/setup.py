"""Setting up the ZenML stack a command needs: initialise the project's repository, import stack files
(with the project's flavors) and make sure the active stack can run a pipeline.

On a fresh clone the active stack is ZenML's 'default'; it is replaced by the project's local stack
(imported from stack_configs/local.yaml, in the format of `zenml stack import`). A stack the user
chose is left alone when it has the components the pipeline needs. Never prompts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import yaml

from headliner.errors import StackSetupError
from headliner.spec import PROJECT_ROOT

if TYPE_CHECKING:
    from zenml.client import Client
    from zenml.enums import StackComponentType

LOCAL_STACK_FILE = PROJECT_ROOT / "stack_configs" / "local.yaml"
ZENML_DEFAULT_STACK = "default"
LOCAL_DOCKER_FLAVOR = "local_docker"  # ZenML's orchestrator running each step in a container


def import_stack(stack_file: Path, data: dict[str, Any] | None = None) -> str:
    """Register the stack of a `zenml stack export` style YAML (or its already-read `data`) unless it
    exists; returns its name.

    Components are reused by name when their flavor matches; a same-named component of another
    flavor is an error rather than a prompt. A component's `flavor_source` (a project flavor class,
    e.g. the Kubernetes model deployer's) is registered first when its flavor is not known yet.
    """
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    data = data if data is not None else yaml.safe_load(stack_file.read_text())
    name: str = data["stack_name"]
    if client.list_stacks(name=name).total:
        return name
    _check_secret_references(client, stack_file, data["components"])
    component_ids: dict[StackComponentType, list[UUID]] = {}
    for type_name, config in data["components"].items():
        component_type = StackComponentType(type_name)
        existing = client.list_stack_components(type=component_type, name=config["name"])
        if existing.total:
            component = existing.items[0]
            if component.flavor_name != config["flavor"]:
                raise StackSetupError(
                    f"{stack_file}: a {type_name} named '{config['name']}' already exists with flavor "
                    f"'{component.flavor_name}', expected '{config['flavor']}'; rename or delete it"
                )
        else:
            if config.get("flavor_source"):
                register_flavor(config["flavor"], config["flavor_source"], component_type)
            component = client.create_stack_component(
                name=config["name"],
                flavor=config["flavor"],
                component_type=component_type,
                configuration=config.get("configuration") or {},
            )
        component_ids[component_type] = [component.id]
    client.create_stack(name=name, components=component_ids)
    return name


def _check_secret_references(client: Client, stack_file: Path, components: dict[str, Any]) -> None:
    """Every `{{secret.key}}` of the file resolves, checked before anything is created (no half-imported
    stack)."""
    from zenml.utils import secret_utils

    for config in components.values():
        for field, value in (config.get("configuration") or {}).items():
            if not secret_utils.is_secret_reference(value):
                continue
            secret, key = secret_utils.parse_secret_reference(value)
            try:
                values = client.get_secret(secret).secret_values
            except KeyError:
                values = None
            if values is None or key not in values:
                raise StackSetupError(
                    f"{stack_file}: {config['name']}.{field} refers to the ZenML secret '{secret}' "
                    f"with key '{key}', which does not exist; create it first: zenml secret create {secret} --{key}=..."
                )


def register_flavor(name: str, source: str, component_type: StackComponentType) -> None:
    """Register the project's flavor class at `source` unless a flavor `name` of that type exists."""
    from zenml.client import Client

    client = Client()
    try:
        client.get_flavor_by_name_and_type(name, component_type)
    except KeyError:
        flavor = client.create_flavor(source=source, component_type=component_type)
        if flavor.name != name:
            raise StackSetupError(
                f"flavor_source {source} defines flavor '{flavor.name}', the stack file expects '{name}'"
            ) from None


def repository_root() -> Path:
    """Where the ZenML repository (.zen) lives: $ZENML_REPOSITORY_PATH if set, else the project."""
    return Path(os.environ.get("ZENML_REPOSITORY_PATH") or PROJECT_ROOT)


def project_client() -> Client:
    """A ZenML client of the project's repository (initialised if needed), importing sources from the
    project even when the repository config lives elsewhere."""
    from zenml.client import Client
    from zenml.utils.source_utils import set_custom_source_root

    set_custom_source_root(str(PROJECT_ROOT))
    root = repository_root()
    if Client.find_repository(root) is None:
        Client.initialize(root=root)
    return Client()


def import_stack_file(stack_file: Path, activate: bool) -> str:
    """`zenml stack import` with the project's flavors registered first; optionally set active."""
    if not stack_file.is_file():
        raise StackSetupError(f"{stack_file}: no such stack file")
    client = project_client()
    name = import_stack(stack_file)
    if activate:
        client.activate_stack(name)
    return name


def ensure_stack(required: Iterable[str]) -> str:
    """Initialise the repository if needed and return the name of an active stack that has the
    `required` component types (e.g. 'experiment_tracker').

    ZenML's own 'default' stack is replaced by the project's local stack; any other active stack is
    the user's choice and is kept, or refused with a clear message if it lacks a component.
    """
    client = project_client()
    active = client.active_stack_model
    if active.name == ZENML_DEFAULT_STACK:
        name = import_stack(LOCAL_STACK_FILE)
        client.activate_stack(name)
        return name
    missing = sorted(t for t in required if not active.components.get(_component_type(t)))
    if missing:
        raise StackSetupError(
            f"the active ZenML stack '{active.name}' has no {', '.join(missing)}; "
            f"add one, or use the project's stack: zenml stack set local"
        )
    orchestrators = active.components.get(_component_type("orchestrator")) or []
    if any(orchestrator.flavor_name == LOCAL_DOCKER_FLAVOR for orchestrator in orchestrators):
        prepare_containers_stack()
    if "model_deployer" in required:
        from headliner.stacks.containers.deployer import FLAVOR as CONTAINERS_DEPLOYER_FLAVOR

        deployers = active.components.get(_component_type("model_deployer")) or []
        if any(deployer.flavor_name == CONTAINERS_DEPLOYER_FLAVOR for deployer in deployers):
            prepare_container_deployment()
    return active.name


def prepare_containers_stack() -> None:
    """What a stack running steps in containers needs first (the `containers` stack): podman's Docker-API
    socket started (DOCKER_HOST set for this process; the orchestrator runs the steps through it)."""
    from headliner.stacks.containers.podman import start_socket

    start_socket()
    # ZenML's image builder through the podman CLI, not the Docker API: over the API, ZenML takes the repo
    # digest podman gives every local image for a registry's and pulls, and its re-tag call fails.
    os.environ["ZENML_CONTAINER_ENGINE"] = "podman"


def prepare_container_deployment() -> None:
    """What the `headliner_containers` model deployer needs first: the service image of this checkout, built
    when missing (its name changes with the code; headliner.deploy.service_image)."""
    from zenml.client import Client

    from headliner.deploy.image_build import ensure_service_image
    from headliner.stacks.containers.deployer import HeadlinerContainerModelDeployer

    deployer = Client().active_stack.model_deployer
    if isinstance(deployer, HeadlinerContainerModelDeployer):
        ensure_service_image(deployer.image)


def _component_type(name: str) -> StackComponentType:
    from zenml.enums import StackComponentType

    return StackComponentType(name)
