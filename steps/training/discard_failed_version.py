"""Failure hook of the steps that create and complete a model version (packaging, registration): a run
that fails there leaves no half-registered version behind (e.g. a ZenML version without its MLflow mirror
when the MLflow server stopped mid-run)."""

from zenml import get_step_context
from zenml.logger import get_logger

from headliner.model.registration import discard_model_version

logger = get_logger(__name__)


def discard_failed_version(exception: BaseException) -> None:
    model_version = get_step_context().model
    removed = discard_model_version(model_version.name, model_version.number)
    logger.error(
        "'%s' version %s was not registered (%s: %s); removed: %s",
        model_version.name,
        model_version.number,
        type(exception).__name__,
        exception,
        ", ".join(removed),
    )
