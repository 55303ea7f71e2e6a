"""The batch inference pipeline on the latest registered jukebox version in the session's isolated store:
a file scored chunk by chunk with the version's ONNX model, the predictions and the report as artifacts,
each chunk in the inference log; an unknown version is refused before and during a run."""

import pandas as pd
import pytest

from headliner.data.sources import load_raw_data
from headliner.errors import HeadlinerError
from headliner.labels import Artifact, Step
from headliner.model.versions import onnx_model_artifact
from headliner.serving.inference_log import read_inference_log


def test_the_pipeline_scores_a_file_with_the_latest_registered_version(
    jukebox_training, local_stack, jukebox_spec, tmp_path, monkeypatch
):
    from pipelines.batch_inference import batch_inference

    log_file = tmp_path / "inference_log.sqlite"
    monkeypatch.setenv("HEADLINER_INFERENCE_LOG", str(log_file))
    data = tmp_path / "songs.csv"
    load_raw_data(jukebox_spec, rows=2000).to_csv(data, index=False)
    output = tmp_path / "predictions" / "songs.parquet"
    run_config = tmp_path / "batch.yaml"
    run_config.write_text("steps:\n  score_batch:\n    parameters:\n      chunk_rows: 500\n")

    run = batch_inference.with_options(config_path=str(run_config))(
        spec=jukebox_spec, data=str(data), version="latest", output=str(output)
    )

    number, onnx_model = onnx_model_artifact("jukebox", "latest")
    step = run.steps[Step.SCORE_BATCH]
    assert step.inputs[Artifact.ONNX_MODEL][0].id == onnx_model.id
    predictions = step.outputs[Artifact.BATCH_PREDICTIONS][0].load()
    report = step.outputs[Artifact.BATCH_REPORT][0].load()
    assert len(predictions) == report.rows_in == 2000
    assert report.rows_rejected == predictions["error"].notna().sum() > 0
    assert report.rows_scored == 2000 - report.rows_rejected
    assert (report.model_name, report.model_version, report.source) == ("jukebox", str(number), str(data))
    assert report.output_file == str(output)
    pd.testing.assert_frame_equal(pd.read_parquet(output), predictions)
    logged = read_inference_log(f"sqlite:///{log_file}", endpoint="batch")
    assert list(logged["request_id"]) == [f"{run.id}-{chunk:05d}" for chunk in range(4)]
    assert report.chunks == report.log_records == 4
    assert logged["rows"].sum() == report.rows_scored


def test_an_unknown_version_is_refused_before_and_during_a_run(jukebox_training, local_stack, jukebox_spec, tmp_path):
    from pipelines.batch_inference import batch_inference

    with pytest.raises(HeadlinerError, match="model 'jukebox' has no version '999'"):
        onnx_model_artifact("jukebox", "999")
    data = tmp_path / "songs.csv"
    load_raw_data(jukebox_spec, rows=100).to_csv(data, index=False)
    with pytest.raises(RuntimeError, match="No model version found for model `jukebox` with version identifier `999`"):
        batch_inference(spec=jukebox_spec, data=str(data), version="999")
