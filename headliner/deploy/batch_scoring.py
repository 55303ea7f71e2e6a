"""Batch scoring from the pipeline's side: a table scored by `score_frame` (headliner/serving/batch_scoring.py)
with its own inference log, and the predictions written to a file or an s3:// URI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd

from headliner.data.sources import is_remote, table_format
from headliner.model.onnx_packaging import OnnxPredictor
from headliner.serving.batch_scoring import DEFAULT_CHUNK_ROWS, BatchScoringReport, score_frame
from headliner.serving.inference_log import InferenceLog


def default_output_path(model_name: str, model_version: str) -> str:
    """outputs/batch_predictions_<model>_v<version>_<local time>.csv under the working directory."""
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    return str(Path.cwd() / "outputs" / f"batch_predictions_{model_name}_v{model_version}_{stamp}.csv")


def write_predictions(predictions: pd.DataFrame, path: str) -> None:
    """CSV (optionally compressed, by suffix) or Parquet by the name's suffix; a path, or a URI fsspec
    can write (s3://...)."""
    fmt = table_format(path)
    if not is_remote(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        predictions.to_parquet(path, index=False)
    else:
        predictions.to_csv(path, index=False)


def score_to_file(
    predictor: OnnxPredictor,
    frame: pd.DataFrame,
    output_path: str | None,
    log_url: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
    batch_id: str | None = None,
    source: str = "batch data",
) -> tuple[pd.DataFrame, BatchScoringReport]:
    """`score_frame` with the inference log at `log_url` (closed at the end, so every record is
    written), then the predictions written to `output_path` (default: `default_output_path`)."""
    output_path = output_path or default_output_path(predictor.model_name, predictor.model_version)
    table_format(output_path)  # an unknown format fails before any scoring
    log = InferenceLog(log_url, predictor.feature_names)
    try:
        predictions, report = score_frame(predictor, frame, chunk_rows, progress, log, batch_id, source)
    finally:
        unwritten = log.close()
    write_predictions(predictions, output_path)
    return predictions, report.model_copy(
        update={"output_file": output_path, "log_records": report.log_records - unwritten}
    )
