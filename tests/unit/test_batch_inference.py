"""Batch scoring: a packaged model's top-k predictions over a table, chunk by chunk, with invalid rows
reported and not scored and each chunk recorded in the inference log, and the predictions file."""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from headliner.data.sources import load_raw_data, read_table
from headliner.deploy.batch_scoring import score_to_file, write_predictions
from headliner.errors import DataSourceError, DataValidationError
from headliner.model.onnx_packaging import PARITY_TOLERANCE
from headliner.serving.batch_scoring import prediction_columns, score_frame
from headliner.serving.inference_log import InferenceLog, logged_items, read_inference_log
from headliner.serving.payloads import FeatureRules

BAD_ROWS = [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def raw_songs(jukebox_spec) -> pd.DataFrame:
    """Generated rows in the raw Kaggle format (ids, names, labels and the 13 features), with the
    generator's real-world oddities: a few rows have invalid features."""
    return load_raw_data(jukebox_spec, rows=400)


@pytest.fixture(scope="module")
def valid_songs(raw_songs, predictor) -> pd.DataFrame:
    matrix = raw_songs[predictor.feature_names].astype(float).to_numpy()
    return raw_songs[~FeatureRules(predictor.feature_schema).invalid_rows(matrix)].reset_index(drop=True)


def test_predictions_are_the_models_top_k_after_the_passed_through_columns(predictor, valid_songs):
    predictions, report = score_frame(predictor, valid_songs)

    labels, probabilities = predictor.predict({name: valid_songs[name].to_numpy() for name in predictor.feature_names})
    ranked = np.argsort(-probabilities, axis=1)[:, :5]
    classes, names = np.array(predictor.classes), np.array(predictor.class_names)
    for rank in range(5):
        assert list(predictions[f"top_{rank + 1}_code"]) == list(classes[ranked[:, rank]])
        assert list(predictions[f"top_{rank + 1}_name"]) == list(names[ranked[:, rank]])
        expected = probabilities[np.arange(len(valid_songs)), ranked[:, rank]]
        np.testing.assert_array_equal(predictions[f"top_{rank + 1}_probability"].to_numpy(), expected)
    assert list(predictions["top_1_code"]) == list(labels)
    assert predictions["error"].isna().all()

    passthrough = [column for column in valid_songs.columns if column not in predictor.feature_names]
    assert passthrough[:3] == ["spotify_id", "name", "artists"]
    assert list(predictions.columns) == passthrough + prediction_columns(predictor)
    pd.testing.assert_frame_equal(predictions[passthrough], valid_songs[passthrough])
    assert (report.rows_in, report.rows_scored, report.rows_rejected, report.chunks) == (
        len(valid_songs),
        len(valid_songs),
        0,
        1,
    )
    assert (report.model_name, report.model_version, report.top_k) == ("jukebox", "1", 5)


def test_invalid_rows_are_reported_and_not_scored_while_the_others_are(predictor, valid_songs):
    frame = valid_songs.head(20).copy()
    frame = frame.astype({"danceability": object, "key": float})
    frame.loc[1, "tempo"] = 0.0
    frame.loc[2, "energy"] = np.nan
    frame.loc[3, "danceability"] = "high"
    frame.loc[4, "key"] = 2.5
    frame.loc[5, ["tempo", "energy"]] = [400.0, np.nan]

    predictions, report = score_frame(predictor, frame)

    errors = predictions["error"]
    assert errors[1] == "tempo: expected a number in [30, 250] BPM, got 0"
    assert errors[2] == "energy: missing value; expected a number in [0, 1]"
    assert errors[3] == "danceability: expected a number in [0, 1], got 'high'"
    assert errors[4] == "key: expected an integer in [0, 11], got 2.5"
    assert (
        errors[5]
        == "energy: missing value; expected a number in [0, 1]; tempo: expected a number in [30, 250] BPM, got 400"
    )
    assert predictions.loc[BAD_ROWS, prediction_columns(predictor)[:-1]].isna().all().all()
    scored_alone, _ = score_frame(predictor, frame.drop(index=BAD_ROWS))
    pd.testing.assert_frame_equal(predictions.drop(index=BAD_ROWS).reset_index(drop=True), scored_alone)

    assert (report.rows_in, report.rows_scored, report.rows_rejected) == (20, 15, 5)
    assert report.rejected_by_feature == {"energy": 2, "tempo": 2, "danceability": 1, "key": 1}
    assert [example.row for example in report.rejected_examples] == BAD_ROWS
    page = report.to_html()
    assert "Rejected rows by feature" in page and "got &#x27;high&#x27;" in page
    assert report.summary_lines()[1].startswith(
        "  rejected 5 rows with invalid features (tempo 2, energy 2, danceability 1, key 1)"
    )


def test_a_missing_feature_column_is_named_with_the_expected_ones(predictor, valid_songs):
    with pytest.raises(DataValidationError) as raised:
        score_frame(predictor, valid_songs.drop(columns=["tempo", "key"]), source="songs.csv")
    message = str(raised.value)
    assert message.startswith("songs.csv: missing feature column(s) 'key', 'tempo'; the model expects all of: ")
    assert message.endswith(", ".join(predictor.feature_names))


def test_an_input_column_named_like_an_output_column_is_refused(predictor, valid_songs):
    with pytest.raises(DataValidationError, match="column\\(s\\) 'error' would be overwritten"):
        score_frame(predictor, valid_songs.assign(error="x"))


def test_chunks_give_the_same_predictions_as_one_chunk(predictor, raw_songs):
    done = []
    in_chunks, chunked = score_frame(predictor, raw_songs, chunk_rows=7, progress=done.append)
    at_once, whole = score_frame(predictor, raw_songs, chunk_rows=10_000)

    assert chunked.rows_rejected > 0
    # ONNX Runtime's last digits depend on the batch a row is scored in: probabilities agree within the
    # model's parity tolerance, everything else exactly
    pd.testing.assert_frame_equal(in_chunks, at_once, check_exact=False, rtol=0, atol=PARITY_TOLERANCE)
    assert (chunked.chunks, whole.chunks) == (math.ceil(len(raw_songs) / 7), 1)
    assert sum(done) == len(raw_songs) and len(done) == chunked.chunks
    assert chunked.model_dump(
        exclude={"chunks", "chunk_rows", "seconds", "batch_id", "rows_per_second"}
    ) == whole.model_dump(exclude={"chunks", "chunk_rows", "seconds", "batch_id", "rows_per_second"})


def test_each_chunk_is_one_inference_log_record_of_the_rows_it_scored(predictor, raw_songs, tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    log = InferenceLog(url, predictor.feature_names)
    predictions, report = score_frame(predictor, raw_songs, chunk_rows=50, log=log, batch_id="batch-test")
    assert log.close() == 0

    logged = read_inference_log(url, endpoint="batch")
    assert list(logged["request_id"]) == [f"batch-test-{chunk:05d}" for chunk in range(8)]
    scored = predictions["error"].isna().to_numpy()
    assert list(logged["rows"]) == [int(scored[start : start + 50].sum()) for start in range(0, len(raw_songs), 50)]
    assert logged["rows"].sum() == report.rows_scored < report.rows_in
    assert (logged["status"] == 200).all() and logged["error"].isna().all()
    assert set(logged["model_name"]) == {"jukebox"} and set(logged["model_version"]) == {"1"}
    items = logged_items(logged)
    assert list(items["predicted"]) == list(predictions.loc[scored, "top_1_code"])
    np.testing.assert_allclose(
        items[predictor.feature_names].to_numpy(),
        raw_songs.loc[scored, predictor.feature_names].astype(float).to_numpy(),
    )
    assert (report.log_records, report.inference_log) == (8, url)


def _missing_as_nan(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as objects with NaN for missing: a CSV file reads None back as NaN."""
    text = frame.select_dtypes(exclude="number").columns
    return frame.astype({column: object for column in text}).where(frame.notna(), np.nan)


@pytest.mark.parametrize("name", ["predictions.csv", "predictions.csv.gz", "predictions.parquet"])
def test_the_predictions_file_reads_back_as_written(predictor, raw_songs, tmp_path, name):
    predictions, _ = score_frame(predictor, raw_songs)
    path = tmp_path / "out" / name
    write_predictions(predictions, str(path))
    pd.testing.assert_frame_equal(
        _missing_as_nan(read_table(str(path))), _missing_as_nan(predictions), check_dtype=False
    )


def test_without_an_output_path_the_file_goes_to_outputs_here_and_the_log_is_closed(
    predictor, raw_songs, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    predictions, report = score_to_file(predictor, raw_songs, None, url, chunk_rows=100, batch_id="b")

    output = Path(report.output_file)
    assert output.parent == tmp_path / "outputs"
    assert re.fullmatch(r"batch_predictions_jukebox_v1_\d{8}_\d{6}\.csv", output.name)
    assert len(read_table(str(output))) == len(predictions) == len(raw_songs)
    assert list(read_inference_log(url)["request_id"]) == ["b-00000", "b-00001", "b-00002", "b-00003"]
    assert report.log_records == 4


def test_an_unknown_output_format_fails_before_scoring(predictor, raw_songs, tmp_path):
    log_file = tmp_path / "log.sqlite"
    with pytest.raises(DataSourceError, match=r"unknown file format '\.json'"):
        score_to_file(predictor, raw_songs, str(tmp_path / "predictions.json"), f"sqlite:///{log_file}")
    assert not log_file.exists()
