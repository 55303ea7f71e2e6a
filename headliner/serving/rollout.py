"""Rollouts: one service holds the production version and one candidate, and a policy decides which
version answers each request: `canary` (a share of requests, at random), `ab` (a share of users, sticky
by a request header), `shadow` (the candidate scores every request too; its answer is logged, never
returned), or `off` (production answers everything).

The policy lives in table `rollout_policy` of the inference log's database, so `python run.py rollout
...` reaches every worker of a running service and the policy survives restarts. In the service, a
`RolloutController` thread polls that table and the registry (the production stage moves on promotion),
loads a version's ONNX file off the request path, and swaps an immutable `Routing` in one assignment.
A request reads the routing once, so it is computed wholly by the versions of that routing.

Schema of table `rollout_policy` (one row per change; the newest row of a model is in force):
  id          integer primary key
  set_at      timestamp (UTC)
  model_name  e.g. 'jukebox'
  set_by      who changed it
  policy      JSON of RolloutPolicy
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, model_validator

from headliner.errors import HeadlinerError
from headliner.serving.inference_log import SideTable

if TYPE_CHECKING:
    from headliner.serving.app import InferenceApp, ModelServer

logger = logging.getLogger(__name__)

TABLE_NAME = "rollout_policy"
PRODUCTION, CANDIDATE, SHADOW = "production", "candidate", "shadow"
Mode = Literal["off", "canary", "ab", "shadow"]
DEFAULT_AB_HEADER = "x-user-id"


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

    __slots__ = ("_choose", "ab_header", "by_version", "candidate", "mode", "policy", "policy_id", "primary")

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
        self.mode = policy.mode if policy is not None and self.candidate is not None else "off"  # what applies
        self.ab_header = policy.ab_header.encode("latin-1") if self.mode == "ab" else None
        self._choose = {"off": self._off, "canary": self._canary, "ab": self._ab, "shadow": self._shadow}[self.mode]

    @property
    def tracked(self) -> bool:
        """Whether responses are logged with a variant name (the service takes rollout policies)."""
        return self.policy is not None

    def choose(self, key: bytes | None) -> tuple[ModelServer, str | None, ModelServer | None]:
        """(server that answers, its variant name, server that scores in the shadow or None)."""
        return self._choose(key)

    def variant_of(self, server: ModelServer) -> str | None:
        if not self.tracked:
            return None
        return PRODUCTION if server is self.primary else CANDIDATE

    def _off(self, key):
        return self.primary, (PRODUCTION if self.tracked else None), None

    def _canary(self, key):
        if random.random() * 100.0 < self.policy.percent:
            return self.candidate, CANDIDATE, None
        return self.primary, PRODUCTION, None

    def _ab(self, key):
        if key and ab_bucket(key) < self.policy.percent:
            return self.candidate, CANDIDATE, None
        return self.primary, PRODUCTION, None  # no key: the control group

    def _shadow(self, key):
        return self.primary, PRODUCTION, self.candidate

    def status(self) -> dict[str, Any]:
        """What `GET /rollout` answers."""
        policy = self.policy
        if policy is None:
            describe = "fixed model: this service takes no rollout policy (serve --stage production does)"
        elif self.candidate is None and policy.mode != "off":
            describe = f"{policy.mode} waits: no candidate version ({policy.candidate}) besides production; production answers every request"
        else:
            describe = policy.describe()
        return {
            "model_name": self.primary.name,
            "rollouts": self.tracked,
            "mode": self.mode,
            "policy_id": self.policy_id,
            "policy": policy.model_dump() if policy is not None else None,
            "production_version": self.primary.version,
            "candidate_version": self.candidate.version if self.candidate is not None else None,
            "describe": describe,
        }


def _table(metadata):
    from sqlalchemy import Column, Integer, String, Table, Text

    from headliner.serving.inference_log import utc_timestamp

    return Table(
        TABLE_NAME,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("set_at", utc_timestamp(), nullable=False),
        Column("model_name", String(128), nullable=False, index=True),
        Column("set_by", String(128), nullable=False),
        Column("policy", Text, nullable=False),
    )


class PolicyRecord(BaseModel):
    id: int
    set_at: datetime
    model_name: str
    set_by: str
    policy: RolloutPolicy


class PolicyStore(SideTable):
    """Writes and reads rollout policies in the inference log's database (the table is created when missing)."""

    def __init__(self, url: str):
        super().__init__(url, _table)

    def write(self, model_name: str, policy: RolloutPolicy, set_by: str) -> PolicyRecord:
        table = self._ready()
        set_at = datetime.now(UTC)
        with self.engine.begin() as connection:
            result = connection.execute(
                table.insert().values(
                    set_at=set_at, model_name=model_name, set_by=set_by, policy=policy.model_dump_json()
                )
            )
            record_id = result.inserted_primary_key[0]
        return PolicyRecord(id=record_id, set_at=set_at, model_name=model_name, set_by=set_by, policy=policy)

    def history(self, model_name: str, limit: int = 1) -> list[PolicyRecord]:
        """The newest `limit` policies of a model, newest first."""
        from sqlalchemy import select

        table = self._ready()
        query = select(table).where(table.c.model_name == model_name).order_by(table.c.id.desc()).limit(limit)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            PolicyRecord(
                id=row.id,
                set_at=row.set_at.replace(tzinfo=row.set_at.tzinfo or UTC),
                model_name=row.model_name,
                set_by=row.set_by,
                policy=RolloutPolicy.model_validate_json(row.policy),
            )
            for row in rows
        ]

    def current(self, model_name: str) -> PolicyRecord | None:
        found = self.history(model_name, 1)
        return found[0] if found else None


class RolloutController:
    """Keeps a service's routing in line with the policy table and the registry: every `poll_seconds`
    it reads the newest policy, and every `registry_poll_seconds` (or when the policy changed) which
    version holds production and which is the candidate. A changed pair is loaded (off the event loop:
    this runs in its own thread) and swapped in whole. A failure keeps the routing that works and is
    logged; the next poll tries again."""

    def __init__(
        self,
        app: InferenceApp,
        base: ModelServer,
        store: PolicyStore,
        resolve_version: Callable[[str], str | None],
        load_model: Callable[[str], bytes],
        poll_seconds: float = 1.0,
        registry_poll_seconds: float = 5.0,
        log: logging.Logger = logger,
    ):
        self.app = app
        self.log = log
        self.base = base  # the server loaded at start: production then; its settings serve every version
        self.store = store
        self.resolve_version = resolve_version
        self.load_model = load_model
        self.poll_seconds = poll_seconds
        self.registry_poll_seconds = registry_poll_seconds
        self._servers: dict[str, ModelServer] = {base.version: base}
        self._policy: PolicyRecord | None = None
        self._versions: tuple[str | None, str | None] = (base.version, None)
        self._checked_registry = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        app.route(Routing(base, policy=RolloutPolicy()))

    def refresh(self) -> bool:
        """One poll; True when the routing was swapped."""
        record = self.store.current(self.base.name)
        policy_changed = (record.id if record else None) != (self._policy.id if self._policy else None)
        registry_due = time.monotonic() - self._checked_registry >= self.registry_poll_seconds
        if not policy_changed and not registry_due:
            return False
        policy = record.policy if record else RolloutPolicy()
        production = self.resolve_version("production") or self._versions[0]
        candidate = self.resolve_version(policy.candidate) if policy.mode != "off" else None
        self._checked_registry = time.monotonic()
        if not policy_changed and (production, candidate) == self._versions:
            return False
        primary = self._server(production)
        routing = Routing(
            primary, self._server(candidate) if candidate else None, policy, record.id if record else None
        )
        self.app.route(routing)
        self._policy, self._versions = record, (production, candidate)
        self._servers = {v: s for v, s in self._servers.items() if v in (production, candidate)}
        self.log.info(
            "routing: production v%s, candidate %s; %s",
            production,
            f"v{candidate}" if candidate else "none",
            routing.status()["describe"],
        )
        return True

    def _server(self, version: str) -> ModelServer:
        server = self._servers.get(version)
        if server is None:
            from headliner.model.onnx_packaging import OnnxPredictor

            predictor = OnnxPredictor(self.load_model(version))
            if predictor.feature_names != self.base.predictor.feature_names:
                raise HeadlinerError(
                    f"version {version} has features {predictor.feature_names}; the service serves {self.base.predictor.feature_names}"
                )
            server = self._servers[version] = self.base.sibling(predictor)
        return server

    def start(self) -> None:
        self.refresh_safely()
        self._thread = threading.Thread(target=self._run, name="rollout-controller", daemon=True)
        self._thread.start()

    def refresh_safely(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # the database or the registry is away: keep serving what works
            self.log.warning("rollout: keeping the current routing (%s: %s)", type(exc).__name__, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh_safely()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.close()


def registry_resolver(model_name: str) -> tuple[Callable[[str], str | None], Callable[[str], bytes]]:
    """(version or stage -> version number or None, version number -> ONNX bytes) from the ZenML store."""
    from zenml.client import Client

    from headliner.model.versions import onnx_model_bytes

    def resolve(reference: str) -> str | None:
        try:
            return str(Client().get_model_version(model_name, reference).number)
        except KeyError:
            return None

    def load(version: str) -> bytes:
        return onnx_model_bytes(model_name, version)[1]

    return resolve, load


def service_status(url: str, token: str | None = None, timeout: float = 5.0) -> dict[str, Any] | None:
    """`GET /rollout` of the service at `url`; None when no service answers there."""
    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per poll
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(url.rstrip("/") + "/rollout", headers=headers, timeout=timeout)
    except httpx.TransportError:
        return None
    if response.status_code == 401:
        raise HeadlinerError(f"the service at {url} answered 401: pass --token or set HEADLINER_API_TOKEN")
    if response.status_code != 200:
        raise HeadlinerError(
            f"the service at {url} answered {response.status_code} to GET /rollout; is it a Headliner service of this version?"
        )
    return response.json()


def wait_until_applied(
    url: str, policy_id: int, token: str | None = None, timeout: float = 15.0
) -> dict[str, Any] | None:
    """The service's status once it applies policy `policy_id` (or its last status after `timeout`, or
    at once when it takes no policies); None when no service answers."""
    deadline = time.monotonic() + timeout
    while True:
        status = service_status(url, token)
        if status is None or not status["rollouts"] or status["policy_id"] == policy_id or time.monotonic() > deadline:
            return status
        time.sleep(0.2)
