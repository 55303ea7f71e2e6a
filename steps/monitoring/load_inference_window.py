"""Step: the current window of the inference log (one row per scored item, labels joined) and its counts."""

from typing import Annotated

import pandas as pd
from zenml import step

import materializers  # noqa: F401  (registers the report materializer)
from headliner.labels import Artifact
from headliner.monitoring.window import WindowReport, WindowSelection, load_window
from headliner.serving.settings import ServingSettings, url_without_password
from headliner.spec import UseCaseSpec


@step(enable_cache=False)
def load_inference_window(
    spec: UseCaseSpec, version: str, selection: WindowSelection, log_url: str | None = None
) -> tuple[Annotated[pd.DataFrame, Artifact.CURRENT_WINDOW], Annotated[WindowReport, Artifact.WINDOW_REPORT]]:
    """Never cached: the log grows. `log_url` None: the serving settings' log (HEADLINER_INFERENCE_LOG)."""
    url = log_url or ServingSettings().inference_log_url()
    current, report = load_window(url, spec, version, selection, url_without_password(url))
    return current, report
