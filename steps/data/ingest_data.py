"""Step: read the raw table (file, URL, s3:// URI, bundled dataset or generator)."""

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step

from headliner.data.sources import describe_source, load_raw_data
from headliner.labels import Artifact
from headliner.spec import UseCaseSpec


@step
def ingest_data(
    spec: UseCaseSpec, data: str | None = None, rows: int | None = None
) -> Annotated[pd.DataFrame, Artifact.RAW_DATA]:
    frame = load_raw_data(spec, data=data, rows=rows)
    log_metadata(
        metadata={"source": describe_source(spec, data, rows), "rows": len(frame), "columns": frame.shape[1]},
        infer_artifact=True,
    )
    return frame
