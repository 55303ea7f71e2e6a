"""`python run.py serve`: runs the service in the foreground on the chosen model and port, stops on
Ctrl+C with the inference log flushed, and refuses what it cannot serve in one line."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from headliner.serving.inference_log import read_inference_log
from tests.conftest import PROJECT_ROOT, free_port, run_cli


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
    port, log = free_port(), tmp_path / "log.sqlite"
    env = {**isolated_env, "HEADLINER_INFERENCE_LOG": str(log), "HEADLINER_LOG_FLUSH_SECONDS": "600"}
    server = subprocess.Popen(
        [sys.executable, "run.py", "serve", "--model-file", str(jukebox_onnx_file), "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as ready:
                    if ready.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the service did not get ready"
            time.sleep(0.3)
        song = {
            "is_explicit": 1,
            "duration_ms": 180000,
            "danceability": 0.8,
            "energy": 0.7,
            "key": 2,
            "loudness": -5.0,
            "mode": 0,
            "speechiness": 0.1,
            "acousticness": 0.1,
            "instrumentalness": 0.0,
            "liveness": 0.1,
            "valence": 0.6,
            "tempo": 100.0,
        }
        request = urllib.request.Request(
            f"{url}/predict", data=json.dumps([song, song]).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["model_name"] == "jukebox" and answer["model_version"] == "1"
        assert len(answer["predictions"]) == 2 and len(answer["predictions"][0]["top"]) == 5
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output[-3000:]
    assert f"Serving 'jukebox' version 1 from {jukebox_onnx_file} at {url}" in output
    assert f"open in a browser: {url}/" in output
    logged = read_inference_log(f"sqlite:///{log}")
    assert len(logged) == 1 and logged.loc[0, "rows"] == 2 and logged.loc[0, "endpoint"] == "predict"
