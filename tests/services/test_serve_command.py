"""`python run.py serve`: runs the service in the foreground on the chosen model and port, stops on
Ctrl+C with the inference log flushed, and refuses what it cannot serve in one line."""

import socket
import sys

from headliner.serving.inference_log import read_inference_log
from tests.helpers.cli import run_cli
from tests.helpers.payloads import SONG
from tests.helpers.service import RunningService


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_serve_refuses_what_it_cannot_serve(isolated_env, jukebox_onnx_file, tmp_path):
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("not a model")
    result = run_cli(["serve", "--model-file", str(not_onnx)], isolated_env)
    assert result.returncode == 1
    assert last_line(result).startswith(f"error: --model-file {not_onnx}: not a packaged Headliner model (")

    missing = run_cli(["serve", "--model-file", str(tmp_path / "absent.onnx")], isolated_env)
    assert (
        missing.returncode == 1
        and last_line(missing) == f"error: --model-file: no such file {tmp_path / 'absent.onnx'}"
    )

    both = run_cli(["serve", "--model-file", str(jukebox_onnx_file), "--version", "2"], isolated_env)
    assert both.returncode == 2 and "--model-file cannot be combined with --stage or --version" in both.stderr

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli(["serve", "--model-file", str(jukebox_onnx_file), "--port", str(port)], isolated_env)
    assert busy.returncode == 1
    assert last_line(busy).startswith(f"error: port {port} on 127.0.0.1 is in use")


def test_serve_runs_in_the_foreground_until_ctrl_c(isolated_env, jukebox_onnx_file, tmp_path):
    log = tmp_path / "log.sqlite"
    env = {**isolated_env, "HEADLINER_INFERENCE_LOG": str(log), "HEADLINER_LOG_FLUSH_SECONDS": "600"}

    def command(port: int) -> list[str]:
        return [sys.executable, "run.py", "serve", "--model-file", str(jukebox_onnx_file), "--port", str(port)]

    service = RunningService.launch(command, env, tmp_path, f"sqlite:///{log}")
    try:
        answer = service.client.post("/predict", json=[SONG, SONG])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_name"] == "jukebox" and body["model_version"] == "1"
        assert len(body["predictions"]) == 2 and len(body["predictions"][0]["top"]) == 5
    finally:
        returncode = service.stop()  # Ctrl+C
    output = service.text()
    assert returncode == 0, output[-3000:]
    assert f"Serving 'jukebox' version 1 from {jukebox_onnx_file} at {service.url}" in output
    assert f"open in a browser: {service.url}/" in output
    logged = read_inference_log(service.log_url)
    assert len(logged) == 1 and logged.loc[0, "rows"] == 2 and logged.loc[0, "endpoint"] == "predict"
