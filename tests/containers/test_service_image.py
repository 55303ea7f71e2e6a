"""The service image as a user builds and runs it: `python run.py image build --model-file` (the local base
image built first when missing; layers cached between runs) with a small jukebox model baked in, run on a
free port of 127.0.0.1 with a named volume for its inference log. It answers like the model in this process,
runs as uid 1000, reports healthy, and on SIGTERM (`podman stop`) writes every answered request to the
log on the volume. One container per module: the tests run in order against it, the stop test last."""

import subprocess
import sys

import numpy as np
import pytest

from headliner.model.onnx_packaging import PARITY_TOLERANCE
from headliner.serving.inference_log import read_inference_log
from headliner.spec import PROJECT_ROOT
from tests.helpers.containers import RunningContainer, podman, unique_name, volume_path
from tests.helpers.payloads import SONG, SONG_ROW, v2_request

TAG = "localhost/headliner-service:tests-jukebox-v1"  # not the default tag: a user's jukebox-v1 stays


def build(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", "image", "build", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.fixture(scope="module")
def service_image(jukebox_onnx_file, isolated_env) -> str:
    """The documented build command; its output names the image and the command to run it."""
    done = build(["--model-file", str(jukebox_onnx_file), "--tag", TAG], isolated_env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert f"Built {TAG} (" in done.stdout and "'jukebox' version 1" in done.stdout
    assert f"podman run --rm -p 127.0.0.1:3000:3000 -v headliner-log:/data {TAG}" in done.stdout
    return TAG


def test_the_build_command_refuses_with_one_line_errors(isolated_env, tmp_path):
    not_a_model = tmp_path / "notes.onnx"
    not_a_model.write_text("not ONNX")
    unset = {**isolated_env, "CONTAINERS_CONF": str(tmp_path / "missing.conf")}
    for args, env, message in [
        ([], unset, "error: podman is not set up here: run scripts/podman-setup.sh"),
        (["--model-file", str(not_a_model)], isolated_env, f"error: --model-file {not_a_model}: not a packaged"),
        (["--version", "97"], isolated_env, "error: "),
    ]:
        done = build(args, env)
        assert done.returncode == 1 and done.stderr.strip().startswith(message), (args, done.stderr[-2000:])
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    both = build(["--registry", "--version", "3"], isolated_env)
    assert both.returncode == 2 and "give one of --version, --model-file and --registry" in both.stderr


@pytest.fixture(scope="module")
def log_volume():
    name = unique_name("headliner-test-log")
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def container(service_image, log_volume):
    running = RunningContainer.launch(
        service_image,
        env={"HEADLINER_LOG_FLUSH_SECONDS": "60"},  # only the shutdown flush writes rows
        volumes={log_volume: "/data"},
    )
    try:
        yield running
    finally:
        running.remove()


@pytest.fixture(scope="module")
def answered() -> list[str]:
    """Request ids of the scoring requests the container answered, in order."""
    return []


def score(container: RunningContainer, answered: list[str], path: str, **kwargs):
    response = container.client.post(path, **kwargs)
    answered.append(response.headers["x-request-id"])
    return response


def test_the_container_answers_like_the_model_in_this_process(container, answered, predictor, jukebox_spec):
    workshop = score(container, answered, "/v2/models/jukebox/infer", json={**v2_request(), "id": "workshop"})
    assert workshop.status_code == 200
    answer = workshop.json()
    assert (answer["id"], answer["model_name"], answer["model_version"]) == ("workshop", "jukebox", "1")
    probabilities, label, classes = answer["outputs"]
    labels, expected = predictor.predict_matrix(np.array([SONG_ROW]))
    assert probabilities["shape"] == [1, 72]
    np.testing.assert_allclose(
        np.array(probabilities["data"], dtype=np.float32), expected[0], rtol=0, atol=PARITY_TOLERANCE
    )
    assert label["data"] == [labels[0]] and classes["data"] == jukebox_spec.target.classes

    one = score(container, answered, "/predict", json=SONG, headers={"X-Request-ID": "one-song"})
    assert one.status_code == 200 and one.json()["request_id"] == "one-song"
    top = one.json()["predictions"][0]["top"]
    best = np.argsort(-expected[0])[:5]
    assert [entry["code"] for entry in top] == [predictor.classes[i] for i in best]
    assert [entry["probability"] for entry in top] == pytest.approx(expected[0][best], abs=1e-5)

    bad = score(container, answered, "/predict", json={**SONG, "tempo": 300})
    assert bad.status_code == 422 and bad.json()["field"] == "song.tempo"

    page = container.client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    lines = container.client.get("/metrics").text.splitlines()
    assert 'headliner_requests_total{endpoint="v2",status="200"} 1' in lines
    assert 'headliner_requests_total{endpoint="predict",status="422"} 1' in lines
    assert f"headliner_inference_log_rows_pending {len(answered)}" in lines


def test_the_container_runs_as_uid_1000_and_reports_healthy(container):
    assert container.inspect("{{.Config.User}}") == "1000:1000"
    assert podman("exec", container.name, "id", "-u").stdout.strip() == "1000"
    assert "/v2/health/ready" in container.inspect("{{json .Config.Healthcheck.Test}}")
    podman("healthcheck", "run", container.name)  # exit 0: healthy
    assert container.inspect("{{.State.Health.Status}}") == "healthy"


def test_sigterm_writes_every_answered_request_to_the_log_volume(container, answered, log_volume):
    """Runs after the others against the same container; alone, it answers its own request."""
    assert score(container, answered, "/predict", json=SONG).status_code == 200

    assert container.stop() == 0, container.logs()[-4000:]
    assert f"inference log closed: {len(answered)} rows written" in container.logs()
    frame = read_inference_log(f"sqlite:///{volume_path(log_volume)}/inference_log.sqlite")
    assert list(frame["request_id"]) == answered
    assert (frame["model_name"] == "jukebox").all() and (frame["model_version"] == "1").all()
