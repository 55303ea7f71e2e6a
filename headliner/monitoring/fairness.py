"""Fairness of the live predictions across the two values of a bool attribute (jukebox: `is_explicit`, as
the workshop tracks), one class against the rest, with the figures the fairness literature uses:

- statistical parity difference SPD(c) = P(top-1 = c | attribute = 1) - P(top-1 = c | attribute = 0);
- disparate impact ratio DIR(c) = P(top-1 = c | attribute = 1) / P(top-1 = c | attribute = 0) (the
  four-fifths rule: within 0.8-1.25);
- with true labels: equal-opportunity difference EOD(c) = TPR(c | 1) - TPR(c | 0) and average-odds
  difference AOD(c) = (FPR gap + TPR gap) / 2.

SPD is computed here; DIR, EOD and AOD with fairlearn's MetricFrame. With many classes the figure watched
is the worst class (largest |SPD|, |EOD|, |AOD|; DIR furthest from 1); the reference's own figure is shown
beside it, so a gap the model already had on held-out data is told apart from one that appeared in traffic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from headliner.monitoring.window import LABEL, PREDICTED, reference_rows
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import UseCaseSpec

if TYPE_CHECKING:
    from headliner.governance.model_card import FairnessFact, GroupMetrics
    from headliner.model.onnx_packaging import OnnxPredictor

SHOWN_CLASSES = 10
MIN_GROUP_ROWS = 10  # a class enters DIR, EOD and AOD only with this many rows behind each group's rate
DISPARATE_IMPACT_RATIO = "disparate_impact_ratio"
EQUAL_OPPORTUNITY_DIFFERENCE = "equal_opportunity_difference"
AVERAGE_ODDS_DIFFERENCE = "average_odds_difference"


class ClassParity(BaseModel):
    label: str
    rate_with: float  # P(top-1 = label | attribute = 1)
    rate_without: float  # P(top-1 = label | attribute = 0)

    @property
    def difference(self) -> float:
        return self.rate_with - self.rate_without


class FairnessFigure(BaseModel):
    """One fairness figure of the worst class, on the window and on the reference, against its limits."""

    name: str  # DISPARATE_IMPACT_RATIO, EQUAL_OPPORTUNITY_DIFFERENCE or AVERAGE_ODDS_DIFFERENCE
    lower: float | None = None  # passes within [lower, upper]; None: no lower limit
    upper: float
    value: float | None = None  # None: not computable (see note)
    label: str | None = None  # the worst class
    classes: int = 0  # classes with enough rows to be compared
    rows: int = 0  # rows the figure is computed on (the labelled ones for EOD and AOD)
    reference: float | None = None
    reference_label: str | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return (self.lower is None or self.value >= self.lower) and self.value <= self.upper

    @property
    def limit(self) -> str:
        return f"{self.upper:g}" if self.lower is None else f"{self.lower:g}-{self.upper:g}"


class FairnessReport(HtmlReport):
    attribute: str | None = None  # None: the spec watches no attribute
    rows_with: int = 0
    rows_without: int = 0
    threshold: float | None = None
    classes: list[ClassParity] = Field(default_factory=list)  # the classes with the largest |SPD|, largest first
    max_difference: float | None = None  # None: not computable (a group is empty, or no attribute)
    reference_max_difference: float | None = None
    figures: list[FairnessFigure] = Field(default_factory=list)  # DIR, EOD, AOD
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.max_difference is None or self.threshold is None:
            return None
        return self.max_difference <= self.threshold

    def figure(self, name: str) -> FairnessFigure | None:
        return next((figure for figure in self.figures if figure.name == name), None)

    def summary_metadata(self) -> dict[str, str | int | float]:
        metadata: dict[str, str | int | float] = (
            {"statistical_parity_difference": "n/a"}
            if self.max_difference is None
            else {
                "statistical_parity_difference": round(self.max_difference, 4),
                "worst_class": self.classes[0].label if self.classes else "",
                "threshold": self.threshold or 0.0,
            }
        )
        for figure in self.figures:
            metadata[figure.name] = "n/a" if figure.value is None else round(figure.value, 4)
        return metadata

    def to_html(self) -> str:
        if self.max_difference is None:
            return html_page("Fairness", [("Statistical parity difference", f"<p>{self.note or 'not computed'}</p>")])
        verdict = "within" if self.passed else "ABOVE"
        summary = (
            f"<p>Largest |SPD| of the predicted top class across {self.attribute} = 1 ({self.rows_with:,} rows) and "
            f"= 0 ({self.rows_without:,} rows): <b>{self.max_difference:.4f}</b>, "
            f"{verdict} the limit {self.threshold:g}. "
            f"Held-out data: {self.reference_max_difference:.4f}.</p>"
        )
        rows = [[c.label, f"{c.rate_with:.4f}", f"{c.rate_without:.4f}", f"{c.difference:+.4f}"] for c in self.classes]
        table = html_table(["class", f"share, {self.attribute}=1", f"share, {self.attribute}=0", "SPD"], rows)
        return html_page(
            f"Fairness across {self.attribute}",
            [("Figures", self._figures_table()), ("Statistical parity difference", summary + table)],
        )

    def _figures_table(self) -> str:
        def shown(value: float | None, label: str | None) -> str:
            return "n/a" if value is None else f"{value:.4f} ({label})"

        spd = FairnessFigure(
            name="statistical_parity_difference",
            upper=self.threshold if self.threshold is not None else 1.0,
            value=self.max_difference,
            label=self.classes[0].label if self.classes else None,
            rows=self.rows_with + self.rows_without,
            reference=self.reference_max_difference,
        )
        rows = [
            [
                figure.name,
                shown(figure.value, figure.label),
                figure.limit,
                {True: "passes", False: "OUTSIDE", None: "n/a"}[figure.passed],
                shown(figure.reference, figure.reference_label),
                f"{figure.rows:,}",
                figure.note,
            ]
            for figure in [spd, *self.figures]
        ]
        headers = ["figure", "window (worst class)", "limit", "verdict", "reference", "rows", "note"]
        return html_table(headers, rows)


def parity_differences(attribute: np.ndarray, predicted: np.ndarray) -> list[ClassParity]:
    """SPD of every predicted class across attribute 1 vs 0, largest |SPD| first; empty if a group is empty."""
    flags = np.asarray(attribute).astype(bool)
    predicted = np.asarray(predicted)
    if flags.all() or not flags.any():
        return []
    with_counts = pd.Series(predicted[flags]).value_counts(normalize=True)
    without_counts = pd.Series(predicted[~flags]).value_counts(normalize=True)
    labels = sorted(set(with_counts.index) | set(without_counts.index))
    parity = [
        ClassParity(
            label=str(c), rate_with=float(with_counts.get(c, 0.0)), rate_without=float(without_counts.get(c, 0.0))
        )
        for c in labels
    ]
    return sorted(parity, key=lambda p: (-abs(p.difference), p.label))


def group_rates(flags: np.ndarray, predicted: np.ndarray, labels: np.ndarray | None) -> pd.DataFrame:
    """Per class (one vs the rest), fairlearn's rates by group: `selection_rate` (share predicted the class)
    of each group, and with `labels` its `true_positive_rate` and `false_positive_rate`, for the classes
    with MIN_GROUP_ROWS rows behind every rate (predicted rows; with labels, positives and negatives).
    Columns `<rate>_with` (attribute = 1) and `<rate>_without`, one row per class."""
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    flags = np.asarray(flags).astype(bool)
    predicted = np.asarray(predicted).astype(str)
    metrics = (
        {"selection_rate": selection_rate}
        if labels is None
        else {"true_positive_rate": true_positive_rate, "false_positive_rate": false_positive_rate}
    )
    truths = None if labels is None else np.asarray(labels).astype(str)
    rows = {}
    for label in sorted(set(predicted) | (set() if truths is None else set(truths))):
        chosen = predicted == label
        truth = chosen if truths is None else truths == label
        counted = [chosen] if labels is None else [truth, ~truth]
        if any(min(int((c & flags).sum()), int((c & ~flags).sum())) < MIN_GROUP_ROWS for c in counted):
            continue
        by_group = MetricFrame(metrics=metrics, y_true=truth, y_pred=chosen, sensitive_features=flags).by_group
        rows[label] = {
            **{f"{name}_with": float(by_group.loc[True, name]) for name in metrics},
            **{f"{name}_without": float(by_group.loc[False, name]) for name in metrics},
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def worst_class(name: str, rates: pd.DataFrame) -> tuple[float, str] | None:
    """The figure `name` of the class where it is worst (DIR: furthest from 1, as a ratio either way; the
    differences: largest in size, reported as a size), or None when no class has enough rows."""
    if rates.empty:
        return None
    if name == DISPARATE_IMPACT_RATIO:
        ratios = rates["selection_rate_with"] / rates["selection_rate_without"]
        label = str(ratios.map(math.log).abs().idxmax())
        return float(ratios[label]), label
    tpr_gap = rates["true_positive_rate_with"] - rates["true_positive_rate_without"]
    fpr_gap = rates["false_positive_rate_with"] - rates["false_positive_rate_without"]
    values = (tpr_gap if name == EQUAL_OPPORTUNITY_DIFFERENCE else (tpr_gap + fpr_gap) / 2).abs()
    label = str(values.idxmax())
    return float(values[label]), label


Rows = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # attribute flags, predicted class, true class or None


def fairness_figure(
    name: str, lower: float | None, upper: float, current: Rows, reference: Rows | None, unavailable: str = ""
) -> FairnessFigure:
    """One figure on the window (unless `unavailable` says why not) and on the reference."""
    figure = FairnessFigure(name=name, lower=lower, upper=upper, rows=len(current[0]), note=unavailable)
    if not unavailable:
        rates = group_rates(*current)
        figure.classes = len(rates)
        worst = worst_class(name, rates)
        if worst is None:
            figure.note = f"no class has {MIN_GROUP_ROWS} rows behind each rate in both groups"
        else:
            figure.value, figure.label = worst
    reference_worst = worst_class(name, group_rates(*reference)) if reference is not None else None
    if reference_worst is not None:
        figure.reference, figure.reference_label = reference_worst
    return figure


def _rows(frame: pd.DataFrame, attribute: str, labelled: bool) -> Rows:
    return (
        frame[attribute].to_numpy(),
        frame[PREDICTED].to_numpy(),
        frame[LABEL].to_numpy() if labelled else None,
    )


def not_watched() -> FairnessReport:
    """The report of a spec that watches no attribute (every regression spec: fairness_attribute is refused)."""
    return FairnessReport(note="the spec sets no monitoring.fairness_attribute")


def fairness(
    current: pd.DataFrame, reference: pd.DataFrame, spec: UseCaseSpec, labelled: pd.DataFrame | None = None
) -> FairnessReport:
    """The spec's fairness figures on the window `current`, with the held-out reference's for comparison.
    `labelled`: the window's rows with a true label (LABEL column), for EOD and AOD; the reference's
    come from its own LABEL column when it has one."""
    attribute = spec.monitoring.fairness_attribute
    if attribute is None:
        return not_watched()
    rules = spec.monitoring
    flags = current[attribute].to_numpy().astype(bool)
    parity = parity_differences(flags, current[PREDICTED].to_numpy())
    reference_parity = parity_differences(reference[attribute].to_numpy(), reference[PREDICTED].to_numpy())
    report = FairnessReport(
        attribute=attribute,
        rows_with=int(flags.sum()),
        rows_without=int((~flags).sum()),
        threshold=spec.monitoring.fairness_max_parity_difference,
        classes=parity[:SHOWN_CLASSES],
        reference_max_difference=abs(reference_parity[0].difference) if reference_parity else None,
    )
    if not parity:
        report.note = (
            f"not computable: every row of the window has {attribute} = {int(flags[0]) if len(flags) else '?'}"
        )
    else:
        report.max_difference = abs(parity[0].difference)
    labelled_rows = 0 if labelled is None else len(labelled)
    too_few = (
        f"{labelled_rows:,} labelled rows in the window; at least {rules.min_labels:,} are needed"
        if labelled is None or labelled_rows < rules.min_labels
        else ""
    )
    window = _rows(labelled, attribute, True) if labelled is not None else (np.empty(0), np.empty(0), np.empty(0))
    labelled_reference = _rows(reference, attribute, True) if LABEL in reference.columns else None
    report.figures = [
        fairness_figure(
            DISPARATE_IMPACT_RATIO,
            rules.fairness_min_disparate_impact_ratio,
            rules.fairness_max_disparate_impact_ratio,
            _rows(current, attribute, False),
            _rows(reference, attribute, False),
        ),
        fairness_figure(
            EQUAL_OPPORTUNITY_DIFFERENCE,
            None,
            rules.fairness_max_equal_opportunity_difference,
            window,
            labelled_reference,
            too_few,
        ),
        fairness_figure(
            AVERAGE_ODDS_DIFFERENCE,
            None,
            rules.fairness_max_average_odds_difference,
            window,
            labelled_reference,
            too_few,
        ),
    ]
    return report


def held_out_fairness(
    spec: UseCaseSpec, test_split: pd.DataFrame, predictor: OnnxPredictor
) -> tuple[list[GroupMetrics], list[FairnessFact], str]:
    """A model card's fairness on the held-out test split: per-group metrics (every test row, like the test
    metrics) and the fairness figures of live monitoring, on the split as traffic sends it (`reference_rows`:
    one row per song, as live monitoring's reference is): groups, figures, a note."""
    attribute = spec.monitoring.fairness_attribute
    if attribute is None:
        return [], [], "The spec sets no fairness attribute (monitoring.fairness_attribute): no groups to compare."
    from headliner.governance.model_card import FairnessFact, group_metrics  # the card's types: only here

    probabilities = predictor.probabilities(test_split[spec.feature_names].to_numpy(dtype=np.float64))
    groups = group_metrics(test_split, probabilities, spec, attribute)
    rules = spec.monitoring
    scored = test_split.assign(
        **{PREDICTED: np.asarray(spec.target.classes, dtype=object)[probabilities.argmax(axis=1)]}
    )
    traffic = reference_rows(scored, spec)
    flags = traffic[attribute].to_numpy().astype(bool)
    predicted = traffic[PREDICTED].to_numpy()
    labels = traffic[spec.target.column].astype(str).to_numpy()
    facts = []
    parity = parity_differences(flags, predicted)
    if rules.fairness_max_parity_difference is not None:
        facts.append(
            FairnessFact(
                name="statistical_parity_difference",
                value=abs(parity[0].difference) if parity else None,
                label=parity[0].label if parity else None,
                upper=rules.fairness_max_parity_difference,
                note="" if parity else f"every test row has the same {attribute}",
            )
        )
    for name, lower, upper, rows in (
        (
            DISPARATE_IMPACT_RATIO,
            rules.fairness_min_disparate_impact_ratio,
            rules.fairness_max_disparate_impact_ratio,
            (flags, predicted, None),
        ),
        (
            EQUAL_OPPORTUNITY_DIFFERENCE,
            None,
            rules.fairness_max_equal_opportunity_difference,
            (flags, predicted, labels),
        ),
        (
            AVERAGE_ODDS_DIFFERENCE,
            None,
            rules.fairness_max_average_odds_difference,
            (flags, predicted, labels),
        ),
    ):
        figure = fairness_figure(name, lower, upper, rows, None)
        facts.append(
            FairnessFact(name=name, value=figure.value, label=figure.label, lower=lower, upper=upper, note=figure.note)
        )
    note = (
        f"On {len(traffic):,} test {spec.decision.item_noun}s, one row each as traffic sends them (live monitoring's "
        "fairness report computes the same figures on its window and reference)."
    )
    return groups, facts, note
