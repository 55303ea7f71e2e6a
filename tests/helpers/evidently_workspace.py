"""Two monitoring runs of jukebox, a day apart, added to an Evidently workspace as the monitoring pipeline adds
them, from small synthetic frames (no model, no store): the second window is shifted, so its drift figures
rise. The unit test reads them back through the workspace API; the browser test looks at them in the UI."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from headliner.monitoring.decision import MonitoringSummary
from headliner.monitoring.window import PREDICTED
from headliner.monitoring.workspace import WorkspaceRecord, record_monitoring_run
from headliner.spec import FeatureType, UseCaseSpec

RUN_TIMES = (datetime(2026, 11, 30, 9, 0, tzinfo=UTC), datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
# Each run's figures as decide() reports them; None (no labels in the first run) and missing ones are not logged.
RUN_FIGURES: tuple[dict[str, float | int | None], ...] = (
    {
        "requests": 900,
        "drifted_feature_share": 0.0769,
        "prediction_drift_score": 0.05,
        "rejected_share": 0.01,
        "statistical_parity_difference": 0.04,
        "disparate_impact_ratio": 0.95,
        "equal_opportunity_difference": None,
        "average_odds_difference": None,
        "live_top_k_accuracy": None,
        "estimated_top_k_accuracy": 0.41,
        "offline_top_k_accuracy": 0.43,
    },
    {
        "requests": 1200,
        "drifted_feature_share": 0.6154,
        "prediction_drift_score": 0.31,
        "rejected_share": 0.08,
        "statistical_parity_difference": 0.12,
        "disparate_impact_ratio": 0.78,
        "equal_opportunity_difference": 0.09,
        "average_odds_difference": 0.07,
        "live_top_k_accuracy": 0.33,
        "estimated_top_k_accuracy": 0.35,
        "offline_top_k_accuracy": 0.43,
    },
)
SHIFTS = (0.0, 0.3)  # share of each numeric feature's range the window's values move up by


def synthetic_window(spec: UseCaseSpec, rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Rows of the spec's features within their ranges (numeric ones moved up by `shift` of the range) and a
    predicted class."""
    rng = np.random.default_rng(seed)
    columns: dict[str, np.ndarray] = {}
    for feature in spec.features:
        low = 0.0 if feature.min is None else feature.min
        high = 1.0 if feature.max is None else feature.max
        if feature.dtype is FeatureType.BOOL:
            columns[feature.name] = rng.random(rows) < 0.3
        elif feature.dtype is FeatureType.INT:
            columns[feature.name] = np.minimum(
                rng.integers(int(low), int(high) + 1, rows) + int(shift * (high - low)), high
            )
        else:
            columns[feature.name] = np.minimum(rng.uniform(low, high, rows) + shift * (high - low), high)
    columns[PREDICTED] = rng.choice(["US", "GB", "DE", "SE"], rows)
    return pd.DataFrame(columns)


def run_summary(spec: UseCaseSpec, checked_at: datetime, figures: dict[str, float | int | None]) -> MonitoringSummary:
    return MonitoringSummary(
        model_name=spec.name,
        model_version="3",
        window="synthetic window",
        checked_at=checked_at,
        decision="ok",
        reasons=[],
        figures=figures,
        thresholds={},
        drifted_features=[],
    )


def record_two_runs(spec: UseCaseSpec, workspace: Path) -> list[WorkspaceRecord]:
    """The two runs added to `workspace`, oldest first."""
    reference = synthetic_window(spec, 2000, seed=1)
    return [
        record_monitoring_run(
            reference,
            synthetic_window(spec, 1000, seed=2 + run, shift=SHIFTS[run]),
            run_summary(spec, RUN_TIMES[run], RUN_FIGURES[run]),
            spec,
            workspace,
        )
        for run in range(2)
    ]
