"""Traffic without a server: held-out rows to send, requests and true labels written through the real
inference log as the service writes them, and the shift that makes jukebox traffic drift."""

import time

import numpy as np
import pandas as pd

from headliner.spec import FeatureType, UseCaseSpec

# Shifts (in each feature's unit) that move seven jukebox features well away from the training data.
SHIFT = {
    "danceability": 0.3,
    "energy": 0.3,
    "loudness": 8,
    "speechiness": 0.3,
    "acousticness": 0.3,
    "valence": 0.3,
    "tempo": 40,
}


def held_out_frame(spec: UseCaseSpec, rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows like a test split: every feature spread over its valid range, a label, and a column that is
    not a feature. Float values are distinct, so a row can be recognised by its first float feature."""
    rng = np.random.default_rng(seed)
    columns = {"row_key": [f"row-{i}" for i in range(rows)]}
    for feature in spec.features:
        if feature.dtype is FeatureType.BOOL:
            columns[feature.name] = rng.integers(0, 2, rows).astype(bool)
        elif feature.dtype is FeatureType.INT:
            columns[feature.name] = rng.integers(int(feature.min), int(feature.max) + 1, rows)
        else:
            columns[feature.name] = rng.uniform(feature.min, feature.max, rows)
    columns[spec.target.column] = rng.choice(spec.target.classes, rows)
    return pd.DataFrame(columns)


def log_traffic(
    url: str,
    model_bytes: bytes,
    frame: pd.DataFrame,
    spec: UseCaseSpec,
    shift: dict | None = None,
    feedback_rate: float = 0.0,
    prefix: str = "req",
    seconds_apart: float = 1.0,
) -> list[str]:
    """Write one logged /predict request per row of `frame` (features shifted by `shift`, clipped to the
    spec's ranges) through the real InferenceLog, as the service would (the top classes, or the forecast), and
    true labels (the frame's target) for a seeded `feedback_rate` share of them. Returns the request ids."""
    from headliner.model.onnx_packaging import OnnxPredictor
    from headliner.serving.feedback import Feedback, FeedbackStore
    from headliner.serving.inference_log import InferenceLog, InferenceRecord

    predictor = OnnxPredictor(model_bytes)
    matrix = frame[spec.feature_names].to_numpy(dtype=np.float64).copy()
    for name, value in (shift or {}).items():
        feature, column = spec.feature(name), spec.feature_names.index(name)
        matrix[:, column] = np.clip(matrix[:, column] + value, feature.min, feature.max)
    if predictor.is_classification:
        order, top = predictor.top_classes(predictor.probabilities(matrix))
        labels, forecasts = np.asarray(predictor.classes, dtype=object)[order], None
    else:
        labels = top = None
        forecasts = predictor.scores(matrix)
    log = InferenceLog(url, spec.feature_names, flush_seconds=60)
    start = time.time() - len(matrix) * seconds_apart
    ids = [f"{prefix}-{i}" for i in range(len(matrix))]
    for i, request_id in enumerate(ids):
        log.append(
            InferenceRecord(
                start + i * seconds_apart,
                request_id,
                "predict",
                predictor.model_name,
                predictor.model_version,
                200,
                1.0,
                1,
                matrix[i : i + 1],
                None if labels is None else labels[i : i + 1],
                None if top is None else top[i : i + 1],
                None,
                predictions=None if forecasts is None else forecasts[i : i + 1],
            )
        )
    assert log.close() == 0
    chosen = np.flatnonzero(np.random.default_rng(0).random(len(ids)) < feedback_rate)
    store = FeedbackStore(url)
    store.write([Feedback(ids[i], 0, str(frame[spec.target.column].iloc[i])) for i in chosen], "api")
    store.close()
    return ids
