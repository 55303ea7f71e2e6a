"""Step: the spec's quality gates; a miss fails the run before anything is packaged or registered."""

from typing import Annotated

from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.model.evaluation import EvaluationReport
from headliner.model.gates import QualityGateReport, enforce_gates
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def check_quality_gates(
    evaluation_report: EvaluationReport, spec: UseCaseSpec
) -> Annotated[QualityGateReport, Artifact.QUALITY_GATES]:
    return QualityGateReport(results=enforce_gates(evaluation_report, spec.evaluation.quality_gates))
