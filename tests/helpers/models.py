"""Small packaged models made without ZenML, as the training pipeline packages them."""

import json

import numpy as np
import pandas as pd

from headliner.spec import UseCaseSpec

# the quick candidate of each task: what `packaged_model` fits
TEST_FAMILIES = {"multiclass_classification": "logistic_regression", "regression": "ridge"}


def example_metadata(spec: UseCaseSpec) -> dict[str, str]:
    """Provenance metadata as the training pipeline writes it, with values a test can look for."""
    metrics = (
        {"accuracy": 0.25, "top_k_accuracy": 0.6} if spec.is_classification else {"mae": 12.5, "rmse": 20.0, "r2": 0.8}
    )
    return {
        "data_fingerprint": "0123456789abcdef",
        "metrics": json.dumps(metrics),
        "candidate": "test",
        "created_at": "2025-01-01T00:00:00+00:00",
        "class_names": json.dumps([f"Name of {c}" for c in spec.target.classes]),
    }


def packaged_model(
    spec: UseCaseSpec, rows: int | None, version: str = "1", metadata: dict[str, str] | None = None
) -> bytes:
    """A quick model of a use case (logistic regression for classification, ridge for regression),
    packaged as the training pipeline packages it, from `rows` generated rows (None: the spec's own
    source) taken through the data pipeline's path (load, wrangle, label, derive features, split), without
    ZenML; `metadata` replaces the default class names and candidate. Like the pipeline's, the file
    carries the explanation background."""
    from headliner.data.sources import load_raw_data
    from headliner.data.splitting import split_examples
    from headliner.data.time_features import derive_features
    from headliner.data.wrangling import label_examples, wrangle

    wrangled, _ = wrangle(load_raw_data(spec, rows=rows), spec, "test")
    labelled, _ = label_examples(wrangled, spec, "test")
    examples, _ = derive_features(labelled, spec, "test")  # a spec without derived features: unchanged
    train, _, _, _ = split_examples(examples, spec, "test")
    return packaged_model_from_frame(spec, train, version, metadata)


def packaged_model_from_frame(
    spec: UseCaseSpec, train: pd.DataFrame, version: str = "1", metadata: dict[str, str] | None = None
) -> bytes:
    """`packaged_model` fitted on a given train frame (contract 1's columns: features and the target)."""
    from headliner.labels import class_display_names
    from headliner.model.estimators import CandidateConfig, build_pipeline, feature_frame
    from headliner.model.onnx_packaging import explanation_background, package_onnx

    family = TEST_FAMILIES[spec.task.value]
    pipeline = build_pipeline(spec, CandidateConfig(name="test", family=family))
    pipeline.fit(feature_frame(train, spec), train[spec.target.column])
    if metadata is None:
        metadata = {"class_names": json.dumps(class_display_names(spec)), "candidate": "test"}
    metadata = {**metadata, **explanation_background(train, spec)}
    model: bytes = package_onnx(pipeline, spec, version, metadata).SerializeToString()
    return model


def sales_frame(spec: UseCaseSpec, series: int = 12, weeks: int = 80, seed: int = 0) -> pd.DataFrame:
    """A small store_sales-like frame as the data pipeline hands it to training (contract 1): weekly
    sales of `series` (store, family) series with a level, yearly season, holidays, promotions and price,
    the spec's lags, rolling means and week of year computed from earlier weeks only, rows lacking
    them dropped, sorted by (time, series). For tests of the model code that need no generator."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2021-01-04", periods=weeks, freq="W-MON")
    week = dates.isocalendar().week.to_numpy().astype(float)
    holiday = np.isin(week, [1, 8, 14, 51, 52]).astype(float)
    steps = np.arange(weeks)
    parts = []
    for index in range(series):
        promotion = rng.poisson(4, weeks) * (rng.random(weeks) < 0.3)
        price = np.round(4.0 * np.exp(rng.normal(0, 0.1, weeks)), 2)
        sales = (
            rng.lognormal(5, 0.8)
            * (1 + 0.3 * np.sin(2 * np.pi * steps / 52 + index))
            * (1 + 0.5 * holiday)
            * (1 + 0.04 * promotion)
            * (price / 4.0) ** -1.2
            * rng.lognormal(0, 0.1, weeks)
        )
        part = pd.DataFrame(
            {"date": dates, "store_nbr": str(index % 4 + 1), "family": f"FAMILY {index // 4}", "sales": sales.round(1)}
        )
        part["onpromotion"], part["price"], part["is_holiday"] = promotion.astype(float), price, holiday
        for feature in spec.features:
            derive = feature.derive
            if derive is None:
                continue
            periods = derive.periods or 0
            if derive.kind == "week_of_year":
                part[feature.name] = week
            elif derive.kind == "lag":
                part[feature.name] = part["sales"].shift(periods)
            else:
                part[feature.name] = part["sales"].shift(1).rolling(periods).mean()
        parts.append(part)
    frame = pd.concat(parts).dropna().sort_values(["date", "store_nbr", "family"]).reset_index(drop=True)
    return frame[[*spec.key_columns, *spec.feature_names, spec.target.column]]


packaged_linear_model = packaged_model  # the name older callers use
