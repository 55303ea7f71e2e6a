"""Rollouts: one service holds the production version and one candidate, and a policy decides which
version answers each request: `canary` (a share of requests, at random), `ab` (a share of users, sticky
by a request header), `shadow` (the candidate scores every request too; its answer is logged, never
returned), or `off` (production answers everything).

The policy lives in table `rollout_policy` of the inference log's database, so `python run.py rollout
...` reaches every worker of a running service and the policy survives restarts. In the service, a
`RolloutController` thread polls that table and the registry (the production stage moves on promotion),
loads a version's ONNX file off the request path, and swaps an immutable `Routing`
(headliner/serving/routing.py, with the policy model and its modes) in one assignment. A request reads
the routing once, so it is computed wholly by the versions of that routing.

Schema of table `rollout_policy` (one row per change; the newest row of a model is in force):
  id          integer primary key
  set_at      timestamp (UTC)
  model_name  e.g. 'jukebox'
  set_by      who changed it
  policy      JSON of RolloutPolicy
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from headliner.errors import HeadlinerError
from headliner.serving.inference_log import SideTable, utc_timestamp
from headliner.serving.routing import RolloutPolicy, Routing
from headliner.serving.server import ModelServer

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table

logger = logging.getLogger(__name__)

TABLE_NAME = "rollout_policy"


def _table(metadata: MetaData) -> Table:
    from sqlalchemy import Column, Integer, String, Table, Text

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
            key = result.inserted_primary_key
        if key is None:  # SQLAlchemy's type allows it; a one-row insert has its key
            raise HeadlinerError(f"{TABLE_NAME}: the database gave no id for the policy it stored")
        record_id = key[0]
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
        apply: Callable[[Routing], None],
        base: ModelServer,
        store: PolicyStore,
        resolve_version: Callable[[str], str | None],
        load_model: Callable[[str], bytes],
        poll_seconds: float = 1.0,
        registry_poll_seconds: float = 5.0,
        log: logging.Logger = logger,
    ):
        self.apply = apply  # puts a routing in force (the app's `route`)
        self.log = log
        self.base = base  # the server loaded at start: production then; its settings serve every version
        self.store = store
        self.resolve_version = resolve_version
        self.load_model = load_model
        self.poll_seconds = poll_seconds
        self.registry_poll_seconds = registry_poll_seconds
        self._servers: dict[str, ModelServer] = {base.version: base}
        self._policy: PolicyRecord | None = None
        self._versions: tuple[str, str | None] = (base.version, None)
        self._checked_registry = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        apply(Routing(base, policy=RolloutPolicy()))

    def refresh(self) -> bool:
        """One poll; True when the routing was swapped."""
        record = self.store.current(self.base.name)
        policy_changed = (record.id if record else None) != (self._policy.id if self._policy else None)
        registry_due = time.monotonic() - self._checked_registry >= self.registry_poll_seconds
        if not policy_changed and not registry_due:
            return False
        policy = record.policy if record else RolloutPolicy()
        production, candidate = self._registry_versions(policy)
        self._checked_registry = time.monotonic()
        if not policy_changed and (production, candidate) == self._versions:
            return False
        primary = self._server(production)
        routing = Routing(
            primary, self._server(candidate) if candidate else None, policy, record.id if record else None
        )
        self.apply(routing)
        self._policy, self._versions = record, (production, candidate)
        self._servers = {v: s for v, s in self._servers.items() if v in (production, candidate)}
        self.log.info(
            "routing: production v%s, candidate %s; %s",
            production,
            f"v{candidate}" if candidate else "none",
            routing.status()["describe"],
        )
        return True

    def _registry_versions(self, policy: RolloutPolicy, attempts: int = 3) -> tuple[str, str | None]:
        """(production version, candidate version or None) as one consistent read of the registry: production
        is read again after the candidate, and the pair read anew if it moved in between. A promotion moves
        the candidate to production; read across it, the pair would be (old production, no candidate), and
        the policy (e.g. the shadow) would stop until the next registry poll."""
        production = self.resolve_version("production") or self._versions[0]
        for _ in range(attempts):
            candidate = self.resolve_version(policy.candidate) if policy.mode != "off" else None
            again = self.resolve_version("production") or self._versions[0]
            if again == production:
                break
            production = again
        return production, candidate

    def _server(self, version: str) -> ModelServer:
        server = self._servers.get(version)
        if server is None:
            from headliner.model.onnx_packaging import OnnxPredictor

            predictor = OnnxPredictor(self.load_model(version))
            if predictor.feature_names != self.base.predictor.feature_names:
                raise HeadlinerError(
                    f"version {version} has features {predictor.feature_names}; "
                    f"the service serves {self.base.predictor.feature_names}"
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
            f"the service at {url} answered {response.status_code} to GET /rollout; "
            "is it a Headliner service of this version?"
        )
    status: dict[str, Any] = response.json()
    return status


def wait_until_applied(
    url: str, policy_id: int, token: str | None = None, timeout: float = 15.0
) -> dict[str, Any] | None:
    """The service's status once it applies policy `policy_id`, on every worker (or its last status after
    `timeout`, or at once when it takes no policies); None when no service answers."""
    deadline = time.monotonic() + timeout
    while True:
        status = service_status(url, token)
        if status is None or not status["rollouts"] or applied(status, policy_id) or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def applied(status: dict[str, Any], policy_id: int) -> bool:
    """Whether a `GET /rollout` answer shows policy `policy_id` in force on every worker it names."""
    workers = status.get("workers") or [status]
    return status["policy_id"] == policy_id and all(worker["policy_id"] == policy_id for worker in workers)
