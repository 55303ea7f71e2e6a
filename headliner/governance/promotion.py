"""Four-eyes promotion of model versions (none -> staging -> production -> archived): a request by one
person, an approval or rejection by another, every step kept as an audit trail on the model version
in the ZenML store, and each approval mirrored to the stack's MLflow registry as an alias.
"""

from __future__ import annotations

import fcntl
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from headliner.errors import HeadlinerError
from headliner.model.versions import EVENT_KEY, find_model_version

if TYPE_CHECKING:
    from zenml.metadata.metadata_types import MetadataType
    from zenml.models import ModelVersionResponse

Stage = Literal["staging", "production"]
# (current stage, target stage) pairs a request may ask for; archived -> production is a rollback.
ALLOWED_MOVES = {("none", "staging"), ("staging", "production"), ("archived", "production")}
AUTOMATION_USER = "training-pipeline"  # who files requests made by the training run config flag
# Metadata key prefix of requests on the model version (ZenML allows no colons in keys).
REQUEST_KEY = "promotion_request."


class PromotionError(HeadlinerError):
    """A promotion step that the rules refuse."""


class PromotionRequest(BaseModel):
    id: str
    model: str
    version: int
    from_stage: str
    to_stage: Stage
    requested_by: str
    requested_at: str
    reason: str
    status: Literal["pending", "approved", "rejected"] = "pending"
    decided_by: str | None = None
    decided_at: str | None = None
    decision_reason: str | None = None
    override: str | None = None


class AuditEvent(BaseModel):
    at: str
    event: Literal["requested", "approved", "rejected", "archived"]
    request_id: str
    by: str
    model: str
    version: int
    stage: str
    reason: str = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def acting_user(as_name: str | None) -> str:
    """Who acts: the active ZenML user; on the single-user embedded store `--as NAME` stands in for
    the person (real accounts, hence real enforcement, need a ZenML server)."""
    from zenml.client import Client
    from zenml.enums import StoreType

    client = Client()
    user = client.active_user.name
    if as_name is None:
        return user
    if client.zen_store.type != StoreType.SQL:
        raise PromotionError(
            f"--as is only for the single-user local store; on a ZenML server you act as your logged-in user '{user}'"
        )
    if not as_name.strip():
        raise PromotionError("--as needs a name")
    return as_name.strip()


@contextmanager
def promotion_lock() -> Iterator[None]:
    """One promotion decision at a time on this machine (a file lock beside ZenML's config), so two
    racing approvals cannot both see the old production version."""
    from zenml.config.global_config import GlobalConfiguration

    path = Path(GlobalConfiguration().config_directory) / "headliner-promotion.lock"
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stage_name(model_version: ModelVersionResponse) -> str:
    """The version's stage, 'none' before any promotion."""
    stage = model_version.stage
    return getattr(stage, "value", stage) or "none"


def _log(model_version: ModelVersionResponse, metadata: dict[str, MetadataType]) -> None:
    from zenml import log_metadata

    log_metadata(metadata=metadata, model_version_id=model_version.id)


def _event_metadata(event: AuditEvent) -> dict[str, MetadataType]:
    stamp = event.at.replace(":", "").replace("-", "")
    return {f"{EVENT_KEY}{stamp}.{event.request_id}.{event.event}": event.model_dump(mode="json")}


def _record(model_version: ModelVersionResponse, request: PromotionRequest, event: AuditEvent) -> None:
    _log(model_version, {f"{REQUEST_KEY}{request.id}": request.model_dump(mode="json"), **_event_metadata(event)})


def request_promotion(model: str, version: int, to_stage: Stage, reason: str, user: str) -> PromotionRequest:
    """File a request to move a version to a stage; refused unless the move is allowed now."""
    if not reason.strip():
        raise PromotionError("a request needs a --reason")
    model_version = find_model_version(model, version)
    current = stage_name(model_version)
    if (current, to_stage) not in ALLOWED_MOVES:
        raise PromotionError(_move_refusal(model, version, current, to_stage))
    for pending in _requests_of(model_version):
        if pending.status == "pending" and pending.to_stage == to_stage:
            raise PromotionError(f"request {pending.id} already asks to move {model} v{version} to {to_stage}")
    request = PromotionRequest(
        id=f"{model}-v{version}-{to_stage}-{secrets.token_hex(2)}",
        model=model,
        version=version,
        from_stage=current,
        to_stage=to_stage,
        requested_by=user,
        requested_at=_now(),
        reason=reason.strip(),
    )
    event = AuditEvent(
        at=request.requested_at,
        event="requested",
        request_id=request.id,
        by=user,
        model=model,
        version=version,
        stage=to_stage,
        reason=request.reason,
    )
    _record(model_version, request, event)
    return request


def _move_refusal(model: str, version: int, current: str, to_stage: str) -> str:
    allowed = sorted(target for source, target in ALLOWED_MOVES if source == current)
    hint = f"from {current} it can only go to {', '.join(allowed)}" if allowed else f"nothing moves out of {current}"
    return f"{model} v{version} is in stage {current}: it cannot move to {to_stage} ({hint})"


def _requests_of(model_version: ModelVersionResponse) -> list[PromotionRequest]:
    return [
        PromotionRequest.model_validate(value)
        for key, value in model_version.run_metadata.items()
        if key.startswith(REQUEST_KEY)
    ]


def all_requests(model: str | None = None) -> list[PromotionRequest]:
    from zenml.client import Client

    client = Client()
    models = [model] if model else [m.name for m in client.list_models(size=1000).items]
    requests = []
    for name in models:
        if not client.list_models(name=name).total:
            raise PromotionError(f"no registered model '{name}'")
        for model_version in client.list_model_versions(name, size=1000, hydrate=True).items:
            requests.extend(_requests_of(model_version))
    return sorted(requests, key=lambda r: r.requested_at)


def pending_requests(model: str | None = None) -> list[PromotionRequest]:
    return [r for r in all_requests(model) if r.status == "pending"]


def pending_request_of(model: str, version: int) -> PromotionRequest:
    """The one pending request of a model version."""
    found = [r for r in pending_requests(model) if r.version == version]
    if not found:
        raise PromotionError(f"no pending request for {model} v{version} (python run.py promote list --model {model})")
    if len(found) > 1:
        raise PromotionError(
            f"{model} v{version} has {len(found)} pending requests ({', '.join(r.id for r in found)}): give REQUEST_ID"
        )
    return found[0]


def find_request(request_id: str) -> PromotionRequest:
    """The request of an id `<model>-v<version>-<stage>-<hex>`, read from that version alone."""
    from zenml.client import Client

    model, _, rest = request_id.rpartition("-v") if "-v" in request_id else ("", "", "")
    number = rest.split("-", 1)[0]
    if model and number.isdigit() and Client().list_models(name=model).total:
        try:
            model_version = Client().get_model_version(model, int(number))
        except KeyError:
            model_version = None
        if model_version is not None:
            for request in _requests_of(model_version):
                if request.id == request_id:
                    return request
    raise PromotionError(f"unknown request '{request_id}'; see: python run.py promote list")


def stage_holders(model: str) -> dict[str, list[int]]:
    """Version numbers per stage (staging, production, archived)."""
    from zenml.client import Client

    holders: dict[str, list[int]] = {"staging": [], "production": [], "archived": []}
    for model_version in Client().list_model_versions(model, size=1000).items:
        stage = stage_name(model_version)
        if stage in holders:
            holders[stage].append(model_version.number)
    return holders


def _decidable(request_id: str, user: str) -> tuple[PromotionRequest, ModelVersionResponse]:
    request = find_request(request_id)
    if request.status != "pending":
        raise PromotionError(f"request {request_id} was already {request.status} by {request.decided_by}")
    if request.requested_by == user:
        raise PromotionError(f"{user} filed request {request_id} and cannot decide it: a second person must")
    return request, find_model_version(request.model, request.version)


def reject(request_id: str, reason: str, user: str) -> PromotionRequest:
    if not reason.strip():
        raise PromotionError("a rejection needs a --reason")
    with promotion_lock():
        request, model_version = _decidable(request_id, user)
        decided = request.model_copy(
            update={"status": "rejected", "decided_by": user, "decided_at": _now(), "decision_reason": reason.strip()}
        )
        event = AuditEvent(
            at=decided.decided_at,
            event="rejected",
            request_id=request.id,
            by=user,
            model=request.model,
            version=request.version,
            stage=request.to_stage,
            reason=decided.decision_reason,
        )
        _record(model_version, decided, event)
    return decided


def approve(request_id: str, user: str, reason: str = "", override: str | None = None) -> PromotionRequest:
    """Approve a pending request and move the version; to production this archives the previous
    production version in the same store operation, and a candidate worse than it needs `override`."""
    from headliner.model.comparison import compare_with_production

    with promotion_lock():
        request, model_version = _decidable(request_id, user)
        current = stage_name(model_version)
        if (current, request.to_stage) not in ALLOWED_MOVES:
            raise PromotionError(
                f"request {request_id} is stale: "
                + _move_refusal(request.model, request.version, current, request.to_stage)
            )
        previous = stage_holders(request.model)["production"] if request.to_stage == "production" else []
        if previous:
            verdict = compare_with_production(request.model, request.version, previous[0])
            if verdict.worse and not (override and override.strip()):
                raise PromotionError(f'{verdict.summary}; approve with --override "reason" to promote it anyway')
        decided = request.model_copy(
            update={
                "status": "approved",
                "decided_by": user,
                "decided_at": _now(),
                "decision_reason": reason.strip() or None,
                "override": override.strip() if override else None,
            }
        )
        model_version.set_stage(request.to_stage, force=True)
        event = AuditEvent(
            at=decided.decided_at,
            event="approved",
            request_id=request.id,
            by=user,
            model=request.model,
            version=request.version,
            stage=request.to_stage,
            reason=decided.decision_reason or override or "",
        )
        _record(model_version, decided, event)
        for number in previous:
            if number != request.version:
                archived = AuditEvent(
                    at=_now(),
                    event="archived",
                    request_id=request.id,
                    by=user,
                    model=request.model,
                    version=number,
                    stage="archived",
                    reason=f"replaced in production by v{request.version}",
                )
                _log(find_model_version(request.model, number), _event_metadata(archived))
        sync_mlflow_mirror(request.model, versions=[request.version, *previous])
    return decided


def history(model: str, version: int | None = None) -> list[AuditEvent]:
    from zenml.client import Client

    if not Client().list_models(name=model).total:
        raise PromotionError(f"no registered model '{model}'")
    versions = (
        [find_model_version(model, version)]
        if version
        else Client().list_model_versions(model, size=1000, hydrate=True).items
    )
    events = [
        AuditEvent.model_validate(value)
        for model_version in versions
        for key, value in model_version.run_metadata.items()
        if key.startswith(EVENT_KEY)
    ]
    return sorted(events, key=lambda e: e.at)


def sync_mlflow_mirror(model: str, versions: list[int] | None = None) -> list[str]:
    """Make the MLflow registry's aliases match the ZenML stages (staging -> 'staging', production ->
    'champion') and mirror the tags of `versions` (default: all), re-registering a missing mirror
    version from its ONNX file; returns what changed."""
    from headliner.model.registration import mirror_version  # MLflow, onnx, pandas: only when mirroring

    return mirror_version(model, versions)
