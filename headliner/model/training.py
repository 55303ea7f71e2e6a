"""Model selection: every candidate of the run config is trained on the train split and scored on the
validation split by the metrics of the spec's task; the best by the selection metric is kept."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sklearn.pipeline import Pipeline

from headliner.errors import HeadlinerError, RunConfigError
from headliner.labels import class_display_names
from headliner.model.estimators import (
    CandidateConfig,
    build_pipeline,
    class_indices,
    feature_frame,
    require_family_fits,
)
from headliner.model.evaluation import (
    EvaluationReport,
    baseline_forecast,
    compute_metrics,
    evaluate,
    evaluate_regression,
    regression_metrics,
    require_metric,
)
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import LOWER_IS_BETTER, METRICS_BY_TASK, UseCaseSpec, better_by, load_yaml_model

logger = logging.getLogger(__name__)

KNOWN_METRICS = tuple(dict.fromkeys(metric for metrics in METRICS_BY_TASK.values() for metric in metrics))


class TrainingConfig(BaseModel):
    """The run config's choice of candidates and how the best one is picked."""

    model_config = ConfigDict(extra="forbid")

    candidates: list[CandidateConfig] = Field(min_length=1)
    selection_metric: str = "log_loss"

    @field_validator("selection_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in KNOWN_METRICS:
            raise ValueError(f"unknown selection metric '{metric}'; expected one of {', '.join(KNOWN_METRICS)}")
        return metric

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, candidates: list[CandidateConfig]) -> list[CandidateConfig]:
        names = [c.name for c in candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate names must be unique, got {names}")
        return candidates


def require_fits_task(training: TrainingConfig, spec: UseCaseSpec) -> None:
    """The run config must suit the spec's task: a selection metric of the task, candidates of its
    families (a RunConfigError naming what does not fit)."""
    metrics = METRICS_BY_TASK[spec.task]
    if training.selection_metric not in metrics:
        raise RunConfigError(
            f"selection_metric '{training.selection_metric}' is not a metric of use case '{spec.name}' "
            f"({spec.task.value}); expected one of {', '.join(metrics)}"
        )
    for candidate in training.candidates:
        require_family_fits(candidate, spec.task)


@dataclass
class TrainedCandidate:
    config: CandidateConfig
    pipeline: Pipeline
    validation_metrics: dict[str, float]
    fit_seconds: float


class CandidateScore(BaseModel):
    name: str
    family: str
    params: dict[str, Any]
    fit_seconds: float
    validation_metrics: dict[str, float]
    mlflow_run_id: str = ""


class ModelSelection(HtmlReport):
    """Which candidates were tried, how they scored on the validation split, which one won."""

    use_case: str
    selection_metric: str
    selected: str
    candidates: list[CandidateScore]

    def summary_metadata(self) -> dict[str, str | int | float]:
        best = next(c for c in self.candidates if c.name == self.selected)
        return {
            "selected": self.selected,
            f"validation_{self.selection_metric}": best.validation_metrics[self.selection_metric],
        }

    def to_html(self) -> str:
        metrics = list(self.candidates[0].validation_metrics)
        rows = [
            [("✔ " if c.name == self.selected else "") + c.name, c.family, f"{c.fit_seconds:.1f}"]
            + [f"{c.validation_metrics[m]:.4f}" for m in metrics]
            + [", ".join(f"{k}={v}" for k, v in c.params.items()), c.mlflow_run_id]
            for c in self.candidates
        ]
        table = html_table(["candidate", "family", "fit s", *metrics, "params", "MLflow run"], rows)
        direction = "lower" if self.selection_metric in LOWER_IS_BETTER else "higher"
        note = f"<p>Selected by validation {self.selection_metric} ({direction} is better).</p>"
        return html_page(f"Model selection for {self.use_case}", [("Candidates", note + table)])


def require_all_classes(train: pd.DataFrame, spec: UseCaseSpec) -> None:
    """The model must output every class of the spec, so the train split must contain each."""
    present = set(train[spec.target.column])
    missing = [c for c in spec.target.classes if c not in present]
    if missing:
        raise HeadlinerError(
            f"train_split has no examples of {len(missing)} class(es) of the spec ({', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}); use more data (--rows) or remove them from the spec"
        )


def model_output(pipeline: Pipeline, features: pd.DataFrame, spec: UseCaseSpec) -> np.ndarray:
    """What the model answers per row: a classifier's class probabilities [N, C], a regressor's
    forecasts [N] in the target's unit, clipped to the target's range as the ONNX graph's Clip node
    clips them (a linear model may otherwise forecast negative sales)."""
    if spec.is_classification:
        probabilities: np.ndarray = pipeline.predict_proba(features)
        return probabilities
    forecast = np.asarray(pipeline.predict(features))  # the estimator's own dtype (the MLflow signature's)
    target = spec.target
    return forecast if target.min is None and target.max is None else np.clip(forecast, target.min, target.max)


def score(pipeline: Pipeline, frame: pd.DataFrame, spec: UseCaseSpec) -> dict[str, float]:
    """Every metric of the spec's task of a fitted pipeline on the rows of `frame`."""
    output = model_output(pipeline, feature_frame(frame, spec), spec)
    truth = frame[spec.target.column]
    if spec.is_classification:
        return compute_metrics(class_indices(truth, spec), output, len(spec.target.classes), spec.evaluation.top_k)
    return regression_metrics(truth.to_numpy(dtype=np.float64), output)


def fit_candidate(
    spec: UseCaseSpec, candidate: CandidateConfig, train: pd.DataFrame, validation: pd.DataFrame
) -> TrainedCandidate:
    pipeline = build_pipeline(spec, candidate)
    start = time.perf_counter()
    pipeline.fit(feature_frame(train, spec), train[spec.target.column])
    fit_seconds = time.perf_counter() - start
    return TrainedCandidate(candidate, pipeline, score(pipeline, validation, spec), fit_seconds)


def selection_value(trained: TrainedCandidate, metric: str) -> float:
    """A candidate's validation figure of the selection metric; a HeadlinerError if it is undefined there
    (mape when every validation true value is 0)."""
    try:
        return require_metric(trained.validation_metrics, metric, "the validation split")
    except ValueError as undefined:
        raise HeadlinerError(
            f"cannot select a model by {metric}: {undefined}; choose another selection_metric"
        ) from None


def best_candidate(trained: list[TrainedCandidate], metric: str) -> TrainedCandidate:
    """The best by `metric` (ties: the first in config order)."""
    return max(trained, key=lambda t: better_by(metric, selection_value(t, metric), 0.0))


def select_model(
    spec: UseCaseSpec,
    training: TrainingConfig,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    track: Callable[[TrainedCandidate], str] | None = None,
) -> tuple[Pipeline, ModelSelection]:
    """Train every candidate (each passed to `track`, which returns a tracking run id) and return the
    best pipeline with the selection report."""
    require_fits_task(training, spec)
    if spec.is_classification:
        require_all_classes(train, spec)
    trained, scores = [], []
    for candidate in training.candidates:
        logger.info("Training candidate %s (%s) on %d rows", candidate.name, candidate.family, len(train))
        result = fit_candidate(spec, candidate, train, validation)
        trained.append(result)
        scores.append(
            CandidateScore(
                name=candidate.name,
                family=candidate.family,
                params=candidate.params,
                fit_seconds=result.fit_seconds,
                validation_metrics=result.validation_metrics,
                mlflow_run_id=track(result) if track else "",
            )
        )
        logger.info(
            "  %s: validation %s = %.4f (%.1f s)",
            candidate.name,
            training.selection_metric,
            selection_value(result, training.selection_metric),
            result.fit_seconds,
        )
    best = best_candidate(trained, training.selection_metric)
    selection = ModelSelection(
        use_case=spec.name, selection_metric=training.selection_metric, selected=best.config.name, candidates=scores
    )
    return best.pipeline, selection


def evaluate_selected(
    spec: UseCaseSpec, pipeline: Pipeline, candidate: str, train: pd.DataFrame, test: pd.DataFrame
) -> EvaluationReport:
    """The selected model on the test split, beside the baseline: the class prior of the train split, or
    the spec's baseline forecast (else the train split's mean target) for the same test rows."""
    column = spec.target.column
    if not spec.is_classification:
        return evaluate_regression(
            spec,
            model_name=spec.name,
            candidate=candidate,
            y_true=test[column].to_numpy(dtype=np.float64),
            y_pred=model_output(pipeline, feature_frame(test, spec), spec),
            baseline_pred=baseline_forecast(spec, train, test),
        )
    return evaluate(
        spec,
        model_name=spec.name,
        candidate=candidate,
        y_true=class_indices(test[column], spec),
        proba=model_output(pipeline, feature_frame(test, spec), spec),
        train_y=class_indices(train[column], spec),
        class_names=class_display_names(spec),
    )


TRAINING_PARAMETERS_PATH = ("steps", "train_model", "parameters", "training")


def load_training_config(path: str | Path, spec: UseCaseSpec | None = None) -> TrainingConfig:
    """The training parameters of a ZenML run config, validated before any pipeline starts; with a
    `spec`, also checked to suit its task (selection metric, candidate families)."""
    training = load_yaml_model(path, TrainingConfig, "run config", RunConfigError, at=TRAINING_PARAMETERS_PATH)
    if spec is not None:
        try:
            require_fits_task(training, spec)
        except RunConfigError as exc:
            raise RunConfigError(f"run config {path}: {exc}") from None
    return training
