"""Data profile of a dataset: per-column statistics, top values and histograms as a static report (the
dashboard shows it without scripts), with Evidently's 0.7 interactive data summary kept as an attachment."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import BaseModel

from headliner.reports.html import HtmlReport, figure_png, html_page, html_table, inline_png, small_multiples
from headliner.spec import FeatureType, UseCaseSpec

if TYPE_CHECKING:
    from evidently import Dataset

PROFILE_MAX_ROWS = 100_000
HISTOGRAM_BINS = 20
TOP_VALUES = 10  # values listed per categorical column
EVIDENTLY_FILE = "evidently_report.html"
EVIDENTLY_NOTE = (
    f"<p>Evidently's interactive report (it needs JavaScript, which the dashboard's viewer blocks) is the file "
    f"<code>{EVIDENTLY_FILE}</code> stored with this report: in the artifact's folder (the dashboard's "
    "Download button fetches it), or beside this page in a subfolder named like it.</p>"
)


def histogram_edges(values: np.ndarray, integer: bool = False, bins: int = HISTOGRAM_BINS) -> list[float]:
    """Bin edges spanning the finite `values`: one bin per value for integers of a short range, else
    `bins` equal bins."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [0.0, 1.0]
    low, high = float(finite.min()), float(finite.max())
    if integer and high - low < bins:
        return [float(edge) for edge in np.arange(low - 0.5, high + 1.0)]
    if low == high:
        return [low - 0.5, high + 0.5]
    return [float(edge) for edge in np.linspace(low, high, bins + 1)]


def histogram_counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    """Counts of the finite `values` in the bins (the last bin holds its right edge)."""
    finite = values[np.isfinite(values)]
    return [int(count) for count in np.histogram(finite, bins=np.asarray(edges))[0]]


def category_labels(values: pd.Series, flag: bool = False) -> pd.Series:
    """The non-missing values as category labels (text); a bool feature's 0/1 as False/True, as Evidently
    labels them."""
    present = values.dropna()
    return (present.astype(bool) if flag else present).astype(str)


class NumericColumn(BaseModel):
    """Statistics and histogram of one numeric column (figures None when every value is missing)."""

    name: str
    count: int
    missing: int
    mean: float | None
    std: float | None
    min: float | None
    q25: float | None
    median: float | None
    q75: float | None
    max: float | None
    bin_edges: list[float]
    bin_counts: list[int]


class ValueCount(BaseModel):
    value: str
    count: int


class CategoricalColumn(BaseModel):
    """Distinct values of one categorical column and its most frequent ones."""

    name: str
    count: int  # non-missing values
    missing: int
    distinct: int
    top: list[ValueCount]  # most frequent first, at most TOP_VALUES

    def share(self, value: ValueCount) -> float:
        """The value's share of the column's non-missing values."""
        return value.count / self.count if self.count else 0.0


def numeric_column(name: str, values: pd.Series, integer: bool = False) -> NumericColumn:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    finite = numbers[np.isfinite(numbers)]
    edges = histogram_edges(numbers, integer)
    figures: dict[str, float | None] = dict.fromkeys(("mean", "std", "min", "q25", "median", "q75", "max"))
    if finite.size:
        q25, median, q75 = np.quantile(finite, [0.25, 0.5, 0.75])
        figures = {
            "mean": float(finite.mean()),
            "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            "min": float(finite.min()),
            "q25": float(q25),
            "median": float(median),
            "q75": float(q75),
            "max": float(finite.max()),
        }
    return NumericColumn(
        name=name,
        count=int(finite.size),
        missing=len(numbers) - int(finite.size),
        bin_edges=edges,
        bin_counts=histogram_counts(numbers, edges),
        **figures,
    )


def categorical_column(name: str, values: pd.Series, flag: bool = False, limit: int = TOP_VALUES) -> CategoricalColumn:
    labels = category_labels(values, flag)
    counts = labels.value_counts(sort=True)
    return CategoricalColumn(
        name=name,
        count=len(labels),
        missing=len(values) - len(labels),
        distinct=len(counts),
        top=[ValueCount(value=str(value), count=int(count)) for value, count in counts.head(limit).items()],
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


class DataProfile(HtmlReport):
    """A table's size, missing values, per-column statistics, top values and histograms, profiled on at
    most PROFILE_MAX_ROWS rows; Evidently's interactive summary of the same rows is its attachment."""

    title: str
    rows: int
    profiled_rows: int
    seed: int
    numeric: list[NumericColumn]
    categorical: list[CategoricalColumn]
    evidently_html: str

    @property
    def columns(self) -> int:
        return len(self.numeric) + len(self.categorical)

    @property
    def missing(self) -> int:
        return sum(c.missing for c in self.numeric) + sum(c.missing for c in self.categorical)

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {
            "rows": self.rows,
            "profiled_rows": self.profiled_rows,
            "columns": self.columns,
            "missing_values": self.missing,
        }

    def attachments(self) -> dict[str, str]:
        return {EVIDENTLY_FILE: self.evidently_html}

    def histograms_png(self) -> bytes | None:
        """Small multiples of the numeric columns' histograms; None without numeric columns."""
        if not self.numeric:
            return None
        figure, axes = small_multiples(len(self.numeric))
        for ax, column in zip(axes, self.numeric, strict=True):
            ax.stairs(column.bin_counts, column.bin_edges, fill=True, color="#4c72b0")
            ax.set_title(column.name, fontsize=9)
        figure.suptitle(f"Histograms of the numeric columns ({self.profiled_rows:,} rows)", fontsize=10)
        return figure_png(figure)

    def sections(self) -> list[tuple[str, str]]:
        """The profile's sections, summary first; other reports (data quality) show them too."""
        summary = html_table(
            ["rows", "columns profiled", "missing values"], [[f"{self.rows:,}", self.columns, f"{self.missing:,}"]]
        )
        if self.profiled_rows < self.rows:
            summary += (
                f"<p>Profiled on a random sample of {self.profiled_rows:,} of {self.rows:,} rows "
                f"(seed {self.seed}).</p>"
            )
        sections = [("Summary", summary + EVIDENTLY_NOTE)]
        if self.numeric:
            rows = [
                [c.name, f"{c.count:,}", f"{c.missing:,}"]
                + [_number(v) for v in (c.mean, c.std, c.min, c.q25, c.median, c.q75, c.max)]
                for c in self.numeric
            ]
            table = html_table(["column", "count", "missing", "mean", "std", "min", "25%", "50%", "75%", "max"], rows)
            png = self.histograms_png()
            figure = inline_png(png, "histograms of the numeric columns") if png else ""
            sections.append(("Numeric columns", table + figure))
        if self.categorical:
            overview = html_table(
                ["column", "count", "missing", "distinct values", "most frequent"],
                [
                    [
                        c.name,
                        f"{c.count:,}",
                        f"{c.missing:,}",
                        f"{c.distinct:,}",
                        f"{c.top[0].value} ({c.share(c.top[0]):.1%})" if c.top else "-",
                    ]
                    for c in self.categorical
                ],
            )
            details = "".join(self._top_values(c) for c in self.categorical)
            sections.append(("Categorical columns", overview + details))
        return sections

    @staticmethod
    def _top_values(column: CategoricalColumn) -> str:
        rows = [[v.value, f"{v.count:,}", f"{column.share(v):.1%}"] for v in column.top]
        more = column.distinct - len(column.top)
        rest = column.count - sum(v.count for v in column.top)
        tail = f"<p>and {more:,} more values in {rest:,} rows ({rest / column.count:.1%}).</p>" if more > 0 else ""
        return f"<h3>{html.escape(column.name)}</h3>" + html_table(["value", "count", "share"], rows) + tail

    def to_html(self) -> str:
        return html_page(self.title, self.sections())


def target_columns(spec: UseCaseSpec) -> tuple[list[str], list[str]]:
    """The target column as a profile reads it, (categorical, numerical): a class is a category, a
    regression target a number."""
    return ([spec.target.column], []) if spec.is_classification else ([], [spec.target.column])


def data_profile(
    frame: pd.DataFrame,
    spec: UseCaseSpec,
    categorical: Sequence[str] = (),
    numerical: Sequence[str] = (),
    max_rows: int = PROFILE_MAX_ROWS,
    title: str | None = None,
) -> DataProfile:
    """The profile of the spec's features (bool ones as categories) and the given `categorical` columns
    (e.g. a class target, or the predicted class) and `numerical` ones (e.g. a regression target, or a
    forecast), with Evidently's data summary of the same rows.

    Tables larger than `max_rows` are profiled on a seeded random sample of that size; the page says so.
    """
    sample = frame
    if len(sample) > max_rows:
        sample = sample.sample(n=max_rows, random_state=spec.split.seed)
    numeric = [
        numeric_column(f.name, sample[f.name], integer=f.dtype is FeatureType.INT)
        for f in spec.features
        if f.dtype is not FeatureType.BOOL
    ]
    numeric += [numeric_column(name, sample[name]) for name in numerical]
    categories = [
        categorical_column(f.name, sample[f.name], flag=True) for f in spec.features if f.dtype is FeatureType.BOOL
    ]
    categories += [categorical_column(name, sample[name]) for name in categorical]
    return DataProfile(
        title=title or f"Data profile of {spec.name}",
        rows=len(frame),
        profiled_rows=len(sample),
        seed=spec.split.seed,
        numeric=numeric,
        categorical=categories,
        evidently_html=_evidently_summary_html(sample, spec, categorical, numerical),
    )


def _evidently_summary_html(
    sample: pd.DataFrame, spec: UseCaseSpec, categorical: Sequence[str] = (), numerical: Sequence[str] = ()
) -> str:
    """Evidently's DataSummaryPreset page (interactive: it needs JavaScript) of the rows given."""
    from evidently import Report
    from evidently.presets import DataSummaryPreset

    snapshot = Report([DataSummaryPreset()]).run(
        current_data=evidently_dataset(sample, spec, categorical, numerical), reference_data=None
    )
    page: str = snapshot.get_html_str(as_iframe=False)
    return page


def evidently_dataset(
    frame: pd.DataFrame, spec: UseCaseSpec, categorical: Sequence[str] = (), numerical: Sequence[str] = ()
) -> Dataset:
    """An Evidently Dataset of the spec's features and the `categorical` and `numerical` columns: bool
    features are categories (as text: Evidently takes category labels as text, not as 0/1 floats), the
    other features numbers."""
    from evidently import DataDefinition, Dataset

    flags = [f.name for f in spec.features if f.dtype is FeatureType.BOOL]
    table = frame[spec.feature_names + list(categorical) + list(numerical)].reset_index(drop=True)
    table = table.assign(**{name: table[name].astype(bool).astype(str) for name in flags})
    definition = DataDefinition(
        numerical_columns=[f.name for f in spec.features if f.dtype is not FeatureType.BOOL] + list(numerical),
        categorical_columns=flags + list(categorical),
    )
    return Dataset.from_pandas(table, data_definition=definition)
