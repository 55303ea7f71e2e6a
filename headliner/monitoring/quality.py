"""Data quality of the current window: values the model should never see (missing, outside the spec's
range), the share of requests the service rejected, and the window's data profile (with Evidently's
interactive summary as an attachment)."""

from __future__ import annotations

import html

import pandas as pd

from headliner.data.profiling import DataProfile, data_profile
from headliner.monitoring.drift import prediction_columns
from headliner.monitoring.window import WindowReport
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import UseCaseSpec


class DataQualityReport(HtmlReport):
    rows: int
    missing: dict[str, int]
    out_of_range: dict[str, int]
    requests: int
    rejected_requests: int
    max_rejected_share: float
    top_errors: dict[str, int]
    profile: DataProfile

    @property
    def rejected_share(self) -> float:
        return self.rejected_requests / self.requests if self.requests else 0.0

    @property
    def problems(self) -> list[str]:
        """What is wrong, in words; empty when the window is clean."""
        found = [f"{n:,} missing values of '{column}'" for column, n in self.missing.items() if n]
        found += [f"{n:,} values of '{column}' outside its valid range" for column, n in self.out_of_range.items() if n]
        if self.rejected_share > self.max_rejected_share:
            found.append(f"{self.rejected_share:.1%} of requests rejected (limit {self.max_rejected_share:.0%})")
        return found

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {"rows": self.rows, "rejected_share": round(self.rejected_share, 4), "problems": len(self.problems)}

    def attachments(self) -> dict[str, str]:
        return self.profile.attachments()

    def to_html(self) -> str:
        rows = [[column, f"{self.missing[column]:,}", f"{self.out_of_range[column]:,}"] for column in self.missing]
        verdict = (
            "<p class='fail'>" + html.escape("; ".join(self.problems)) + "</p>"
            if self.problems
            else "<p class='ok'>No problems found.</p>"
        )
        checks = (
            f"<p>{self.rows:,} scored rows analysed; {self.rejected_requests:,} of {self.requests:,} requests rejected "
            f"({self.rejected_share:.1%}, limit {self.max_rejected_share:.0%}).</p>"
            + verdict
            + html_table(["feature", "missing", "out of range"], rows)
        )
        if self.top_errors:
            checks += html_table(["most frequent rejection", "requests"], list(self.top_errors.items()))
        profile = [(f"Window profile: {heading.lower()}", body) for heading, body in self.profile.sections()]
        return html_page("Data quality of the window", [("Checks", checks), *profile])


def data_quality(current: pd.DataFrame, window: WindowReport, spec: UseCaseSpec) -> DataQualityReport:
    """Missing and out-of-range values per feature of `current`, rejected requests of the window, and the
    profile of the features and the prediction."""
    missing, out_of_range = {}, {}
    for feature in spec.features:
        values = current[feature.name]
        missing[feature.name] = int(values.isna().sum())
        outside = pd.Series(False, index=values.index)
        if feature.min is not None:
            outside |= values < feature.min
        if feature.max is not None:
            outside |= values > feature.max
        out_of_range[feature.name] = int(outside.sum())
    return DataQualityReport(
        rows=len(current),
        missing=missing,
        out_of_range=out_of_range,
        requests=window.requests,
        rejected_requests=window.rejected_requests,
        max_rejected_share=spec.monitoring.max_rejected_share,
        top_errors=window.top_errors,
        profile=data_profile(current, spec, *prediction_columns(spec), title="Profile of the window"),
    )
