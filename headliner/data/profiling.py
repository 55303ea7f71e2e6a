"""Data-quality profile of a dataset with Evidently's 0.7 API, as a standalone HTML page."""

from __future__ import annotations

import pandas as pd

from headliner.spec import FeatureType, UseCaseSpec

PROFILE_MAX_ROWS = 100_000


def data_profile_html(frame: pd.DataFrame, spec: UseCaseSpec, max_rows: int = PROFILE_MAX_ROWS) -> str:
    """Evidently's data summary (per-column statistics, missing values) of the spec's columns.

    Tables larger than `max_rows` are profiled on a seeded random sample of that size; the page says so.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataSummaryPreset

    flags = [f.name for f in spec.features if f.dtype is FeatureType.BOOL]
    sample = frame[spec.feature_names + [spec.target.column]]
    if len(sample) > max_rows:
        sample = sample.sample(n=max_rows, random_state=spec.split.seed)
    # Evidently takes category labels as text, not as the 0/1 floats wrangling produces.
    sample = sample.assign(**{name: sample[name].astype(bool).astype(str) for name in flags})
    definition = DataDefinition(
        numerical_columns=[f.name for f in spec.features if f.dtype is not FeatureType.BOOL],
        categorical_columns=flags + [spec.target.column],
    )
    snapshot = Report([DataSummaryPreset()]).run(
        current_data=Dataset.from_pandas(sample.reset_index(drop=True), data_definition=definition),
        reference_data=None,
    )
    page = snapshot.get_html_str(as_iframe=False)
    if len(frame) > max_rows:
        note = f"<p>Profiled on a random sample of {max_rows:,} of {len(frame):,} rows (seed {spec.split.seed}).</p>"
        page = page.replace("<body>", "<body>" + note, 1)
    return page
