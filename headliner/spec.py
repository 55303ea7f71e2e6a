"""The use-case spec ("ML canvas as code"): one YAML file per use case, validated here.

Everything a pipeline needs to know about a use case — features and their valid ranges, the target
and its classes, the data source, metrics and gates — comes from this model, so the pipelines hold
nothing use-case specific.
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


class FeatureType(StrEnum):
    """How a feature is read, validated and fed to the model."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"


class OutOfRangeAction(StrEnum):
    """What wrangling does with a value outside a feature's valid range."""

    CLIP = "clip"  # move it to the nearest bound
    DROP = "drop"  # drop the row


class Feature(_Strict):
    """One model input: its name, type, valid range and meaning."""

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
    """The label: its column in the raw data and the classes the model predicts."""

    column: str
    description: str
    classes: list[str] = Field(min_length=2)
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
        return self


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


class Split(_Strict):
    """How examples are split; grouped so no group (e.g. a song) lands in two splits."""

    train: float = Field(gt=0, lt=1)
    validation: float = Field(gt=0, lt=1)
    test: float = Field(gt=0, lt=1)
    group_column: str | None = Field(
        default=None, description="Rows sharing this value stay in one split; none: row-level."
    )
    seed: int = 42

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> Split:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"train + validation + test must be 1, got {total:g}")
        return self


class QualityGate(_Strict):
    """A bound a model's test metric must meet: a floor (`min`), a ceiling (`max`, for
    lower-is-better metrics such as log loss) and/or a margin over the trivial baseline."""

    metric: str
    min: float | None = None
    max: float | None = None
    min_lift_over_baseline: float | None = Field(
        default=None,
        ge=0,
        description="Additive margin over the class-prior baseline's figure on the same test rows: at least "
        "baseline + lift (at most baseline - lift for a lower-is-better metric).",
    )

    @model_validator(mode="after")
    def _has_a_bound(self) -> QualityGate:
        if self.min is None and self.max is None and self.min_lift_over_baseline is None:
            raise ValueError(f"quality gate on '{self.metric}' sets no bound (min, max or min_lift_over_baseline)")
        return self


class Evaluation(_Strict):
    metrics: list[str]
    top_k: int = Field(ge=1)
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
    top_k: int = Field(ge=1)
    answer_template: str
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
        description="A drop of the live metric below its offline value by this much asks to retrain; half of it warns.",
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


LIVE_METRICS = (
    "accuracy",
    "top_k_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
)


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
    task: Literal["multiclass_classification"]
    source: DataSource
    features: list[Feature] = Field(min_length=1)
    target: Target
    wrangling: Wrangling = Wrangling()
    split: Split
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
        if self.decision.top_k > len(self.target.classes):
            raise ValueError("decision.top_k exceeds the number of classes")
        if self.monitoring.live_metric not in LIVE_METRICS:
            raise ValueError(
                f"monitoring.live_metric '{self.monitoring.live_metric}' is not one of {list(LIVE_METRICS)}"
            )
        attribute = self.monitoring.fairness_attribute
        if attribute is not None and (attribute not in names or self.feature(attribute).dtype is not FeatureType.BOOL):
            raise ValueError(f"monitoring.fairness_attribute '{attribute}' is not a bool feature")
        self._check_presets()
        return self

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
    def raw_columns(self) -> list[str]:
        """The columns a raw dataset must have: group column, features, target."""
        group = [self.split.group_column] if self.split.group_column else []
        return group + self.feature_names + [self.target.column]

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
