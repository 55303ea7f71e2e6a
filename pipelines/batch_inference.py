"""The batch inference pipeline: a CSV or Parquet file of examples -> the top-k predictions of a
registered model version, as an artifact and a file, with every chunk recorded in the inference log."""

from zenml import pipeline
from zenml.client import Client
from zenml.enums import ExecutionMode

from headliner.labels import Artifact
from headliner.spec import UseCaseSpec
from pipelines.docker_settings import docker_settings
from steps.data import ingest_data
from steps.deployment import score_batch


@pipeline(
    name="batch_inference",
    execution_mode=ExecutionMode.FAIL_FAST,
    enable_cache=False,
    settings={"docker": docker_settings()},
)
def batch_inference(spec: UseCaseSpec, data: str, version: str = "latest", output: str | None = None) -> None:
    """Scores `data` (path, URL or s3:// URI) with version `version` (a number, 'latest' or a stage) of
    the model `spec.name`; `output` is the predictions file (.csv, .csv.gz, ... or .parquet; None:
    outputs/batch_predictions_<model>_v<version>_<time>.csv in the working directory).

    The version's `onnx_model` artifact is the scoring step's input, so the run's lineage shows which
    model version scored the file. ZenML evaluates Client calls in a pipeline when the step runs, so a
    scheduled run scores with the version that is 'latest' or in the stage at that time; check that the
    version exists before running with `headliner.model.versions.find_model_version` (a clear error).
    """
    onnx_model = Client().get_model_version(spec.name, version).get_artifact(Artifact.ONNX_MODEL)
    batch_data = ingest_data(spec=spec, data=data)
    score_batch(onnx_model, batch_data, source=data, output=output)
