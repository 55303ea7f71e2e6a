"""Which loaded version answers a request: the rollout policy (`RolloutPolicy`, the modes `off`, `canary`,
`ab`, `shadow`), the variant names the inference log records, and `Routing`, the immutable choice a
request reads once. The policy's storage and the thread that keeps a service's routing current are in
headliner/serving/rollout.py; the app (headliner/serving/app.py) answers with the routing it is given.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from headliner.serving.server import ModelServer

PRODUCTION, CANDIDATE, SHADOW = "production", "candidate", "shadow"
Mode = Literal["off", "canary", "ab", "shadow"]
DEFAULT_AB_HEADER = "x-user-id"

# (server that answers, its variant name, server that scores in the shadow or None)
Choice = tuple[ModelServer, str | None, ModelServer | None]


class RolloutPolicy(BaseModel):
    """Which version answers: all production (`off`), `percent` % of requests (`canary`) or of request
    keys (`ab`, the `ab_header` value) to the candidate, or production answering while the candidate
    scores in the `shadow`."""

    mode: Mode = "off"
    candidate: str = Field("staging", description="The candidate: a version number or a stage (staging).")
    percent: float = Field(
        0.0, ge=0, le=100, description="canary, ab: share (%) of requests or keys for the candidate."
    )
    ab_header: str = Field(
        DEFAULT_AB_HEADER, min_length=1, description="ab: the request header whose value keys a user."
    )
    reason: str = ""

    @model_validator(mode="after")
    def _percent_for_split_modes(self) -> RolloutPolicy:
        if self.mode in ("canary", "ab") and not 0 < self.percent <= 100:
            raise ValueError(f"{self.mode}: percent must be in (0, 100], got {self.percent:g}")
        self.ab_header = self.ab_header.lower()
        return self

    def describe(self) -> str:
        if self.mode == "off":
            return "off: production answers every request"
        if self.mode == "canary":
            return f"canary: {self.percent:g}% of requests to the candidate ({self.candidate})"
        if self.mode == "ab":
            return f"ab: {self.percent:g}% of '{self.ab_header}' values to the candidate ({self.candidate}), sticky"
        return f"shadow: production answers; the candidate ({self.candidate}) scores every request, logged only"


def ab_bucket(key: bytes) -> float:
    """A key's place in [0, 100): the same for a key on every worker and restart."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") * (100.0 / 2**64)


class Routing:
    """What the service answers with, fixed for the requests that read it: the primary (production)
    server, the candidate's if any, and the policy. A service without rollouts has a primary only and
    no variant names."""

    __slots__ = ("_choose", "ab_header", "by_version", "candidate", "mode", "percent", "policy", "policy_id", "primary")

    def __init__(
        self,
        primary: ModelServer,
        candidate: ModelServer | None = None,
        policy: RolloutPolicy | None = None,
        policy_id: int | None = None,
    ):
        self.primary = primary
        self.candidate = candidate if candidate is not None and candidate.version != primary.version else None
        self.policy = policy
        self.policy_id = policy_id
        self.by_version = {server.version: server for server in (primary, self.candidate) if server is not None}
        # what applies: a policy waits (off) while there is no candidate
        self.mode: Mode = policy.mode if policy is not None and self.candidate is not None else "off"
        self.percent = policy.percent if policy is not None else 0.0
        self.ab_header = policy.ab_header.encode("latin-1") if policy is not None and self.mode == "ab" else None
        choosers: dict[Mode, Callable[[bytes | None], Choice]] = {
            "off": self._off,
            "canary": self._canary,
            "ab": self._ab,
            "shadow": self._shadow,
        }
        self._choose = choosers[self.mode]

    @property
    def tracked(self) -> bool:
        """Whether responses are logged with a variant name (the service takes rollout policies)."""
        return self.policy is not None

    def choose(self, key: bytes | None) -> Choice:
        """(server that answers, its variant name, server that scores in the shadow or None)."""
        return self._choose(key)

    def variant_of(self, server: ModelServer) -> str | None:
        if not self.tracked:
            return None
        return PRODUCTION if server is self.primary else CANDIDATE

    # The choosers of the modes other than `off` run only with a candidate.
    def _off(self, key: bytes | None) -> Choice:
        return self.primary, (PRODUCTION if self.tracked else None), None

    def _canary(self, key: bytes | None) -> Choice:
        if self.candidate is not None and random.random() * 100.0 < self.percent:
            return self.candidate, CANDIDATE, None
        return self.primary, PRODUCTION, None

    def _ab(self, key: bytes | None) -> Choice:
        if self.candidate is not None and key and ab_bucket(key) < self.percent:
            return self.candidate, CANDIDATE, None
        return self.primary, PRODUCTION, None  # no key: the control group

    def _shadow(self, key: bytes | None) -> Choice:
        return self.primary, PRODUCTION, self.candidate

    def worker_status(self) -> dict[str, Any]:
        """What this worker applies, as it tells the service's other workers (see WorkerBoard)."""
        return {
            "policy_id": self.policy_id,
            "mode": self.mode,
            "production_version": self.primary.version,
            "candidate_version": self.candidate.version if self.candidate is not None else None,
        }

    def status(self) -> dict[str, Any]:
        """What `GET /rollout` answers; with several workers, `workers` says what each running one applies
        (this one as it is, the others as they last published it)."""
        policy = self.policy
        if policy is None:
            describe = "fixed model: this service takes no rollout policy (serve --stage production does)"
        elif self.candidate is None and policy.mode != "off":
            describe = (
                f"{policy.mode} waits: no candidate version ({policy.candidate}) besides production; "
                "production answers every request"
            )
        else:
            describe = policy.describe()
        answer = {
            "model_name": self.primary.name,
            "rollouts": self.tracked,
            "mode": self.mode,
            "policy_id": self.policy_id,
            "policy": policy.model_dump() if policy is not None else None,
            "production_version": self.primary.version,
            "candidate_version": self.candidate.version if self.candidate is not None else None,
            "describe": describe,
        }
        board = self.primary.board
        if board is not None:
            others = [
                {"pid": state["pid"], **state["routing"]}
                for state in board.others()
                if state["live"] and state["routing"]
            ]
            answer["workers"] = [{"pid": board.pid, **self.worker_status()}, *others]
        return answer
