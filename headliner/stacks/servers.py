"""The servers of the `servers` stack on one machine, every one on 127.0.0.1: an S3-compatible object
store (moto's server) for ZenML's artifacts, an MLflow tracking server on PostgreSQL with its artifacts
in S3, a ZenML server (the dashboard) on MariaDB/MySQL, and the inference log in a PostgreSQL database.
`up` creates the databases, starts what is not running, logs the ZenML client in, creates the secrets,
imports stack_configs/servers.yaml and sets it, and points the serving settings at the PostgreSQL
inference log; `down` stops what `up` started, logs the client out and drops that setting (back to the
local SQLite log); `status` says what runs.

    python -m headliner.stacks.servers up|down|status        (scripts/servers.sh wraps it)

Settings come from HEADLINER_SERVERS_* variables (see `ServersConfig`): the databases' admin URLs (a
laptop without MariaDB or PostgreSQL points them elsewhere), the ports, and the state folder, which
holds the pid files, the logs and the generated passwords (mode 0600) and follows ZENML_CONFIG_PATH.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from headliner.errors import HeadlinerError
from headliner.serving.settings import ServingSettings, local_state_dir, stack_settings_file, url_without_password
from headliner.spec import PROJECT_ROOT

STACK_FILE = PROJECT_ROOT / "stack_configs" / "servers.yaml"
STACK_NAME = "servers"
S3_KEY = S3_SECRET = "headliner"  # moto accepts any credentials; kept in ZenML secret `headliner_s3`
ARTIFACT_BUCKET, MLFLOW_BUCKET = "headliner-artifacts", "headliner-mlflow"
ADMIN_USER = "admin"
START_SECONDS = 120


class ServersError(HeadlinerError):
    """A server could not be set up or started."""


class ServersConfig(BaseSettings):
    """Where the servers' databases are, which ports they take, where their state lives."""

    model_config = SettingsConfigDict(env_prefix="HEADLINER_SERVERS_", extra="ignore")

    mysql_admin_url: str = Field(
        "mysql+pymysql://root@127.0.0.1:3306", description="An account that may create a database and a user."
    )
    postgres_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432", description="An account that may create a database."
    )
    zenml_port: int = 8080
    mlflow_port: int = 5001
    s3_port: int = 9000
    database_prefix: str = Field(
        "headliner", pattern=r"^[a-z][a-z0-9_]{0,30}$", description="Databases <prefix>_zenml and <prefix>_mlflow."
    )
    home: Path = Field(default_factory=lambda: local_state_dir() / "servers")

    @property
    def zenml_database(self) -> str:
        return f"{self.database_prefix}_zenml"  # also the name of its MySQL user

    @property
    def mlflow_database(self) -> str:
        return f"{self.database_prefix}_mlflow"

    @property
    def inference_database(self) -> str:
        return f"{self.database_prefix}_inference"

    @property
    def inference_log_url(self) -> str:
        return self.database_url(self.postgres_url, self.inference_database)

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def zenml_url(self) -> str:
        return f"http://127.0.0.1:{self.zenml_port}"

    def database_url(self, admin_url: str, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def _say(message: str) -> None:
    print(message, flush=True)


def _passwords(config: ServersConfig) -> dict[str, str]:
    """The generated passwords and keys, made once and kept readable by the owner only."""
    path = config.home / "passwords.json"
    if path.is_file():
        kept: dict[str, str] = json.loads(path.read_text())
        return kept
    config.home.mkdir(parents=True, exist_ok=True)
    values = {
        "zenml_database": secrets.token_urlsafe(18),
        "zenml_admin": secrets.token_urlsafe(18),
        "jwt": secrets.token_hex(32),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def create_databases(config: ServersConfig, passwords: dict[str, str]) -> None:
    """MariaDB/MySQL: ZenML's database and its own user (ZenML refuses a user without a password; the
    password is this state folder's); PostgreSQL: MLflow's and the inference log's databases. Existing
    databases are kept.
    A database that outlives its state folder keeps ZenML's admin user with the old password: use
    another HEADLINER_SERVERS_DATABASE_PREFIX, or drop the databases."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(config.mysql_admin_url)
        with engine.begin() as connection:
            database = config.zenml_database
            connection.execute(
                text(f"CREATE DATABASE IF NOT EXISTS {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            )
            for host in ("127.0.0.1", "localhost"):
                connection.execute(
                    text(f"CREATE USER IF NOT EXISTS '{database}'@'{host}' IDENTIFIED BY :pw"),
                    {"pw": passwords["zenml_database"]},
                )
                connection.execute(
                    text(f"ALTER USER '{database}'@'{host}' IDENTIFIED BY :pw"), {"pw": passwords["zenml_database"]}
                )
                connection.execute(text(f"GRANT ALL ON {database}.* TO '{database}'@'{host}'"))
        engine.dispose()
    except Exception as exc:
        raise ServersError(
            f"MariaDB/MySQL at {url_without_password(config.mysql_admin_url)}: {type(exc).__name__}: {exc}; "
            "set HEADLINER_SERVERS_MYSQL_ADMIN_URL"
        ) from None
    try:
        engine = create_engine(config.database_url(config.postgres_url, "postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            for database in (config.mlflow_database, config.inference_database):
                if not connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}
                ).scalar():
                    connection.execute(text(f"CREATE DATABASE {database}"))
        engine.dispose()
    except Exception as exc:
        raise ServersError(
            f"PostgreSQL at {url_without_password(config.postgres_url)}: {type(exc).__name__}: {exc}; "
            "set HEADLINER_SERVERS_POSTGRES_URL"
        ) from None


def _pid(config: ServersConfig, name: str) -> int | None:
    """The pid of a server `up` started, if that process still runs."""
    path = config.home / f"{name}.pid"
    if not path.is_file():
        return None
    pid = int(path.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status == 200
    except OSError:
        return False


def _start(
    config: ServersConfig, name: str, command: list[str], env: dict[str, str], port: int, ready: Callable[[], bool]
) -> None:
    """Start one server in its own session (its log in the state folder) unless it runs; wait until ready."""
    running = _pid(config, name)
    if running is not None:
        _say(f"  {name}: already running (pid {running})")
        return
    if _port_open(port):
        raise ServersError(
            f"{name}: port {port} on 127.0.0.1 is taken by another program; set HEADLINER_SERVERS_{name.upper()}_PORT"
        )
    log = config.home / f"{name}.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=config.home,
        )
    (config.home / f"{name}.pid").write_text(str(process.pid))
    deadline = time.monotonic() + START_SECONDS
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            _stop(config, name)
            raise ServersError(f"{name} did not start (see {log}):\n{tail}")
        time.sleep(0.5)
    _say(f"  {name}: running on 127.0.0.1:{port} (pid {process.pid}, log {log})")


def _stop(config: ServersConfig, name: str) -> bool:
    """SIGTERM to the server's process group, SIGKILL after 20 s; True when something was stopped."""
    pid = _pid(config, name)
    (config.home / f"{name}.pid").unlink(missing_ok=True)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)
    return True


def _s3_env(config: ServersConfig) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1"}


def start_object_store(config: ServersConfig) -> None:
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(config.s3_port)]
    _start(
        config,
        "s3",
        command,
        {**os.environ, **_s3_env(config)},
        config.s3_port,
        lambda: _http_ok(config.s3_url + "/moto-api/"),
    )
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=config.s3_url,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    for bucket in (ARTIFACT_BUCKET, MLFLOW_BUCKET):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def start_mlflow(config: ServersConfig) -> None:
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(config.mlflow_port),
        "--workers",
        "1",
        "--backend-store-uri",
        config.database_url(config.postgres_url, config.mlflow_database),
        "--artifacts-destination",
        f"s3://{MLFLOW_BUCKET}",
    ]
    env = {**os.environ, **_s3_env(config), "MLFLOW_S3_ENDPOINT_URL": config.s3_url}
    _start(config, "mlflow", command, env, config.mlflow_port, lambda: _http_ok(config.mlflow_url + "/health"))


def start_zenml(config: ServersConfig, passwords: dict[str, str]) -> None:
    from sqlalchemy.engine import make_url

    database = make_url(config.mysql_admin_url).set(
        drivername="mysql",
        username=config.zenml_database,
        password=passwords["zenml_database"],
        database=config.zenml_database,
    )
    server_home = config.home / "zenml-server"
    server_home.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZENML_")}
    env.update(
        ZENML_CONFIG_PATH=str(server_home / "config"),
        ZENML_REPOSITORY_PATH=str(server_home),
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_STORE_URL=database.render_as_string(hide_password=False),
        ZENML_SERVER="true",
        ZENML_SERVER_DEPLOYMENT_TYPE="other",
        ZENML_SERVER_AUTH_SCHEME="OAUTH2_PASSWORD_BEARER",
        ZENML_SERVER_JWT_SECRET_KEY=passwords["jwt"],
        ZENML_SERVER_AUTO_ACTIVATE="true",
        ZENML_DEFAULT_USER_NAME=ADMIN_USER,
        ZENML_DEFAULT_USER_PASSWORD=passwords["zenml_admin"],
    )
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "zenml.zen_server.zen_server_api:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(config.zenml_port),
    ]
    _start(config, "zenml", command, env, config.zenml_port, lambda: _http_ok(config.zenml_url + "/health"))


def _zenml_cli(args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    zenml = Path(sys.executable).with_name("zenml")
    env = {**os.environ, "ZENML_ANALYTICS_OPT_IN": "false", **(extra_env or {})}
    return subprocess.run(
        [str(zenml), *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT
    )


def log_in(config: ServersConfig, passwords: dict[str, str]) -> None:
    """Point this ZenML client at the server (saved in its config, as `zenml login` would)."""
    result = _zenml_cli(
        ["stack", "list"],
        {
            "ZENML_STORE_URL": config.zenml_url,
            "ZENML_STORE_USERNAME": ADMIN_USER,
            "ZENML_STORE_PASSWORD": passwords["zenml_admin"],
        },
    )
    if result.returncode != 0:
        raise ServersError(
            f"could not log in to the ZenML server at {config.zenml_url}: "
            f"{(result.stderr or result.stdout).strip()[-500:]}"
        )
    _say(
        f"  ZenML client: logged in to {config.zenml_url} as '{ADMIN_USER}' "
        f"(password in {config.home / 'passwords.json'})"
    )


def configure_stack(config: ServersConfig) -> None:
    """The secrets the stack file refers to, and the stack itself (ports as configured), set active."""
    from headliner.stacks.setup import import_stack, project_client

    client = project_client()
    wanted = {
        "headliner_s3": {"aws_access_key_id": S3_KEY, "aws_secret_access_key": S3_SECRET},
        # The local MLflow server has no auth and ignores these; a server with basic auth would check them.
        "headliner_mlflow": {"username": "headliner", "password": "unused-the-local-mlflow-server-has-no-auth"},
    }
    for name, values in wanted.items():
        if not client.list_secrets(name=name).total:
            client.create_secret(name=name, values=values)
    data = yaml.safe_load(STACK_FILE.read_text())
    components = data["components"]
    components["artifact_store"]["configuration"]["client_kwargs"]["endpoint_url"] = config.s3_url
    components["experiment_tracker"]["configuration"]["tracking_uri"] = config.mlflow_url
    import_stack(STACK_FILE, data)
    client.activate_stack(STACK_NAME)
    _say(f"  stack '{STACK_NAME}' imported and active; dashboard: {config.zenml_url} (user '{ADMIN_USER}')")


def use_inference_log(config: ServersConfig) -> None:
    """Serving, batch scoring and monitoring of this ZenML config log to PostgreSQL from now on (the
    environment's HEADLINER_INFERENCE_LOG still wins)."""
    path = stack_settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# written by scripts/servers.sh up; removed by down\nHEADLINER_INFERENCE_LOG={config.inference_log_url}\n"
    )
    _say(f"  inference log: {url_without_password(config.inference_log_url)} (set in {path})")


def up(config: ServersConfig) -> None:
    config.home.mkdir(parents=True, exist_ok=True)
    passwords = _passwords(config)
    _say("Creating the databases (kept when they exist)")
    create_databases(config, passwords)
    _say("Starting the servers")
    start_object_store(config)
    start_mlflow(config)
    start_zenml(config, passwords)
    log_in(config, passwords)
    configure_stack(config)
    use_inference_log(config)
    _say("Up. Run: python run.py --pipeline all    Stop everything: scripts/servers.sh down")


def stop_model_services() -> list[str]:
    """Stop the model services the servers stack's model deployer runs (on this machine, recorded in the
    ZenML server: after logging out, this client could no longer find them); returns what was stopped."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.model_deployers import BaseModelDeployer
    from zenml.stack import StackComponent

    try:
        stack = Client().get_stack(STACK_NAME)
    except KeyError:
        return []
    stopped = []
    for model in stack.components.get(StackComponentType.MODEL_DEPLOYER) or []:
        deployer = StackComponent.from_model(model)
        if not isinstance(deployer, BaseModelDeployer):  # a model deployer component always is one
            continue
        for service in deployer.find_model_server():
            deployer.delete_model_server(service.uuid, force=False)
            stopped.append(f"'{service.config.model_name}' version {service.config.model_version}")
    return stopped


def down(config: ServersConfig) -> None:
    """Stop the model services of the stack, log the client out (back to its local store and inference
    log) and stop the servers `up` started; data is kept."""
    zenml_running = _pid(config, "zenml") is not None
    if zenml_running and _http_ok(config.zenml_url + "/health"):
        for service in stop_model_services():
            _say(f"  model service of {service}: stopped")
    stack_settings_file().unlink(missing_ok=True)
    if zenml_running:
        result = _zenml_cli(["logout"])
        _say(
            "  ZenML client: logged out, back to its local store"
            if result.returncode == 0
            else f"  zenml logout: {result.stderr.strip()[-300:]}"
        )
    for name in ("zenml", "mlflow", "s3"):
        _say(f"  {name}: {'stopped' if _stop(config, name) else 'was not running'}")


def status(config: ServersConfig) -> list[str]:
    checks = {
        "s3": (config.s3_port, config.s3_url + "/moto-api/"),
        "mlflow": (config.mlflow_port, config.mlflow_url + "/health"),
        "zenml": (config.zenml_port, config.zenml_url + "/health"),
    }
    lines = []
    for name, (port, health) in checks.items():
        pid = _pid(config, name)
        state = "healthy" if _http_ok(health) else "not answering"
        lines.append(f"{name:7} {'pid ' + str(pid) if pid else 'not started by up':20} 127.0.0.1:{port}  {state}")
    log = ServingSettings().inference_log_display()
    lines.append(
        f"inference log: {log}" + ("" if stack_settings_file().is_file() else " (not the servers stack's: run up)")
    )
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("up", "down", "status"):
        print("usage: scripts/servers.sh up|down|status", file=sys.stderr)
        return 2
    config = ServersConfig()
    try:
        if argv[0] == "up":
            up(config)
        elif argv[0] == "down":
            down(config)
        else:
            for line in status(config):
                _say(line)
    except HeadlinerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
