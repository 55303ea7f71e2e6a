"""The `kubernetes` stack on paper (no cluster is reachable): the three stack files import, the model
deployer's and the Kubernetes orchestrator's manifests (the monitoring schedule's CronJob included)
validate against the Kubernetes schemas and carry the stack's settings, the model deployer's dry run
records the service it would run, and `run.py stack-import` / `kubernetes-manifests` behave, errors
included.

In-process tests import into the session's store without activating anything; the CLI tests use a
ZenML config of their own."""

import base64
import subprocess
import sys
from copy import deepcopy

import pytest
import yaml

from headliner.deploy.service_image import source_tag
from headliner.errors import StackSetupError
from headliner.spec import PROJECT_ROOT
from headliner.stacks.kubernetes.manifests import ServingDeploymentSettings, validate_manifests
from tests.helpers.cli import run_cli
from tests.helpers.deployment import deployer_component, deployment_request
from tests.helpers.kubernetes import CREATE_SECRETS, SECRETS, images_listed

STACK_FILES = {name: PROJECT_ROOT / "stack_configs" / f"{name}.yaml" for name in ("local", "servers", "kubernetes")}
KUBERNETES = yaml.safe_load(STACK_FILES["kubernetes"].read_text())["components"]
ORCHESTRATOR = KUBERNETES["orchestrator"]["configuration"]
DEPLOYER = KUBERNETES["model_deployer"]
RUN_CONFIG = PROJECT_ROOT / "configs" / "runs" / "training.yaml"
ZENML_URL = DEPLOYER["configuration"]["zenml_server_url"]  # the server the pods talk to
COUNT_COMPONENTS = (
    "from zenml.client import Client\n"
    "print(Client().list_stack_components(name='contains:headliner_kubernetes').total)\n"
)


@pytest.fixture(scope="module")
def client():
    """The session's store with the secrets the stack files name and the three stacks imported: local and
    servers by the project's import, kubernetes by ZenML's own CLI after registering the project's flavor,
    as the file's header says. The active stack is left alone."""
    from click.testing import CliRunner
    from zenml.cli.cli import cli as zenml_cli

    from headliner.stacks.setup import import_stack_file, project_client

    client = project_client()
    active = client.active_stack_model.name
    for name, values in SECRETS.items():
        if not client.list_secrets(name=name).total:
            client.create_secret(name, values)
    for name in ("local", "servers"):
        assert import_stack_file(STACK_FILES[name], activate=False) == name
    if not client.list_stacks(name="kubernetes").total:
        for args in (
            ["model-deployer", "flavor", "register", DEPLOYER["flavor_source"]],
            ["stack", "import", "kubernetes", "-f", str(STACK_FILES["kubernetes"])],
        ):
            result = CliRunner().invoke(zenml_cli, args)
            assert result.exit_code == 0, result.output
    assert client.active_stack_model.name == active
    return client


@pytest.mark.parametrize("name", sorted(STACK_FILES))
def test_stack_file_imports_with_its_components_and_flavors(client, name):
    expected = {
        type_name: (config["name"], config["flavor"])
        for type_name, config in yaml.safe_load(STACK_FILES[name].read_text())["components"].items()
    }
    stack = client.get_stack(name)
    imported = {component_type.value: (c.name, c.flavor_name) for component_type, (c,) in stack.components.items()}
    assert imported == expected


@pytest.fixture(scope="module")
def stack(client):
    from headliner.stacks.kubernetes.orchestrator_manifests import load_stack

    return load_stack("kubernetes")


@pytest.fixture(scope="module")
def serving(stack):
    from headliner.stacks.kubernetes.dry_run import deployer_manifests

    return {manifest["kind"]: manifest for manifest in deployer_manifests(stack, "jukebox", "production")}


def test_deployer_manifests_validate(serving):
    assert sorted(serving) == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    validate_manifests(list(serving.values()))
    assert {m["metadata"]["namespace"] for m in serving.values()} == {DEPLOYER["configuration"]["namespace"]}


def test_deployment_runs_the_service_image_with_resources_secrets_and_probes(serving):
    settings = ServingDeploymentSettings(
        **{k: v for k, v in DEPLOYER["configuration"].items() if k in ServingDeploymentSettings.model_fields}
    )
    (container,) = serving["Deployment"]["spec"]["template"]["spec"]["containers"]
    # the service image `python run.py image build --registry` tags for this checkout, in the stack's registry
    assert container["image"] == f"{DEPLOYER['configuration']['image_repository']}:{source_tag()}"
    assert container["resources"] == {
        "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
        "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit},
    }
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert secret_refs == {
        "ZENML_STORE_API_KEY": {"name": DEPLOYER["configuration"]["zenml_api_key_secret"], "key": "api-key"},
        "HEADLINER_INFERENCE_LOG": {"name": DEPLOYER["configuration"]["inference_log_secret"], "key": "url"},
        "HEADLINER_API_TOKEN": {"name": DEPLOYER["configuration"]["api_token_secret"], "key": "token"},
    }
    assert not any("value" in e and ("KEY" in e["name"] or "TOKEN" in e["name"]) for e in container["env"])
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["securityContext"]["runAsNonRoot"] is True
    assert serving["Deployment"]["spec"]["replicas"] == settings.min_replicas


def test_service_autoscaler_and_disruption_budget(serving):
    (port,) = serving["Service"]["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (3000, "http")
    assert serving["Service"]["spec"]["selector"] == serving["Deployment"]["spec"]["selector"]["matchLabels"]
    settings = ServingDeploymentSettings()
    assert (
        serving["HorizontalPodAutoscaler"]["spec"]["minReplicas"],
        serving["HorizontalPodAutoscaler"]["spec"]["maxReplicas"],
    ) == (settings.min_replicas, settings.max_replicas)
    assert (
        serving["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == serving["Deployment"]["metadata"]["name"]
    )
    assert serving["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_broken_manifests_are_rejected_naming_the_field(serving):
    wrong_type = deepcopy(serving["Deployment"])
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(
        ValueError, match=r"Deployment 'headliner-jukebox-production': spec/replicas: 'two' is not of type 'integer'"
    ):
        validate_manifests([wrong_type])
    unknown_field = deepcopy(serving["Service"])
    unknown_field["spec"]["ports"][0]["targetPrt"] = "http"
    with pytest.raises(
        ValueError, match=r"Service 'headliner-jukebox-production': spec/ports/0: .*'targetPrt' was unexpected"
    ):
        validate_manifests([unknown_field])


@pytest.fixture(scope="module")
def pipeline_runs(stack, jukebox_spec):
    from headliner.stacks.kubernetes.orchestrator_manifests import orchestrator_manifests

    return orchestrator_manifests(stack, jukebox_spec, "production", ZENML_URL, RUN_CONFIG)


def _pipeline_steps(jukebox_spec) -> dict[str, set[str]]:
    """Each project pipeline's step names, from its own definition (not the compiler)."""
    from headliner.stacks.kubernetes.orchestrator_manifests import project_pipelines

    steps = {}
    for pipeline, parameters, _ in project_pipelines(jukebox_spec, "production", RUN_CONFIG):
        prepared = pipeline.copy()
        prepared.prepare(**parameters)
        steps[pipeline.name] = set(prepared.invocations)
    return steps


def _pod(job: dict) -> tuple[dict, dict]:
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def test_every_pipeline_renders_a_secret_an_orchestrator_job_and_one_job_per_step(pipeline_runs, jukebox_spec):
    expected = _pipeline_steps(jukebox_spec)
    assert (
        sorted(pipeline_runs)
        == sorted(expected)
        == ["batch_inference", "data_engineering", "deployment", "monitoring", "rollout_report", "training"]
    )
    for name, manifests in pipeline_runs.items():
        validate_manifests(manifests)
        secret, orchestrator_job, *step_jobs = manifests
        assert secret["kind"] == "Secret" and {m["kind"] for m in [orchestrator_job, *step_jobs]} == {"Job"}
        assert "zenml.io/orchestrator" in orchestrator_job["metadata"]["annotations"]
        step_names = [job["metadata"]["annotations"]["zenml.io/step-name"] for job in step_jobs]
        assert len(step_names) == len(expected[name]) and set(step_names) == expected[name], name


def test_step_pods_carry_the_stack_settings(pipeline_runs):
    registry = KUBERNETES["container_registry"]["configuration"]["uri"]
    for name, (secret, orchestrator_job, *step_jobs) in pipeline_runs.items():
        token_ref = {"name": secret["metadata"]["name"], "key": "zenml_api_token"}
        for job in (orchestrator_job, *step_jobs):
            assert job["metadata"]["namespace"] == ORCHESTRATOR["kubernetes_namespace"]
            assert job["spec"]["ttlSecondsAfterFinished"] == ORCHESTRATOR["ttl_seconds_after_finished"]
            pod, container = _pod(job)
            assert pod["serviceAccountName"] == ORCHESTRATOR["service_account_name"]
            assert pod["restartPolicy"] == "Never"
            assert container["image"] == f"{registry}/zenml:{name}-orchestrator"
            env = {e["name"]: e for e in container["env"]}
            assert env["ZENML_STORE_API_TOKEN"] == {
                "name": "ZENML_STORE_API_TOKEN",
                "valueFrom": {"secretKeyRef": token_ref},
            }
            assert env["ZENML_STORE_URL"]["value"] == ZENML_URL
            assert env["ZENML_STORE_TYPE"]["value"] == "rest"
        for job in step_jobs:
            step = job["metadata"]["annotations"]["zenml.io/step-name"]
            pod, container = _pod(job)
            assert container["resources"] == ORCHESTRATOR["pod_settings"]["resources"]
            assert container["args"][-2:] == ["--step_name", step]
            assert container["command"] == ["python", "-m", "zenml.entrypoints.entrypoint"]
            assert job["metadata"]["labels"]["pipeline"] == name
        _, container = _pod(orchestrator_job)
        assert container["resources"] == ORCHESTRATOR["orchestrator_pod_settings"]["resources"]
        assert container["args"][:2] == ["--snapshot_id", secret["metadata"]["name"].removeprefix("zenml-token-")]


def test_the_token_is_only_a_placeholder_in_a_secret(pipeline_runs):
    from headliner.stacks.kubernetes.orchestrator_manifests import TOKEN_PLACEHOLDER

    for secret, *jobs in pipeline_runs.values():
        assert base64.b64decode(secret["data"]["zenml_api_token"]).decode() == TOKEN_PLACEHOLDER
        assert TOKEN_PLACEHOLDER not in yaml.safe_dump_all(jobs)


@pytest.fixture(scope="module")
def monitoring_schedule(stack, jukebox_spec):
    from headliner.stacks.kubernetes.orchestrator_manifests import scheduled_monitoring_manifests

    return scheduled_monitoring_manifests(stack, jukebox_spec, "production", ZENML_URL)


def test_the_monitoring_schedule_is_a_cron_job_of_the_orchestrator_job(
    monitoring_schedule, pipeline_runs, jukebox_spec
):
    validate_manifests(monitoring_schedule)
    secret, cron_job = monitoring_schedule
    assert (secret["kind"], cron_job["kind"], cron_job["apiVersion"]) == ("Secret", "CronJob", "batch/v1")
    assert cron_job["metadata"]["namespace"] == ORCHESTRATOR["kubernetes_namespace"]
    assert cron_job["spec"]["schedule"] == jukebox_spec.monitoring.schedule == "0 * * * *"
    assert cron_job["spec"]["concurrencyPolicy"] == "Forbid"  # no run starts while the previous one runs
    job = cron_job["spec"]["jobTemplate"]
    assert job["metadata"]["labels"]["pipeline"] == "monitoring"
    assert "run_id" not in job["metadata"]["labels"]  # each scheduled run makes its own
    assert job["spec"]["ttlSecondsAfterFinished"] == ORCHESTRATOR["ttl_seconds_after_finished"]
    pod, container = _pod(job)
    _, one_off = _pod(pipeline_runs["monitoring"][1])
    assert pod["serviceAccountName"] == ORCHESTRATOR["service_account_name"] and pod["restartPolicy"] == "Never"
    assert container["image"] == one_off["image"] == "localhost:5001/zenml:monitoring-orchestrator"
    orchestrator_entrypoint = "zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator_entrypoint"
    assert container["command"] == one_off["command"] == ["python", "-m", orchestrator_entrypoint]
    snapshot_id = secret["metadata"]["name"].removeprefix("zenml-token-")
    assert container["args"][-2:] == ["--snapshot_id", snapshot_id] and "--run_id" not in container["args"]
    assert "--run_id" in one_off["args"]
    assert container["resources"] == ORCHESTRATOR["orchestrator_pod_settings"]["resources"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ZENML_STORE_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]


def test_a_schedule_without_a_cron_expression_is_refused(stack, jukebox_spec):
    from datetime import UTC, datetime

    from zenml.config.schedule import Schedule

    from headliner.stacks.kubernetes.orchestrator_manifests import compile_snapshot, render_run, scheduled_monitoring

    pipeline, parameters, _ = scheduled_monitoring(jukebox_spec, "production")
    snapshot = compile_snapshot(pipeline, parameters, stack)
    periodic = Schedule(start_time=datetime(2026, 1, 1, tzinfo=UTC), interval_second=3600)
    with pytest.raises(
        StackSetupError,
        match=r"the Kubernetes orchestrator schedules pipeline 'monitoring' only with a cron expression",
    ):
        render_run(snapshot, stack, ZENML_URL, periodic)


def test_a_stack_without_kubernetes_is_refused(client, jukebox_spec):
    from headliner.stacks.kubernetes.dry_run import dry_run

    with pytest.raises(StackSetupError, match=r"stack 'local' has no headliner_kubernetes model deployer"):
        dry_run("local", jukebox_spec, "production", RUN_CONFIG, part="deployer")
    with pytest.raises(
        StackSetupError, match=r"stack 'local' runs pipelines on a 'local' orchestrator, not 'kubernetes'"
    ):
        dry_run("local", jukebox_spec, "production", RUN_CONFIG, part="orchestrator", zenml_url=ZENML_URL)
    with pytest.raises(StackSetupError, match=r"no stack 'nope'"):
        dry_run("nope", jukebox_spec, "production", RUN_CONFIG)


@pytest.fixture(scope="module")
def dry_run_deployer(local_stack):
    """The project's Kubernetes model deployer, built from its configuration (no stack, no cluster); its
    services' records are deleted afterwards. The session's store has the local stack active, as the
    CLI leaves it for the other tests."""
    from headliner.stacks.kubernetes.deployer import (
        FLAVOR,
        HeadlinerKubernetesModelDeployer,
        KubernetesDeployerConfig,
        KubernetesModelService,
    )

    config = KubernetesDeployerConfig(dry_run=True, namespace="serving")
    deployer = deployer_component(HeadlinerKubernetesModelDeployer, FLAVOR, config, name="k8s_dry_run")
    yield deployer
    for service in deployer.find_model_server(service_type=KubernetesModelService.SERVICE_TYPE):
        deployer.delete_model_server(service.uuid)


def test_kubernetes_dry_run_renders_and_returns_the_service_at_its_cluster_dns_name(dry_run_deployer, jukebox_spec):
    from zenml.client import Client
    from zenml.services.service import BaseDeploymentService

    from headliner.deploy.deployers import deploy
    from headliner.deploy.deployment import service_url, smoke_test_deployment
    from headliner.model.onnx_packaging import OnnxPredictor
    from headliner.stacks.kubernetes.deployer import KubernetesModelService
    from tests.helpers.models import packaged_linear_model

    service = deploy(deployment_request("3"), deployer=dry_run_deployer)
    assert isinstance(service, KubernetesModelService)
    assert service_url(service) == "http://headliner-jukebox-v3.serving.svc.cluster.local:3000"
    assert [m["kind"] for m in service.config.manifests()] == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]

    # What the smoke-test step gets: the service as ZenML's service materializer loads it from the store.
    loaded = BaseDeploymentService.from_model(Client().get_service(service.uuid))
    assert type(loaded) is KubernetesModelService and service_url(loaded) == service_url(service)
    version_3 = OnnxPredictor(packaged_linear_model(jukebox_spec, rows=8_000, version="3"))
    report = smoke_test_deployment(loaded, version_3, token=None)
    assert not report.applied and report.checks == [] and report.url == service_url(service)
    assert "dry run: not applied" in report.to_html()

    # A redeploy of the step replaces its record for the model; another version replaces the first.
    deploy(deployment_request("3"), deployer=dry_run_deployer)
    newer = deploy(deployment_request("4"), deployer=dry_run_deployer)
    names = [
        s.name
        for s in dry_run_deployer.find_model_server(
            pipeline_name="deployment", service_type=KubernetesModelService.SERVICE_TYPE
        )
    ]
    assert names == ["headliner-jukebox-v4"] and service_url(newer).startswith("http://headliner-jukebox-v4.")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, isolated_env):
    """A ZenML config of its own where `run.py stack-import` of the kubernetes stack runs twice: without the
    secrets the file names, then after creating them. Returns the env and both results."""
    folder = tmp_path_factory.mktemp("kubernetes-cli")
    (folder / "repo").mkdir()
    env = {
        **isolated_env,
        "ZENML_CONFIG_PATH": str(folder / "zenml-config"),
        "ZENML_REPOSITORY_PATH": str(folder / "repo"),
    }
    refused = run_cli(["stack-import", "stack_configs/kubernetes.yaml"], env)
    created = subprocess.run(
        [sys.executable, "-c", COUNT_COMPONENTS + CREATE_SECRETS],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert created.returncode == 0, created.stderr
    components_after_refusal = int(created.stdout.splitlines()[0])
    return env, (refused, components_after_refusal), run_cli(["stack-import", "stack_configs/kubernetes.yaml"], env)


def _error_line(result: subprocess.CompletedProcess) -> str:
    """The CLI's one error line (a fresh ZenML config also logs its own initialisation first)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    return errors[0]


def test_stack_import_command_needs_the_secrets_then_imports(cli_env):
    _, (refused, components_after_refusal), imported = cli_env
    line = _error_line(refused)
    assert line == (
        "error: stack_configs/kubernetes.yaml: headliner_kubernetes_s3_artifact_store.key refers to the ZenML secret "
        "'headliner_s3' with key 'aws_access_key_id', which does not exist; create it first: "
        "zenml secret create headliner_s3 --aws_access_key_id=..."
    )
    assert components_after_refusal == 0  # the refused import created nothing
    assert imported.returncode == 0, imported.stderr
    assert "Stack 'kubernetes' imported; activate it: zenml stack set kubernetes" in imported.stdout


def test_stack_import_command_missing_file(cli_env):
    env, _, _ = cli_env
    assert (
        _error_line(run_cli(["stack-import", "stack_configs/nowhere.yaml"], env))
        == "error: stack_configs/nowhere.yaml: no such stack file"
    )


def test_kubernetes_manifests_command(cli_env, tmp_path):
    env, _, _ = cli_env
    result = run_cli(["kubernetes-manifests", "--stage", "production", "--output", str(tmp_path)], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# model deployer: 4 objects\n")
    manifests = [m for m in yaml.safe_load_all(result.stdout) if m]
    assert len(list(tmp_path.glob("*.yaml"))) == len(manifests)
    assert (
        result.stderr.splitlines()[-1]
        == f"# {len(manifests)} objects valid against the Kubernetes 1.30 schemas; nothing was applied"
    )
    kinds = [m["kind"] for m in manifests]
    assert kinds[:4] == ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    assert kinds.count("Secret") == 7 and kinds.count("Job") == len(manifests) - 12
    assert kinds[-2:] == ["Secret", "CronJob"]  # the monitoring pipeline's schedule, last
    assert "# schedule monitoring: 2 objects" in result.stdout.splitlines()
    assert manifests[-1]["spec"]["schedule"] == "0 * * * *"
    assert manifests[0]["metadata"]["name"] == "headliner-jukebox-production"
    job_env = {e["name"]: e.get("value") for e in manifests[5]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert job_env["ZENML_STORE_URL"] == ZENML_URL  # by default, the model deployer's zenml_server_url
    # the images to push before applying: the service image this checkout builds, each pipeline's steps image
    pipelines = [line.split()[2].rstrip(":") for line in result.stdout.splitlines() if line.startswith("# pipeline ")]
    assert images_listed(result) == [
        f"localhost:5001/headliner-service:{source_tag()}",
        *(f"localhost:5001/zenml:{name}-orchestrator" for name in pipelines),
    ]
    assert len(pipelines) >= 4


def test_kubernetes_manifests_command_unknown_stack(cli_env):
    env, _, _ = cli_env
    line = _error_line(run_cli(["kubernetes-manifests", "--stack", "nope"], env))
    assert (
        line == "error: no stack 'nope' in this ZenML store; import one: "
        "python run.py stack-import stack_configs/kubernetes.yaml"
    )
