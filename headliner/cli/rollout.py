"""`rollout set|rollback|status|report`: route traffic between production and a candidate through the policy
a running `serve --stage production` service applies, and report how the variants did."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from headliner.cli.common import (
    AS_OPTION,
    CONFIG_OPTION,
    DEFAULT_PORT,
    INFERENCE_LOG_OPTION,
    PIPELINE_COMPONENTS,
    TOKEN_OPTION,
    echo_lines,
    fail,
    inference_log_settings,
    load_spec,
    root_cause,
    set_quiet_defaults,
    with_options,
)

if TYPE_CHECKING:
    from headliner.serving.routing import RolloutPolicy
    from headliner.spec import UseCaseSpec

service_options = with_options(
    click.option(
        "--url",
        default=f"http://127.0.0.1:{DEFAULT_PORT}",
        show_default=True,
        help="The running service, to confirm the change.",
    ),
    TOKEN_OPTION,
    click.option(
        "--inference-log",
        metavar="PATH|URL",
        help="The inference log database, where the policy is kept "
        "(default: HEADLINER_INFERENCE_LOG, or the local one).",
    ),
    CONFIG_OPTION,
)


@click.group()
def rollout() -> None:
    """Serve production and a candidate together (canary, A/B, shadow): set, status, rollback, report."""


def write_policy(
    spec: UseCaseSpec,
    policy: RolloutPolicy,
    as_name: str | None,
    url: str,
    token: str | None,
    inference_log: str | None,
) -> None:
    """Check the versions, store the policy, and wait for the running service to apply it."""
    set_quiet_defaults()
    from headliner.deploy.rollout import policy_versions, store_policy
    from headliner.errors import HeadlinerError
    from headliner.governance import promotion as governance
    from headliner.serving.rollout import applied, wait_until_applied
    from headliner.stacks.setup import ensure_stack

    try:
        ensure_stack(PIPELINE_COMPONENTS["data"])
        versions = policy_versions(spec.name, policy)
        log_url = inference_log_settings(inference_log).inference_log_url()
        record = store_policy(log_url, spec.name, policy, governance.acting_user(as_name))
        click.echo(
            f"Rollout policy {record.id} for '{spec.name}' (production v{versions.production}"
            + (f", candidate v{versions.candidate}" if versions.candidate is not None else "")
            + f"), set by {record.set_by}: {policy.describe()}"
        )
        status = wait_until_applied(url, record.id, token)
    except HeadlinerError as exc:
        fail(str(exc))
    if status is None:
        click.echo(
            f"No service answers at {url}: a service started with `python run.py serve --stage production` "
            "applies it when it starts."
        )
    elif not status["rollouts"]:
        click.echo(
            f"warning: the service at {url} serves a fixed model and takes no policy; "
            "start it with `python run.py serve --stage production`."
        )
    elif not applied(status, record.id):
        shown = sorted({worker["policy_id"] for worker in status.get("workers") or [status]}, key=str)
        fail(
            f"the service at {url} has not applied policy {record.id} on every worker within 15 s "
            f"(its workers show policy {', '.join(map(str, shown))}); see its log"
        )
    else:
        click.echo(f"Applied by the service at {url}: {served_text(status)}")


@rollout.command("set")
@click.option(
    "--canary",
    type=click.FloatRange(0, 100, min_open=True),
    metavar="PERCENT",
    help="Send PERCENT % of requests to the candidate.",
)
@click.option(
    "--ab",
    type=click.FloatRange(0, 100, min_open=True),
    metavar="PERCENT",
    help="Send PERCENT % of users (by --ab-header) to the candidate, sticky.",
)
@click.option("--shadow", is_flag=True, help="Production answers; the candidate scores every request, logged only.")
@click.option("--candidate", default="staging", show_default=True, help="The candidate: a stage or a version number.")
@click.option(
    "--ab-header", default="x-user-id", show_default=True, help="ab: the request header that identifies a user."
)
@click.option("--reason", default="", help="Why (kept with the policy).")
@AS_OPTION
@service_options
def rollout_set(
    canary: float | None,
    ab: float | None,
    shadow: bool,
    candidate: str,
    ab_header: str,
    reason: str,
    as_name: str | None,
    url: str,
    token: str | None,
    inference_log: str | None,
    config: str,
) -> None:
    """Route traffic between production and a candidate; a running `serve --stage production` service applies it."""
    chosen = [name for name, value in (("canary", canary), ("ab", ab), ("shadow", shadow)) if value]
    if len(chosen) != 1:
        raise click.UsageError("give one of --canary PERCENT, --ab PERCENT or --shadow")
    from headliner.serving.routing import RolloutPolicy

    policy = RolloutPolicy(
        mode=chosen[0], percent=canary or ab or 0.0, candidate=candidate, ab_header=ab_header, reason=reason
    )
    write_policy(load_spec(config), policy, as_name, url, token, inference_log)


@rollout.command("rollback")
@click.option("--reason", default="", help="Why (kept with the policy).")
@AS_OPTION
@service_options
def rollout_rollback(
    reason: str, as_name: str | None, url: str, token: str | None, inference_log: str | None, config: str
) -> None:
    """All traffic back to production at once."""
    from headliner.serving.routing import RolloutPolicy

    write_policy(load_spec(config), RolloutPolicy(mode="off", reason=reason), as_name, url, token, inference_log)


@rollout.command("status")
@service_options
def rollout_status(url: str, token: str | None, inference_log: str | None, config: str) -> None:
    """The policy in force, its recent history, and what the running service applies."""
    spec = load_spec(config)
    from headliner.deploy.rollout import policy_history
    from headliner.errors import HeadlinerError
    from headliner.serving.rollout import service_status

    try:
        history = policy_history(inference_log_settings(inference_log).inference_log_url(), spec.name, 5)
        status = service_status(url, token)
    except HeadlinerError as exc:
        fail(str(exc))
    if not history:
        click.echo(
            f"No rollout policy for '{spec.name}' yet: production answers every request (python run.py rollout set ...)"
        )
    for index, record in enumerate(history):
        mark = "in force" if index == 0 else "earlier"
        reason = f" ({record.policy.reason})" if record.policy.reason else ""
        click.echo(
            f"{mark:8}  policy {record.id} set {record.set_at:%Y-%m-%d %H:%M:%S} UTC "
            f"by {record.set_by}: {record.policy.describe()}{reason}"
        )
    if status is None:
        click.echo(f"No service answers at {url}")
    else:
        click.echo(f"Service at {url}: {served_text(status)} (policy {status['policy_id']})")


@rollout.command("report")
@click.option(
    "--since",
    metavar="30m|24h|7d|ISO-TIME",
    help="Only requests since then (default: every request logged under a rollout).",
)
@INFERENCE_LOG_OPTION
@CONFIG_OPTION
def rollout_report(since: str | None, inference_log: str | None, config: str) -> None:
    """Per variant: requests, latency p50/p99, live accuracy (a regression model: MAE); how often the versions
    agree on the top class (how far apart their forecasts are) (an artifact too)."""
    set_quiet_defaults()
    spec = load_spec(config)
    from headliner.cli import runs
    from headliner.deploy.rollout import policy_history
    from headliner.errors import HeadlinerError
    from headliner.labels import Artifact
    from headliner.monitoring.window import parse_since
    from headliner.stacks.setup import ensure_stack

    try:
        moment = parse_since(since) if since else None
        ensure_stack(PIPELINE_COMPONENTS["data"])
        log_url = inference_log_settings(inference_log).inference_log_url()
        current = policy_history(log_url, spec.name, 1)
        run = runs.run_rollout_report(spec, log_url, moment, current[0].policy.describe() if current else None)
    except Exception as exc:  # a failed step surfaces here; show its own message
        cause = root_cause(exc)
        if isinstance(cause, HeadlinerError):
            fail(str(cause))
        raise
    click.echo(f"\nRun '{run.name}' finished")
    echo_lines(runs.rollout_report(run).lines())
    click.echo(f"Report: artifact '{Artifact.ROLLOUT_REPORT}' of run '{run.name}' (dashboard: zenml login --local)")


def served_text(status: dict[str, Any]) -> str:
    """ "production v2, candidate v3; canary: ..." from a service's `GET /rollout` answer."""
    candidate_text = f", candidate v{status['candidate_version']}" if status["candidate_version"] else ""
    return f"production v{status['production_version']}{candidate_text}; {status['describe']}"
