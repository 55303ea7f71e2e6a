"""The `containers` stack as a user runs it: imported and set with the CLI in a ZenML config of its own (the
session's other tiers keep the local stack), then `--pipeline all`: training and deployment, every step in a
container of the steps image (containers/steps.Dockerfile; read from podman's container list, not assumed),
this checkout's service image built because it was missing, the version served from a container of it
that answers on 127.0.0.1; and the kubernetes stack's dry run naming those same images. Cleans up its
containers and its API socket."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from headliner.deploy.service_image import service_image
from headliner.labels import Step
from headliner.model.onnx_packaging import PARITY_TOLERANCE, OnnxPredictor
from headliner.serving.inference_log import read_inference_log
from headliner.spec import PROJECT_ROOT
from headliner.stacks.containers.deployer import container_name
from headliner.stacks.containers.podman import stop_socket
from tests.helpers.cli import FAST_RUN_CONFIG, run_cli, run_cli_on_a_free_port
from tests.helpers.containers import podman
from tests.helpers.kubernetes import CREATE_SECRETS, images_listed
from tests.helpers.payloads import SONG_ROW, v2_request

SERVICE_IMAGE = service_image()  # stack_configs/containers.yaml's model deployer runs this checkout's
CLUSTER_REGISTRY = "localhost:5001"  # stack_configs/kubernetes.yaml's container registry
TRAINING_STEPS = {
    Step.INGEST_DATA, Step.VALIDATE_DATA, Step.WRANGLE_DATA, Step.LABEL_DATA, Step.PROFILE_DATA, Step.SPLIT_DATA,
    Step.TRAIN_MODEL, Step.EVALUATE_MODEL, Step.CHECK_QUALITY_GATES, Step.PACKAGE_MODEL, Step.EXPLAIN_MODEL,
    Step.REGISTER_MODEL,
}  # fmt: skip


@pytest.fixture(scope="module")
def stack_env(isolated_env, tmp_path_factory) -> dict[str, str]:
    """A ZenML config and repository of this module only, with the containers stack imported and active."""
    root = tmp_path_factory.mktemp("containers-stack")
    env = {**isolated_env, "ZENML_CONFIG_PATH": str(root / "config"), "ZENML_REPOSITORY_PATH": str(root / "repo")}
    (root / "repo").mkdir()
    done = run_cli(["stack-import", "stack_configs/containers.yaml", "--set"], env)
    assert done.returncode == 0 and "Stack 'containers' imported and active" in done.stdout, done.stderr[-3000:]
    yield env
    stop_socket(local_stores(env) / "podman" / "api.sock")


def local_stores(env: dict[str, str]) -> Path:
    return Path(env["ZENML_CONFIG_PATH"]) / "local_stores"


def step_containers(env: dict[str, str]) -> list[dict]:
    """The step containers the orchestrator ran for this module's config (the local stores it mounted)."""
    ids = podman("ps", "-a", "-q", "--filter", "label=headliner.stack=containers").stdout.split()
    if not ids:
        return []
    mounted = f"ZENML_LOCAL_STORES_PATH={local_stores(env)}"
    return [c for c in json.loads(podman("inspect", *ids).stdout) if mounted in c["Config"]["Env"]]


def remove_step_containers(env: dict[str, str]) -> None:
    ids = [c["Id"] for c in step_containers(env)]
    if ids:
        podman("rm", "-f", *ids, check=False)


@pytest.fixture(scope="module")
def pipeline_all(stack_env):
    """`python run.py --pipeline all` with this checkout's service image missing (untagged: its cached layers
    stay): the step containers it ran, and the service's port and container name."""
    podman("untag", SERVICE_IMAGE, check=False)
    name = container_name("jukebox", "1")
    try:
        port, done = run_cli_on_a_free_port(
            ["--pipeline", "all", "--rows", "20000", "--run-config", FAST_RUN_CONFIG], stack_env
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        yield done, step_containers(stack_env), port, name
    finally:
        podman("rm", "-f", "--time", "0", name, check=False)
        remove_step_containers(stack_env)


def run_steps(env: dict[str, str], pipeline: str) -> dict[str, str]:
    """{step name: status} of the pipeline's last run in this module's store (read in a subprocess: the test
    process holds the session's store)."""
    code = (
        "import json; from zenml.client import Client; "
        f"run = Client().get_pipeline('{pipeline}').last_run; "
        "print(json.dumps({name: step.status.value for name, step in run.steps.items()}))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_step_ran_in_its_own_container_of_the_steps_image(pipeline_all, stack_env):
    done, containers, _, _ = pipeline_all
    assert "Registered model 'jukebox' version 1" in done.stdout
    assert run_steps(stack_env, "training") == dict.fromkeys(TRAINING_STEPS, "completed")
    deployment_steps = run_steps(stack_env, "deployment")
    assert set(deployment_steps.values()) == {"completed"}
    steps = {}
    for container in containers:
        args = container["Args"]
        steps[args[args.index("--step_name") + 1]] = container
    assert set(steps) == TRAINING_STEPS | set(deployment_steps)
    assert len(containers) == len(TRAINING_STEPS) + len(deployment_steps)
    (image,) = {container["Image"] for container in containers}  # one image, built by ZenML for each pipeline
    for pipeline in ("training", "deployment"):
        assert (
            image == podman("image", "inspect", "--format", "{{.Id}}", f"zenml:{pipeline}-orchestrator").stdout.strip()
        )
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert "uv pip install --no-cache --compile-bytecode -r /tmp/requirements.txt" in history  # steps.Dockerfile
    for container in steps.values():
        assert container["State"]["ExitCode"] == 0
        assert any(m["Destination"] == str(local_stores(stack_env)) for m in container["Mounts"])


def test_the_service_image_of_this_checkout_is_built_when_missing_and_serves_from_a_container(pipeline_all, stack_env):
    done, _, port, name = pipeline_all
    assert f"Building the service image of this checkout, {SERVICE_IMAGE}" in done.stdout
    assert f"Built {SERVICE_IMAGE} in " in done.stdout
    assert f"Service for 'jukebox' version 1 is live at http://127.0.0.1:{port}" in done.stdout
    assert "smoke test POST /v2/models/jukebox/infer: passed" in done.stdout
    (service,) = json.loads(podman("inspect", name).stdout)
    assert service["State"]["Running"] and service["ImageName"] == SERVICE_IMAGE
    assert service["HostConfig"]["PortBindings"]["3000/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]

    served = local_stores(stack_env) / "headliner" / "deployed" / "jukebox-v1.onnx"
    _, expected = OnnxPredictor(served.read_bytes()).predict_matrix(np.array([SONG_ROW]))
    answer = httpx.post(f"http://127.0.0.1:{port}/v2/models/jukebox/infer", json=v2_request(), trust_env=False)
    assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    probabilities = answer.json()["outputs"][0]
    np.testing.assert_allclose(np.array(probabilities["data"]), expected[0], rtol=0, atol=PARITY_TOLERANCE)
    card = httpx.get(f"http://127.0.0.1:{port}/model-card", trust_env=False)  # written beside the model file
    assert card.status_code == 200 and "version 1" in card.text and "sha256" in card.text.lower(), card.text[:500]

    # ZenML's own command deletes the service: SIGTERM, the log flushed to the local stores, the container gone
    uuid = run_python(stack_env, "from zenml.client import Client; print(Client().list_services().items[0].id)")
    # The project is this module's source root as it is for a user whose ZenML repository is the checkout
    # (`zenml` runs from its own bin folder: the deployer flavor's module comes from PYTHONPATH here).
    deleted = subprocess.run(
        ["zenml", "model-deployer", "models", "delete", uuid],
        env={**stack_env, "PYTHONPATH": str(PROJECT_ROOT)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert deleted.returncode == 0, deleted.stderr[-3000:]
    assert podman("container", "exists", name, check=False).returncode == 1
    log = read_inference_log(f"sqlite:///{local_stores(stack_env) / 'headliner' / 'inference_log.sqlite'}")
    assert len(log) >= 3 and (log["model_version"] == "1").all()  # the smoke test's two requests and this one


def run_python(env: dict[str, str], code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_kubernetes_manifests_name_the_images_built_here(pipeline_all, stack_env):
    """The kubernetes stack's dry run in this module's store: its Deployment runs the service image the
    containers stack built and ran, and its Jobs the steps image the pipelines ran, under the cluster's registry."""
    created = subprocess.run(
        [sys.executable, "-c", CREATE_SECRETS], env=stack_env, cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert created.returncode == 0, created.stderr[-3000:]
    imported = run_cli(["stack-import", "stack_configs/kubernetes.yaml"], stack_env)
    assert imported.returncode == 0, imported.stderr[-3000:]
    rendered = run_cli(["kubernetes-manifests", "--version", "1"], stack_env)
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    service, *steps = images_listed(rendered)
    assert service == f"{CLUSTER_REGISTRY}/{SERVICE_IMAGE.removeprefix('localhost/')}"
    local_steps = [image.removeprefix(f"{CLUSTER_REGISTRY}/") for image in steps]
    assert {"zenml:training-orchestrator", "zenml:deployment-orchestrator"} <= set(local_steps)
    built_here = [name for name in local_steps if podman("image", "exists", name, check=False).returncode == 0]
    assert {"zenml:training-orchestrator", "zenml:deployment-orchestrator"} <= set(built_here), built_here
    # every pipeline's steps image is one image: the same Dockerfile and context, so the same layers
    ids = {podman("image", "inspect", "--format", "{{.Id}}", name).stdout.strip() for name in built_here}
    assert len(ids) == 1
