"""The deployment pipeline and `--pipeline all`: a registered version becomes a live local service
(BentoML, run by the stack's model deployer) on a free port that answers the printed curl command, a
redeploy replaces it, stopping it flushes the inference log, and what cannot be deployed fails in one
line."""

import json
import re
import shutil
import socket
import subprocess
import urllib.request

import pytest

from headliner.labels import Step
from headliner.serving.inference_log import read_inference_log
from tests.helpers.cli import (
    finished_run,
    run_cli,
    run_cli_on_a_free_port,
)
from tests.helpers.deployment import deployed_services, stop_all_services


@pytest.fixture(scope="module")
def serving_env(isolated_env, tmp_path_factory):
    """The CLI's environment, with the inference log in a file of this module that is written only when
    a service stops (a flush interval longer than the tests); every service is stopped afterwards."""
    log = tmp_path_factory.mktemp("serving") / "inference_log.sqlite"
    yield {**isolated_env, "HEADLINER_INFERENCE_LOG": str(log), "HEADLINER_LOG_FLUSH_SECONDS": "600"}, log
    stop_all_services()


def printed_curl(stdout: str) -> str:
    return next(line.strip() for line in stdout.splitlines() if line.strip().startswith("curl "))


def run_printed_curl(stdout: str) -> dict:
    assert shutil.which("curl"), "curl is not installed: run scripts/install_test_tools.sh"
    result = subprocess.run(["bash", "-c", printed_curl(stdout)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_deploys_a_version_answers_the_printed_curl_and_a_redeploy_replaces_it(jukebox_training, serving_env):
    env, log = serving_env
    number = jukebox_training[0].steps[Step.REGISTER_MODEL].model_version.number

    port, result = run_cli_on_a_free_port(["--pipeline", "deployment", "--version", str(number)], env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"Service for 'jukebox' version {number} is live at http://127.0.0.1:{port}" in result.stdout
    assert "smoke test POST /predict: passed" in result.stdout
    assert "smoke test POST /v2/models/jukebox/infer: passed (HTTP 200" in result.stdout
    assert f"Open the page in a browser: http://127.0.0.1:{port}/" in result.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:  # the bento packs the page's files
        assert page.status == 200 and b"<h1>The Headliner</h1>" in page.read()

    answer = run_printed_curl(result.stdout)
    assert answer["model_name"] == "jukebox" and answer["model_version"] == str(number)
    top = answer["predictions"][0]["top"]
    assert len(top) == 5 and all(re.fullmatch(r"[A-Z]{2}", t["code"]) and t["name"] for t in top)
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)

    _, services = deployed_services()
    first = [s for s in services if s.config.model_name == "jukebox"]
    assert len(first) == 1 and first[0].is_running and first[0].endpoint.status.port == port
    assert first[0].config.model_version == str(number)

    again = run_cli(["--pipeline", "deployment", "--version", str(number), "--port", str(port)], env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    _, services = deployed_services()
    replacement = [s for s in services if s.config.model_name == "jukebox"]
    assert len(replacement) == 1 and replacement[0].uuid != first[0].uuid and replacement[0].is_running
    assert run_printed_curl(again.stdout)["model_version"] == str(number)

    stop_all_services()
    logged = read_inference_log(f"sqlite:///{log}")
    # per deployment: the two smoke-test requests and the printed curl; all flushed when each service stopped
    assert len(logged) == 6
    assert set(logged["endpoint"]) == {"predict", "v2"} and set(logged["status"]) == {200}
    assert set(logged["model_version"]) == {str(number)}


def test_unpromoted_stage_and_busy_port_fail_in_one_line(jukebox_training, serving_env):
    env, _ = serving_env
    result = run_cli(["--pipeline", "deployment", "--stage", "production"], env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: model 'jukebox' has no version 'production'")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli(["--pipeline", "deployment", "--port", str(port)], env)
    assert busy.returncode == 1
    assert busy.stderr.strip().splitlines()[-1] == (
        f"error: port {port} is in use (another model's service? see: zenml model-deployer models list); choose --port"
    )

    both = run_cli(["--pipeline", "deployment", "--stage", "staging", "--version", "1"], env)
    assert both.returncode == 2 and "give --stage or --version, not both" in both.stderr


def test_all_trains_then_serves_the_new_version(wine_spec, serving_env):
    env, _ = serving_env
    port, result = run_cli_on_a_free_port(["--pipeline", "all", "--config", "configs/use_cases/wine.yaml"], env)
    run, stdout = finished_run(result), result.stdout
    number = run.steps[Step.REGISTER_MODEL].model_version.number
    assert f"Registered model 'wine' version {number}" in stdout
    assert f"Service for 'wine' version {number} is live at http://127.0.0.1:{port}" in stdout
    answer = run_printed_curl(stdout)
    assert answer["model_name"] == "wine" and answer["model_version"] == str(number)
    assert {t["name"] for t in answer["predictions"][0]["top"]} <= {"Cultivar 1", "Cultivar 2", "Cultivar 3"}
    stop_all_services()
