"""Small packaged models made without ZenML, as the training pipeline packages them."""

import json

from headliner.spec import UseCaseSpec


def example_metadata(spec: UseCaseSpec) -> dict[str, str]:
    """Provenance metadata as the training pipeline writes it, with values a test can look for."""
    return {
        "data_fingerprint": "0123456789abcdef",
        "metrics": json.dumps({"accuracy": 0.25, "top_k_accuracy": 0.6}),
        "candidate": "test",
        "created_at": "2025-01-01T00:00:00+00:00",
        "class_names": json.dumps([f"Name of {c}" for c in spec.target.classes]),
    }


def packaged_linear_model(
    spec: UseCaseSpec, rows: int | None, version: str = "1", metadata: dict[str, str] | None = None
) -> bytes:
    """A logistic-regression model of a use case, packaged as the training pipeline packages it, from
    `rows` generated rows (None: the spec's own source), without ZenML; `metadata` replaces the default
    class names and candidate. Like the pipeline's, the file carries the explanation background."""
    from headliner.data.sources import load_raw_data
    from headliner.data.splitting import split_examples
    from headliner.data.wrangling import label_examples, wrangle
    from headliner.labels import class_display_names
    from headliner.model.estimators import CandidateConfig, build_pipeline, feature_frame
    from headliner.model.onnx_packaging import explanation_background, package_onnx

    wrangled, _ = wrangle(load_raw_data(spec, rows=rows), spec, "test")
    labelled, _ = label_examples(wrangled, spec, "test")
    train, _, _, _ = split_examples(labelled, spec, "test")
    pipeline = build_pipeline(spec, CandidateConfig(name="test", family="logistic_regression"))
    pipeline.fit(feature_frame(train, spec), train[spec.target.column])
    if metadata is None:
        metadata = {"class_names": json.dumps(class_display_names(spec)), "candidate": "test"}
    metadata = {**metadata, **explanation_background(train, spec)}
    return package_onnx(pipeline, spec, version, metadata).SerializeToString()
