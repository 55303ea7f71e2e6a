"""Rollout control, the operator's side of headliner.serving.rollout: a policy's versions are checked
against the registry before the policy is stored where the running service reads it."""

from __future__ import annotations

from dataclasses import dataclass

from headliner.errors import HeadlinerError
from headliner.model.versions import find_model_version
from headliner.serving.rollout import PolicyRecord, PolicyStore
from headliner.serving.routing import RolloutPolicy


@dataclass(frozen=True)
class PolicyVersions:
    """The version numbers a policy routes between (no candidate when it is off)."""

    production: int
    candidate: int | None


def policy_versions(model_name: str, policy: RolloutPolicy) -> PolicyVersions:
    """The production version and the policy's candidate; refused when there is no production version, or
    the candidate is missing or is production already."""
    production: int = find_model_version(model_name, "production").number
    if policy.mode == "off":
        return PolicyVersions(production, None)
    candidate: int = find_model_version(model_name, policy.candidate).number
    if candidate == production:
        raise HeadlinerError(f"the candidate '{policy.candidate}' is version {candidate}, which is production already")
    return PolicyVersions(production, candidate)


def store_policy(log_url: str, model_name: str, policy: RolloutPolicy, set_by: str) -> PolicyRecord:
    """Put the policy in force for the model (the newest record is the one in force)."""
    store = PolicyStore(log_url)
    try:
        return store.write(model_name, policy, set_by)
    finally:
        store.close()


def policy_history(log_url: str, model_name: str, limit: int) -> list[PolicyRecord]:
    """The newest `limit` policies of the model, the one in force first."""
    store = PolicyStore(log_url)
    try:
        return store.history(model_name, limit)
    finally:
        store.close()
