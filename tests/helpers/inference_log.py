"""Inference log records as a server appends them, with values derived from a number, so a test can
tell each one apart."""

import numpy as np

from headliner.serving.inference_log import InferenceRecord

FEATURES = ["tempo", "key", "loudness"]
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def record(number: int, endpoint: str = "predict", rows: int = 2, received_at: float | None = None) -> InferenceRecord:
    """A served request with `rows` items, its values derived from `number`."""
    inputs = np.array([[100.0 + number, float(item), -5.0 - item] for item in range(rows)])
    top_labels = np.array(
        [["US", "GB", "DE"] if item % 2 == 0 else ["JP", "KR", "TW"] for item in range(rows)], dtype=object
    )
    top_probabilities = np.array([[0.5, 0.25, 0.125]] * rows) / (number + 1)
    return InferenceRecord(
        T0 + number if received_at is None else received_at,
        f"req-{number}",
        endpoint,
        "jukebox",
        "3",
        200,
        1.0 + number / 10,
        rows,
        inputs,
        top_labels,
        top_probabilities,
        None,
    )
