"""Model candidates: preprocessing and a classifier as one scikit-learn Pipeline built from the spec,
the unit that is trained, tracked, evaluated and packaged as one ONNX file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from headliner.spec import UseCaseSpec

if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin

Family = Literal["logistic_regression", "mlp", "random_forest"]


class CandidateConfig(BaseModel):
    """One candidate of the model selection: a classifier family and its hyperparameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    family: Family
    params: dict[str, Any] = Field(default_factory=dict)


def _classifier(family: Family, params: dict[str, Any]) -> ClassifierMixin:
    if family == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**{"max_iter": 1000, **params})
    if family == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(**{"early_stopping": True, "random_state": 0, **params})
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**{"n_jobs": -1, "random_state": 0, **params})


def build_pipeline(spec: UseCaseSpec, candidate: CandidateConfig) -> Pipeline:
    """Raw feature columns in, class probabilities out: median imputation, scaling, classifier."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    preprocess = ColumnTransformer([("features", numeric, spec.feature_names)], remainder="drop")
    return Pipeline([("preprocess", preprocess), ("classifier", _classifier(candidate.family, candidate.params))])


def feature_frame(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """The model's input: the spec's feature columns, in spec order, as float32 (the ONNX input type,
    so scikit-learn and ONNX Runtime see identical values)."""
    return frame[spec.feature_names].astype(np.float32)


def class_indices(labels: pd.Series, spec: UseCaseSpec) -> np.ndarray:
    """Labels as indices into the spec's class list."""
    lookup = {label: i for i, label in enumerate(spec.target.classes)}
    indices: np.ndarray = labels.map(lookup).to_numpy()
    return indices
