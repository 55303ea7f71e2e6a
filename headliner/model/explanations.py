"""Why the model answers as it does: local explanations of one song's answer (SHAP values of each shown
class's probability, worded in the use case's terms, computed from the ONNX file alone, as the service
must) and global explanations of the model (permutation importance on the validation split and mean
|SHAP| per class), kept as a report artifact with the model version.

SHAP values here are those of the permutation method with an independent masker over the background
rows that travel in the ONNX file (`explanation_background` metadata): a feature's contribution is the
average change of the class's probability when the song's value replaces the background's, so the
contributions of a song add up to its probability minus the expected probability over the background.
The estimator is shap's permutation method, vectorised here (no numba compilation in the service).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from headliner.errors import HeadlinerError

if TYPE_CHECKING:
    from headliner.model.onnx_packaging import OnnxPredictor

EXPLANATION_SEED = 0  # permutations of the SHAP estimate: the same song gets the same explanation
MAX_EVALS = 500  # coalitions per row, as shap's default: 18 antithetic permutations of 13 features
MAX_BATCH_ROWS = 500_000  # model rows per ONNX Runtime call when many rows are explained at once
_SHORT_DESCRIPTION = 30  # a feature description up to this long names the feature in texts (e.g. "Malic acid")
_PLAIN_NAME = re.compile(r"[\w %/-]+")  # a description that is a name, not an explanation ("Modality: 1 = ...")
_CODE = re.compile(r"(-?\d+)\s*=\s*([^,;.]+)")  # "1 = major" in a description


class ExplanationError(HeadlinerError):
    """A model cannot be explained as asked: e.g. its ONNX file carries no explanation background."""


class FeatureContribution(BaseModel):
    """One feature's share in one class's probability for one song."""

    feature: str  # the spec's feature name
    value: float  # the song's value
    contribution: float  # SHAP value: the change of this class's probability, in probability units
    text: str  # in the use case's words, e.g. "Danceability 0.82 raises Brazil by 3.1 points"


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


def feature_label(entry: dict[str, Any]) -> str:
    """How texts name a feature: its description when that is a short name ("Malic acid"), else its name
    in words ("duration_ms" -> "Duration ms")."""
    description = str(entry.get("description") or "").strip()
    if description and len(description) <= _SHORT_DESCRIPTION and _PLAIN_NAME.fullmatch(description):
        return description
    words = str(entry["name"]).replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def format_value(value: float, entry: dict[str, Any]) -> str:
    """A feature value as people read it: yes/no for a bool, whole numbers for an int, 3 significant
    digits for a float, with the unit."""
    dtype = entry.get("dtype")
    if math.isnan(value):
        return "missing"
    if dtype == "bool":
        return "yes" if value >= 0.5 else "no"
    text = f"{round(value):d}" if dtype == "int" else f"{value:.3g}"
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


class LocalExplainer:
    """SHAP explanations of a packaged model's answers, from the ONNX file alone (`permutation_shap` over
    the file's background rows). One song costs about 500 x background rows of model evaluations, in one
    ONNX Runtime call; there is no one-off compilation, `warm_up` only touches every code path once."""

    def __init__(self, predictor: OnnxPredictor):
        background = predictor.background
        if background is None:
            raise ExplanationError(
                f"model {predictor.model_name} version {predictor.model_version} cannot be explained: its ONNX "
                "file has no 'explanation_background' metadata (it was packaged before explanations existed); "
                "train and package a new version"
            )
        self.predictor = predictor
        self.background = background
        self._model = probability_function(predictor)

    def shap_values(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, F] in feature order -> (SHAP values [N, F, C] of every class's probability, base values
        [N, C]: the expected probabilities over the background)."""
        values = np.asarray(matrix, dtype=np.float64)
        width = len(self.predictor.feature_names)
        if values.ndim != 2 or values.shape[1] != width:
            raise ValueError(f"expected a matrix of shape [N, {width}], got {list(values.shape)}")
        return permutation_shap(self._model, values, self.background)

    def explain(self, matrix: np.ndarray) -> list[SongExplanation]:
        """One explanation per row of an [N, F] matrix in feature order: the top_k classes (as /predict
        shows them), each with every feature's contribution, largest first."""
        values = np.asarray(matrix, dtype=np.float64)
        shap_values, base_values = self.shap_values(values)
        probabilities = self.predictor.probabilities(values).astype(np.float64)
        top, _ = self.predictor.top_classes(probabilities)
        schema = self.predictor.feature_schema
        explanations = []
        for row in range(len(values)):
            classes = []
            for index in top[row]:
                index = int(index)
                name = self.predictor.class_names[index]
                contributions = [
                    FeatureContribution(
                        feature=entry["name"],
                        value=float(values[row, feature]),
                        contribution=float(shap_values[row, feature, index]),
                        text=contribution_text(
                            entry, float(values[row, feature]), float(shap_values[row, feature, index]), name
                        ),
                    )
                    for feature, entry in enumerate(schema)
                ]
                contributions.sort(key=lambda c: -abs(c.contribution))
                classes.append(
                    ClassExplanation(
                        label=self.predictor.classes[index],
                        name=name,
                        probability=float(probabilities[row, index]),
                        base_probability=float(base_values[row, index]),
                        contributions=contributions,
                    )
                )
            explanations.append(SongExplanation(classes=classes))
        return explanations

    def warm_up(self) -> None:
        """Explain one background row: the first call's one-off costs (ONNX Runtime's buffers for the batch
        size) are paid before the first request."""
        self.explain(self.background[:1])


def probability_function(predictor: OnnxPredictor) -> Callable[[np.ndarray], np.ndarray]:
    """The predictor's probabilities as float64, the model function SHAP calls."""

    def probabilities(matrix: np.ndarray) -> np.ndarray:
        return predictor.probabilities(matrix).astype(np.float64)

    return probabilities
