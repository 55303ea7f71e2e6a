"""The HTML of report artifacts: `HtmlReport`, the pydantic base that renders itself as a static page,
the page and table builders every report uses, and report folders written to disk.

Every report the pipelines produce subclasses `HtmlReport`; one materializer stores them as JSON and
shows `to_html()` in the ZenML dashboard.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

_STYLE = (
    "<style>body{font-family:system-ui,sans-serif;margin:1rem;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}.ok{color:#1a7f37}.fail{color:#c62828}</style>"
)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An escaped HTML table."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A standalone page: a title and (heading, html body) sections."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    return f"<!doctype html><html><head><meta charset='utf-8'>{_STYLE}</head><body>{''.join(parts)}</body></html>"


class HtmlReport(BaseModel):
    """Base of report artifacts: a pydantic model with an HTML rendering."""

    def to_html(self) -> str:
        raise NotImplementedError

    def summary_metadata(self) -> dict[str, str | int | float]:
        """Key figures shown as artifact metadata in the dashboard."""
        return {}

    def png_images(self) -> dict[str, bytes]:
        """Figures shown as separate image visualizations in the dashboard, by file stem."""
        return {}


class Check(BaseModel):
    """A hard rule the data was checked against."""

    name: str
    passed: bool
    detail: str = ""


class Finding(BaseModel):
    """A soft problem in the data and what was (or will be) done about it."""

    column: str | None = None
    problem: str
    rows: int = Field(ge=0)
    action: str
    examples: list[str] = Field(default_factory=list)


class DataReport(HtmlReport):
    """What a data step checked, found and changed, with row counts in and out."""

    title: str
    source: str
    rows_in: int
    rows_out: int
    checks: list[Check] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    label_counts: dict[str, int] = Field(default_factory=dict)
    facts: dict[str, str] = Field(default_factory=dict)

    def rows_affected(self, problem: str, column: str | None = None) -> int:
        """Rows counted for one problem (optionally of one column); 0 if none were found."""
        return sum(f.rows for f in self.findings if f.problem == problem and (column is None or f.column == column))

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out, "findings": len(self.findings), **self.facts}

    def to_html(self) -> str:
        sections = [
            (
                "Summary",
                html_table(
                    ["source", "rows in", "rows out"],
                    [[self.source, f"{self.rows_in:,}", f"{self.rows_out:,}"]],
                ),
            )
        ]
        if self.checks:
            rows = [[c.name, "passed" if c.passed else "FAILED", c.detail] for c in self.checks]
            sections.append(("Checks", html_table(["check", "result", "detail"], rows)))
        findings = [
            [f.column or "(row)", f.problem, f"{f.rows:,}", f.action, ", ".join(f.examples)] for f in self.findings
        ]
        sections.append(
            (
                "Findings",
                html_table(["column", "problem", "rows", "action", "examples"], findings)
                if findings
                else "<p class='ok'>No problems found.</p>",
            )
        )
        if self.facts:
            sections.append(("Facts", html_table(["fact", "value"], sorted(self.facts.items()))))
        if self.label_counts:
            total = sum(self.label_counts.values()) or 1
            rows = [
                [label, f"{count:,}", f"{count / total:.2%}"]
                for label, count in sorted(self.label_counts.items(), key=lambda kv: -kv[1])
            ]
            sections.append(("Labels", html_table(["label", "rows", "share"], rows)))
        return html_page(self.title, sections)


def write_report_folder(folder: Path, reports: dict[str, HtmlReport]) -> list[Path]:
    """Each report as `<name>.html` (what the dashboard shows) and `<name>.json` (its data) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, report in reports.items():
        (folder / f"{name}.html").write_text(report.to_html(), encoding="utf-8")
        (folder / f"{name}.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        written.append(folder / f"{name}.html")
    return written
