"""A model version's governance state as a report artifact, because the open-source ZenML dashboard hides
the Model Control Plane: the version's stage, its MLflow mirror and aliases, every version's stage, the
promotion history (who, when, why) and the pending requests, as a static page the dashboard shows."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from headliner.governance.promotion import AuditEvent, PromotionRequest, history, pending_requests, stage_name
from headliner.model.versions import find_model_version
from headliner.reports.html import HtmlReport, html_page, html_table


class VersionStage(BaseModel):
    """One version of the model and its stage."""

    version: int
    stage: str


class ModelStageRecord(HtmlReport):
    """Where a model version stands and how it got there, as the ZenML store and the MLflow registry say."""

    model: str
    version: int
    stage: str
    recorded_at: str
    mlflow_version: str | None = None  # the MLflow registry's version mirroring this one
    mlflow_aliases: list[str] | None = None  # aliases on it; None: the registry was not checked
    mlflow_note: str = ""  # why the registry was not checked
    model_card: str = ""  # where to read the version's model card: the command, and its MLflow files when logged
    versions: list[VersionStage] = Field(default_factory=list)
    history: list[AuditEvent] = Field(default_factory=list)  # this version's events, oldest first
    pending: list[PromotionRequest] = Field(default_factory=list)  # the model's pending requests

    @property
    def headline(self) -> str:
        return f"{self.model} v{self.version} — {self.stage}"

    def aliases_text(self) -> str:
        if self.mlflow_aliases is None:
            return f"not checked ({self.mlflow_note})" if self.mlflow_note else "not checked"
        return ", ".join(self.mlflow_aliases) or "none"

    def summary_metadata(self) -> dict[str, str | int | float]:
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "events": len(self.history),
            "pending_requests": len(self.pending),
            "mlflow_aliases": self.aliases_text(),
        }

    def to_html(self) -> str:
        summary = html_table(
            ["model", "version", "stage", "MLflow registry version", "MLflow aliases", "recorded at"],
            [
                [
                    self.model,
                    self.version,
                    self.stage,
                    self.mlflow_version or "none",
                    self.aliases_text(),
                    f"{self.recorded_at[:19]}Z",
                ]
            ],
        )
        events = (
            html_table(
                ["when (UTC)", "event", "stage", "by", "reason", "request"],
                [[f"{e.at[:19]}Z", e.event, e.stage, e.by, e.reason, e.request_id] for e in self.history],
            )
            if self.history
            else f"<p>No promotion events yet. Request one with: python run.py promote request --model {self.model}"
            f" --version {self.version} --to staging --reason TEXT</p>"
        )
        pending = (
            html_table(
                ["request", "version", "move", "by", "at (UTC)", "reason"],
                [
                    [
                        r.id,
                        r.version,
                        f"{r.from_stage} -> {r.to_stage}",
                        r.requested_by,
                        f"{r.requested_at[:19]}Z",
                        r.reason,
                    ]
                    for r in self.pending
                ],
            )
            if self.pending
            else "<p>No pending requests.</p>"
        )
        versions = html_table(["version", "stage"], [[v.version, v.stage] for v in self.versions])
        card = f"<p>{html.escape(self.model_card)}</p>" if self.model_card else "<p>No model card.</p>"
        return html_page(
            self.headline,
            [
                ("Summary", summary),
                ("Model card", card),
                (f"Promotion history of v{self.version} (oldest first)", events),
                (f"Pending requests of {self.model}", pending),
                (f"Every version of {self.model}", versions),
            ],
        )


def model_stage_record(model: str, version: int) -> ModelStageRecord:
    """The record of a version from the ZenML store (the source of truth) and, when it answers, the
    MLflow registry; a registry that fails leaves the aliases 'not checked' with the reason."""
    from zenml.client import Client

    from headliner.governance.model_card import card_command
    from headliner.model.registration import (  # MLflow: only here
        REGISTRY_VERSION_KEY,
        mirrored_version,
        model_card_uri,
    )

    model_version = find_model_version(model, version)
    aliases: list[str] | None = None
    note = ""
    card = card_command(model, version)
    try:
        mlflow_version, aliases = mirrored_version(model, version)
        card_files = model_card_uri(model, version) if mlflow_version else None
        if card_files:
            card += f"; MLflow: {card_files}"
    except Exception as exc:  # the registry being down must not hide the ZenML side
        registered = model_version.run_metadata.get(REGISTRY_VERSION_KEY)  # as the training run registered it
        mlflow_version = None if registered is None else str(registered)
        note = f"{type(exc).__name__}: {exc}"[:300]
    versions = Client().list_model_versions(model, size=1000, sort_by="asc:number").items
    return ModelStageRecord(
        model=model,
        version=version,
        stage=stage_name(model_version),
        recorded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        mlflow_version=mlflow_version,
        mlflow_aliases=aliases,
        mlflow_note=note,
        model_card=card,
        versions=[VersionStage(version=v.number, stage=stage_name(v)) for v in versions],
        history=history(model, version),
        pending=pending_requests(model),
    )
