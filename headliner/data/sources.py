"""Reading raw data: CSV or Parquet from a path, an http(s) URL or an s3:// URI, a bundled
scikit-learn dataset, or a synthetic generator — chosen by the use-case spec or the --data option.

Every failure to read becomes a `DataSourceError` whose one line names the file and the problem.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import pandas as pd

from headliner.errors import DataSourceError
from headliner.spec import SourceKind, UseCaseSpec

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
Compression = Literal["gzip", "bz2", "zip", "xz"]  # pandas' names of the compressed CSVs read
_COMPRESSION_OF_SUFFIX: dict[str, Compression] = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz"}


def _generators() -> dict[str, Callable[[int, Sequence[str], int], pd.DataFrame]]:
    from headliner.data.jukebox_generator import generate_jukebox_charts
    from headliner.data.store_sales_generator import generate_store_sales

    return {
        "jukebox": lambda rows, classes, seed: generate_jukebox_charts(rows, classes, seed=seed),
        "store_sales": lambda rows, _classes, seed: generate_store_sales(rows, seed=seed),  # regression: no classes
    }


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https", "s3", "gs", "gcs", "az", "abfs")


def table_format(uri: str) -> str:
    """'csv' or 'parquet' from the name's suffix (a URL's query string is ignored)."""
    name = urlparse(uri).path if is_remote(uri) else uri
    lowered = name.lower()
    if lowered.endswith(CSV_SUFFIXES):
        return "csv"
    if lowered.endswith(PARQUET_SUFFIXES):
        return "parquet"
    suffix = "".join(Path(name).suffixes) or "(none)"
    raise DataSourceError(f"{uri}: unknown file format '{suffix}'; expected one of {', '.join(SUPPORTED_SUFFIXES)}")


def check_source(uri: str) -> str:
    """Fail fast on what can be known without reading: the format, and that a local file exists."""
    fmt = table_format(uri)
    if not is_remote(uri):
        path = Path(uri)
        if not path.exists():
            raise DataSourceError(f"{uri}: no such file")
        if not path.is_file():
            raise DataSourceError(f"{uri}: not a file")
    return fmt


def _read_bytes(uri: str) -> bytes:
    if not is_remote(uri):
        try:
            return Path(uri).read_bytes()
        except OSError as exc:
            raise DataSourceError(f"{uri}: cannot read file ({exc.strerror or exc})") from None
    import fsspec

    try:
        with fsspec.open(uri, "rb") as handle:
            content: bytes = handle.read()
            return content
    except FileNotFoundError:
        raise DataSourceError(f"{uri}: not found") from None
    except Exception as exc:  # network, auth and protocol errors all end the same way for the user
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataSourceError(f"{uri}: cannot read ({reason})") from None


def read_table(uri: str) -> pd.DataFrame:
    """Read a CSV or Parquet file; refuses unknown formats, missing or empty files."""
    fmt = check_source(uri)
    return parse_table(_read_bytes(uri), fmt, uri, _csv_compression(uri))


def parse_table(content: bytes, fmt: str, name: str, compression: Compression | None = None) -> pd.DataFrame:
    """A CSV ('csv', UTF-8 with or without a byte-order mark) or Parquet file's bytes as a table; refuses
    empty or unreadable content with an error naming `name`."""
    if not content:
        raise DataSourceError(f"{name}: file is empty (0 bytes)")
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(content))
        else:
            frame = pd.read_csv(
                io.BytesIO(content),
                low_memory=False,
                compression=compression,
                encoding="utf-8-sig",
                keep_default_na=False,
                na_values=["", "NaN", "nan", "null", "NULL", "None"],
            )
    except pd.errors.EmptyDataError:
        raise DataSourceError(f"{name}: file is empty (no header, no rows)") from None
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataSourceError(f"{name}: not a readable {fmt.upper()} file ({reason})") from None
    if frame.empty:
        raise DataSourceError(f"{name}: file has a header but no data rows")
    return frame


def _csv_compression(uri: str) -> Compression | None:
    suffix = Path(urlparse(uri).path if is_remote(uri) else uri).suffix.lower()
    return _COMPRESSION_OF_SUFFIX.get(suffix)


def sanitize_column(name: str) -> str:
    """Identifier-safe column names (ONNX inputs and form fields): 'od280/od315' -> 'od280_od315'."""
    return re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_").lower()


def load_sklearn_dataset(name: str) -> pd.DataFrame:
    """A dataset bundled with scikit-learn (no download) as one table with a 'target' column."""
    from sklearn import datasets

    loaders = {"wine": datasets.load_wine, "iris": datasets.load_iris, "breast_cancer": datasets.load_breast_cancer}
    if name not in loaders:
        raise DataSourceError(f"unknown scikit-learn dataset '{name}'; expected one of {sorted(loaders)}")
    bunch = loaders[name](as_frame=True)
    frame: pd.DataFrame = bunch.frame.rename(columns=sanitize_column)
    return frame


def describe_source(spec: UseCaseSpec, data: str | None, rows: int | None) -> str:
    """One human line saying where the raw data comes from."""
    if data:
        return data
    source = spec.source
    if source.kind is SourceKind.GENERATOR:
        return f"generator:{source.name} (rows={rows or source.rows}, seed={source.seed})"
    if source.kind is SourceKind.SKLEARN:
        return f"sklearn:{source.name}"
    return str(source.uri)


def load_raw_data(spec: UseCaseSpec, data: str | None = None, rows: int | None = None) -> pd.DataFrame:
    """The raw table for a use case: `data` if given, else the spec's source.

    `rows` sizes a generator; for a file or bundled dataset it keeps a seeded sample of that many rows.
    """
    source = spec.source
    if not data and source.kind is SourceKind.GENERATOR:
        generators = _generators()
        if source.name not in generators:
            raise DataSourceError(f"unknown generator '{source.name}'; expected one of {sorted(generators)}")
        return generators[source.name](rows or source.rows or 10_000, spec.target.classes, source.seed)
    if data:
        frame = read_table(data)
    elif source.kind is SourceKind.SKLEARN:
        frame = load_sklearn_dataset(str(source.name))
    else:
        frame = read_table(str(source.uri))
    if rows is not None and rows < len(frame):
        frame = frame.sample(n=rows, random_state=source.seed).sort_index().reset_index(drop=True)
    return frame
