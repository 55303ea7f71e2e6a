"""No cluster is reachable here, so the Kubernetes orchestrator is checked on paper: this renders, without
a cluster, Docker or a ZenML server, the objects ZenML's Kubernetes orchestrator would create for one run
of each of the project's pipelines, and validates them against the Kubernetes schemas.

How each object is made mirrors ZenML 0.98 (zenml.integrations.kubernetes), with its own builders
(`build_pod_manifest`, `build_job_manifest`, `apply_default_resource_requests`, `build_secret_manifest`)
and the stack's settings:
- the pipeline is compiled by ZenML's `Compiler` against the stack (not the active one), as a run would;
- the image names are those ZenML's build would push (`<registry uri>/zenml:<pipeline>-orchestrator`, or
  a step's own build), named by ZenML's image builder without building anything;
- `KubernetesOrchestrator.submit_pipeline` creates the token Secret (`pass_zenml_token_as_secret`) and
  the orchestrator Job; the orchestrator pod's entrypoint then creates one Job per step.
- With a `Schedule(cron_expression=...)` (the monitoring pipeline's, `monitoring.schedule` of the spec), it
  creates the Secret and a CronJob whose job template is the orchestrator Job, without a run: each scheduled
  run creates its own step Jobs, those of a one-off run.
What only exists at submission is stood in for: the snapshot and run IDs (fresh UUIDs), the random
part of the job names, the ZenML API token (TOKEN_PLACEHOLDER), the orchestrator pod's name. The step
Jobs' ownerReferences (the orchestrator pod's owner, read from the cluster) are left out. The pods'
ZenML environment is the one a client logged in to the ZenML server at `zenml_url` would pass.
"""

from __future__ import annotations

import random
import string
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID, uuid4

import yaml
from kubernetes.client import ApiClient, V1CronJob, V1Job
from zenml.client import Client
from zenml.config.compiler import Compiler
from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
from zenml.config.schedule import Schedule
from zenml.constants import (
    DYNAMIC_PIPELINE_RUN_FAILED_EXIT_CODE,
    ENV_ZENML_ACTIVE_STACK_ID,
    ENV_ZENML_BACKUP_SECRETS_STORE_PREFIX,
    ENV_ZENML_SECRETS_STORE_PREFIX,
    ENV_ZENML_STORE_PREFIX,
    LINUX_GID_CLAIM_KEY,
    LINUX_UID_CLAIM_KEY,
    ORCHESTRATOR_DOCKER_IMAGE_KEY,
)
from zenml.container_engines.base import ContainerEngine
from zenml.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
from zenml.exceptions import StackValidationError
from zenml.integrations.kubernetes import kube_utils
from zenml.integrations.kubernetes.constants import (
    ENV_ZENML_KUBERNETES_RUN_ID,
    KUBERNETES_SECRET_TOKEN_KEY_NAME,
    ORCHESTRATOR_ANNOTATION_KEY,
    STEP_NAME_ANNOTATION_KEY,
    WORKSPACE_USER_ID_ANNOTATION_KEY,
)
from zenml.integrations.kubernetes.flavors.kubernetes_orchestrator_flavor import KubernetesOrchestratorSettings
from zenml.integrations.kubernetes.manifest_utils import (
    build_cron_job_manifest,
    build_job_manifest,
    build_pod_manifest,
    build_secret_manifest,
    job_template_manifest_from_job,
    pod_template_manifest_from_pod,
)
from zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator import KubernetesOrchestrator
from zenml.integrations.kubernetes.orchestrators.kubernetes_orchestrator_entrypoint_configuration import (
    KubernetesOrchestratorEntrypointConfiguration,
)
from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings
from zenml.models import BuildItem, PipelineBuildBase, PipelineSnapshotBase
from zenml.orchestrators.utils import get_config_environment_vars
from zenml.pipelines.build_utils import prepare_pipeline_build, prune_snapshot_before_build
from zenml.pipelines.pipeline_definition import Pipeline
from zenml.stack import Stack
from zenml.utils.env_utils import get_runtime_environment
from zenml.utils.pipeline_docker_image_builder import PipelineDockerImageBuilder
from zenml.utils.string_utils import format_name_template
from zenml.utils.time_utils import utc_now
from zenml.zen_stores.rest_zen_store import RestZenStoreConfiguration

from headliner.errors import StackSetupError
from headliner.stacks.kubernetes.manifests import validate_manifests

if TYPE_CHECKING:
    from zenml.config.step_configurations import Step

    from headliner.spec import UseCaseSpec

TOKEN_PLACEHOLDER = "<ZenML API token issued at submission>"
TOKEN_ENV = f"{ENV_ZENML_STORE_PREFIX}API_TOKEN"
# Run parameters that only reach the snapshot (no manifest shows them): the file to score, the log to read.
BATCH_DATA_STAND_IN = "batch_input.csv"
INFERENCE_LOG_STAND_IN = "postgresql://inference-log"

# The pod failure policies ZenML 0.98 writes inline: KubernetesOrchestrator._submit_orchestrator_job for
# the orchestrator Job, the orchestrator entrypoint for a step Job.
ORCHESTRATOR_POD_FAILURE_POLICY: dict[str, Any] = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {
            "action": "FailJob",
            "onExitCodes": {
                "containerName": "main",
                "operator": "In",
                "values": [DYNAMIC_PIPELINE_RUN_FAILED_EXIT_CODE],
            },
        },
        {"action": "Count", "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]}},
    ]
}
STEP_POD_FAILURE_POLICY: dict[str, Any] = {
    "rules": [
        {"action": "Count", "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]
}


def load_stack(name: str) -> Stack:
    """The registered stack `name`, its components instantiated (secret references stay unresolved)."""
    return Stack.from_model(Client().get_stack(name))


def project_pipelines(
    spec: UseCaseSpec, version: str, run_config: Path
) -> list[tuple[Pipeline, dict[str, Any], Path | None]]:
    """Each pipeline of the project with the parameters run.py passes (for `spec`, model version `version`)
    and its run config file. The model version is resolved when a step runs, so none need exist."""
    from pipelines.batch_inference import batch_inference
    from pipelines.data_engineering import data_engineering
    from pipelines.deployment import deployment
    from pipelines.monitoring import monitoring
    from pipelines.rollout_report import rollout_report
    from pipelines.training import training

    return [
        (data_engineering, {"spec": spec}, None),
        (training, {"spec": spec}, run_config),
        (deployment, {"spec": spec, "version": version}, None),
        (batch_inference, {"spec": spec, "data": BATCH_DATA_STAND_IN, "version": version}, None),
        (monitoring, _monitoring_parameters(spec, version, scheduled=False), None),
        (rollout_report, {"spec": spec, "log_url": INFERENCE_LOG_STAND_IN}, None),
    ]


def scheduled_monitoring(spec: UseCaseSpec, version: str) -> tuple[Pipeline, dict[str, Any], Schedule]:
    """The monitoring pipeline as a Kubernetes stack runs it on the spec's `monitoring.schedule`: ZenML's
    Schedule, and a CronJob that starts no run while the previous one still runs (concurrencyPolicy Forbid,
    as `monitor --every` locally). Submitting it, `pipeline.with_options(schedule=schedule)(**parameters)`,
    creates the CronJob; this module renders it without a cluster."""
    from pipelines.monitoring import monitoring

    schedule = Schedule(name=f"{spec.name}-monitoring", cron_expression=spec.monitoring.schedule)
    no_overlap = KubernetesOrchestratorSettings(concurrency_policy="Forbid")
    pipeline = monitoring.with_options(settings={"orchestrator.kubernetes": no_overlap})
    return pipeline, _monitoring_parameters(spec, version, scheduled=True), schedule


def _monitoring_parameters(spec: UseCaseSpec, version: str, scheduled: bool) -> dict[str, Any]:
    """The monitoring pipeline's parameters: a run as run.py starts it judges every logged request, a
    scheduled run the spec's `monitoring.scheduled_window` before it starts."""
    from headliner.monitoring.window import WindowSelection, parse_duration

    within = parse_duration(spec.monitoring.scheduled_window) if scheduled else None
    return {"spec": spec, "version": version, "selection": WindowSelection(within=within)}


@cache
def _activate_integrations() -> None:
    """ZenML activates the installed integrations (their materializers) before compiling; once is enough."""
    from zenml.integrations.registry import integration_registry

    integration_registry.activate_integrations()


def compile_snapshot(
    pipeline: Pipeline, parameters: dict[str, Any], stack: Stack, config_path: Path | None = None
) -> PipelineSnapshotBase:
    """The pipeline compiled for `stack` as `pipeline.with_options(config_path=...)(**parameters)` would be."""
    _activate_integrations()
    prepared = pipeline.with_options(config_path=str(config_path)) if config_path else pipeline.copy()
    prepared.prepare(**parameters)
    run_config = PipelineRunConfiguration.model_validate(yaml.safe_load(config_path.read_text()) if config_path else {})
    return Compiler().compile(pipeline=prepared, stack=stack, run_configuration=run_config)


def pipeline_build(snapshot: PipelineSnapshotBase, stack: Stack) -> PipelineBuildBase:
    """The images ZenML's `create_pipeline_build` would build and push for `snapshot` on `stack`, named
    as it names them; nothing is built. Builds of equal settings share one image, as in ZenML."""
    prepared = prepare_pipeline_build(
        items=stack.get_docker_builds(snapshot=prune_snapshot_before_build(snapshot)), stack=stack
    )
    images: dict[str, BuildItem] = {}
    by_checksum: dict[str, str] = {}
    for item in prepared.items:
        config = item.configuration
        if item.key in images:
            continue
        if item.settings_checksum in by_checksum:
            image = by_checksum[item.settings_checksum]
        elif config.settings.skip_build and config.settings.parent_image:  # DockerSettings requires both together
            image = config.settings.parent_image
        else:
            step_part = f"-{config.step_name}" if config.step_name else ""
            tag = config.settings.image_tag or ContainerEngine.sanitize_tag(
                f"{snapshot.pipeline_configuration.name}{step_part}-{config.key}"
            )
            image = PipelineDockerImageBuilder._get_target_image_name(config.settings, tag, stack.container_registry)
        images[item.key] = BuildItem(image=image, settings_checksum=item.settings_checksum)
        by_checksum[item.settings_checksum] = image
    return PipelineBuildBase(images=images, is_local=stack.container_registry is None, contains_code=True)


def zenml_environment(stack: Stack, zenml_url: str) -> dict[str, str]:
    """ZenML's `get_config_environment_vars()` for a client logged in to the server at `zenml_url` with
    `stack` active: the client's global config, the server's store settings and the API token."""
    environment, _ = get_config_environment_vars()
    store_prefixes = (ENV_ZENML_STORE_PREFIX, ENV_ZENML_SECRETS_STORE_PREFIX, ENV_ZENML_BACKUP_SECRETS_STORE_PREFIX)
    environment = {key: value for key, value in environment.items() if not key.startswith(store_prefixes)}
    store = RestZenStoreConfiguration(url=zenml_url).model_dump(exclude_none=True)
    environment.update({f"{ENV_ZENML_STORE_PREFIX}{key.upper()}": str(value) for key, value in store.items()})
    environment[ENV_ZENML_ACTIVE_STACK_ID] = str(stack.id)
    environment[TOKEN_ENV] = TOKEN_PLACEHOLDER
    return environment


def _job_name(settings: KubernetesOrchestratorSettings, *parts: str) -> str:
    """ZenML's job name: the prefix, 8 random hex digits, then the parts, as a DNS label."""
    random_part = "".join(random.choices("0123456789abcdef", k=8))
    return kube_utils.sanitize_label(f"{settings.job_name_prefix or ''}-{random_part}-{'-'.join(parts)}")


def _settings(orchestrator: KubernetesOrchestrator, of: PipelineSnapshotBase | Step) -> KubernetesOrchestratorSettings:
    # ZenML types get_settings for any component; it returns an instance of the orchestrator's settings_class
    return cast(KubernetesOrchestratorSettings, orchestrator.get_settings(of))


def _token_env(
    orchestrator: KubernetesOrchestrator,
    environment: dict[str, str],
    pod_settings: KubernetesPodSettings,
    snapshot_id: UUID,
) -> None:
    """With `pass_zenml_token_as_secret`, the token leaves the plain env for a secretKeyRef."""
    if orchestrator.config.pass_zenml_token_as_secret:
        environment.pop(TOKEN_ENV)
        secret_ref = {"name": orchestrator.get_token_secret_name(snapshot_id), "key": KUBERNETES_SECRET_TOKEN_KEY_NAME}
        pod_settings.env.append({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": secret_ref}})


def _batch_dict(job: V1Job | V1CronJob, namespace: str) -> dict[str, Any]:
    """A plain manifest, with what the API call adds: kind, apiVersion and the namespace it posts to.

    A pod failure policy condition without `status` is given "True": the API server defaults it so, but
    the published schema (which `validate_manifests` checks) requires it, and ZenML leaves it out."""
    job.api_version, job.metadata.namespace = "batch/v1", namespace
    job.kind = "CronJob" if isinstance(job, V1CronJob) else "Job"
    manifest: dict[str, Any] = ApiClient().sanitize_for_serialization(job)
    job_spec = manifest["spec"]["jobTemplate"]["spec"] if job.kind == "CronJob" else manifest["spec"]
    for rule in job_spec.get("podFailurePolicy", {}).get("rules", []):
        for condition in rule.get("onPodConditions", []):
            condition.setdefault("status", "True")
    return manifest


def render_run(
    snapshot: PipelineSnapshotBase, stack: Stack, zenml_url: str, schedule: Schedule | None = None
) -> list[dict[str, Any]]:
    """What one run of the compiled `snapshot` creates on `stack`'s Kubernetes orchestrator, in order: the
    token Secret (if passed as a secret), the orchestrator Job, then one Job per step. With a `schedule`,
    what submitting it creates: the Secret and a CronJob of the orchestrator Job (no run yet, no step Job)."""
    orchestrator = stack.orchestrator
    if not isinstance(orchestrator, KubernetesOrchestrator):
        raise StackSetupError(
            f"stack '{stack.name}' runs pipelines on a '{orchestrator.flavor}' orchestrator, not 'kubernetes'"
        )
    if snapshot.is_dynamic:
        raise StackSetupError(
            f"pipeline '{snapshot.pipeline_configuration.name}' is dynamic: its steps are only known when it runs"
        )
    if schedule is not None and not schedule.cron_expression:
        raise StackSetupError(
            f"the Kubernetes orchestrator schedules pipeline '{snapshot.pipeline_configuration.name}' only with a "
            "cron expression: Schedule(cron_expression=...)"
        )
    namespace = orchestrator.config.kubernetes_namespace
    pipeline_name = snapshot.pipeline_configuration.name
    snapshot_id, project_id = uuid4(), Client().active_project.id
    run_id = None if schedule else uuid4()  # a scheduled submission makes no placeholder run
    build = pipeline_build(snapshot, stack)
    user = Client().active_user
    user_annotation = {WORKSPACE_USER_ID_ANNOTATION_KEY: str(user.id)}
    run_name = format_name_template(
        snapshot.run_name_template,
        substitutions=snapshot.pipeline_configuration.finalize_substitutions(start_time=utc_now()),
    )
    labels = {
        "project_id": kube_utils.sanitize_label_value(str(project_id)),
        "pipeline": kube_utils.sanitize_label_value(pipeline_name),
    }
    if run_id:
        labels["run_id"] = kube_utils.sanitize_label_value(str(run_id))
        labels["run_name"] = kube_utils.sanitize_label_value(run_name)

    def job(
        name: str,
        image: str,
        command: list[str],
        args: list[str],
        environment: dict[str, str],
        job_labels: dict[str, str],
        annotations: dict[str, str],
        settings: KubernetesOrchestratorSettings,
        pod_settings: KubernetesPodSettings,
        service_account: str | None,
        privileged: bool,
        backoff_limit: int,
        pod_failure_policy: dict[str, Any],
    ) -> V1Job:
        pod = build_pod_manifest(
            pod_name=None,
            image_name=image,
            command=command,
            args=args,
            privileged=privileged,
            pod_settings=pod_settings,
            service_account_name=service_account,
            env=environment,
            labels=job_labels,
            annotations=user_annotation,
            mount_local_stores=orchestrator.config.is_local,
            termination_grace_period_seconds=settings.pod_stop_grace_period,
            run_as_user=user.oidc_claims.get(LINUX_UID_CLAIM_KEY),
            run_as_group=user.oidc_claims.get(LINUX_GID_CLAIM_KEY),
        )
        return build_job_manifest(
            job_name=name,
            pod_template=pod_template_manifest_from_pod(pod),
            backoff_limit=backoff_limit,
            ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
            active_deadline_seconds=settings.active_deadline_seconds,
            pod_failure_policy=settings.pod_failure_policy or pod_failure_policy,
            labels=job_labels,
            annotations=annotations,
        )

    manifests: list[dict[str, Any]] = []
    if orchestrator.config.pass_zenml_token_as_secret:
        secret = build_secret_manifest(
            orchestrator.get_token_secret_name(snapshot_id),
            {KUBERNETES_SECRET_TOKEN_KEY_NAME: TOKEN_PLACEHOLDER},
            namespace,
        )
        manifests.append(secret)

    # KubernetesOrchestrator.submit_pipeline -> _submit_orchestrator_job -> _prepare_job_manifest
    settings = _settings(orchestrator, snapshot)
    if not settings.service_account_name:
        raise StackSetupError(
            f"orchestrator '{orchestrator.name}' names no service_account_name: "
            "ZenML would create 'zenml-service-account' with the 'edit' role in the cluster at submission; name one"
        )
    pod_settings = settings.orchestrator_pod_settings or KubernetesPodSettings()
    environment = zenml_environment(stack, zenml_url)
    _token_env(orchestrator, environment, pod_settings, snapshot_id)
    try:
        image = build.get_image(ORCHESTRATOR_DOCKER_IMAGE_KEY)
    except KeyError:  # every step has its own build: ZenML takes the first step's image
        image = build.get_image(ORCHESTRATOR_DOCKER_IMAGE_KEY, step=next(iter(snapshot.step_configurations)))
    orchestrator_job = _job_name(settings, pipeline_name)
    submitted = job(
        orchestrator_job,
        image,
        KubernetesOrchestratorEntrypointConfiguration.get_entrypoint_command(),
        KubernetesOrchestratorEntrypointConfiguration.get_entrypoint_arguments(snapshot_id=snapshot_id, run_id=run_id),
        environment,
        labels,
        {ORCHESTRATOR_ANNOTATION_KEY: str(orchestrator.id), **user_annotation},
        settings,
        kube_utils.apply_default_resource_requests(memory="400Mi", cpu="100m", pod_settings=pod_settings),
        settings.service_account_name,
        False,
        settings.orchestrator_job_backoff_limit,
        ORCHESTRATOR_POD_FAILURE_POLICY,
    )
    if schedule is not None:
        assert schedule.cron_expression is not None  # refused above
        cron_job = build_cron_job_manifest(
            cron_expression=schedule.cron_expression,
            job_template=job_template_manifest_from_job(submitted),
            successful_jobs_history_limit=settings.successful_jobs_history_limit,
            failed_jobs_history_limit=settings.failed_jobs_history_limit,
            concurrency_policy=settings.concurrency_policy,
            starting_deadline_seconds=settings.starting_deadline_seconds,
        )
        return [*manifests, _batch_dict(cron_job, namespace)]
    manifests.append(_batch_dict(submitted, namespace))

    # The orchestrator pod's entrypoint (kubernetes_orchestrator_entrypoint.main -> start_step_job)
    shared_environment = zenml_environment(stack, zenml_url)
    # The orchestrator pod's name, which Kubernetes picks: the Job's name and 5 random characters.
    shared_environment[ENV_ZENML_KUBERNETES_RUN_ID] = (
        f"{orchestrator_job}-{''.join(random.choices(string.ascii_lowercase + string.digits, k=5))}"
    )
    for step_name, step in snapshot.step_configurations.items():
        step_settings = _settings(orchestrator, step)
        step_environment = {**shared_environment, **get_runtime_environment(config=step.config, stack=stack)}
        step_pod_settings = kube_utils.apply_default_resource_requests(
            memory="400Mi", pod_settings=step_settings.pod_settings
        )
        _token_env(orchestrator, step_environment, step_pod_settings, snapshot_id)
        retries = step.config.retry.max_retries if step.config.retry else 0
        manifests.append(
            _batch_dict(
                job(
                    _job_name(step_settings, step_name, pipeline_name),
                    build.get_image(ORCHESTRATOR_DOCKER_IMAGE_KEY, step=step_name),
                    StepEntrypointConfiguration.get_entrypoint_command(),
                    StepEntrypointConfiguration.get_entrypoint_arguments(step_name=step_name, snapshot_id=snapshot_id),
                    step_environment,
                    {**labels, "step_name": kube_utils.sanitize_label_value(step_name)},
                    {STEP_NAME_ANNOTATION_KEY: step_name, **user_annotation},
                    step_settings,
                    step_pod_settings,
                    step_settings.step_pod_service_account_name or step_settings.service_account_name,
                    step_settings.privileged,
                    retries + step_settings.backoff_limit_margin,
                    STEP_POD_FAILURE_POLICY,
                ),
                namespace,
            )
        )
    return manifests


def orchestrator_manifests(
    stack: Stack, spec: UseCaseSpec, version: str, zenml_url: str, run_config: Path
) -> dict[str, list[dict[str, Any]]]:
    """For each pipeline of the project (by name): the objects one run creates on `stack`, validated
    against the Kubernetes schemas (ValueError naming the pipeline and the field otherwise).
    StackSetupError: a pipeline cannot run on `stack` (not a Kubernetes orchestrator, a missing component)."""
    return {
        pipeline.name: _validated_run(pipeline, parameters, config_path, stack, zenml_url)
        for pipeline, parameters, config_path in project_pipelines(spec, version, run_config)
    }


def scheduled_monitoring_manifests(
    stack: Stack, spec: UseCaseSpec, version: str, zenml_url: str
) -> list[dict[str, Any]]:
    """What submitting `scheduled_monitoring` creates on `stack` (the token Secret, the CronJob), validated."""
    pipeline, parameters, schedule = scheduled_monitoring(spec, version)
    return _validated_run(pipeline, parameters, None, stack, zenml_url, schedule)


def _validated_run(
    pipeline: Pipeline,
    parameters: dict[str, Any],
    config_path: Path | None,
    stack: Stack,
    zenml_url: str,
    schedule: Schedule | None = None,
) -> list[dict[str, Any]]:
    try:
        snapshot = compile_snapshot(pipeline, parameters, stack, config_path)
    except StackValidationError as exc:
        raise StackSetupError(f"pipeline '{pipeline.name}' cannot run on stack '{stack.name}': {exc}") from None
    manifests = render_run(snapshot, stack, zenml_url, schedule)
    try:
        validate_manifests(manifests)
    except ValueError as exc:
        raise ValueError(f"pipeline '{pipeline.name}': {exc}") from None
    return manifests
