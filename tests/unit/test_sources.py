"""Reading raw data: formats, local files, an HTTP server on 127.0.0.1, and every read failure."""

import functools
import http.server
import threading

import pandas as pd
import pytest

from headliner.data.sources import load_raw_data, read_table, sanitize_column
from headliner.errors import DataSourceError


@pytest.fixture()
def table() -> pd.DataFrame:
    return pd.DataFrame({"spotify_id": ["a", "b", "c"], "tempo": [120.5, 98.0, 140.0], "country": ["DE", "", "FR"]})


@pytest.fixture()
def http_folder(tmp_path):
    """A static HTTP server on a free port of 127.0.0.1 serving tmp_path; stopped after the test."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
def test_reads_csv_gzip_and_parquet(tmp_path, table, name):
    path = tmp_path / name
    table.to_parquet(path) if name.endswith("parquet") else table.to_csv(path, index=False)
    frame = read_table(str(path))
    assert list(frame.columns) == ["spotify_id", "tempo", "country"]
    assert frame["tempo"].tolist() == [120.5, 98.0, 140.0]
    assert frame["country"].fillna("").tolist() == ["DE", "", "FR"]  # empty country = global chart


def test_reads_from_http_url(http_folder, table):
    folder, base_url = http_folder
    table.to_csv(folder / "charts.csv", index=False)
    table.to_parquet(folder / "charts.parquet")
    assert read_table(f"{base_url}/charts.csv")["spotify_id"].tolist() == ["a", "b", "c"]
    assert read_table(f"{base_url}/charts.parquet?version=2")["tempo"].sum() == pytest.approx(358.5)


def test_http_not_found_is_a_clear_error(http_folder):
    _, base_url = http_folder
    with pytest.raises(DataSourceError, match=r"missing\.csv: (not found|cannot read)"):
        read_table(f"{base_url}/missing.csv")


@pytest.fixture()
def s3_bucket(monkeypatch):
    """A moto S3 server on a free port of 127.0.0.1 with bucket 'songs'; stopped after the test."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }.items():
        monkeypatch.setenv(name, value)
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="songs")
    yield client
    server.stop()


def test_reads_from_s3(s3_bucket, table):
    import io

    buffer = io.BytesIO()
    table.to_parquet(buffer)
    s3_bucket.put_object(Bucket="songs", Key="2024/charts.parquet", Body=buffer.getvalue())
    frame = read_table("s3://songs/2024/charts.parquet")
    assert frame["spotify_id"].tolist() == ["a", "b", "c"]
    with pytest.raises(DataSourceError, match=r"^s3://songs/2024/other\.csv: not found$"):
        read_table("s3://songs/2024/other.csv")


def test_missing_path(tmp_path):
    with pytest.raises(DataSourceError, match=r"nope\.csv: no such file$"):
        read_table(str(tmp_path / "nope.csv"))


def test_directory_is_not_a_file(tmp_path):
    folder = tmp_path / "d.csv"
    folder.mkdir()
    with pytest.raises(DataSourceError, match=r"d\.csv: not a file"):
        read_table(str(folder))


def test_unknown_format(tmp_path):
    path = tmp_path / "songs.xlsx"
    path.write_text("x")
    with pytest.raises(DataSourceError, match=r"songs\.xlsx: unknown file format '\.xlsx'; expected one of \.csv"):
        read_table(str(path))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataSourceError, match=r"empty\.csv: file is empty \(0 bytes\)"):
        read_table(str(path))


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("spotify_id,tempo,country\n")
    with pytest.raises(DataSourceError, match="header but no data rows"):
        read_table(str(path))


def test_unreadable_content(tmp_path):
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataSourceError, match=r"corrupt\.parquet: not a readable PARQUET file"):
        read_table(str(bad))


def test_sklearn_wine_is_bundled_with_identifier_safe_columns(wine_spec):
    frame = load_raw_data(wine_spec)
    assert len(frame) == 178
    assert set(wine_spec.raw_columns) <= set(frame.columns)
    assert sanitize_column("od280/od315_of_diluted_wines") == "od280_od315_of_diluted_wines"


def test_rows_samples_a_file_reproducibly(wine_spec):
    first = load_raw_data(wine_spec, rows=50)
    assert len(first) == 50
    pd.testing.assert_frame_equal(first, load_raw_data(wine_spec, rows=50))
    assert first["target"].nunique() == 3  # a sample, not the (class-sorted) head


def test_generator_source_is_sized_by_rows(jukebox_spec):
    frame = load_raw_data(jukebox_spec, rows=1500)
    assert len(frame) == 1500
    assert frame.shape[1] == 25
