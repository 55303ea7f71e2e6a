"""First-run stack setup: idempotent import, a user's stack kept or refused with a clear message."""

import pytest
import yaml

from headliner.errors import StackSetupError
from headliner.stacks.setup import LOCAL_STACK_FILE, ensure_stack, import_stack


@pytest.fixture()
def client(local_stack):
    from zenml.client import Client

    client = Client()
    yield client
    client.activate_stack(local_stack)


def test_import_is_idempotent(client):
    components_before = client.list_stack_components(size=100).total
    stacks_before = client.list_stacks(size=100).total
    assert import_stack(LOCAL_STACK_FILE) == "local"
    assert import_stack(LOCAL_STACK_FILE) == "local"
    assert client.list_stack_components(size=100).total == components_before
    assert client.list_stacks(size=100).total == stacks_before


def test_local_stack_matches_its_file(client):
    expected = yaml.safe_load(LOCAL_STACK_FILE.read_text())["components"]
    stack = client.get_stack("local")
    for type_name, config in expected.items():
        (component,) = [c for t, cs in stack.components.items() if t.value == type_name for c in cs]
        assert (component.name, component.flavor_name) == (config["name"], config["flavor"])


def test_zenml_default_stack_is_replaced_by_local(client):
    client.activate_stack("default")
    assert ensure_stack(("orchestrator", "artifact_store")) == "local"
    assert client.active_stack_model.name == "local"


def _user_stack(client, name: str) -> None:
    local = client.get_stack("local")
    if not client.list_stacks(name=name).total:
        client.create_stack(
            name=name,
            components={
                t: [c[0].id] for t, c in local.components.items() if t.value in ("orchestrator", "artifact_store")
            },
        )
    client.activate_stack(name)


def test_users_stack_with_needed_components_is_kept(client):
    _user_stack(client, "my_stack")
    assert ensure_stack(("orchestrator", "artifact_store")) == "my_stack"
    assert client.active_stack_model.name == "my_stack"


def test_users_stack_missing_a_component_is_refused(client):
    _user_stack(client, "my_stack")
    with pytest.raises(
        StackSetupError,
        match=r"the active ZenML stack 'my_stack' has no experiment_tracker, model_deployer; .*zenml stack set local",
    ):
        ensure_stack(("orchestrator", "experiment_tracker", "model_deployer"))
    assert client.active_stack_model.name == "my_stack"  # nothing switched behind the user's back


def test_name_clash_with_another_flavor_is_an_error_not_a_prompt(client, tmp_path):
    stack_file = tmp_path / "clash.yaml"
    stack_file.write_text(
        yaml.safe_dump(
            {
                "stack_name": "clash",
                "zenml_version": "0.98.0",
                "components": {
                    "orchestrator": {
                        "name": "headliner_local_orchestrator",
                        "flavor": "local_docker",
                        "configuration": {},
                    },
                    "artifact_store": {
                        "name": "headliner_local_artifact_store",
                        "flavor": "local",
                        "configuration": {},
                    },
                },
            }
        )
    )
    with pytest.raises(
        StackSetupError, match=r"orchestrator named 'headliner_local_orchestrator' already exists with flavor 'local'"
    ):
        import_stack(stack_file)
    assert not client.list_stacks(name="clash").total
