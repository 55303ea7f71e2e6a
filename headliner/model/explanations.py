"""Why the model answers as it does: local explanations of one answer (SHAP values of each shown class's
probability, or of a regression model's forecast in the target's unit, worded in the use case's terms,
computed from the ONNX file alone, as the service must) and global explanations of the model (permutation
importance on the validation split and mean |SHAP| per class or of the forecast), kept as a report artifact
with the model version.

SHAP values here are those of the permutation method with an independent masker over the background
rows that travel in the ONNX file (`explanation_background` metadata): a feature's contribution is the
average change of the model's output (a class's probability, or the forecast) when the row's value
replaces the background's, so the contributions of a row add up to its output minus the expected output
over the background. The estimator is shap's permutation method, vectorised here (no numba compilation in
the service). The model function is `OnnxPredictor.scores` ([N, K]: the class probabilities, or the one
forecast column), so both tasks share the estimator; what differs per task is how an answer is worded.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from headliner.errors import HeadlinerError
from headliner.reports.html import HtmlReport

if TYPE_CHECKING:
    import pandas as pd

    from headliner.model.onnx_packaging import OnnxPredictor
    from headliner.spec import UseCaseSpec

EXPLANATION_SEED = 0  # permutations of the SHAP estimate: the same song gets the same explanation
MAX_EVALS = 500  # coalitions per row, as shap's default: 18 antithetic permutations of 13 features
MAX_BATCH_ROWS = 100_000  # model rows per ONNX Runtime call when many rows are explained at once
_SHORT_DESCRIPTION = 30  # a feature description up to this long names the feature in texts (e.g. "Malic acid")
_PLAIN_NAME = re.compile(r"[\w %/-]+")  # a description that is a name, not an explanation ("Modality: 1 = ...")
_CODE = re.compile(r"(-?\d+)\s*=\s*([^,;.]+)")  # "1 = major" in a description


class ExplanationError(HeadlinerError):
    """A model cannot be explained as asked: e.g. its ONNX file carries no explanation background."""


class FeatureContribution(BaseModel):
    """One feature's share in one answer: a class's probability, or a forecast."""

    feature: str  # the spec's feature name
    value: float  # the row's value
    contribution: float  # SHAP value: the change of the class's probability (probability units) or of the forecast
    text: str  # in the use case's words: "Danceability 0.82 raises Brazil by 3.1 points", "... by 85 units"


class ClassExplanation(BaseModel):
    """Why one class got its probability: contributions that add up from the background's expectation."""

    label: str
    name: str
    probability: float
    base_probability: float  # the expected probability over the background; + sum of contributions = probability
    contributions: list[FeatureContribution]  # every feature, largest |contribution| first


class SongExplanation(BaseModel):
    """The explanation of one answer: the predictor's top_k classes, most probable first."""

    classes: list[ClassExplanation]


class ForecastExplanation(BaseModel):
    """Why a regression model's forecast for one row is what it is: contributions in the target's unit that
    add up from the mean forecast over the background."""

    output: str  # the target column: the model's one output (OnnxPredictor.output_names)
    unit: str  # the target's unit
    prediction: float
    base_value: float  # the mean forecast over the background; + sum of contributions = prediction
    contributions: list[FeatureContribution]  # every feature, largest |contribution| first


def feature_label(entry: dict[str, Any]) -> str:
    """How texts name a feature: its description when that is a short name ("Malic acid"), else its name
    in words, without a last word the unit repeats ("duration_ms" with unit ms -> "Duration")."""
    description = str(entry.get("description") or "").strip()
    if description and len(description) <= _SHORT_DESCRIPTION and _PLAIN_NAME.fullmatch(description):
        return description
    parts = str(entry["name"]).strip("_").split("_")
    if len(parts) > 1 and parts[-1].lower() == str(entry.get("unit") or "").lower():
        parts = parts[:-1]
    words = " ".join(parts)
    return words[:1].upper() + words[1:]


def format_value(value: float, entry: dict[str, Any]) -> str:
    """A feature value as people read it: yes/no for a bool, whole numbers for an int, 3 significant
    digits for a float (thousands separated, no exponent: "1,200"), with the unit."""
    dtype = entry.get("dtype")
    if math.isnan(value):
        return "missing"
    if dtype == "bool":
        return "yes" if value >= 0.5 else "no"
    text = f"{round(value):d}" if dtype == "int" else rounded_amount(value)
    unit = entry.get("unit")
    if unit:
        return f"{text} {unit}"
    meaning = _coded_values(str(entry.get("description") or "")).get(text) if dtype == "int" else None
    return f"{text} ({meaning})" if meaning else text


def _coded_values(description: str) -> dict[str, str]:
    """The codes a description spells out: "Modality: 1 = major, 0 = minor" -> {"1": "major", "0": "minor"}."""
    return {code: meaning.strip() for code, meaning in _CODE.findall(description)}


def contribution_text(entry: dict[str, Any], value: float, contribution: float, class_name: str) -> str:
    """ "Danceability 0.82 raises Brazil by 3.1 points": a contribution in percentage points."""
    points = abs(contribution) * 100
    subject = f"{feature_label(entry)} {format_value(value, entry)}"
    if points < 0.005:
        return f"{subject} hardly changes {class_name}"
    amount = f"{points:.1f}" if points >= 1 else f"{points:.2f}"
    verb = "raises" if contribution > 0 else "lowers"
    return f"{subject} {verb} {class_name} by {amount} points"


def rounded_amount(value: float) -> str:
    """An amount as people read it: 3 significant digits, thousands separated (1238.6 -> "1,240", 85.34 ->
    "85.3")."""
    rounded = float(f"{value:.3g}")
    return f"{rounded:,.0f}" if abs(rounded) >= 100 else f"{rounded:g}"


def forecast_text(entry: dict[str, Any], value: float, contribution: float, unit: str) -> str:
    """ "Units sold the week before 1200 units raises the forecast by 85 units": a contribution in the
    target's unit."""
    subject = f"{feature_label(entry)} {format_value(value, entry)}"
    amount = rounded_amount(abs(contribution))
    if abs(contribution) < 0.005:
        return f"{subject} hardly changes the forecast"
    verb = "raises" if contribution > 0 else "lowers"
    return f"{subject} {verb} the forecast by {amount} {unit}"


def permutation_shap(
    model: Callable[[np.ndarray], np.ndarray],
    matrix: np.ndarray,
    background: np.ndarray,
    max_evals: int = MAX_EVALS,
    seed: int = EXPLANATION_SEED,
    max_batch_rows: int = MAX_BATCH_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """SHAP values by antithetic permutation sampling with an independent masker: the algorithm and the
    numbers of shap's `PermutationExplainer(model, maskers.Independent(background))` (same permutations for
    the same seed), vectorised with numpy, so no numba compilation (seconds per process) is paid and every
    permutation of every row goes to the model in one batch.

    `model`: [R, F] -> [R, C] outputs. Returns (values [N, F, C], base values [N, C]: the mean output over
    the background); for each row, values.sum(1) + base equals model(row) up to rounding. A feature whose
    value equals every background row's is left out of the permutations and gets 0, as in shap. Each row
    draws its permutations from its own generator seeded with `seed`: the same row, the same answer."""
    rows = np.asarray(matrix, dtype=np.float64)
    reference = np.asarray(background, dtype=np.float64)
    n_rows, width = rows.shape
    background_mean = np.asarray(model(reference), dtype=np.float64).mean(axis=0)
    values = np.zeros((n_rows, width, len(background_mean)))
    base = np.tile(background_mean, (n_rows, 1))

    plans = [_permutation_plan(row, reference, max_evals, seed) for row in rows]
    pending: list[tuple[int, np.ndarray, np.ndarray]] = []
    pending_rows = 0
    for index, plan in enumerate(plans):
        if plan is None:
            continue
        pending.append((index, *plan))
        pending_rows += plan[1].size // width * len(reference)
        if pending_rows >= max_batch_rows:
            _evaluate(model, rows, reference, pending, values)
            pending, pending_rows = [], 0
    if pending:
        _evaluate(model, rows, reference, pending, values)
    return values, base


def _permutation_plan(
    row: np.ndarray, background: np.ndarray, max_evals: int, seed: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The permutations of one row's varying features [P, n] and the coalitions they walk through
    [P, 2n + 1, F] (all background -> the row's values switched on in permutation order -> switched off
    again in the same order); None when no feature varies."""
    varying = np.flatnonzero(np.any(~np.isclose(row, background), axis=0))
    n = len(varying)
    if n == 0:
        return None
    count = max_evals // (2 * n + 1)
    if count == 0:
        raise ValueError(f"max_evals={max_evals} is too low: it must be at least 2 * features + 1 = {2 * n + 1}")
    generator = np.random.RandomState(seed)  # shap shuffles one index array in place, permutation after permutation
    order = varying.copy()
    permutations = np.empty((count, n), dtype=np.intp)
    for p in range(count):
        generator.shuffle(order)
        permutations[p] = order
    # step k of a permutation: forward (k <= n) the first k features are on, backward (k = n + j) the last n - j
    steps = np.arange(2 * n + 1)
    position_on = np.zeros((count, row.shape[0]), dtype=np.intp)  # each feature's place in its permutation
    np.put_along_axis(position_on, permutations, np.arange(n)[None, :].repeat(count, 0), axis=1)
    position = position_on[:, None, :]
    is_varying = np.zeros(row.shape[0], dtype=bool)
    is_varying[varying] = True
    forward = position < steps[None, :, None]
    backward = position >= (steps - n)[None, :, None]
    coalitions = is_varying[None, None, :] & np.where((steps <= n)[None, :, None], forward, backward)
    return permutations, coalitions


def _evaluate(
    model: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    background: np.ndarray,
    pending: list[tuple[int, np.ndarray, np.ndarray]],
    values: np.ndarray,
) -> None:
    """One model call for the coalitions of the pending rows; their SHAP values into `values`."""
    blocks = [np.where(coalitions[..., None, :], rows[index], background) for index, _, coalitions in pending]
    flat = np.concatenate([block.reshape(-1, rows.shape[1]) for block in blocks])
    outputs = np.asarray(model(flat), dtype=np.float64)
    start = 0
    for index, permutations, coalitions in pending:
        count, steps = coalitions.shape[:2]
        size = count * steps * len(background)
        means = outputs[start : start + size].reshape(count, steps, len(background), -1).mean(axis=2)
        start += size
        n = permutations.shape[1]
        forward = means[:, 1 : n + 1] - means[:, :n]  # [P, n, C]: switching feature permutations[:, i] on
        backward = means[:, n : 2 * n] - means[:, n + 1 :]  # ... and off again
        contributions = np.zeros((values.shape[1], values.shape[2]))
        np.add.at(contributions, permutations.ravel(), (forward + backward).reshape(-1, values.shape[2]))
        values[index] = contributions / (2 * count)


def required_background(predictor: OnnxPredictor) -> np.ndarray:
    """The background rows the ONNX file carries; ExplanationError for a file packaged without them."""
    background = predictor.background
    if background is None:
        raise ExplanationError(
            f"model {predictor.model_name} version {predictor.model_version} cannot be explained: its ONNX "
            "file has no 'explanation_background' metadata (it was packaged before explanations existed); "
            "train and package a new version"
        )
    return background


class LocalExplainer:
    """SHAP explanations of a packaged model's answers, from the ONNX file alone (`permutation_shap` of
    `OnnxPredictor.scores` over the file's background rows): `explain` for a classifier's top classes,
    `explain_forecasts` for a regression model's forecast. One row costs about 500 x background rows of model
    evaluations, in one ONNX Runtime call; there is no one-off compilation, so nothing to warm up."""

    def __init__(self, predictor: OnnxPredictor):
        self.predictor = predictor
        self.background = required_background(predictor)
        self._model = score_function(predictor)

    def shap_values(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, F] in feature order -> (SHAP values [N, F, K] of every output column: the class probabilities,
        or the forecast; base values [N, K]: the expected outputs over the background)."""
        values = np.asarray(matrix, dtype=np.float64)
        width = len(self.predictor.feature_names)
        if values.ndim != 2 or values.shape[1] != width:
            raise ValueError(f"expected a matrix of shape [N, {width}], got {list(values.shape)}")
        return permutation_shap(self._model, values, self.background)

    def explain(self, matrix: np.ndarray) -> list[SongExplanation]:
        """One explanation per row of an [N, F] matrix in feature order: the top_k classes (as /predict
        shows them), each with every feature's contribution, largest first. Classification only."""
        self._require_task(classification=True)
        values = np.asarray(matrix, dtype=np.float64)
        shap_values, base_values = self.shap_values(values)
        probabilities = self.predictor.probabilities(values).astype(np.float64)
        top, _ = self.predictor.top_classes(probabilities)
        explanations = []
        for row in range(len(values)):
            classes = []
            for index in top[row]:
                index = int(index)
                name = self.predictor.class_names[index]
                classes.append(
                    ClassExplanation(
                        label=self.predictor.classes[index],
                        name=name,
                        probability=float(probabilities[row, index]),
                        base_probability=float(base_values[row, index]),
                        contributions=self._contributions(
                            values[row],
                            shap_values[row, :, index],
                            partial(contribution_text, class_name=name),
                        ),
                    )
                )
            explanations.append(SongExplanation(classes=classes))
        return explanations

    def explain_forecasts(self, matrix: np.ndarray) -> list[ForecastExplanation]:
        """One explanation per row of an [N, F] matrix in feature order: the forecast, the mean forecast it
        starts from and every feature's contribution in the target's unit, largest first. Regression only."""
        self._require_task(classification=False)
        values = np.asarray(matrix, dtype=np.float64)
        shap_values, base_values = self.shap_values(values)
        forecasts = self.predictor.scores(values).astype(np.float64)[:, 0]
        target = self.predictor.target or {}
        unit = str(target.get("unit") or "")
        return [
            ForecastExplanation(
                output=self.predictor.output_names[0],
                unit=unit,
                prediction=float(forecasts[row]),
                base_value=float(base_values[row, 0]),
                contributions=self._contributions(
                    values[row],
                    shap_values[row, :, 0],
                    partial(forecast_text, unit=unit),
                ),
            )
            for row in range(len(values))
        ]

    def _require_task(self, classification: bool) -> None:
        if self.predictor.is_classification != classification:
            method = "explain" if self.predictor.is_classification else "explain_forecasts"
            raise ValueError(
                f"model {self.predictor.model_name} is a {self.predictor.task} model: explain its answers with "
                f"LocalExplainer.{method}"
            )

    def _contributions(
        self, row: np.ndarray, shap_row: np.ndarray, text: Callable[[dict[str, Any], float, float], str]
    ) -> list[FeatureContribution]:
        """Every feature's contribution to one output of one row, worded by `text`, largest first."""
        contributions = [
            FeatureContribution(
                feature=entry["name"],
                value=float(row[feature]),
                contribution=float(shap_row[feature]),
                text=text(entry, float(row[feature]), float(shap_row[feature])),
            )
            for feature, entry in enumerate(self.predictor.feature_schema)
        ]
        contributions.sort(key=lambda c: -abs(c.contribution))
        return contributions


def explanation_answer(
    model_name: str,
    model_version: str,
    request_id: str,
    explanations: Sequence[SongExplanation] | Sequence[ForecastExplanation],
) -> dict[str, Any]:
    """The JSON answer of explanations (POST /explain, `python run.py explain --output json`): the model, the
    request, and one explanation per row (a classifier's top classes, or a forecast)."""
    return {
        "model_name": model_name,
        "model_version": model_version,
        "request_id": request_id,
        "explanations": [explanation.model_dump() for explanation in explanations],
    }


def score_function(predictor: OnnxPredictor) -> Callable[[np.ndarray], np.ndarray]:
    """The predictor's outputs [N, K] as float64 (class probabilities, or the forecast): the model function
    SHAP and permutation importance call."""

    def scores(matrix: np.ndarray) -> np.ndarray:
        return predictor.scores(matrix).astype(np.float64)

    return scores


def probability_function(predictor: OnnxPredictor) -> Callable[[np.ndarray], np.ndarray]:
    """A classifier's probabilities as float64 (what shap's own explainer is given in the benchmark)."""

    def probabilities(matrix: np.ndarray) -> np.ndarray:
        return predictor.probabilities(matrix).astype(np.float64)

    return probabilities


# ---------------------------------------------------------------------------------------------------------
# Global explanations, at training time

IMPORTANCE_REPEATS = 5  # shuffles per feature: the std says how far the mean drop can be trusted
IMPORTANCE_MAX_ROWS = 5_000  # validation rows scored per shuffle (seeded sample above this)
SHAP_ROWS = 100  # validation rows whose SHAP values make the mean |SHAP| figures (500 x background model rows each)
CLASSES_IN_FIGURE = 12  # per-class panels of the page: the classes with the most validation rows
FEATURES_PER_CLASS = 5  # bars per class panel, and features named per class in the table


class FeatureImportance(BaseModel):
    """How much the validation metric drops when one feature's values are shuffled (mean ± std over repeats),
    and the feature's mean |SHAP| over all classes (probability units) or of the forecast (the target's unit)."""

    feature: str
    description: str
    mean_drop: float
    std: float
    mean_abs_shap: float


class ClassImportance(BaseModel):
    """What moves one class's probability: mean |SHAP| per feature over the explained validation rows."""

    label: str
    name: str
    rows: int  # validation rows of this class (its weight in the page's ordering)
    mean_probability: float  # over the explained rows
    mean_abs_shap: dict[str, float]  # feature -> mean |SHAP|, in spec feature order

    def top_features(self, count: int = FEATURES_PER_CLASS) -> list[tuple[str, float]]:
        """The `count` features with the largest mean |SHAP|, largest first."""
        return sorted(self.mean_abs_shap.items(), key=lambda item: -item[1])[:count]


class GlobalExplanations(HtmlReport):
    """Which features a model version uses, overall (permutation importance on the validation split, scored
    by the spec's primary metric; mean |SHAP| of the class probabilities or of the forecast) and, for a
    classifier, per class (mean |SHAP| of the class's probability), computed on the exported ONNX predictor:
    what is explained is what is served."""

    use_case: str
    model_name: str
    model_version: str
    task: str = "multiclass_classification"  # the spec's task (reports stored before regression lack it)
    unit: str | None = None  # regression: the target's unit, the unit of the forecast's mean |SHAP|
    metric: str  # the spec's primary metric; a drop is how much worse it gets (sign turned for lower-is-better)
    metric_value: float  # on the scored validation rows, unshuffled
    importance_rows: int
    repeats: int
    shap_rows: int
    background_rows: int
    importance_seconds: float
    shap_seconds: float
    overall: list[FeatureImportance]  # largest mean drop first
    per_class: list[ClassImportance]  # in the spec's class order; empty for regression

    @property
    def _shap_unit(self) -> tuple[float, str]:
        """(factor, unit) of mean |SHAP| as shown: percentage points of a probability, or the target's unit."""
        return (1.0, self.unit or "") if self.unit is not None else (100.0, "points")

    def top_features(self, count: int = 5) -> list[FeatureImportance]:
        """The `count` most important features overall, most important first."""
        return self.overall[:count]

    def top_classes(self, count: int = CLASSES_IN_FIGURE) -> list[ClassImportance]:
        """The `count` classes with the most validation rows, most first."""
        return sorted(self.per_class, key=lambda c: -c.rows)[:count]

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {
            "metric": self.metric,
            "top_features": ", ".join(f.feature for f in self.top_features(3)),
            **{f"importance_{f.feature}": round(f.mean_drop, 6) for f in self.top_features(3)},
            "shap_rows": self.shap_rows,
        }

    def png_images(self) -> dict[str, bytes]:
        images = {"importance": self._overall_png()}
        if self.per_class:
            images["per_class"] = self._per_class_png()
        return images

    def to_html(self) -> str:
        from headliner.reports.html import html_page, html_table, inline_png

        factor, unit = self._shap_unit
        output = "a class's probability, in percentage points" if self.unit is None else f"the forecast, in {unit}"
        intro = (
            f"<p>Model {html.escape(self.model_name)} version {html.escape(self.model_version)}, on "
            f"{self.importance_rows:,} validation rows: the drop of {html.escape(self.metric)} "
            f"(unshuffled {self.metric_value:.4f}) when one feature's values are shuffled, mean ± std over "
            f"{self.repeats} shuffles. A drop near 0 means the model does not use the feature (or another, "
            "correlated feature stands in for it). Mean |SHAP|: the average size of the feature's contribution "
            f"to {html.escape(output)}, over {self.shap_rows} validation rows and "
            f"{self.background_rows} background rows.</p>"
        )
        overall_rows = [
            [
                f.feature,
                f.description,
                f"{f.mean_drop:.4f} ± {f.std:.4f}",
                f"{factor * f.mean_abs_shap:.2f}",
            ]
            for f in self.overall
        ]
        overall = intro + html_table(
            ["feature", "description", f"{self.metric} drop", f"mean |SHAP| ({unit})"], overall_rows
        )
        overall += inline_png(self._overall_png(), f"{self.metric} drop per feature")
        if not self.per_class:
            return html_page(
                f"What {self.use_case} version {self.model_version} uses",
                [("Overall: permutation importance and mean |SHAP| of the forecast", overall)],
            )
        class_rows = [
            [
                c.label,
                c.name,
                f"{c.rows:,}",
                f"{c.mean_probability:.3f}",
                ", ".join(f"{name} {100 * value:.2f}" for name, value in c.top_features()),
            ]
            for c in sorted(self.per_class, key=lambda c: -c.rows)
        ]
        per_class = inline_png(self._per_class_png(), "mean |SHAP| per feature for the most frequent classes")
        per_class += html_table(
            ["class", "name", "validation rows", "mean probability", "top features (mean |SHAP|, points)"],
            class_rows,
        )
        return html_page(
            f"What {self.use_case} version {self.model_version} uses",
            [("Overall: permutation importance", overall), ("Per class: mean |SHAP|", per_class)],
        )

    def _overall_png(self) -> bytes:
        from headliner.reports.html import figure_png, small_multiples

        figure, (axes,) = small_multiples(1, columns=1, panel=(6.0, 0.3 * len(self.overall) + 1.0))
        ordered = self.overall[::-1]
        axes.barh(
            [f.feature for f in ordered], [f.mean_drop for f in ordered], xerr=[f.std for f in ordered], color="#4c72b0"
        )
        axes.axvline(0, color="#888", linewidth=0.8)
        axes.set_xlabel(f"{self.metric} drop when shuffled", fontsize=8)
        return figure_png(figure)

    def _per_class_png(self) -> bytes:
        from headliner.reports.html import figure_png, small_multiples

        classes = self.top_classes()
        figure, axes = small_multiples(len(classes), columns=4, panel=(3.0, 1.9))
        for ax, cls in zip(axes, classes, strict=True):
            top = cls.top_features()[::-1]
            ax.barh([name for name, _ in top], [100 * value for _, value in top], color="#dd8452")
            ax.set_title(f"{cls.name} ({cls.label})", fontsize=8)
            ax.set_xlabel("mean |SHAP| (points)", fontsize=7)
        return figure_png(figure)

    def log_to_mlflow(self) -> None:
        """On the active MLflow run: metrics `importance_<feature>`, the page and the data under explanations/."""
        import mlflow

        mlflow.log_metrics({f"importance_{f.feature}": f.mean_drop for f in self.overall})
        mlflow.log_text(self.to_html(), "explanations/global_explanations.html")
        mlflow.log_text(self.model_dump_json(indent=2), "explanations/global_explanations.json")


class _ScoreModel:
    """The ONNX predictor as the estimator scikit-learn's permutation importance scores (`scores`: [N, K])."""

    def __init__(self, predictor: OnnxPredictor):
        self.scores = score_function(predictor)

    def fit(self, *_: Any) -> _ScoreModel:  # never called: scikit-learn checks that an estimator has it
        return self


def metric_scorer(metric: str, n_classes: int, top_k: int) -> Callable[[Any, np.ndarray, np.ndarray], float]:
    """A scikit-learn scorer (estimator with `scores`, X, y: class indices or target values) -> the metric,
    sign turned for lower-is-better metrics so that larger is always better and an importance is a drop."""
    from headliner.spec import CLASSIFICATION_METRICS, REGRESSION_METRICS, better_by

    known = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
    if metric not in known:
        raise ValueError(f"metric '{metric}' is not one of {list(known)}")

    def score(estimator: Any, matrix: np.ndarray, y: np.ndarray) -> float:
        return better_by(metric, metric_value(metric, y, estimator.scores(matrix), n_classes, top_k), 0.0)

    return score


def metric_value(metric: str, y: np.ndarray, scores: np.ndarray, n_classes: int, top_k: int) -> float:
    """One metric of the spec's task, computed alone (the permutation loop scores it 40 to 65 times) from the
    model's outputs [N, K]: a regression metric of the forecast column (y: target values), or a classification
    metric of the probabilities (y: class indices)."""
    from sklearn.metrics import log_loss

    from headliner.model.evaluation import label_metrics, regression_metrics, require_metric
    from headliner.spec import REGRESSION_METRICS

    if metric in REGRESSION_METRICS:
        return require_metric(regression_metrics(y, scores[:, 0]), metric, "the explained rows")
    probabilities = scores
    if metric == "top_k_accuracy":
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, : min(top_k, n_classes)]  # as evaluation ranks
        return float(np.mean(np.any(top == y[:, None], axis=1)))
    if metric == "log_loss":
        normalised = probabilities / probabilities.sum(axis=1, keepdims=True)  # float32 outputs, summed in float64
        return float(log_loss(y, normalised, labels=list(range(n_classes))))
    return label_metrics(y, np.argmax(probabilities, axis=1), n_classes)[metric]


def global_explanations(
    predictor: OnnxPredictor,
    validation: pd.DataFrame,
    spec: UseCaseSpec,
    repeats: int = IMPORTANCE_REPEATS,
    importance_rows: int = IMPORTANCE_MAX_ROWS,
    shap_rows: int = SHAP_ROWS,
    seed: int = EXPLANATION_SEED,
) -> GlobalExplanations:
    """Global explanations of a packaged model on the validation split: permutation importance scored by
    the spec's primary metric (on at most `importance_rows` rows), and mean |SHAP| (per class, or of the
    forecast) over a seeded sample of `shap_rows` rows with the file's own background. Costs about
    features x repeats x importance_rows + shap_rows x 500 x background rows model evaluations."""
    import time

    from sklearn.inspection import permutation_importance

    from headliner.model.estimators import feature_frame

    started = time.perf_counter()
    if validation.empty:
        raise ValueError("global explanations need validation rows; the validation split is empty")
    if predictor.feature_names != spec.feature_names or predictor.classes != spec.target.classes:
        raise ValueError("the model's features or classes differ from the spec's")
    if predictor.task != spec.task:
        raise ValueError(f"the model is a {predictor.task} model, the spec's task is {spec.task.value}")
    background = required_background(predictor)  # before the costly part
    metric = spec.evaluation.primary_metric
    y = _truth(validation, spec, predictor)
    features = feature_frame(validation, spec).to_numpy(dtype=np.float64)

    generator = np.random.default_rng(seed)
    scored = _sample(len(features), importance_rows, generator)
    scorer = metric_scorer(metric, len(predictor.classes), spec.evaluation.top_k)
    model = _ScoreModel(predictor)
    importance = permutation_importance(
        model, features[scored], y[scored], scoring=scorer, n_repeats=repeats, random_state=seed
    )
    unshuffled = metric_value(
        metric, y[scored], model.scores(features[scored]), len(predictor.classes), spec.evaluation.top_k
    )
    importance_seconds = time.perf_counter() - started

    explained = _sample(len(features), shap_rows, generator)
    values, _ = permutation_shap(model.scores, features[explained], background, seed=seed)
    mean_abs = np.abs(values).mean(axis=0)  # [F, K]
    overall = [
        FeatureImportance(
            feature=name,
            description=str(entry.get("description") or ""),
            mean_drop=float(importance.importances_mean[index]),
            std=float(importance.importances_std[index]),
            mean_abs_shap=float(mean_abs[index].mean()),
        )
        for index, (name, entry) in enumerate(zip(predictor.feature_names, predictor.feature_schema, strict=True))
    ]
    overall.sort(key=lambda f: (-f.mean_drop, -f.mean_abs_shap))
    per_class: list[ClassImportance] = []
    if predictor.is_classification:
        mean_probability = model.scores(features[explained]).mean(axis=0)
        rows_per_class = np.bincount(y, minlength=len(predictor.classes))
        per_class = [
            ClassImportance(
                label=label,
                name=predictor.class_names[index],
                rows=int(rows_per_class[index]),
                mean_probability=float(mean_probability[index]),
                mean_abs_shap={name: float(mean_abs[f, index]) for f, name in enumerate(predictor.feature_names)},
            )
            for index, label in enumerate(predictor.classes)
        ]
    return GlobalExplanations(
        use_case=spec.title,
        model_name=predictor.model_name,
        model_version=predictor.model_version,
        task=spec.task.value,
        unit=None if predictor.is_classification else spec.target.unit,
        metric=metric,
        metric_value=unshuffled,
        importance_rows=len(scored),
        repeats=repeats,
        shap_rows=len(explained),
        background_rows=len(background),
        importance_seconds=round(importance_seconds, 2),
        shap_seconds=round(time.perf_counter() - started - importance_seconds, 2),
        overall=overall,
        per_class=per_class,
    )


def _truth(validation: pd.DataFrame, spec: UseCaseSpec, predictor: OnnxPredictor) -> np.ndarray:
    """The validation split's truth as the metric takes it: class indices, or the target's values."""
    import pandas as pd

    column = spec.target.column
    if not predictor.is_classification:
        values = pd.to_numeric(validation[column], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            raise ValueError(f"validation split column '{column}' has missing or non-numeric target values")
        return values
    labels = validation[column].astype(str)
    unknown = sorted(set(labels) - set(predictor.classes))
    if unknown:
        raise ValueError(f"validation split column '{column}' has classes the model lacks: {unknown[:5]}")
    truth: np.ndarray = labels.map({label: index for index, label in enumerate(predictor.classes)}).to_numpy()
    return truth


def _sample(rows: int, limit: int, generator: np.random.Generator) -> np.ndarray:
    """Row indices: all of them up to `limit`, else a seeded sample of `limit`, in order."""
    if rows <= limit:
        return np.arange(rows)
    return np.sort(generator.choice(rows, size=limit, replace=False))
