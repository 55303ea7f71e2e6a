"""The `servers` stack: its file holds secret references only, and the full path of a user runs against
real servers on 127.0.0.1: `scripts/servers.sh up` (MariaDB for the ZenML server, PostgreSQL for MLflow,
moto's S3), `python run.py --pipeline all` with its artifacts in the object store, its runs and model in
the MLflow server and its run in the ZenML server, then `down` stopping everything and logging out.
The servers get their own ZenML config, ports and databases, dropped afterwards."""

import json
import os
import re
import socket
import subprocess
import sys
import uuid

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, free_port, run_cli

STOP_SERVICES_AND_LIST_RUNS = """
import json
from zenml.client import Client
client = Client()
deployer = client.active_stack.model_deployer
for service in deployer.find_model_server():
    deployer.delete_model_server(service.uuid, force=False)
print(json.dumps([client.zen_store.url, [run.name for run in client.list_pipeline_runs(size=50).items]]))
"""
SECRET_FIELDS = {"key", "secret", "token", "password", "tracking_token", "tracking_password", "tracking_username"}


def test_stack_files_hold_only_secret_references_as_credentials():
    for name in ("local", "servers"):
        data = yaml.safe_load((PROJECT_ROOT / "stack_configs" / f"{name}.yaml").read_text())
        assert data["stack_name"] == name
        for component in data["components"].values():
            for field, value in (component.get("configuration") or {}).items():
                if field in SECRET_FIELDS:
                    assert re.fullmatch(r"\{\{\w+\.\w+\}\}", value), f"{name}.yaml: {component['name']}.{field} is not a secret reference"


def test_servers_script_refuses_an_unknown_command(isolated_env):
    result = subprocess.run(["bash", "scripts/servers.sh", "restart"], cwd=PROJECT_ROOT, env=isolated_env, capture_output=True, text=True)
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
        "ZENML_CONFIG_PATH": str(folder / "zenml-config"), "ZENML_REPOSITORY_PATH": str(folder / "repo"),
        "BENTOML_HOME": str(folder / "bentoml"), "HEADLINER_INFERENCE_LOG": str(folder / "log.sqlite"),
        "HEADLINER_SERVERS_DATABASE_PREFIX": prefix, "HEADLINER_SERVERS_ZENML_PORT": str(free_port()),
        "HEADLINER_SERVERS_MLFLOW_PORT": str(free_port()), "HEADLINER_SERVERS_S3_PORT": str(free_port()),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + isolated_env["PATH"],  # `python`, `zenml` of this venv
    }
    (folder / "repo").mkdir()
    yield env
    subprocess.run(["bash", "scripts/servers.sh", "down"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    from sqlalchemy import create_engine, text

    mysql = create_engine("mysql+pymysql://root@127.0.0.1:3306")
    with mysql.begin() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {prefix}_zenml"))
        for host in ("127.0.0.1", "localhost"):
            connection.execute(text(f"DROP USER IF EXISTS '{prefix}_zenml'@'{host}'"))
    mysql.dispose()
    postgres = create_engine("postgresql://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    with postgres.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {prefix}_mlflow"))
    postgres.dispose()


def test_pipeline_all_on_the_servers_stack(servers_env):
    env = servers_env
    ports = {name: int(env[f"HEADLINER_SERVERS_{name.upper()}_PORT"]) for name in ("zenml", "mlflow", "s3")}
    up = subprocess.run(["bash", "scripts/servers.sh", "up"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert f"logged in to http://127.0.0.1:{ports['zenml']} as 'admin'" in up.stdout
    assert "stack 'servers' imported and active" in up.stdout
    again = subprocess.run(["bash", "scripts/servers.sh", "up"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("already running") == 3, again.stdout + again.stderr

    port = free_port()
    result = run_cli(["--pipeline", "all", "--rows", "60000", "--run-config", "tests/training_fast.yaml", "--port", str(port)], env)
    try:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
        assert f"Service for 'jukebox' version 1 is live at http://127.0.0.1:{port}" in result.stdout
    finally:
        seen = subprocess.run(
            ["python", "-c", STOP_SERVICES_AND_LIST_RUNS], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert seen.returncode == 0, seen.stderr[-2000:]
    store_url, runs = json.loads(seen.stdout.strip().splitlines()[-1])
    assert store_url == f"http://127.0.0.1:{ports['zenml']}"  # the client talks to the ZenML server
    assert {"training", "deployment"} <= {run.split("-", 1)[0] for run in runs}, runs  # recorded by the ZenML server

    import boto3
    import mlflow

    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{ports['s3']}", aws_access_key_id="headliner",
                      aws_secret_access_key="headliner", region_name="us-east-1")
    stored = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="headliner-artifacts") for item in page.get("Contents", [])]
    assert any("onnx_model" in key for key in stored) and any("train_split" in key for key in stored), stored[:20]
    client = mlflow.MlflowClient(f"http://127.0.0.1:{ports['mlflow']}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "training"]
    assert len(client.search_runs([experiment.experiment_id])) >= 3  # the training run and its candidates
    (version,) = client.search_model_versions("name='jukebox'")
    assert version.tags["zenml_model_version"] == "1"
    mlflow_objects = s3.list_objects_v2(Bucket="headliner-mlflow")["KeyCount"]
    assert mlflow_objects > 0  # MLflow's artifacts went to S3 too

    down = subprocess.run(["bash", "scripts/servers.sh", "down"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode == 0 and down.stdout.count("stopped") >= 3, down.stdout + down.stderr
    assert "logged out" in down.stdout
    assert not any(_port_open(p) for p in ports.values())
    status = subprocess.run(["zenml", "status"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "local ZenML database" in status.stdout + status.stderr, status.stdout + status.stderr
