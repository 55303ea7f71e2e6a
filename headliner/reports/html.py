"""The HTML of report artifacts: `HtmlReport`, the pydantic base that renders itself as a static page,
the page, table and figure builders every report uses, the check that a page shows without scripts,
and report folders written to disk.

Every report the pipelines produce subclasses `HtmlReport`; one materializer stores them as JSON and
shows `to_html()` in the ZenML dashboard. The dashboard (and MLflow's viewer) shows HTML in a frame
sandboxed without scripts, so a page is static: tables, and figures as inline PNG images.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_VISUALIZATION_BYTES = 1_000_000  # one visualization's budget: a summary first, details below
FIGURE_DPI = 80  # inline figures: readable, and small enough to keep a page within its budget

_STYLE = (
    "<style>body{font-family:system-ui,sans-serif;margin:1rem;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
    "th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}.ok{color:#1a7f37}.fail{color:#c62828}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere}</style>"
)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An escaped HTML table."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def inline_png(png: bytes, alt: str) -> str:
    """An `<img>` holding the PNG itself (a data: URL), scaled down to the page's width."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="max-width:100%">'


def small_multiples(count: int, columns: int = 4, panel: tuple[float, float] = (2.8, 2.0)) -> tuple[Figure, list[Axes]]:
    """A figure of `count` small panels (inches each), `columns` a row, on its own Agg canvas (a Figure
    outside pyplot never enters pyplot's global figure registry)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    across = max(1, min(count, columns))
    down = max(1, math.ceil(count / across))
    figure = Figure(figsize=(panel[0] * across, panel[1] * down), dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = list(figure.subplots(down, across, squeeze=False).ravel())
    for unused in axes[count:]:
        figure.delaxes(unused)
    for ax in axes[:count]:
        ax.tick_params(labelsize=7)
        ax.locator_params(axis="x", nbins=4)
    return figure, axes[:count]


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes at its own dpi."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


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

    def attachments(self) -> dict[str, str]:
        """Files (name -> text) kept beside the report in its artifact folder, downloadable with it but not
        shown as visualizations (e.g. Evidently's interactive page, which needs scripts)."""
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
    """Each report as `<name>.html` (what the dashboard shows) and `<name>.json` (its data) in `folder`, and
    its attachments in the subfolder `<name>/`, so the top level holds one HTML page per report."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, report in reports.items():
        (folder / f"{name}.html").write_text(report.to_html(), encoding="utf-8")
        (folder / f"{name}.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
        written.append(folder / f"{name}.html")
        attachments = report.attachments()
        if attachments:
            (folder / name).mkdir(exist_ok=True)
        for file_name, text in attachments.items():
            (folder / name / file_name).write_text(text, encoding="utf-8")
    return written


_URL_ATTRIBUTES = frozenset({"src", "href", "action", "formaction", "data", "poster", "background", "xlink:href"})
_LOADED_ATTRIBUTES = frozenset({"src", "data", "poster", "background", "srcset"})  # fetched when the page shows
_EMBEDDING_TAGS = frozenset({"iframe", "frame", "frameset", "object", "embed", "applet"})
_CSS_LOAD = re.compile(r"@import|url\(\s*['\"]?(?!data:)", re.IGNORECASE)


class _ScriptFreeChecker(HTMLParser):
    """Collects what a frame sandboxed without scripts (sandbox="") would block or lose."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_style = False

    def _found(self, what: str) -> None:
        self.problems.append(f"{what} (line {self.getpos()[0]})")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._found("<script> element")
        elif tag in _EMBEDDING_TAGS:
            self._found(f"<{tag}> element")
        self._in_style = self._in_style or tag == "style"
        values = {name: (value or "").strip() for name, value in attrs}
        if tag == "link" and "stylesheet" in values.get("rel", "").lower():
            self._found(f"<link rel=stylesheet href={values.get('href', '')!r}>")
        for name, value in values.items():
            if name.startswith("on"):
                self._found(f"event handler {name}= on <{tag}>")
            elif name in _URL_ATTRIBUTES and re.sub(r"\s", "", value).lower().startswith("javascript:"):
                self._found(f"javascript: URL in {name}= of <{tag}>")
            elif name in _LOADED_ATTRIBUTES and value and not value.lower().startswith("data:"):
                self._found(f"<{tag} {name}={value[:80]!r}> loads a resource from elsewhere")
            elif name == "href" and tag not in ("a", "area") and re.match(r"(https?:)?//", value, re.IGNORECASE):
                self._found(f"<{tag} href={value[:80]!r}> loads a resource from elsewhere")
            elif name == "style" and _CSS_LOAD.search(value):
                self._found(f"style= of <{tag}> loads a resource")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and _CSS_LOAD.search(data):
            self._found("<style> loads a resource (@import or url())")


def script_free_problems(page: str) -> list[str]:
    """What a frame sandboxed without scripts (the ZenML dashboard's and MLflow's artifact viewers) would
    block or lose in `page`: scripts, inline event handlers, javascript: URLs, embedded frames and objects,
    and resources loaded from elsewhere (images, stylesheets, CSS imports); empty when the page shows as
    it is. Links (`<a href>`) are navigation, not resources, and pass."""
    checker = _ScriptFreeChecker()
    checker.feed(page)
    checker.close()
    return checker.problems
