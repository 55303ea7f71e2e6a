"""Fairness of the live predictions: the statistical parity difference of the predicted top class across
the two values of a bool attribute (jukebox: `is_explicit`, as the workshop tracks).

For a class c: SPD(c) = P(top-1 = c | attribute = 1) - P(top-1 = c | attribute = 0). With many classes the
figure watched is the largest |SPD(c)| over classes; the reference data's own figure is shown beside it,
so a gap the model already had on held-out data is told apart from one that appeared in traffic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from headliner.monitoring.drift import PREDICTED
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import UseCaseSpec

SHOWN_CLASSES = 10


class ClassParity(BaseModel):
    label: str
    rate_with: float  # P(top-1 = label | attribute = 1)
    rate_without: float  # P(top-1 = label | attribute = 0)

    @property
    def difference(self) -> float:
        return self.rate_with - self.rate_without


class FairnessReport(HtmlReport):
    attribute: str | None = None  # None: the spec watches no attribute
    rows_with: int = 0
    rows_without: int = 0
    threshold: float | None = None
    classes: list[ClassParity] = Field(default_factory=list)  # the classes with the largest |SPD|, largest first
    max_difference: float | None = None  # None: not computable (a group is empty, or no attribute)
    reference_max_difference: float | None = None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.max_difference is None or self.threshold is None:
            return None
        return self.max_difference <= self.threshold

    def summary_metadata(self) -> dict[str, str | int | float]:
        if self.max_difference is None:
            return {"statistical_parity_difference": "n/a"}
        return {
            "statistical_parity_difference": round(self.max_difference, 4),
            "worst_class": self.classes[0].label if self.classes else "",
            "threshold": self.threshold or 0.0,
        }

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
        return html_page(f"Fairness across {self.attribute}", [("Statistical parity difference", summary + table)])


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


def fairness(current: pd.DataFrame, reference: pd.DataFrame, spec: UseCaseSpec) -> FairnessReport:
    """The spec's fairness figure on the window, with the held-out reference's figure for comparison."""
    attribute = spec.monitoring.fairness_attribute
    if attribute is None:
        return FairnessReport(note="the spec sets no monitoring.fairness_attribute")
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
    return report
