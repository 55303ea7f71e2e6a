"""The rollout report pipeline: the inference log of a model's rollout -> per-variant requests, latency,
live accuracy and the versions' top-1 agreement, as the `rollout_report` artifact."""

from datetime import datetime

from zenml import pipeline
from zenml.enums import ExecutionMode

from headliner.spec import UseCaseSpec
from pipelines.docker_settings import docker_settings
from steps.deployment import report_rollout


@pipeline(
    name="rollout_report",
    execution_mode=ExecutionMode.FAIL_FAST,
    enable_cache=False,
    settings={"docker": docker_settings()},
)
def rollout_report(spec: UseCaseSpec, log_url: str, since: datetime | None = None, policy: str | None = None) -> None:
    report_rollout(spec=spec, log_url=log_url, since=since, policy=policy)
