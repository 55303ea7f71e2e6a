"""Step: the rollout report (per variant: requests, latency, live accuracy; top-1 agreement) from the inference log."""

from datetime import datetime
from typing import Annotated

from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.serving.rollout_report import RolloutReport, rollout_report
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def report_rollout(
    spec: UseCaseSpec, log_url: str, since: datetime | None = None, policy: str | None = None
) -> Annotated[RolloutReport, Artifact.ROLLOUT_REPORT]:
    """Never cached: the log grows. Versions are loaded from the registry for the agreement figure."""
    from headliner.model.versions import onnx_model_bytes

    return rollout_report(log_url, spec.name, lambda version: onnx_model_bytes(spec.name, version)[1], since, policy)
