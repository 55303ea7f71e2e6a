"""The inference log keeps every record: rows are written in the background, wait in the queue while
the database is unavailable (even at start), are flushed on close or spilled to a JSON-lines file when
the database is still down, and read back as requests or as one row per scored item."""

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from headliner.serving.inference_log import (
    TABLE_NAME,
    InferenceLog,
    InferenceRecord,
    WriterPriority,
    logged_items,
    read_inference_log,
)
from tests.helpers.inference_log import FEATURES, T0, record

WAIT_SECONDS = 60  # a bound for a loaded machine, not a measure: the tests wait for what must happen

COLUMNS = [
    "id",
    "received_at",
    "request_id",
    "endpoint",
    "model_name",
    "model_version",
    "status",
    "latency_ms",
    "rows",
    "inputs",
    "outputs",
    "error",
    "variant",
]


def rejected(number: int, endpoint: str = "v2") -> InferenceRecord:
    return InferenceRecord(
        T0 + number,
        f"req-{number}",
        endpoint,
        "jukebox",
        "3",
        422,
        0.2,
        0,
        None,
        None,
        None,
        "song.tempo: expected a number in [30, 250] BPM, got 300",
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def wait_for(condition, timeout: float, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def test_variant_is_written_and_a_log_from_before_rollouts_gets_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:  # the table as the service created it before rollouts, with one row
        old.execute(
            "CREATE TABLE inference_log (id INTEGER PRIMARY KEY AUTOINCREMENT, received_at DATETIME NOT NULL, "
            "request_id VARCHAR(64) NOT NULL, endpoint VARCHAR(16) NOT NULL, model_name VARCHAR(128) NOT NULL, "
            "model_version VARCHAR(32) NOT NULL, status INTEGER NOT NULL, latency_ms FLOAT NOT NULL, "
            "rows INTEGER NOT NULL, "
            "inputs TEXT, outputs TEXT, error TEXT)"
        )
        old.execute(
            "INSERT INTO inference_log VALUES "
            "(1, '2023-11-14 22:13:20.000000', 'old-1', 'predict', 'jukebox', '2', 200, 1.0, 0, NULL, NULL, NULL)"
        )
    log = InferenceLog(sqlite_url(path), FEATURES, flush_seconds=60)
    log.append(record(1)._replace(variant="shadow"))
    log.append(record(2))
    assert log.close() == 0

    frame = read_inference_log(sqlite_url(path))
    assert list(frame.columns) == COLUMNS
    assert frame["request_id"].tolist() == ["old-1", "req-1", "req-2"]
    assert frame["variant"].tolist() == [None, "shadow", None]


def test_close_writes_every_appended_record_with_its_columns_and_json(tmp_path):
    url = sqlite_url(tmp_path / "log" / "inference.sqlite")  # the folder is created
    log = InferenceLog(url, FEATURES, flush_seconds=60)  # no background write during the test
    records = [record(n, rows=1 + n % 3) for n in range(24)] + [rejected(24)]
    for item in records:
        log.append(item)
    assert log.pending == 25 and log.written == 0

    assert log.close() == 0
    assert (log.pending, log.written) == (0, 25)

    frame = read_inference_log(url)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 25
    assert frame["request_id"].tolist() == [r.request_id for r in records]
    assert frame["id"].tolist() == list(range(1, 26))
    for row, item in zip(frame.itertuples(index=False), records, strict=True):
        assert row.received_at == pd.Timestamp(item.received_at, unit="s", tz="UTC")
        assert (row.endpoint, row.model_name, row.model_version) == (item.endpoint, "jukebox", "3")
        assert (row.status, row.rows, row.latency_ms, row.error) == (
            item.status,
            item.rows,
            item.latency_ms,
            item.error,
        )
        if item.inputs is None:
            assert row.inputs is None and row.outputs is None
            continue
        inputs = json.loads(row.inputs)
        assert inputs == {"columns": FEATURES, "data": item.inputs.tolist()}
        pd.testing.assert_frame_equal(pd.DataFrame(**inputs), pd.DataFrame(item.inputs, columns=FEATURES))
        outputs = json.loads(row.outputs)
        assert outputs == {"top": item.top_labels.tolist(), "probability": item.top_probabilities.tolist()}
    assert frame["error"].iloc[-1] == "song.tempo: expected a number in [30, 250] BPM, got 300"


def test_records_are_written_in_the_background_without_a_flush(tmp_path):
    url = sqlite_url(tmp_path / "inference.sqlite")
    log = InferenceLog(url, FEATURES, flush_seconds=0.2)
    try:
        for n in range(3):
            log.append(record(n))
        assert wait_for(lambda: log.written == 3, WAIT_SECONDS), f"{log.written} written after {WAIT_SECONDS} s"
        assert read_inference_log(url)["request_id"].tolist() == ["req-0", "req-1", "req-2"]
        log.append(record(3))
        log.append(rejected(4))
        assert wait_for(lambda: log.written == 5, WAIT_SECONDS)
        assert log.pending == 0
    finally:
        assert log.close() == 0
    frame = read_inference_log(url)
    assert frame["request_id"].tolist() == [f"req-{n}" for n in range(5)]  # nothing written twice


def test_records_wait_while_the_database_is_unavailable_and_are_written_when_it_returns(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="headliner.serving.inference_log")
    database = tmp_path / "inference.sqlite"
    database.mkdir()  # a folder where the database file should be: SQLite cannot open it (even as root)
    url = sqlite_url(database)

    log = InferenceLog(url, FEATURES, flush_seconds=0.05)  # starts although the database is down
    try:
        assert any("unavailable at start" in message for message in caplog.messages)
        for n in range(4):
            log.append(record(n))
        assert wait_for(lambda: any("4 rows not written yet" in m for m in caplog.messages), WAIT_SECONDS)
        assert (log.written, log.pending) == (0, 4)
        with pytest.raises(Exception, match="unable to open database file"):
            log.flush()
        assert log.pending == 4  # a failed write keeps the rows

        database.rmdir()  # the database comes back
        log.append(record(4))
        assert wait_for(lambda: log.written == 5, WAIT_SECONDS), f"{log.written} written, {log.pending} pending"
        assert read_inference_log(url)["request_id"].tolist() == [f"req-{n}" for n in range(5)]  # in order
    finally:
        assert log.close() == 0
    assert len(read_inference_log(url)) == 5


def test_close_with_the_database_down_spills_to_json_lines_and_reports_the_count(tmp_path):
    database = tmp_path / "inference.sqlite"
    database.mkdir()
    log = InferenceLog(sqlite_url(database), FEATURES, flush_seconds=60)
    records = [record(0, rows=2), rejected(1), record(2, endpoint="v2", rows=1)]
    for item in records:
        log.append(item)
    spill = tmp_path / "spill" / "unwritten.jsonl"

    assert log.close(spill_path=spill) == 3
    assert (log.written, log.pending) == (0, 0)
    lines = [json.loads(line) for line in spill.read_text().splitlines()]
    assert len(lines) == 3
    assert [line["request_id"] for line in lines] == ["req-0", "req-1", "req-2"]
    assert set(lines[0]) == set(COLUMNS) - {"id"}
    assert [line["status"] for line in lines] == [200, 422, 200]
    assert [line["endpoint"] for line in lines] == ["predict", "v2", "v2"]
    assert json.loads(lines[0]["inputs"]) == {"columns": FEATURES, "data": records[0].inputs.tolist()}
    assert json.loads(lines[2]["outputs"])["top"] == [["US", "GB", "DE"]]
    assert lines[1]["inputs"] is None and lines[1]["error"].startswith("song.tempo")
    assert lines[0]["received_at"] == "2023-11-14 22:13:20.000000"  # as the database stores it (UTC)


def test_read_inference_log_filters_by_endpoint_and_time(tmp_path):
    url = sqlite_url(tmp_path / "inference.sqlite")
    log = InferenceLog(url, FEATURES, flush_seconds=60)
    endpoints = ["predict", "v2", "batch", "v2", "predict", "v2"]
    for n, endpoint in enumerate(endpoints):
        log.append(record(n, endpoint=endpoint, received_at=T0 + 60 * n))
    assert log.close() == 0

    assert read_inference_log(url)["endpoint"].tolist() == endpoints
    assert read_inference_log(url, endpoint="v2")["request_id"].tolist() == ["req-1", "req-3", "req-5"]
    assert read_inference_log(url, endpoint="batch")["request_id"].tolist() == ["req-2"]
    assert read_inference_log(url, endpoint="nothing").empty
    since = datetime.fromtimestamp(T0 + 150, tz=UTC)  # after the third record
    assert read_inference_log(url, since=since)["request_id"].tolist() == ["req-3", "req-4", "req-5"]
    assert read_inference_log(url, endpoint="predict", since=since)["request_id"].tolist() == ["req-4"]
    exactly = datetime.fromtimestamp(T0 + 180, tz=UTC)  # the fourth record's own time is included
    assert read_inference_log(url, since=exactly)["request_id"].tolist() == ["req-3", "req-4", "req-5"]


def test_received_at_is_stored_as_sqlalchemy_stores_timestamps_and_read_back_in_utc(tmp_path):
    """The bulk writer applies the dialect's conversions, so SQL comparisons (`since`) see one format."""
    import sqlite3

    path = tmp_path / "inference.sqlite"
    log = InferenceLog(sqlite_url(path), FEATURES, flush_seconds=60)
    log.append(record(0, received_at=T0))
    log.append(record(1, received_at=T0 + 0.25))
    assert log.close() == 0
    with sqlite3.connect(path) as connection:
        stored = [value for (value,) in connection.execute("select received_at from inference_log order by id")]
    assert stored == ["2023-11-14 22:13:20.000000", "2023-11-14 22:13:20.250000"]
    frame = read_inference_log(sqlite_url(path))
    assert str(frame["received_at"].dtype) == "datetime64[ns, UTC]"
    assert frame["received_at"].tolist() == [
        pd.Timestamp(T0, unit="s", tz="UTC"),
        pd.Timestamp(T0 + 0.25, unit="s", tz="UTC"),
    ]


def test_read_inference_log_of_a_new_database_is_an_empty_table(tmp_path):
    frame = read_inference_log(sqlite_url(tmp_path / "new.sqlite"))
    assert frame.empty and list(frame.columns) == COLUMNS


def test_logged_items_has_one_row_per_scored_item_with_feature_columns(tmp_path):
    url = sqlite_url(tmp_path / "inference.sqlite")
    log = InferenceLog(url, FEATURES, flush_seconds=60)
    for item in (record(0, rows=2), rejected(1), record(2, rows=1, endpoint="v2"), record(3, rows=3)):
        log.append(item)
    assert log.close() == 0

    items = logged_items(read_inference_log(url))
    assert list(items.columns) == [
        "request_id",
        "item",
        *FEATURES,
        "received_at",
        "model_version",
        "predicted",
        "probability",
    ]
    assert items["request_id"].tolist() == ["req-0", "req-0", "req-2", "req-3", "req-3", "req-3"]
    assert items["item"].tolist() == [0, 1, 0, 0, 1, 2]
    assert items["tempo"].tolist() == [100.0, 100.0, 102.0, 103.0, 103.0, 103.0]
    assert items["key"].tolist() == [0.0, 1.0, 0.0, 0.0, 1.0, 2.0]
    assert items["loudness"].tolist() == [-5.0, -6.0, -5.0, -5.0, -6.0, -7.0]
    assert items["predicted"].tolist() == ["US", "JP", "US", "US", "JP", "US"]
    assert items["probability"].tolist() == [0.5, 0.5, 0.5 / 3, 0.125, 0.125, 0.125]
    assert (items["model_version"] == "3").all()
    assert items["received_at"].iloc[2] == pd.Timestamp(T0 + 2, unit="s", tz="UTC")

    assert logged_items(read_inference_log(url, endpoint="nothing")).empty


def test_the_table_is_created_once_and_shared_by_two_logs(tmp_path):
    """Several worker processes write one file: a second log on an existing table appends to it."""
    url = sqlite_url(tmp_path / "inference.sqlite")
    first, second = InferenceLog(url, FEATURES, flush_seconds=60), InferenceLog(url, FEATURES, flush_seconds=60)
    first.append(record(0))
    second.append(record(1))
    first.append(record(2))
    assert first.flush() == 2 and second.flush() == 1
    assert first.close() == 0 and second.close() == 0
    assert sorted(read_inference_log(url)["request_id"]) == ["req-0", "req-1", "req-2"]
    import sqlite3

    with sqlite3.connect(tmp_path / "inference.sqlite") as connection:
        tables = [name for (name,) in connection.execute("select name from sqlite_master where type='table'")]
    assert tables == [TABLE_NAME]


def test_the_writer_process_outlives_ctrl_c_and_a_lost_writer_spills_what_is_left(tmp_path):
    import os
    import signal

    url = sqlite_url(tmp_path / "inference.sqlite")
    log = InferenceLog(url, FEATURES, flush_seconds=60)
    log.append(record(0))
    os.kill(log._process.pid, signal.SIGINT)  # Ctrl+C reaches the whole process group
    log.append(record(1))
    assert log.flush() == 2 and log._process.poll() is None
    assert log.close() == 0
    assert read_inference_log(url)["request_id"].tolist() == ["req-0", "req-1"]

    log = InferenceLog(url, FEATURES, flush_seconds=60)
    log.append(record(2))
    log._process.kill()  # the writer is gone: what the server still holds goes to the spill file
    log._process.wait()
    spill = tmp_path / "unwritten.jsonl"
    assert log.close(spill_path=spill) == 1
    assert [json.loads(line)["request_id"] for line in spill.read_text().splitlines()] == ["req-2"]


def test_the_writer_runs_idle_while_it_keeps_up_and_competes_again_when_far_behind():
    """In a thread of its own (priority is per thread on Linux), as the writer process's main thread."""
    seen: list[tuple[int, int]] = []

    def writer_thread() -> None:
        priority = WriterPriority(backlog_rows=100)
        for waiting in (0, 100, 101, 5000, 3, 0):
            priority.update(waiting)
            seen.append((os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)))

    thread = threading.Thread(target=writer_thread)
    thread.start()
    thread.join()
    idle, other = os.SCHED_IDLE, os.SCHED_OTHER
    assert [policy for policy, _ in seen] == [idle, idle, other, other, idle, idle]
    assert {nice for _, nice in seen} == {os.getpriority(os.PRIO_PROCESS, 0) + 10}  # nice 10 throughout
