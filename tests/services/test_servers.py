"""The `servers` stack: its file holds secret references only, and the whole loop runs against real servers
on 127.0.0.1: `scripts/servers.sh up` (MariaDB for the ZenML server, PostgreSQL for MLflow and the
inference log, moto's S3), `python run.py --pipeline all` (data, training, deployment) with its artifacts
in the object store, its runs and model in the MLflow server and its runs in the ZenML server; four-eyes
promotion by two real users of the server; traffic logged to PostgreSQL and a monitoring run reading it;
the MLflow server killed in the middle of a training run (a clear error, no half-registered version, a
re-run after `up` completes); the registry-reading service image run with podman as the Kubernetes pods run
it (a service account's API key, the model from the ZenML server and S3, the log in PostgreSQL); then `down`
stopping everything and logging out.
The servers get their own ZenML config, ports and databases, dropped afterwards. The tests of this module
run in order on one set of servers (each phase needs the one before)."""

import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from headliner.spec import PROJECT_ROOT
from tests.helpers.cli import FAST_RUN_CONFIG, run_cli, run_cli_on_a_free_port
from tests.helpers.containers import SERVICE_ON_HOST_NETWORK, RunningContainer
from tests.helpers.payloads import v2_request
from tests.helpers.ports import free_port

LIST_RUNS = """
import json
from zenml.client import Client
client = Client()
print(json.dumps([client.zen_store.url, [run.name for run in client.list_pipeline_runs(size=50).items]]))
"""
# Kills the MLflow server's process group as soon as the training run has created model version `after`+1
# (when its packaging step starts), so the failure hits the registration step that mirrors it to MLflow.
KILL_MLFLOW_WHEN_A_VERSION_IS_CREATED = """
import os, signal, sys, time
from zenml.client import Client
after, pid = int(sys.argv[1]), int(sys.argv[2])
client = Client()
deadline = time.monotonic() + 600
while time.monotonic() < deadline:
    if client.list_model_versions("jukebox", size=1).total > after:
        os.killpg(pid, signal.SIGKILL)
        print("killed", flush=True)
        break
    time.sleep(0.1)
"""
LIST_VERSIONS = """
import json
from zenml.client import Client
print(json.dumps([[v.number, str(v.stage)] for v in Client().list_model_versions("jukebox", size=50).items]))
"""
SECRET_FIELDS = {"key", "secret", "token", "password", "tracking_token", "tracking_password", "tracking_username"}
REGISTRY_IMAGE = "localhost/headliner-service:tests-registry"  # not the default tag: a user's image stays


def test_stack_files_hold_only_secret_references_as_credentials():
    for name in ("local", "servers"):
        data = yaml.safe_load((PROJECT_ROOT / "stack_configs" / f"{name}.yaml").read_text())
        assert data["stack_name"] == name
        for component in data["components"].values():
            for field, value in (component.get("configuration") or {}).items():
                if field in SECRET_FIELDS:
                    assert re.fullmatch(r"\{\{\w+\.\w+\}\}", value), (
                        f"{name}.yaml: {component['name']}.{field} is not a secret reference"
                    )


def test_servers_script_refuses_an_unknown_command(isolated_env):
    result = subprocess.run(
        ["bash", "scripts/servers.sh", "restart"], cwd=PROJECT_ROOT, env=isolated_env, capture_output=True, text=True
    )
    assert result.returncode == 2 and "usage: scripts/servers.sh up|down|status" in result.stderr


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def servers_env(tmp_path_factory, isolated_env):
    """A ZenML client config of its own (logging in to a server changes the client's store), free ports,
    and databases of a unique prefix; everything is stopped and dropped afterwards."""
    folder = tmp_path_factory.mktemp("servers")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = {
        **isolated_env,
        "ZENML_CONFIG_PATH": str(folder / "zenml-config"),
        "ZENML_REPOSITORY_PATH": str(folder / "repo"),
        "BENTOML_HOME": str(folder / "bentoml"),
        "HEADLINER_INFERENCE_LOG": "",
        "HEADLINER_SERVERS_DATABASE_PREFIX": prefix,
        "HEADLINER_SERVERS_ZENML_PORT": str(free_port()),
        "HEADLINER_SERVERS_MLFLOW_PORT": str(free_port()),
        "HEADLINER_SERVERS_S3_PORT": str(free_port()),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + isolated_env["PATH"],  # `python`, `zenml` of this venv
    }
    (folder / "repo").mkdir()
    env.pop("HEADLINER_INFERENCE_LOG")  # `up` points the inference log at PostgreSQL
    yield env
    subprocess.run(
        ["bash", "scripts/servers.sh", "down"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    from sqlalchemy import create_engine, text

    mysql = create_engine("mysql+pymysql://root@127.0.0.1:3306")
    with mysql.begin() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {prefix}_zenml"))
        for host in ("127.0.0.1", "localhost"):
            connection.execute(text(f"DROP USER IF EXISTS '{prefix}_zenml'@'{host}'"))
    mysql.dispose()
    postgres = create_engine("postgresql://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with postgres.connect() as connection:
        for database in (f"{prefix}_mlflow", f"{prefix}_inference"):
            connection.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
    postgres.dispose()


def _servers(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "scripts/servers.sh", command], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _python(code: str, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        ["python", "-c", code, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def _zenml(args: list[str], env: dict[str, str]) -> str:
    """ZenML's own CLI in the servers' config; its output, asserting it succeeded."""
    done = subprocess.run(["zenml", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _ports(env: dict[str, str]) -> dict[str, int]:
    return {name: int(env[f"HEADLINER_SERVERS_{name.upper()}_PORT"]) for name in ("zenml", "mlflow", "s3")}


def _inference_log_url(env: dict[str, str]) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{env['HEADLINER_SERVERS_DATABASE_PREFIX']}_inference"


def _inference_log_rows(env: dict[str, str], columns: str = "endpoint, model_version, status") -> list[tuple]:
    from sqlalchemy import create_engine, text

    engine = create_engine(_inference_log_url(env))
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT {columns} FROM inference_log")).all()
    engine.dispose()
    return rows


def _logged_requests(env: dict[str, str], request_ids) -> dict[str, tuple]:
    """request id -> (endpoint, model version, status) of the inference log's rows of these requests."""
    rows = _inference_log_rows(env, "request_id, endpoint, model_version, status")
    return {request_id: tuple(rest) for request_id, *rest in rows if request_id in request_ids}


@pytest.fixture(scope="module")
def servers_up(servers_env):
    up = _servers("up", servers_env)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    return up.stdout


@pytest.fixture(scope="module")
def served(servers_up, servers_env):
    """`--pipeline all` on the servers stack; the service's URL (the last test stops it)."""
    port, result = run_cli_on_a_free_port(
        ["--pipeline", "all", "--rows", "60000", "--run-config", FAST_RUN_CONFIG], servers_env
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert f"Service for 'jukebox' version 1 is live at http://127.0.0.1:{port}" in result.stdout
    return f"http://127.0.0.1:{port}"


def test_up_starts_the_servers_logs_in_and_sets_the_stack_once(servers_up, servers_env):
    ports = _ports(servers_env)
    assert f"logged in to http://127.0.0.1:{ports['zenml']} as 'admin'" in servers_up
    assert "stack 'servers' imported and active" in servers_up
    assert (
        f"inference log: postgresql://postgres@127.0.0.1:5432/{servers_env['HEADLINER_SERVERS_DATABASE_PREFIX']}_inference"
        in servers_up
    )
    again = _servers("up", servers_env)
    assert again.returncode == 0 and again.stdout.count("already running") == 3, again.stdout + again.stderr
    status = _servers("status", servers_env)
    assert status.returncode == 0 and status.stdout.count("healthy") == 3, status.stdout


def test_pipeline_all_lands_in_the_object_store_the_mlflow_server_the_zenml_server_and_postgresql(served, servers_env):
    ports = _ports(servers_env)
    store_url, runs = json.loads(_python(LIST_RUNS, servers_env))
    assert store_url == f"http://127.0.0.1:{ports['zenml']}"  # the client talks to the ZenML server
    assert {"training", "deployment"} <= {run.split("-", 1)[0] for run in runs}, (
        runs
    )  # data engineering runs inside training

    s3 = _s3(ports)
    stored = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="headliner-artifacts")
        for item in page.get("Contents", [])
    ]
    assert any("onnx_model" in key for key in stored) and any("train_split" in key for key in stored), stored[:20]
    client = _mlflow(ports)
    (experiment,) = [e for e in client.search_experiments() if e.name == "training"]
    assert len(client.search_runs([experiment.experiment_id])) >= 3  # the training run and its candidates
    (version,) = client.search_model_versions("name='jukebox'")
    assert version.tags["zenml_model_version"] == "1"
    assert s3.list_objects_v2(Bucket="headliner-mlflow")["KeyCount"] > 0  # MLflow's artifacts went to S3 too
    # The deployment's smoke test: one /predict and one v2 request, logged to PostgreSQL by the service.
    assert sorted(_inference_log_rows(servers_env)) == [("predict", "1", 200), ("v2", "1", 200)]


def test_promotion_needs_a_second_user_of_the_server_and_monitoring_reads_the_postgresql_log(
    served, servers_env, tmp_path
):
    env = servers_env
    ports = _ports(env)
    staged = run_cli(["promote", "approve", "--model", "jukebox", "--version", "1"], env)  # the training run asked
    assert staged.returncode == 0 and "by admin: jukebox v1 is now in staging" in staged.stdout, (
        staged.stdout + staged.stderr
    )
    asked = run_cli(
        [
            "promote",
            "request",
            "--model",
            "jukebox",
            "--version",
            "1",
            "--to",
            "production",
            "--reason",
            "servers loop",
        ],
        env,
    )
    assert asked.returncode == 0, asked.stdout + asked.stderr
    own = run_cli(["promote", "approve", "--model", "jukebox", "--version", "1"], env)
    assert own.returncode == 1 and "admin filed request" in own.stderr and "a second person must" in own.stderr, (
        own.stdout + own.stderr
    )
    password = "second-person-1"
    _zenml(["user", "create", "bob", "--password", password], env)
    bob = {
        **env,
        "ZENML_STORE_URL": f"http://127.0.0.1:{ports['zenml']}",
        "ZENML_STORE_USERNAME": "bob",
        "ZENML_STORE_PASSWORD": password,
    }
    approved = run_cli(["promote", "approve", "--model", "jukebox", "--version", "1"], bob)
    assert approved.returncode == 0 and "by bob: jukebox v1 is now in production" in approved.stdout, (
        approved.stdout + approved.stderr
    )
    assert json.loads(_python(LIST_VERSIONS, env)) == [[1, "production"]]
    assert _mlflow(ports).get_registered_model("jukebox").aliases == {"champion": "1"}

    traffic = run_cli(["simulate-traffic", "--requests", "300", "--url", served, "--feedback-rate", "0.5"], env)
    assert traffic.returncode == 0, traffic.stdout + traffic.stderr
    assert len(_inference_log_rows(env)) == 302  # the smoke test's two and the traffic, in PostgreSQL
    monitored = run_cli(
        ["--pipeline", "monitoring", "--last", "300", "--no-retrain", "--reports-dir", str(tmp_path)], env
    )
    assert monitored.returncode == 0, monitored.stdout[-3000:] + monitored.stderr[-3000:]
    database = f"postgresql://postgres@127.0.0.1:5432/{env['HEADLINER_SERVERS_DATABASE_PREFIX']}_inference"
    assert f"Monitoring 'jukebox' version 1: the newest 300 requests of {database}" in monitored.stdout
    assert re.search(r"Decision: (OK|WARN|RETRAIN) for jukebox version 1", monitored.stdout), monitored.stdout
    assert len(list(tmp_path.glob("jukebox-v1-*/*.html"))) >= 5


def test_mlflow_killed_mid_training_leaves_nothing_half_registered_and_a_rerun_completes(served, servers_env):
    env = servers_env
    ports = _ports(env)
    mlflow_pid = int(
        (Path(env["ZENML_CONFIG_PATH"]) / "local_stores" / "headliner" / "servers" / "mlflow.pid").read_text()
    )
    killer = subprocess.Popen(
        ["python", "-c", KILL_MLFLOW_WHEN_A_VERSION_IS_CREATED, "1", str(mlflow_pid)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    training = ["--pipeline", "training", "--rows", "60000", "--run-config", "tests/training_fast.yaml"]
    try:
        failed = run_cli(training, env)
    finally:
        killer.kill()
        killed = killer.communicate()[0]
    assert killed.strip() == "killed", "the MLflow server was not killed while version 2 was being registered"
    assert failed.returncode == 1, failed.stdout[-2000:] + failed.stderr[-2000:]
    error_lines = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and f"127.0.0.1:{ports['mlflow']}" in error_lines[0], failed.stderr[-3000:]
    assert json.loads(_python(LIST_VERSIONS, env)) == [[1, "production"]]  # version 2 was removed whole

    restarted = _servers("up", env)
    assert (
        restarted.returncode == 0
        and "mlflow: running" in restarted.stdout
        and restarted.stdout.count("already running") == 2
    ), restarted.stdout
    rerun = run_cli(training, env)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Registered model 'jukebox' version 2" in rerun.stdout
    assert json.loads(_python(LIST_VERSIONS, env)) == [[1, "production"], [2, "None"]]
    mirrored = {
        v.tags["zenml_model_version"]: v.version for v in _mlflow(ports).search_model_versions("name='jukebox'")
    }
    assert sorted(mirrored) == ["1", "2"]  # one MLflow version each, none left over from the failed run


@pytest.fixture
def registry_container(served, servers_env, tmp_path):
    """The registry-reading service image run as the Kubernetes manifests run it: jukebox version 1 from the
    ZenML server, logged in with a service account's API key, its log in PostgreSQL; on the host's network,
    where the servers listen. Only the shutdown flush writes log rows. Removed afterwards."""
    key_file = tmp_path / "api-key"
    _zenml(["service-account", "create", "headliner-serving", "--output-file", str(key_file)], servers_env)
    built = run_cli(["image", "build", "--registry", "--tag", REGISTRY_IMAGE], servers_env)
    assert built.returncode == 0 and f"Built {REGISTRY_IMAGE} (" in built.stdout, (
        built.stdout[-3000:] + built.stderr[-3000:]
    )
    container = RunningContainer.launch(
        REGISTRY_IMAGE,
        env={
            "HEADLINER_MODEL": "jukebox",
            "HEADLINER_MODEL_VERSION": "1",
            "ZENML_STORE_URL": f"http://127.0.0.1:{_ports(servers_env)['zenml']}",
            "ZENML_STORE_API_KEY": key_file.read_text().strip(),
            "HEADLINER_INFERENCE_LOG": _inference_log_url(servers_env),
            "HEADLINER_LOG_FLUSH_SECONDS": "60",
        },
        name_prefix="headliner-test-registry",
        host_network_command=SERVICE_ON_HOST_NETWORK,
    )
    try:
        yield container
    finally:
        container.remove()


def test_the_registry_reading_image_serves_the_version_from_the_server_and_logs_to_postgresql(
    registry_container, served, servers_env
):
    container = registry_container
    assert "serving jukebox version 1 from the registry (jukebox version 1)" in container.logs()
    workshop = container.client.post("/v2/models/jukebox/infer", json=v2_request())
    in_process = httpx.post(f"{served}/v2/models/jukebox/infer", json=v2_request(), timeout=30, trust_env=False)
    assert workshop.status_code == 200 and in_process.status_code == 200, workshop.text + in_process.text
    assert workshop.json()["model_version"] == in_process.json()["model_version"] == "1"
    assert workshop.json()["outputs"] == in_process.json()["outputs"]  # probabilities, label and classes

    incomplete = v2_request()
    incomplete["inputs"] = [entry for entry in incomplete["inputs"] if entry["name"] != "tempo"]
    bad = container.client.post("/v2/models/jukebox/infer", json=incomplete)
    assert bad.status_code == 400 and bad.json()["field"] == "inputs.tempo", bad.text

    answered = {workshop.headers["x-request-id"]: 200, bad.headers["x-request-id"]: 400}
    assert _logged_requests(servers_env, answered) == {}  # still queued in the container
    assert container.stop() == 0, container.logs()[-4000:]
    assert "inference log closed: 2 rows written" in container.logs()
    assert _logged_requests(servers_env, answered) == {
        request_id: ("v2", "1", status) for request_id, status in answered.items()
    }


def test_down_stops_the_model_service_every_server_and_logs_out(served, servers_env):
    env = servers_env
    down = _servers("down", env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "model service of 'jukebox' version 1: stopped" in down.stdout
    assert all(f"{name}: stopped" in down.stdout for name in ("zenml", "mlflow", "s3")), down.stdout
    assert "logged out" in down.stdout
    assert not any(_port_open(p) for p in [*_ports(env).values(), int(served.rsplit(":", 1)[1])])
    status = subprocess.run(["zenml", "status"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "local ZenML database" in status.stdout + status.stderr, status.stdout + status.stderr
    assert not (Path(env["ZENML_CONFIG_PATH"]) / "local_stores" / "headliner" / "serving.env").exists()


def _s3(ports: dict[str, int]):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{ports['s3']}",
        aws_access_key_id="headliner",
        aws_secret_access_key="headliner",
        region_name="us-east-1",
    )


def _mlflow(ports: dict[str, int]):
    import mlflow

    return mlflow.MlflowClient(f"http://127.0.0.1:{ports['mlflow']}")
