"""`promote request|approve|reject|list|history|sync|record`: the four-eyes promotion of headliner.governance,
each refusal one line and exit 1; each decision then refreshes the version's model card (its governance
history) and is recorded as a `governance` run, whose stage record the ZenML dashboard shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from headliner.cli.common import AS_OPTION, PIPELINE_COMPONENTS, fail, root_cause, set_quiet_defaults
from headliner.labels import Artifact

if TYPE_CHECKING:
    from headliner.governance.promotion import PromotionRequest, Stage

T = TypeVar("T")
APPROVE_USAGE = "give REQUEST_ID, or --model and --version of a version with a pending request"


@click.group()
def promote() -> None:
    """Four-eyes promotion: request a stage for a version, a second person approves or rejects."""


def governed(action: Callable[[], T]) -> T:
    """Run a governance action with the stack ready; refusals are one line and exit 1."""
    set_quiet_defaults()
    from headliner.errors import HeadlinerError
    from headliner.stacks.setup import ensure_stack

    try:
        ensure_stack(PIPELINE_COMPONENTS["training"])
        return action()
    except HeadlinerError as exc:
        fail(str(exc))


def record_stage(model: str, version: int) -> None:
    """Run the governance pipeline for a version and say where its stage record is; raises if the run fails."""
    from zenml.utils.dashboard_utils import get_run_url

    from headliner.cli import runs

    run = runs.run_governance(model, version)
    record = runs.stage_record(run)
    click.echo(
        f"Run '{run.name}' finished: {record.headline}, {len(record.history)} event(s), "
        f"MLflow aliases: {record.aliases_text()}"
    )
    url = get_run_url(run)
    where = url or f"zenml login --local, then Runs -> {run.name}"
    click.echo(f"Stage record: artifact '{Artifact.MODEL_STAGE_RECORD}' of run '{run.name}' ({where})")


def record_decision(model: str, version: int) -> None:
    """After a decision, which is already stored: record it as a run. A failed run warns (stderr) and the
    command still succeeds, since the decision stands; `promote record` makes the run again."""
    try:
        record_stage(model, version)
    except Exception as exc:
        cause = root_cause(exc)
        click.echo(
            f"warning: the decision is stored, but recording it as a governance run failed: "
            f"{type(cause).__name__}: {cause}; record it with: python run.py promote record --model {model} "
            f"--version {version}",
            err=True,
        )


def refresh_card(model: str, version: int) -> None:
    """After a decision, which is already stored: refresh the version's model card (its governance history, in
    ZenML and in MLflow) and say where to read it; what could not be refreshed is a warning (stderr)."""
    from headliner.governance.model_card import card_command, refresh_model_card

    try:
        card, problems = refresh_model_card(model, version)
    except Exception as exc:
        cause = root_cause(exc)
        click.echo(
            f"warning: the decision is stored, but the model card of {model} v{version} was not refreshed: "
            f"{type(cause).__name__}: {cause}",
            err=True,
        )
        return
    for problem in problems:
        click.echo(f"warning: the decision is stored and the ZenML model card refreshed, but {problem}", err=True)
    where = f"; MLflow: {card.mlflow_card_uri}" if card.mlflow_card_uri and not problems else ""
    click.echo(f"Model card ({len(card.history)} event(s)): {card_command(model, version)}{where}")


def request_to_approve(request_id: str | None, model: str | None, version: int | None) -> str:
    """REQUEST_ID, or the id of the pending request of --model and --version."""
    from headliner.governance import promotion as governance

    if request_id:
        return request_id
    if model and version:
        return governance.pending_request_of(model, version).id
    raise click.UsageError(APPROVE_USAGE)


def stage_listing(model: str | None) -> tuple[list[tuple[str, dict[str, list[int]]]], list[PromotionRequest]]:
    """Which version holds which stage, per model (`model`, or every registered one), and the pending requests."""
    from zenml.client import Client

    from headliner.governance import promotion as governance

    names = [model] if model else [m.name for m in Client().list_models(size=1000).items]
    return [(name, governance.stage_holders(name)) for name in names], governance.pending_requests(model)


@promote.command("request")
@click.option("--model", required=True)
@click.option("--version", required=True, type=click.IntRange(min=1))
@click.option("--to", "to_stage", required=True, type=click.Choice(["staging", "production"]))
@click.option("--reason", required=True)
@AS_OPTION
def promote_request(model: str, version: int, to_stage: Stage, reason: str, as_name: str | None) -> None:
    """Ask for a version to move to staging or production."""
    from headliner.governance import promotion as governance

    request = governed(
        lambda: governance.request_promotion(model, version, to_stage, reason, governance.acting_user(as_name))
    )
    click.echo(f"Request {request.id}: {model} v{version} {request.from_stage} -> {to_stage} by {request.requested_by}")
    click.echo(f"A second person approves it with: python run.py promote approve {request.id}")
    refresh_card(model, version)
    record_decision(model, version)


@promote.command("approve")
@click.argument("request_id", required=False)
@click.option("--model", help="With --version, instead of REQUEST_ID: that version's pending request.")
@click.option("--version", type=click.IntRange(min=1), help="With --model, instead of REQUEST_ID.")
@click.option("--reason", default="", help="Why (optional).")
@click.option("--override", metavar="REASON", help="Approve a candidate worse than production, saying why.")
@AS_OPTION
def promote_approve(
    request_id: str | None,
    model: str | None,
    version: int | None,
    reason: str,
    override: str | None,
    as_name: str | None,
) -> None:
    """Approve a pending request (not your own); to production this archives the previous version."""
    from headliner.governance import promotion as governance

    if bool(request_id) == bool(model and version):
        raise click.UsageError(APPROVE_USAGE)

    def approve() -> PromotionRequest:
        chosen = request_to_approve(request_id, model, version)
        return governance.approve(chosen, governance.acting_user(as_name), reason, override)

    request = governed(approve)
    click.echo(
        f"Approved {request.id} by {request.decided_by}: "
        f"{request.model} v{request.version} is now in {request.to_stage}"
    )
    refresh_card(request.model, request.version)
    record_decision(request.model, request.version)


@promote.command("reject")
@click.argument("request_id")
@click.option("--reason", required=True)
@AS_OPTION
def promote_reject(request_id: str, reason: str, as_name: str | None) -> None:
    """Reject a pending request (not your own)."""
    from headliner.governance import promotion as governance

    request = governed(lambda: governance.reject(request_id, reason, governance.acting_user(as_name)))
    click.echo(f"Rejected {request.id} by {request.decided_by}: {request.decision_reason}")
    refresh_card(request.model, request.version)
    record_decision(request.model, request.version)


@promote.command("list")
@click.option("--model", help="One model (default: all).")
def promote_list(model: str | None) -> None:
    """Pending requests, and which version holds which stage."""
    from headliner.governance.model_card import card_command

    holders, pending = governed(lambda: stage_listing(model))
    for name, stages in holders:
        held = ", ".join(f"{stage}: {', '.join(f'v{n}' for n in numbers) or '-'}" for stage, numbers in stages.items())
        click.echo(f"{name}  {held}")
    click.echo(f"\n{len(pending)} pending request(s)")
    for r in pending:
        click.echo(
            f"  {r.id}  {r.model} v{r.version} {r.from_stage} -> {r.to_stage}  "
            f"by {r.requested_by} at {r.requested_at[:19]}Z: {r.reason}"
        )
        click.echo(f"    model card: {card_command(r.model, r.version)}")


@promote.command("history")
@click.option("--model", required=True)
@click.option("--version", type=click.IntRange(min=1))
def promote_history(model: str, version: int | None) -> None:
    """The audit trail: who did what, when and why."""
    from headliner.governance import promotion as governance

    for e in governed(lambda: governance.history(model, version)):
        click.echo(f"{e.at[:19]}Z  v{e.version}  {e.event:8} {e.stage:10} by {e.by:12} {e.request_id}  {e.reason}")


@promote.command("sync")
@click.option("--model", required=True)
def promote_sync(model: str) -> None:
    """Repair the MLflow registry mirror (aliases, tags, missing versions) from the ZenML store."""
    from headliner.governance import promotion as governance

    changes = governed(lambda: governance.sync_mlflow_mirror(model))
    click.echo("\n".join(changes) if changes else "MLflow mirror already matches the ZenML store")


@promote.command("record")
@click.option("--model", required=True)
@click.option("--version", required=True, type=click.IntRange(min=1))
def promote_record(model: str, version: int) -> None:
    """Record a version's stage and promotion history as a governance run (what each decision does)."""

    def record() -> None:
        from headliner.model.versions import find_model_version

        find_model_version(model, version)  # an unknown version is one line, before any run starts
        try:
            record_stage(model, version)
        except Exception as exc:
            cause = root_cause(exc)
            fail(f"the governance run failed: {type(cause).__name__}: {cause}")

    governed(record)
