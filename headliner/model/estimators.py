"""Model candidates: preprocessing and an estimator (a classifier or a regressor, as the spec's task
asks) as one scikit-learn Pipeline built from the spec, the unit that is trained, tracked, evaluated and
packaged as one ONNX file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from headliner.errors import RunConfigError
from headliner.spec import Task, UseCaseSpec

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

Family = Literal[
    "logistic_regression",
    "mlp",
    "random_forest",
    "ridge",
    "random_forest_regressor",
    "hist_gradient_boosting_regressor",
]
FAMILY_TASKS: dict[str, Task] = {
    "logistic_regression": Task.MULTICLASS_CLASSIFICATION,
    "mlp": Task.MULTICLASS_CLASSIFICATION,
    "random_forest": Task.MULTICLASS_CLASSIFICATION,
    "ridge": Task.REGRESSION,
    "random_forest_regressor": Task.REGRESSION,
    "hist_gradient_boosting_regressor": Task.REGRESSION,
}
ESTIMATOR_STEP = "estimator"  # the pipeline's last step: the classifier or regressor


class CandidateConfig(BaseModel):
    """One candidate of the model selection: an estimator family and its hyperparameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    family: Family
    params: dict[str, Any] = Field(default_factory=dict)


def families(task: Task) -> list[str]:
    """The estimator families that fit a task."""
    return [family for family, family_task in FAMILY_TASKS.items() if family_task is task]


def require_family_fits(candidate: CandidateConfig, task: Task) -> None:
    """A candidate's family must make the task's kind of prediction (a regressor for regression)."""
    if FAMILY_TASKS[candidate.family] is not task:
        raise RunConfigError(
            f"candidate '{candidate.name}': family '{candidate.family}' is a "
            f"{FAMILY_TASKS[candidate.family].value} family, but the use case's task is {task.value}; "
            f"families for {task.value}: {', '.join(families(task))}"
        )


def _estimator(family: Family, params: dict[str, Any]) -> BaseEstimator:
    if family == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**{"max_iter": 1000, **params})
    if family == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(**{"early_stopping": True, "random_state": 0, **params})
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**{"n_jobs": -1, "random_state": 0, **params})
    if family == "ridge":
        from sklearn.linear_model import Ridge

        return Ridge(**params)
    if family == "random_forest_regressor":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(**{"n_jobs": -1, "random_state": 0, **params})
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(**{"random_state": 0, **params})


def build_pipeline(spec: UseCaseSpec, candidate: CandidateConfig) -> Pipeline:
    """Raw feature columns in, class probabilities or the target's value out: median imputation,
    scaling, then the candidate's estimator, which must fit the spec's task."""
    require_family_fits(candidate, spec.task)
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    preprocess = ColumnTransformer([("features", numeric, spec.feature_names)], remainder="drop")
    return Pipeline([("preprocess", preprocess), (ESTIMATOR_STEP, _estimator(candidate.family, candidate.params))])


def feature_frame(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """The model's input: the spec's feature columns, in spec order, as float32 (the ONNX input type,
    so scikit-learn and ONNX Runtime see identical values)."""
    return frame[spec.feature_names].astype(np.float32)


def class_indices(labels: pd.Series, spec: UseCaseSpec) -> np.ndarray:
    """Labels as indices into the spec's class list."""
    lookup = {label: i for i, label in enumerate(spec.target.classes)}
    indices: np.ndarray = labels.map(lookup).to_numpy()
    return indices
