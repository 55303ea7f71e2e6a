"""The governance pipeline: a model version's stage and promotion history -> the `model_stage_record`
artifact, linked to that version. The promote CLI runs it after every decision, so the decisions are runs
in the ZenML dashboard (whose open-source edition has no Models page)."""

from zenml import Model, pipeline
from zenml.enums import ExecutionMode

from pipelines.docker_settings import docker_settings
from steps.governance import record_model_stage


@pipeline(
    name="governance",
    execution_mode=ExecutionMode.FAIL_FAST,
    enable_cache=False,
    settings={"docker": docker_settings()},
)
def governance(model: str, version: int) -> None:
    record_model_stage.with_options(model=Model(name=model, version=version))(model=model, version=version)
