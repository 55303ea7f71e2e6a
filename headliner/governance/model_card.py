"""The model card of a model version: the one document a reviewer reads before approving a promotion (what
the version is, what it was trained on, how it scored and against what, how a classifier does per group,
what drives it, where it is weak, who moved it where and why, and the hash of the file that is served). A
regression model's card names the target with its unit and range, the baseline forecast it beat and the
date span of each split of a split by time; it has no class or fairness sections. Built at
registration, refreshed after every promotion decision; stored as a ZenML artifact linked to the version
and as Markdown + HTML files of the version's MLflow run. Loading and rendering a card needs no scikit-learn
(a registry-reading service image shows cards): what needs it is imported when a card is built."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from headliner.data.splitting import dataframe_fingerprint
from headliner.errors import HeadlinerError
from headliner.governance.promotion import AuditEvent
from headliner.labels import Artifact, class_display_names
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.spec import LOWER_IS_BETTER, DerivationKind, Feature, SourceKind, Task, UseCaseSpec

if TYPE_CHECKING:
    import onnx
    from zenml.models import ArtifactVersionResponse

    from headliner.model.evaluation import EvaluationReport
    from headliner.model.explanations import GlobalExplanations
    from headliner.model.gates import QualityGateReport
    from headliner.model.training import ModelSelection

# A card section: its heading, paragraphs, and a table (rows, headers) or None.
Section = tuple[str, list[str], list[list[object]] | None, list[str] | None]
TOP_FEATURES = 8  # features shown overall
TOP_CLASSES = 3  # classes whose own top features are shown
TOP_CLASS_FEATURES = 5


def card_command(model: str, version: int) -> str:
    """The command that prints a version's card."""
    return f"python run.py model-card {model} --version {version}"


def onnx_sha256(onnx_model: onnx.ModelProto) -> str:
    """sha256 of the ONNX file as stored (the serialized model)."""
    return hashlib.sha256(onnx_model.SerializeToString()).hexdigest()


class SplitFacts(BaseModel):
    name: str
    rows: int
    fingerprint: str
    first: str | None = None  # a split by time: the first and last period of the split (period starts)
    last: str | None = None


class TargetFacts(BaseModel):
    """What a regression model forecasts: the target column, its meaning, unit and valid range."""

    column: str
    description: str
    unit: str
    min: float | None = None
    max: float | None = None

    @property
    def range_text(self) -> str:
        """ "[0, 10,000,000] units"."""

        def bound(value: float | None, unbounded: str) -> str:
            if value is None:
                return unbounded
            return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"

        return f"[{bound(self.min, '-inf')}, {bound(self.max, 'inf')}] {self.unit}"


class CandidateFacts(BaseModel):
    name: str
    family: str
    score: float  # validation score by the selection metric


class GateFacts(BaseModel):
    metric: str
    value: float
    bound: str
    passed: bool


class GroupMetrics(BaseModel):
    """The test metrics of the rows with one value of the fairness attribute."""

    value: str
    rows: int
    accuracy: float
    top_k_accuracy: float


class FairnessFact(BaseModel):
    """One fairness figure on the test split: its value in the worst class, against the spec's limits."""

    name: str
    value: float | None = None
    label: str | None = None  # the worst class
    lower: float | None = None
    upper: float
    note: str = ""

    @property
    def limit(self) -> str:
        return f"{self.upper:g}" if self.lower is None else f"{self.lower:g}-{self.upper:g}"

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "n/a"
        inside = (self.lower is None or self.value >= self.lower) and self.value <= self.upper
        return "within" if inside else "OUTSIDE"


class FeatureWeight(BaseModel):
    feature: str
    importance: float


class ClassFeatures(BaseModel):
    """A class and the features that move its probability most."""

    label: str
    name: str
    features: list[FeatureWeight]


class ExplanationFacts(BaseModel):
    """What the global explanations say, in plain values: the top features overall and for the top classes."""

    method: str = ""
    overall: list[FeatureWeight] = Field(default_factory=list)
    per_class: list[ClassFeatures] = Field(default_factory=list)


class ModelCard(HtmlReport):
    """A model version's card (see the module docstring); `to_markdown()` and a static `to_html()`."""

    model: str
    version: int
    stage: str = "none"
    title: str
    description: str
    task: str = Task.MULTICLASS_CLASSIFICATION.value  # cards stored before regression lack it
    question: str
    answer_template: str = ""
    classes: list[str]  # empty for regression
    class_names: list[str]
    top_k: int
    target: TargetFacts | None = None  # regression
    features: list[str]
    derived_features: dict[str, str] = Field(default_factory=dict)  # feature -> how it is computed
    source: str
    synthetic: bool = False
    date_range: str  # or why there is none
    splits: list[SplitFacts]
    selection_metric: str
    selection_lower_is_better: bool = False
    selected: str
    candidates: list[CandidateFacts]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    baseline_description: str = ""
    gates: list[GateFacts]
    fairness_attribute: str | None = None
    groups: list[GroupMetrics] = Field(default_factory=list)
    fairness: list[FairnessFact] = Field(default_factory=list)
    fairness_note: str = ""
    explanations: ExplanationFacts | None = None
    limitations: list[str] = Field(default_factory=list)
    history: list[AuditEvent] = Field(default_factory=list)
    onnx_sha256: str
    provenance: dict[str, str] = Field(default_factory=dict)  # data fingerprint, git commit, libraries
    mlflow_version: str | None = None
    mlflow_card_uri: str | None = None  # where the card's files are in MLflow
    links: dict[str, str] = Field(default_factory=dict)  # e.g. the ZenML run's dashboard URL
    created_at: str
    updated_at: str

    @property
    def headline(self) -> str:
        return f"{self.title}: model {self.model}, version {self.version}"

    @property
    def is_classification(self) -> bool:
        return self.task == Task.MULTICLASS_CLASSIFICATION.value

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "selected": self.selected,
            **{f"test_{name}": round(value, 4) for name, value in self.metrics.items()},
            "events": len(self.history),
            "onnx_sha256": self.onnx_sha256,
            "updated_at": self.updated_at,
        }

    # -- the sections, each as (heading, Markdown lines, HTML) from the same rows -------------------------

    def _why(self) -> str:
        direction = "lower" if self.selection_lower_is_better else "higher"
        others = [c for c in self.candidates if c.name != self.selected]
        chosen = next((c for c in self.candidates if c.name == self.selected), None)
        if chosen is None:
            return f"Selected: {self.selected}."
        if not others:
            return f"{self.selected} was the only candidate (validation {self.selection_metric} {chosen.score:.4f})."
        best_other = (min if self.selection_lower_is_better else max)(others, key=lambda c: c.score)
        return (
            f"{self.selected} won on validation {self.selection_metric} ({direction} is better): "
            f"{chosen.score:.4f} against {best_other.score:.4f} for the runner-up {best_other.name}."
        )

    def _use(self) -> list[str]:
        """The use case: what is asked, what people are shown, what goes in and comes out."""
        inputs = ", ".join(
            f"{name} ({self.derived_features[name]})" if name in self.derived_features else name
            for name in self.features
        )
        if self.target is None:
            names = ", ".join(
                f"{c} ({n})" if n != c else c for c, n in zip(self.classes, self.class_names, strict=True)
            )
            return [
                self.description,
                f"Question answered: {self.question} People are shown the top {self.top_k} of {len(self.classes)} "
                f"classes with their probabilities. One ONNX file holds the whole model: the {len(self.features)} "
                "raw features in, the class probabilities and labels out.",
                f"Inputs: {inputs}.",
                f"Classes: {names}.",
            ]
        target = self.target
        derived = (
            f" ({len(self.derived_features)} of them computed from the target's earlier values, which a client "
            "sends like any other feature)"
            if self.derived_features
            else ""
        )
        return [
            self.description,
            f"Question answered: {self.question} People are shown the forecast in {target.unit}"
            + (f' ("{self.answer_template}")' if self.answer_template else "")
            + f". One ONNX file holds the whole model: the {len(self.features)} features{derived} in, the forecast "
            "out (output 'prediction', float32 [N, 1], in the target's unit).",
            f"Target: {target.column}: {target.description}; unit {target.unit}, valid range {target.range_text}.",
            f"Inputs: {inputs}.",
        ]

    def _metric_rows(self) -> tuple[list[list[object]], list[str]]:
        """The test metrics beside the baseline's; for regression also how much better than the baseline."""
        rows: list[list[object]] = []
        for name, value in self.metrics.items():
            baseline = self.baseline_metrics.get(name, float("nan"))
            row: list[object] = [name, f"{value:.4f}", f"{baseline:.4f}"]
            if not self.is_classification:
                row.append(_change_text(name, value, baseline))
            rows.append(row)
        headers = ["metric", "model", "baseline"]
        return rows, headers if self.is_classification else [*headers, "against the baseline"]

    def _sections(self) -> list[Section]:
        """(heading, paragraphs, table rows, table headers) of every section, in order."""
        dated = any(s.first for s in self.splits)
        data = [
            f"Source: {self.source}",
            f"Date range: {self.date_range}",
            *(
                ["Synthetic data (a generator calibrated to real value ranges): its scores say the pipeline works."]
                if self.synthetic
                else []
            ),
        ]
        sections: list[Section] = [
            ("Use case", self._use(), None, None),
            (
                "Data",
                data,
                [
                    [s.name, f"{s.rows:,}", *([s.first or "", s.last or ""] if dated else []), s.fingerprint]
                    for s in self.splits
                ],
                ["split", "rows", *(["first period", "last period"] if dated else []), "fingerprint"],
            ),
            (
                "Candidates and why this one won",
                [self._why()],
                [
                    [("* " if c.name == self.selected else "") + c.name, c.family, f"{c.score:.4f}"]
                    for c in self.candidates
                ],
                ["candidate", "family", f"validation {self.selection_metric}"],
            ),
            (
                "Test metrics",
                [
                    f"On the test split, beside the baseline: {self.baseline_description}."
                    if self.baseline_description
                    else "On the test split, beside the baseline (every row gets the training split's class shares)."
                ],
                *self._metric_rows(),
            ),
            (
                "Quality gates",
                [] if self.gates else ["No quality gates configured."],
                [[g.metric, f"{g.value:.4f}", g.bound, "passed" if g.passed else "FAILED"] for g in self.gates] or None,
                ["metric", "value", "bound", "result"],
            ),
        ]
        sections += self._group_sections()
        sections.append(self._explanation_section())
        sections.append(("Limitations", [f"- {text}" for text in self.limitations] or ["None stated."], None, None))
        sections.append(
            (
                "Governance history",
                [f"Stage now: {self.stage}."]
                if self.history
                else [f"Stage now: {self.stage}. No promotion events yet."],
                [[f"{e.at[:19]}Z", e.event, e.stage, e.by, e.reason, e.request_id] for e in self.history] or None,
                ["when (UTC)", "event", "stage", "by", "reason", "request"],
            )
        )
        artifact = [f"ONNX file sha256: {self.onnx_sha256}"]
        artifact += [f"{key}: {value}" for key, value in self.provenance.items()]
        artifact.append(f"This card: {card_command(self.model, self.version)}")
        if self.mlflow_version:
            artifact.append(f"MLflow registry: model {self.model}, version {self.mlflow_version}")
        if self.mlflow_card_uri:
            artifact.append(f"MLflow card files: {self.mlflow_card_uri}")
        artifact += [f"{key}: {value}" for key, value in self.links.items()]
        artifact.append(f"Card created {self.created_at[:19]}Z, updated {self.updated_at[:19]}Z.")
        sections.append(("Artifact", artifact, None, None))
        return sections

    def _group_sections(self) -> list[Section]:
        if not self.is_classification:  # groups and fairness compare predicted classes
            return []
        if self.fairness_attribute is None:
            note = self.fairness_note or "The spec sets no fairness attribute (monitoring.fairness_attribute)."
            return [("Per-group metrics and fairness", [note], None, None)]
        groups: Section = (
            f"Per-group metrics on the test split, by {self.fairness_attribute}",
            [],
            [[g.value, f"{g.rows:,}", f"{g.accuracy:.4f}", f"{g.top_k_accuracy:.4f}"] for g in self.groups],
            [self.fairness_attribute, "rows", "accuracy", f"top-{self.top_k} accuracy"],
        )
        fairness: Section = (
            f"Fairness across {self.fairness_attribute} on the test split (worst class)",
            [self.fairness_note] if self.fairness_note else [],
            [
                [
                    f.name,
                    "n/a" if f.value is None else f"{f.value:.4f}",
                    f.label or "",
                    f.limit,
                    f.verdict,
                    f.note,
                ]
                for f in self.fairness
            ],
            ["figure", "value", "worst class", "limit (spec)", "verdict", "note"],
        )
        return [groups, fairness]

    def _explanation_section(self) -> Section:
        heading = "Global explanations"
        if self.explanations is None or not self.explanations.overall:
            return heading, ["No global explanations were computed for this version."], None, None
        facts = self.explanations
        paragraphs = [f"Method: {facts.method}." if facts.method else "", "Top features overall:"]
        paragraphs += [f"{i}. {w.feature} ({w.importance:.4f})" for i, w in enumerate(facts.overall, start=1)]
        rows: list[list[object]] = [
            [f"{c.name} ({c.label})" if c.name != c.label else c.label, ", ".join(w.feature for w in c.features)]
            for c in facts.per_class
        ]
        if rows:
            paragraphs.append("Top features per class (the classes the explanations cover):")
        return heading, [p for p in paragraphs if p], rows or None, ["class", "top features, most important first"]

    def to_markdown(self) -> str:
        lines = [f"# {self.headline}", ""]
        for heading, paragraphs, rows, headers in self._sections():
            lines += [f"## {heading}", ""]
            for paragraph, following in zip(paragraphs, [*paragraphs[1:], ""], strict=False):
                lines.append(paragraph)
                if not (_list_item(paragraph) and _list_item(following)):  # a list's items stay together
                    lines.append("")
            if rows and headers:
                lines.append("| " + " | ".join(headers) + " |")
                lines.append("|" + "---|" * len(headers))
                lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def to_html(self) -> str:
        sections = []
        for heading, paragraphs, rows, headers in self._sections():
            body = _html_paragraphs(paragraphs)
            if rows and headers:
                body += html_table(headers, rows)
            sections.append((heading, body))
        return html_page(self.headline, sections)


def _html_paragraphs(paragraphs: list[str]) -> str:
    """Paragraphs as <p>, runs of "- " items as <ul> and of "1. " items as <ol>."""
    import html

    parts: list[str] = []
    kind = ""
    for paragraph in paragraphs:
        item = "ul" if paragraph.startswith("- ") else "ol" if _list_item(paragraph) else ""
        if item != kind:
            parts.append(f"</{kind}>" if kind else "")
            parts.append(f"<{item}>" if item else "")
            kind = item
        text = html.escape(paragraph.split(" ", 1)[1] if item else paragraph)
        parts.append(f"<li>{text}</li>" if item else f"<p>{text}</p>")
    if kind:
        parts.append(f"</{kind}>")
    return "".join(parts)


def _list_item(paragraph: str) -> bool:
    return paragraph.startswith("- ") or bool(re.match(r"\d+\. ", paragraph))


def _md_cell(cell: object) -> str:
    return str(cell).replace("|", "\\|").replace("\n", " ")


def _change_text(metric: str, value: float, baseline: float) -> str:
    """A regression metric against the baseline's, relative to the baseline's size: "23.4% lower (better)"."""
    from headliner.model.evaluation import improvement_over_baseline

    improvement = improvement_over_baseline(metric, value, baseline)
    if improvement is None:
        return "n/a"
    direction = "lower" if value < baseline else "higher"
    return f"{abs(improvement):.1%} {direction} ({'better' if improvement > 0 else 'worse'})"


# -- building a card from a version's artifacts ---------------------------------------------------------


def group_metrics(
    frame: pd.DataFrame, probabilities: np.ndarray, spec: UseCaseSpec, attribute: str
) -> list[GroupMetrics]:
    """Accuracy and top-k accuracy of the rows of each value of `attribute` (test split rows, the model's
    [N, C] probabilities in spec class order)."""
    from headliner.model.estimators import class_indices
    from headliner.model.evaluation import compute_metrics

    truth = class_indices(frame[spec.target.column], spec)
    values = frame[attribute].to_numpy()
    groups = []
    for value in sorted(pd.unique(values)):
        chosen = values == value
        if not chosen.any():
            continue
        scores = compute_metrics(truth[chosen], probabilities[chosen], len(spec.target.classes), spec.evaluation.top_k)
        shown = str(int(value)) if isinstance(value, (bool, np.bool_, float, np.floating)) else str(value)
        groups.append(
            GroupMetrics(
                value=shown,
                rows=int(chosen.sum()),
                accuracy=scores["accuracy"],
                top_k_accuracy=scores["top_k_accuracy"],
            )
        )
    return groups


def explanation_facts(explanations: GlobalExplanations) -> ExplanationFacts:
    """The card's summary of a version's global explanations: the top features overall (by the validation
    metric's drop when shuffled) and, for a classifier, for the classes with the most validation rows, their
    top features."""
    shap = (
        f"per class: mean |SHAP| of the class's probability over {explanations.shap_rows} validation rows"
        if explanations.per_class
        else f"mean |SHAP| of the forecast over {explanations.shap_rows} validation rows: "
        + ", ".join(
            f"{f.feature} {f.mean_abs_shap:.3g} {explanations.unit or ''}".rstrip()
            for f in sorted(explanations.overall, key=lambda f: -f.mean_abs_shap)[:TOP_CLASS_FEATURES]
        )
    )
    return ExplanationFacts(
        method=(
            f"permutation importance on {explanations.importance_rows:,} validation rows of the ONNX model: "
            f"the drop of {explanations.metric} when a feature is shuffled (mean of {explanations.repeats}); " + shap
        ),
        overall=[
            FeatureWeight(feature=f.feature, importance=f.mean_drop) for f in explanations.top_features(TOP_FEATURES)
        ],
        per_class=[
            ClassFeatures(
                label=c.label,
                name=c.name,
                features=[FeatureWeight(feature=n, importance=v) for n, v in c.top_features(TOP_CLASS_FEATURES)],
            )
            for c in explanations.top_classes(TOP_CLASSES)
        ],
    )


def derivation_text(feature: Feature, spec: UseCaseSpec) -> str:
    """How a derived feature is computed, for people: "sales 1 week before", "mean sales of the 4 weeks
    before", "week of the year"."""
    derive = feature.derive
    if derive is None:
        return ""
    frequency = spec.time_series.frequency if spec.time_series is not None else ""
    step = {"W": "week", "D": "day", "M": "month"}.get(frequency[:1], "period")
    periods = derive.periods or 1
    steps = f"{step}s" if periods != 1 else step
    if derive.kind is DerivationKind.LAG:
        return f"{spec.target.column} {periods} {steps} before"
    if derive.kind is DerivationKind.ROLLING_MEAN:
        return f"mean {spec.target.column} of the {periods} {steps} before"
    return "week of the year"


def split_facts(name: str, frame: pd.DataFrame, spec: UseCaseSpec) -> SplitFacts:
    """A split's rows and fingerprint and, for a time series, its first and last period."""
    facts = SplitFacts(name=name, rows=len(frame), fingerprint=dataframe_fingerprint(frame))
    column = spec.time_series.time_column if spec.time_series is not None else None
    if column is None or column not in frame or frame.empty:
        return facts
    times = pd.to_datetime(frame[column])
    return facts.model_copy(update={"first": f"{times.min():%Y-%m-%d}", "last": f"{times.max():%Y-%m-%d}"})


def build_model_card(
    spec: UseCaseSpec,
    version: int,
    onnx_model: onnx.ModelProto,
    report: EvaluationReport,
    selection: ModelSelection,
    gates: QualityGateReport,
    splits: Mapping[str, pd.DataFrame],
    *,
    date_range: str = "not recorded",
    groups: Sequence[GroupMetrics] = (),
    fairness: Sequence[FairnessFact] = (),
    fairness_note: str = "",
    explanations: ExplanationFacts | None = None,
    history: Sequence[AuditEvent] = (),
    stage: str = "none",
    mlflow_version: str | None = None,
    links: Mapping[str, str] | None = None,
) -> ModelCard:
    """A version's card from its artifacts; the per-group figures, explanations and history as plain values."""
    from headliner.model.onnx_packaging import target_description

    meta = {p.key: p.value for p in onnx_model.metadata_props}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    attribute = spec.monitoring.fairness_attribute
    target = spec.target
    return ModelCard(
        model=spec.name,
        version=version,
        stage=stage,
        title=spec.title,
        description=spec.description,
        task=spec.task.value,
        question=spec.decision.question,
        answer_template=spec.decision.answer_template,
        classes=list(target.classes),
        class_names=class_display_names(spec),
        top_k=spec.evaluation.top_k,
        target=None
        if spec.is_classification
        else TargetFacts.model_validate({**target_description(spec), "unit": target.unit or ""}),
        features=spec.feature_names,
        derived_features={f.name: derivation_text(f, spec) for f in spec.features if f.derive is not None},
        source=spec.source.format_description or spec.source.kind.value,
        synthetic=spec.source.kind is SourceKind.GENERATOR,
        date_range=date_range,
        splits=[split_facts(name, frame, spec) for name, frame in splits.items()],
        selection_metric=selection.selection_metric,
        selection_lower_is_better=selection.selection_metric in LOWER_IS_BETTER,
        selected=selection.selected,
        candidates=[
            CandidateFacts(name=c.name, family=c.family, score=c.validation_metrics[selection.selection_metric])
            for c in selection.candidates
        ],
        metrics=dict(report.metrics),
        baseline_metrics=dict(report.baseline_metrics),
        baseline_description=report.baseline_description,
        gates=[GateFacts(metric=g.metric, value=g.value, bound=g.bound, passed=g.passed) for g in gates.results],
        fairness_attribute=attribute,
        groups=list(groups),
        fairness=list(fairness),
        fairness_note=fairness_note
        or ("" if attribute else "The spec sets no fairness attribute (monitoring.fairness_attribute): no groups."),
        explanations=explanations,
        limitations=list(spec.limitations),
        history=list(history),
        onnx_sha256=onnx_sha256(onnx_model),
        provenance={key: meta[key] for key in ("data_fingerprint", "git_commit", "library_versions") if meta.get(key)},
        mlflow_version=mlflow_version,
        links=dict(links or {}),
        created_at=now,
        updated_at=now,
    )


# -- the stored card: load, log to MLflow, refresh after a promotion decision --------------------------


def _card_artifact(model: str, version: int) -> tuple[ModelCard, ArtifactVersionResponse]:
    """The newest `model_card` artifact version of a model version, loaded (by the materializer it was stored
    with, which the artifact records), and the artifact version."""
    from headliner.model.versions import find_model_version

    model_version = find_model_version(model, version)
    artifact = model_version.get_artifact(Artifact.MODEL_CARD)
    if artifact is None:
        raise HeadlinerError(f"{model} v{version} has no {Artifact.MODEL_CARD} artifact (trained before model cards)")
    card = artifact.load()
    if not isinstance(card, ModelCard):
        raise HeadlinerError(
            f"{model} v{version}'s {Artifact.MODEL_CARD} artifact is a {type(card).__name__}, not a model card "
            "(trained before model cards)"
        )
    return card, artifact


def load_model_card(model: str, version: int) -> ModelCard:
    """The newest `model_card` artifact of a model version; unknown model/version or no card: HeadlinerError."""
    return _card_artifact(model, version)[0]


def log_card_to_mlflow(card: ModelCard) -> None:
    """Log the card as `model_card/model_card.md` and `.html` of the run of the MLflow version mirroring it,
    saying where they are (`mlflow_card_uri`, set here)."""
    from headliner.model.registration import log_model_card

    def files(uri: str) -> dict[str, str]:
        card.mlflow_card_uri = uri
        return {"model_card.md": card.to_markdown(), "model_card.html": card.to_html()}

    log_model_card(card.model, card.version, files)


def refresh_model_card(model: str, version: int) -> tuple[ModelCard, list[str]]:
    """After a promotion decision: the version's card with its stage and governance history as the store has
    them now, saved as a new `model_card` artifact version linked to the model version, and its MLflow files
    logged again. Returns the card and what could not be refreshed (the decision stands either way)."""
    from zenml import save_artifact
    from zenml.model.utils import link_artifact_version_to_model_version
    from zenml.utils import source_utils

    from headliner.governance.promotion import history, stage_name
    from headliner.model.versions import find_model_version

    card, stored = _card_artifact(model, version)
    model_version = find_model_version(model, version)
    problems: list[str] = []
    refreshed = card.model_copy(
        update={
            "stage": stage_name(model_version),
            "history": history(model, version),
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    try:
        log_card_to_mlflow(refreshed)
    except Exception as exc:  # MLflow down: the ZenML card still refreshes
        problems.append(f"the MLflow card files were not refreshed: {type(exc).__name__}: {exc}"[:400])
    # stored by the materializer of the registration's card (the report materializer, which shows it as HTML),
    # loaded from its recorded source: zenml 0.98's save_artifact fails on a source (BaseMaterializer undefined)
    materializer = source_utils.load(stored.materializer)
    artifact = save_artifact(refreshed, name=Artifact.MODEL_CARD, materializer=materializer)
    link_artifact_version_to_model_version(artifact, model_version)
    return refreshed, problems
