"""Data-quality profile of a dataset with Evidently's 0.7 API, as a standalone HTML page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from headliner.spec import FeatureType, UseCaseSpec

if TYPE_CHECKING:
    from evidently import Dataset

PROFILE_MAX_ROWS = 100_000


def data_profile_html(
    frame: pd.DataFrame, spec: UseCaseSpec, categorical: Sequence[str] = (), max_rows: int = PROFILE_MAX_ROWS
) -> str:
    """Evidently's data summary (per-column statistics, missing values) of the spec's features and the
    given `categorical` columns (e.g. the target, or the predicted class).

    Tables larger than `max_rows` are profiled on a seeded random sample of that size; the page says so.
    """
    from evidently import Report
    from evidently.presets import DataSummaryPreset

    sample = frame
    if len(sample) > max_rows:
        sample = sample.sample(n=max_rows, random_state=spec.split.seed)
    snapshot = Report([DataSummaryPreset()]).run(
        current_data=evidently_dataset(sample, spec, categorical), reference_data=None
    )
    page: str = snapshot.get_html_str(as_iframe=False)
    if len(frame) > max_rows:
        note = f"<p>Profiled on a random sample of {max_rows:,} of {len(frame):,} rows (seed {spec.split.seed}).</p>"
        page = page.replace("<body>", "<body>" + note, 1)
    return page


def evidently_dataset(frame: pd.DataFrame, spec: UseCaseSpec, categorical: Sequence[str] = ()) -> Dataset:
    """An Evidently Dataset of the spec's features and `categorical` columns: bool features are
    categories (as text: Evidently takes category labels as text, not as 0/1 floats), the rest numbers."""
    from evidently import DataDefinition, Dataset

    flags = [f.name for f in spec.features if f.dtype is FeatureType.BOOL]
    table = frame[spec.feature_names + list(categorical)].reset_index(drop=True)
    table = table.assign(**{name: table[name].astype(bool).astype(str) for name in flags})
    definition = DataDefinition(
        numerical_columns=[f.name for f in spec.features if f.dtype is not FeatureType.BOOL],
        categorical_columns=flags + list(categorical),
    )
    return Dataset.from_pandas(table, data_definition=definition)
