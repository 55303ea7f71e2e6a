"""The use-case spec ("ML canvas as code"): one YAML file per use case, validated here.

Everything a pipeline needs to know about a use case — the task (which kind of prediction), features
and their valid ranges, the target (its classes, or its unit and range), the data source, the split,
metrics and gates — comes from this model, so the pipelines hold nothing use-case specific: where the
tasks truly differ, the code path is chosen by `task`.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from headliner.errors import HeadlinerError, SpecError

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the checkout: configs/, serving/, stack_configs/
USE_CASES_DIR = PROJECT_ROOT / "configs" / "use_cases"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(StrEnum):
    """Which kind of prediction a use case makes; selects the metrics, the model's output head and the
    live metric."""

    MULTICLASS_CLASSIFICATION = "multiclass_classification"  # one of several classes, with probabilities
    REGRESSION = "regression"  # a number in the target's unit


CLASSIFICATION_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "top_k_accuracy",
    "log_loss",
)
REGRESSION_METRICS = ("rmse", "mae", "mape", "smape", "r2")
METRICS_BY_TASK = {Task.MULTICLASS_CLASSIFICATION: CLASSIFICATION_METRICS, Task.REGRESSION: REGRESSION_METRICS}
LIVE_METRICS_BY_TASK = {
    Task.MULTICLASS_CLASSIFICATION: CLASSIFICATION_METRICS[:-1],  # log loss needs probabilities the log keeps not
    Task.REGRESSION: ("rmse", "mae", "mape", "smape"),
}
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape", "smape"})


def better_by(metric: str, value: float, reference: float) -> float:
    """How much better `value` is than `reference` on `metric`, in the metric's unit (positive: better;
    for a lower-is-better metric such as MAE, a value below the reference)."""
    return reference - value if metric in LOWER_IS_BETTER else value - reference


# The training run config of each task when none is given (candidates of the task's families).
DEFAULT_RUN_CONFIGS = {
    Task.MULTICLASS_CLASSIFICATION: "configs/runs/training.yaml",
    Task.REGRESSION: "configs/runs/training_regression.yaml",
}


class FeatureType(StrEnum):
    """How a feature is read, validated and fed to the model."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"


class OutOfRangeAction(StrEnum):
    """What wrangling does with a value outside a feature's valid range."""

    CLIP = "clip"  # move it to the nearest bound
    DROP = "drop"  # drop the row


class DerivationKind(StrEnum):
    """How a feature is computed from a time series of the target instead of read from the raw data."""

    LAG = "lag"  # the target `periods` steps before, in the same series
    ROLLING_MEAN = "rolling_mean"  # the mean target of the `periods` steps before (the row's own excluded)
    WEEK_OF_YEAR = "week_of_year"  # the ISO week of the row's time (1-53)


class Derivation(_Strict):
    """A feature computed by the data pipeline from earlier rows of its series: never from the row's own
    target or a later one, so a model trained on it can be used the same way at forecast time."""

    kind: DerivationKind
    periods: int | None = Field(default=None, ge=1, le=520, description="Steps back (lag) or window (rolling_mean).")

    @model_validator(mode="after")
    def _periods_match_kind(self) -> Derivation:
        needs_periods = self.kind is not DerivationKind.WEEK_OF_YEAR
        if needs_periods != (self.periods is not None):
            raise ValueError(f"a '{self.kind.value}' derivation {'needs' if needs_periods else 'takes no'} 'periods'")
        return self


class Feature(_Strict):
    """One model input: its name, type, valid range and meaning; read from the raw data, or derived."""

    name: str
    dtype: FeatureType
    description: str
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    out_of_range: OutOfRangeAction = OutOfRangeAction.DROP
    default: float | None = Field(
        default=None, description="A typical value, used as the starting point of input forms."
    )
    derive: Derivation | None = Field(
        default=None,
        description="Computed from the target's time series (needs the spec's time_series) instead of read from "
        "the raw data; a client of the service sends it like any other feature.",
    )

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Feature:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature '{self.name}': min {self.min} is above max {self.max}")
        if self.dtype is FeatureType.BOOL and (self.min is not None or self.max is not None):
            raise ValueError(f"feature '{self.name}': a bool feature takes no min/max")
        return self

    def valid(self, value: float) -> bool:
        """Whether a value may be given to the model: in range, whole for int, 0 or 1 for bool."""
        if self.dtype is FeatureType.BOOL:
            return value in (0, 1)
        return self.in_range(value) and (self.dtype is FeatureType.FLOAT or float(value).is_integer())

    def in_range(self, value: float) -> bool:
        """Whether a (non-missing) value lies inside the valid range."""
        if self.min is not None and value < self.min:
            return False
        if self.max is not None and value > self.max:
            return False
        return not math.isnan(value)


class Target(_Strict):
    """The label: its column in the raw data and what the model predicts: one of the classes
    (classification) or a number in a unit and range (regression)."""

    column: str
    description: str
    classes: list[str] = Field(default_factory=list, description="Classification: the classes, at least two.")
    unit: str | None = Field(default=None, description="Regression: the target's unit, shown with every answer.")
    min: float | None = Field(default=None, description="Regression: the smallest valid target value.")
    max: float | None = Field(default=None, description="Regression: the largest valid target value.")
    class_names: Literal["iso3166", "given"] = Field(
        default="given",
        description="How classes are shown to people: 'iso3166' looks up country names, "
        "'given' uses display_names (or the class itself).",
    )
    display_names: dict[str, str] = Field(default_factory=dict)
    raw_values: dict[str, str] = Field(
        default_factory=dict, description="Maps raw label values to classes, e.g. '0' -> 'class_0'."
    )
    max_unknown_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Rows whose label is not a known class are dropped and counted; above this "
        "share of labelled rows the data is refused.",
    )

    @field_validator("classes")
    @classmethod
    def _classes_unique(cls, classes: list[str]) -> list[str]:
        duplicates = sorted({c for c in classes if classes.count(c) > 1})
        if duplicates:
            raise ValueError(f"duplicate classes: {duplicates}")
        return classes

    @model_validator(mode="after")
    def _mappings_name_known_classes(self) -> Target:
        unknown = sorted((set(self.display_names) | set(self.raw_values.values())) - set(self.classes))
        if unknown:
            raise ValueError(f"display_names/raw_values name unknown classes: {unknown}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self

    def in_range(self, value: float) -> bool:
        """Whether a regression target value lies inside [min, max]."""
        return not (self.min is not None and value < self.min) and not (self.max is not None and value > self.max)


class SourceKind(StrEnum):
    GENERATOR = "generator"  # a synthetic generator shipped with the project
    SKLEARN = "sklearn"  # a dataset bundled with scikit-learn
    FILE = "file"  # a CSV/Parquet path, http(s) URL or s3:// URI


class DataSource(_Strict):
    """Where the raw data comes from when the CLI is given no --data."""

    kind: SourceKind
    name: str | None = Field(default=None, description="Generator name or scikit-learn dataset name.")
    uri: str | None = None
    rows: int | None = Field(default=None, gt=0, description="Rows to generate by default.")
    seed: int = 42
    format_description: str = ""
    date_column: str | None = Field(
        default=None,
        description="A raw-data column holding each row's date (e.g. the chart day): the data's date range is "
        "recorded at validation and shown on the model card.",
    )

    @model_validator(mode="after")
    def _has_what_its_kind_needs(self) -> DataSource:
        if self.kind in (SourceKind.GENERATOR, SourceKind.SKLEARN) and not self.name:
            raise ValueError(f"source kind '{self.kind.value}' needs a 'name'")
        if self.kind is SourceKind.FILE and not self.uri:
            raise ValueError("source kind 'file' needs a 'uri'")
        return self


class Wrangling(_Strict):
    """How raw rows become examples."""

    example_key: list[str] = Field(
        default_factory=list,
        description="Columns that identify one example; rows repeating a key are collapsed "
        "(e.g. a song charting in a country on many days is one example). Empty: every row.",
    )


_DURATION_UNITS = {"d": "D", "day": "D", "days": "D", "w": "W", "week": "W", "weeks": "W"}


def parse_period_span(value: str) -> tuple[int, str]:
    """'8 weeks', '8w', '56 days' -> (8, 'W'), (56, 'D'): a span counted back from the data's last time."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]+)\s*", value)
    if not match or match.group(2).lower() not in _DURATION_UNITS or int(match.group(1)) <= 0:
        raise ValueError(f"expected a positive span such as '8 weeks', '8w' or '56 days', got {value!r}")
    return int(match.group(1)), _DURATION_UNITS[match.group(2).lower()]


class Split(_Strict):
    """How examples are split into train, validation and test.

    `by: group` (the default): random fractions, grouped so no group (e.g. a song) lands in two splits.
    `by: time`: the last `test_last` of `column` is the test split, the `validation_last` before it the
    validation split, everything earlier trains: the model is judged on weeks it has never seen, after
    every week it learnt from.
    """

    by: Literal["group", "time"] = "group"
    train: float | None = Field(default=None, gt=0, lt=1)
    validation: float | None = Field(default=None, gt=0, lt=1)
    test: float | None = Field(default=None, gt=0, lt=1)
    group_column: str | None = Field(
        default=None, description="by group: rows sharing this value stay in one split; none: row-level."
    )
    column: str | None = Field(default=None, description="by time: the raw column holding each row's date.")
    validation_last: str | None = Field(default=None, description="by time: e.g. '8 weeks' before the test span.")
    test_last: str | None = Field(default=None, description="by time: e.g. '8 weeks' at the end of the data.")
    seed: int = 42

    @field_validator("validation_last", "test_last")
    @classmethod
    def _span(cls, value: str | None) -> str | None:
        if value is not None:
            parse_period_span(value)
        return value

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Split:
        fractions = (self.train, self.validation, self.test)
        if self.by == "group":
            if any(fraction is None for fraction in fractions):
                raise ValueError("a split by group needs train, validation and test fractions")
            if self.column or self.validation_last or self.test_last:
                raise ValueError("column, validation_last and test_last belong to a split by time")
            total = sum(fraction or 0.0 for fraction in fractions)
            if abs(total - 1.0) > 1e-9:
                raise ValueError(f"train + validation + test must be 1, got {total:g}")
        else:
            if not (self.column and self.validation_last and self.test_last):
                raise ValueError("a split by time needs column, validation_last and test_last")
            if any(fraction is not None for fraction in fractions) or self.group_column:
                raise ValueError("train/validation/test fractions and group_column belong to a split by group")
        return self

    @property
    def fractions(self) -> tuple[float, float, float]:
        """by group: (train, validation, test)."""
        if self.train is None or self.validation is None or self.test is None:
            raise ValueError("a split by time has no fractions")
        return self.train, self.validation, self.test


class TimeSeries(_Strict):
    """The rows are a panel of time series (e.g. weekly sales per store and product family): what derived
    features and a split by time need to know."""

    time_column: str = Field(description="The raw column holding each row's date.")
    series: list[str] = Field(
        default_factory=list, description="Columns that identify one series (e.g. store, family); empty: one series."
    )
    frequency: str = Field(
        default="W-MON",
        description="The step of the series as a pandas period alias (W-MON: weeks starting on Monday, D: days); "
        "finer raw rows are summed (target, int features), averaged (float features) or or-ed (bool) into one step.",
    )

    @field_validator("frequency")
    @classmethod
    def _pandas_frequency(cls, value: str) -> str:
        import pandas as pd

        try:
            pd.Period("2024-01-01", freq=value)
        except ValueError:
            raise ValueError(f"'{value}' is not a pandas period frequency such as W-MON, D or M") from None
        return value


class QualityGate(_Strict):
    """A bound a model's test metric must meet: a floor (`min`), a ceiling (`max`, for
    lower-is-better metrics such as log loss or MAE) and/or a margin over the baseline, additive
    (`min_lift_over_baseline`) or relative (`min_improvement_over_baseline`: 0.1 is 10% lower MAE)."""

    metric: str
    min: float | None = None
    max: float | None = None
    min_lift_over_baseline: float | None = Field(
        default=None,
        ge=0,
        description="Additive margin over the class-prior baseline's figure on the same test rows: at least "
        "baseline + lift (at most baseline - lift for a lower-is-better metric).",
    )

    min_improvement_over_baseline: float | None = Field(
        default=None,
        ge=0,
        lt=1,
        description="Relative margin over the baseline's figure: at most baseline x (1 - improvement) for a "
        "lower-is-better metric, at least baseline x (1 + improvement) otherwise.",
    )

    @model_validator(mode="after")
    def _has_a_bound(self) -> QualityGate:
        bounds = (self.min, self.max, self.min_lift_over_baseline, self.min_improvement_over_baseline)
        if all(bound is None for bound in bounds):
            raise ValueError(
                f"quality gate on '{self.metric}' sets no bound "
                "(min, max, min_lift_over_baseline or min_improvement_over_baseline)"
            )
        return self


class Baseline(_Strict):
    """The forecast a regression model must beat: a feature's value taken as the prediction (e.g. the
    target a year before: the seasonal-naive forecast). Without one, the train split's mean target."""

    feature: str
    description: str = Field(description="What this forecast is, for people: 'seasonal naive (same week last year)'.")


class Evaluation(_Strict):
    metrics: list[str]
    top_k: int = Field(default=1, ge=1, description="Classification: k of top_k_accuracy.")
    baseline: Baseline | None = Field(
        default=None, description="Regression: the forecast to beat; classification always uses the class prior."
    )
    primary_metric: str = Field(
        default="top_k_accuracy", description="The metric that decides whether one model is better than another."
    )
    quality_gates: list[QualityGate] = Field(default_factory=list)

    @model_validator(mode="after")
    def _primary_metric_is_evaluated(self) -> Evaluation:
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary_metric '{self.primary_metric}' is not among metrics {self.metrics}")
        return self


class Decision(_Strict):
    """What a person is shown."""

    question: str
    top_k: int = Field(default=1, ge=1, description="Classification: the classes shown per answer.")
    answer_template: str = Field(
        description="Classification: '{classes}' is replaced by the top classes; regression: '{value}' by the "
        "rounded prediction and '{unit}' by the target's unit ('about {value} {unit}')."
    )
    item_noun: str = Field(default="example", description="What one input is, for people: 'song', 'wine'.")
    class_noun: str = Field(default="classes", description="What the classes are, plural: 'countries', 'cultivars'.")


class Preset(_Strict):
    """An example input people can start from on the service's page: the features it sets (the others
    take their defaults)."""

    name: str = Field(min_length=1, max_length=40)
    description: str = ""
    values: dict[str, float]


class Monitoring(_Strict):
    """How the monitoring pipeline judges a window of live traffic against the training data."""

    min_window_rows: int = Field(
        default=100, ge=1, description="Fewer scored rows in the window: no verdict, a message saying so."
    )
    max_analysis_rows: int = Field(
        default=200_000,
        ge=1000,
        description="Larger windows are sampled uniformly (seeded) to this many rows for drift, quality and "
        "fairness; counts and live metrics use every row.",
    )
    schedule: str = Field(
        default="0 * * * *",
        description="When the monitoring pipeline runs on a Kubernetes stack (a cron expression, or @hourly...): "
        "the CronJob of ZenML's Schedule; on the local stack `python run.py monitor --every` runs it.",
    )

    scheduled_window: str = Field(
        default="1h",
        description="What a scheduled run on Kubernetes judges: the requests of this span before it starts (30m, "
        "1h, 1d); as long as the schedule's interval, so consecutive runs cover the log without gaps.",
    )

    @field_validator("scheduled_window")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?\s*[smhdw]", value.strip().lower()) or float(value.strip()[:-1]) <= 0:
            raise ValueError("expected a positive duration such as 30m, 1h or 1d")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron_expression(cls, value: str) -> str:
        if not re.fullmatch(r"@(hourly|daily|weekly|monthly|yearly|annually|midnight)|[\w*/,-]+( [\w*/,-]+){4}", value):
            raise ValueError(
                "expected a cron expression of five fields (minute hour day-of-month month day-of-week) such as "
                "'0 * * * *', or @hourly, @daily, @weekly, @monthly"
            )
        return value

    numeric_drift_method: str | None = Field(
        default=None,
        description="Evidently drift method for the numeric features (e.g. 'wasserstein', 'ks', 'psi'); none: "
        "Evidently chooses by column size. Bool features always get Evidently's categorical choice.",
    )
    numeric_drift_threshold: float | None = Field(
        default=None,
        gt=0,
        description="Threshold of numeric_drift_method (a p-value or a distance); none: its default.",
    )
    prediction_drift_method: str | None = Field(
        default=None,
        description="Evidently drift method for the predicted class (e.g. 'chisquare', 'jensenshannon', 'psi'); "
        "none: Evidently chooses by size.",
    )
    prediction_drift_threshold: float | None = Field(
        default=None, gt=0, description="Threshold of prediction_drift_method."
    )
    drift_share_warn: float = Field(ge=0, le=1, description="Share of drifted features that warns.")
    drift_share_retrain: float = Field(ge=0, le=1, description="Share of drifted features that asks to retrain.")
    max_rejected_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of requests answered with an error (4xx/5xx) above which a warning is raised.",
    )
    live_metric: str = Field(description="The live metric compared with the offline evaluation of the served version.")
    live_metric_min_drop_to_retrain: float = Field(
        ge=0,
        description="The live metric worse than its offline value by this much (below it for accuracy, above it "
        "for MAE; in the metric's unit) asks to retrain; half of it warns.",
    )
    min_labels: int = Field(
        default=100, ge=1, description="Live metrics are judged only with at least this many true labels in the window."
    )
    evidently_workspace: str | None = Field(
        default=None,
        description="Folder of the Evidently workspace each run adds its snapshots to (HEADLINER_EVIDENTLY_WORKSPACE "
        "wins; none: `evidently` beside the local inference log, in ZenML's local stores folder).",
    )
    fairness_attribute: str | None = Field(
        default=None,
        description=(
            "A bool feature; the statistical parity difference of the predicted top class across its two values"
            " is watched."
        ),
    )
    fairness_max_parity_difference: float | None = Field(default=None, ge=0, le=1)
    fairness_min_disparate_impact_ratio: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Disparate impact ratio (share predicted a class with the attribute / without) below this warns; "
        "0.8 is the four-fifths rule.",
    )
    fairness_max_disparate_impact_ratio: float = Field(
        default=1.25, ge=1, description="Disparate impact ratio above this warns (1 / 0.8, the four-fifths rule)."
    )
    fairness_max_equal_opportunity_difference: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="|true positive rate with the attribute - without| (labelled rows, one class vs the rest) above "
        "this warns.",
    )
    fairness_max_average_odds_difference: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="|mean of the true and false positive rate differences| (labelled rows) above this warns.",
    )
    estimated_metric_max_drop: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="The label-free estimate (CBPE) of the live metric this much or more below the same metric "
        "realized on the validation split warns.",
    )

    @model_validator(mode="after")
    def _thresholds_are_ordered(self) -> Monitoring:
        if self.drift_share_warn > self.drift_share_retrain:
            raise ValueError("drift_share_warn is above drift_share_retrain")
        if (self.fairness_attribute is None) != (self.fairness_max_parity_difference is None):
            raise ValueError("fairness_attribute and fairness_max_parity_difference go together")
        return self


class Retraining(_Strict):
    """What a `retrain` decision of the monitoring pipeline does besides the alert it always writes."""

    automatic: bool = Field(
        default=False,
        description="Start the training pipeline on a `retrain` decision (the CLI's --retrain/--no-retrain overrides).",
    )
    alert_webhook: str | None = Field(
        default=None,
        description="URL that gets every warn/retrain alert as a JSON POST (env HEADLINER_ALERT_WEBHOOK overrides).",
    )


class UseCaseSpec(_Strict):
    """A whole use case: the ML canvas blocks that the pipelines act on."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Also the registered model name.")
    title: str
    description: str
    task: Task
    source: DataSource
    features: list[Feature] = Field(min_length=1)
    target: Target
    wrangling: Wrangling = Wrangling()
    split: Split
    time_series: TimeSeries | None = None
    evaluation: Evaluation
    decision: Decision
    presets: list[Preset] = Field(default_factory=list)
    monitoring: Monitoring
    retraining: Retraining = Retraining()
    limitations: list[str] = Field(
        default_factory=list,
        description="Where the model is weak or must not be used, in the use case's own words: the model card "
        "lists them under 'Limitations'.",
    )

    @model_validator(mode="after")
    def _columns_are_consistent(self) -> UseCaseSpec:
        names = self.feature_names
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate feature names in {names}")
        if self.target.column in names:
            raise ValueError(f"target column '{self.target.column}' is also a feature")
        for column in self.wrangling.example_key:
            if column not in self.raw_columns:
                raise ValueError(f"wrangling.example_key column '{column}' is not a data column")
        self._check_task()
        self._check_time_series()
        live_metrics = LIVE_METRICS_BY_TASK[self.task]
        if self.monitoring.live_metric not in live_metrics:
            raise ValueError(
                f"monitoring.live_metric '{self.monitoring.live_metric}' is not one of {list(live_metrics)}"
            )
        attribute = self.monitoring.fairness_attribute
        if attribute is not None and (attribute not in names or self.feature(attribute).dtype is not FeatureType.BOOL):
            raise ValueError(f"monitoring.fairness_attribute '{attribute}' is not a bool feature")
        self._check_presets()
        return self

    def _check_task(self) -> None:
        known = METRICS_BY_TASK[self.task]
        unknown = [
            m for m in self.evaluation.metrics + [g.metric for g in self.evaluation.quality_gates] if m not in known
        ]
        if unknown:
            raise ValueError(f"metrics {unknown} are not metrics of a {self.task.value} task; known: {list(known)}")
        target = self.target
        if self.task is Task.MULTICLASS_CLASSIFICATION:
            if len(target.classes) < 2:
                raise ValueError("a classification target needs at least two classes")
            if target.unit is not None or target.min is not None or target.max is not None:
                raise ValueError("target unit/min/max belong to a regression task")
            if self.evaluation.baseline is not None:
                raise ValueError("evaluation.baseline belongs to a regression task (classification: the class prior)")
            if self.decision.top_k > len(target.classes):
                raise ValueError("decision.top_k exceeds the number of classes")
            return
        if target.classes or target.display_names or target.raw_values:
            raise ValueError("target classes/display_names/raw_values belong to a classification task")
        if not target.unit:
            raise ValueError("a regression target needs its unit (e.g. 'units', 'EUR')")
        if self.monitoring.fairness_attribute is not None:
            raise ValueError("monitoring.fairness_attribute is watched for classification tasks only")
        baseline = self.evaluation.baseline
        if baseline is not None and baseline.feature not in self.feature_names:
            raise ValueError(f"evaluation.baseline.feature '{baseline.feature}' is not a feature")

    def _check_time_series(self) -> None:
        derived = [f.name for f in self.features if f.derive is not None]
        series = self.time_series
        if series is None:
            if derived:
                raise ValueError(f"derived features {derived} need the spec's time_series")
            if self.split.by == "time":
                raise ValueError("a split by time needs the spec's time_series")
            return
        clashing = sorted({series.time_column, *series.series} & {*self.feature_names, self.target.column})
        if clashing:
            raise ValueError(f"time_series columns {clashing} are also features or the target")
        if self.split.by == "time" and self.split.column != series.time_column:
            raise ValueError(
                f"split.column '{self.split.column}' is not time_series.time_column '{series.time_column}'"
            )
        if self.split.by == "group" and self.split.group_column is None:
            raise ValueError(
                "time series split at random would train on weeks after the ones it is tested on: use split by time"
            )

    def _check_presets(self) -> None:
        names = [preset.name for preset in self.presets]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate preset names in {names}")
        for preset in self.presets:
            where = f"preset '{preset.name}'"
            unknown = sorted(set(preset.values) - set(self.feature_names))
            if unknown:
                raise ValueError(f"{where} sets unknown features {unknown}")
            for feature in self.features:
                value = preset.values.get(feature.name, feature.default)
                if value is None:
                    raise ValueError(f"{where} leaves out '{feature.name}', which has no default")
                if not feature.valid(value):
                    raise ValueError(f"{where}: {feature.name} = {value:g} is not a valid value")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def raw_features(self) -> list[Feature]:
        """The features read from the raw data (the others are derived)."""
        return [f for f in self.features if f.derive is None]

    @property
    def key_columns(self) -> list[str]:
        """Columns kept beside features and target to group rows: the split's group column, the time
        series' time and series columns."""
        columns = [self.split.group_column] if self.split.group_column else []
        if self.time_series is not None:
            columns += [self.time_series.time_column, *self.time_series.series]
        return list(dict.fromkeys(columns))

    @property
    def raw_columns(self) -> list[str]:
        """The columns a raw dataset must have: key columns, raw features, target."""
        return self.key_columns + [f.name for f in self.raw_features] + [self.target.column]

    @property
    def is_classification(self) -> bool:
        return self.task is Task.MULTICLASS_CLASSIFICATION

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)


def load_spec(path: str | Path) -> UseCaseSpec:
    """Read and validate a use-case spec; errors name the file and the offending field."""
    return load_yaml_model(path, UseCaseSpec, "use-case spec", SpecError)


Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(
    path: str | Path, model: type[Model], kind: str, error: type[HeadlinerError], at: tuple[str, ...] = ()
) -> Model:
    """Validate the mapping found under the keys `at` of a YAML file (`kind` names the file in errors)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{kind} {path}: no such file")
    try:
        node = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{kind} {path}: not valid YAML ({exc})") from None
    for key in at:
        if not isinstance(node, dict) or key not in node:
            raise error(f"{kind} {path}: missing '{'.'.join(at)}'")
        node = node[key]
    if not isinstance(node, dict):
        raise error(f"{kind} {path}: expected a mapping at {'.'.join(at) or 'the top level'}")
    try:
        return model.model_validate(node)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in (*at, *first["loc"])) or "(top level)"
        raise error(f"{kind} {path}: field '{where}': {first['msg']}") from None
