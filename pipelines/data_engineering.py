"""The data engineering pipeline: raw data -> validated, wrangled, labelled examples (with derived
time-series features when the spec has any), split."""

from zenml import pipeline
from zenml.enums import ExecutionMode
from zenml.steps.entrypoint_function_utils import StepArtifact

from headliner.data.sources import describe_source
from headliner.data.time_features import has_derived_features
from headliner.labels import Step
from headliner.spec import UseCaseSpec
from pipelines.docker_settings import docker_settings
from steps.data import derive_features, ingest_data, label_data, profile_data, split_data, validate_data, wrangle_data


def data_engineering_steps(
    spec: UseCaseSpec, data: str | None, rows: int | None
) -> tuple[StepArtifact, StepArtifact, StepArtifact, StepArtifact]:
    """The data steps, for any pipeline that starts from raw data; returns the three splits and the raw data's
    validation report (the model card reads the data's date range from it).

    A file or URL is re-read on every run (its content may change under the same name); generated
    and bundled data are cached by their parameters.
    """
    source = describe_source(spec, data, rows)
    ingest = ingest_data.with_options(enable_cache=False) if data else ingest_data
    raw_data = ingest(spec=spec, data=data, rows=rows)
    validation_report = validate_data(raw_data, spec=spec, source=source)
    # Nothing downstream starts before validation has passed.
    wrangled_data, _ = wrangle_data(raw_data, spec=spec, source=source, after=Step.VALIDATE_DATA)
    examples, _ = label_data(wrangled_data, spec=spec, source=source)
    if has_derived_features(spec):
        examples, _ = derive_features(examples, spec=spec, source=source)
    train_split, validation_split, test_split, _ = split_data(examples, spec=spec, source=source)
    profile_data(examples, spec=spec)
    return train_split, validation_split, test_split, validation_report


@pipeline(name="data_engineering", execution_mode=ExecutionMode.FAIL_FAST, settings={"docker": docker_settings()})
def data_engineering(spec: UseCaseSpec, data: str | None = None, rows: int | None = None) -> None:
    data_engineering_steps(spec, data, rows)
