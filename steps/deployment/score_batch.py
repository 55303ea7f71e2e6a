"""Step: score a table with a model version's ONNX file, chunk by chunk behind a progress bar; the top-k
predictions become an artifact and a file, and each chunk a record of the inference log."""

import sys
from typing import Annotated

import onnx
import pandas as pd
from tqdm import tqdm
from zenml import get_step_context, step

import materializers  # noqa: F401  (registers the ONNX and report materializers)
from headliner.deploy.batch_scoring import score_to_file
from headliner.labels import Artifact
from headliner.model.onnx_packaging import OnnxPredictor
from headliner.serving.batch_scoring import DEFAULT_CHUNK_ROWS, BatchScoringReport
from headliner.serving.settings import ServingSettings


@step(enable_cache=False)
def score_batch(
    onnx_model: onnx.ModelProto,
    batch_data: pd.DataFrame,
    source: str,
    output: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[Annotated[pd.DataFrame, Artifact.BATCH_PREDICTIONS], Annotated[BatchScoringReport, Artifact.BATCH_REPORT]]:
    """Never cached: each run writes its own file and log records. The log's request ids start with the
    run's id. `output` None: outputs/batch_predictions_<model>_v<version>_<time>.csv here."""
    predictor = OnnxPredictor.from_model(onnx_model)
    description = f"{predictor.model_name} v{predictor.model_version}"
    with tqdm(
        total=len(batch_data), unit="rows", unit_scale=True, desc=description, file=sys.stderr, mininterval=1.0
    ) as bar:

        def advance(rows: int) -> None:
            bar.update(rows)

        predictions, report = score_to_file(
            predictor,
            batch_data,
            output,
            ServingSettings().inference_log_url(),
            chunk_rows,
            progress=advance,
            batch_id=str(get_step_context().pipeline_run.id),
            source=source,
        )
    return predictions, report
