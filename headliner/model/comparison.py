"""Is a candidate worse than the production version? Both versions' ONNX files are scored on the
candidate's test split (the current one) by the spec's primary metric (a classifier's from its
probabilities, a regressor's from its predictions), so the comparison is fair."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from headliner.errors import HeadlinerError
from headliner.labels import Artifact
from headliner.model.estimators import class_indices
from headliner.model.evaluation import compute_metrics, regression_metrics, require_metric
from headliner.spec import USE_CASES_DIR, UseCaseSpec, better_by, load_spec

if TYPE_CHECKING:
    import pandas as pd
    from zenml.models import ModelVersionResponse

    from headliner.model.onnx_packaging import OnnxPredictor


class Verdict(BaseModel):
    metric: str
    candidate_version: int
    production_version: int
    candidate_value: float
    production_value: float
    rows: int
    worse: bool

    @property
    def summary(self) -> str:
        relation = "worse than" if self.worse else "not worse than"
        return (
            f"v{self.candidate_version} is {relation} production v{self.production_version} on the current test split "
            f"({self.rows:,} rows): {self.metric} {self.candidate_value:.4f} vs {self.production_value:.4f}"
        )


def spec_for_model(model: str) -> UseCaseSpec:
    path = USE_CASES_DIR / f"{model}.yaml"
    if not path.is_file():
        raise HeadlinerError(f"no use-case spec for model '{model}' (expected {path})")
    return load_spec(path)


def predictor_metrics(predictor: OnnxPredictor, frame: pd.DataFrame, spec: UseCaseSpec) -> dict[str, float]:
    """Every metric of the spec's task of a packaged model on the labelled rows of `frame`."""
    features = {name: frame[name].to_numpy() for name in spec.feature_names}
    truth = frame[spec.target.column]
    if not spec.is_classification:
        return regression_metrics(truth.to_numpy(dtype=float), predictor.predict_values(features))
    _, proba = predictor.predict(features)
    return compute_metrics(class_indices(truth, spec), proba, len(spec.target.classes), spec.evaluation.top_k)


def _score(model_version: ModelVersionResponse, test: pd.DataFrame, spec: UseCaseSpec) -> float:
    from headliner.model.onnx_packaging import OnnxPredictor

    artifact = model_version.get_artifact(Artifact.ONNX_MODEL)
    if artifact is None:
        raise HeadlinerError(f"{spec.name} v{model_version.number} has no onnx_model to compare")
    predictor = OnnxPredictor.from_bytes(artifact.load().SerializeToString())
    where = f"the test split for v{model_version.number}"
    try:
        return require_metric(predictor_metrics(predictor, test, spec), spec.evaluation.primary_metric, where)
    except ValueError as undefined:
        raise HeadlinerError(f"cannot compare {spec.name} versions: {undefined}") from None


def compare_with_production(model: str, candidate: int, production: int) -> Verdict:
    from zenml.client import Client

    import materializers  # noqa: F401  (registers the ONNX materializer)

    spec = spec_for_model(model)
    client = Client()
    candidate_version = client.get_model_version(model, candidate)
    test_artifact = candidate_version.get_artifact(Artifact.TEST_SPLIT)
    if test_artifact is None:
        raise HeadlinerError(f"{model} v{candidate} has no test_split to compare on")
    test = test_artifact.load()
    candidate_value = _score(candidate_version, test, spec)
    production_value = _score(client.get_model_version(model, production), test, spec)
    metric = spec.evaluation.primary_metric
    worse = better_by(metric, candidate_value, production_value) < 0
    return Verdict(
        metric=metric,
        candidate_version=candidate,
        production_version=production,
        candidate_value=candidate_value,
        production_value=production_value,
        rows=len(test),
        worse=worse,
    )
