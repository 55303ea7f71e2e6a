"""Benchmark of the serving path against the goals it is held to: requests/s and p50/p99 latency of one-row
`/predict` and Open Inference Protocol v2 infer on the project's BentoML service, side by side with three
references measured in the same run, one worker each, on 127.0.0.1, driven by wrk:

    python bench/serving_bench.py [--duration 10] [--connections 16] [--raw-rows 60000] [--workers 2]

  (a) bare ASGI: parses the JSON body (orjson) and answers a tiny JSON, the floor of Python HTTP overhead;
  (b) lean ASGI: parses the same body, builds the 13 float32 [1, 1] inputs and runs the same ONNX model
      (onnxruntime, one intra- and one inter-op thread), the practical limit for this model;
  (c) `mlflow models serve` of the same scikit-learn pipeline (predict_proba);
  (d) the service (`python -m serving`: `bentoml serve serving.service:Headliner`), its inference log on;
  (e) the same service with `--workers` worker processes (HEADLINER_WORKERS), for the scaling factor over (d)
      (1: not measured). wrk and the inference log writers share the machine's cores with the workers.

(a) and (b) are the ASGI factories `floor_app` and `lean_onnx_app` below, run by uvicorn. One target runs
at a time, so they never compete for the CPU. The model is a logistic_regression pipeline fitted on
generated jukebox data (helpers of bench/inference_bench.py) and packaged with `package_onnx`; no ZenML
state is read or written. After a service stops gracefully, its inference log must hold one row per
request it answered: its own count on /metrics, which also holds the requests in flight when a wrk run
ended (wrk drops them, the service still answers them). Exit code 0 when every goal is met, 1 otherwise,
2 without wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from contextlib import closing, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
MODEL_FILE_VARIABLE = "SERVING_BENCH_MODEL_FILE"  # tells `lean_onnx_app` which ONNX file to load
WARM_UP_SECONDS = 2
START_TIMEOUT_SECONDS = 120
GRACEFUL_STOP_SECONDS = 30
PREDICT, V2, INVOCATIONS = "/predict", "/v2/models/jukebox/infer", "/invocations"
PORT = "<port>"  # in a target's command: a free port, chosen when the target starts

# Goals
SHARE_OF_LEAN_THROUGHPUT = 0.85  # the service's throughput at least this share of (b)'s
TIMES_MLFLOW_THROUGHPUT = 10  # the service's /predict throughput at least this many times (c)'s
TIMES_LEAN_P99 = 1.5  # the service's p99 at most this many times (b)'s


# -- the reference apps (a) and (b), ASGI factories for `uvicorn --factory` ---------------------------------

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    while message.get("more_body"):
        message = await receive()
        body += message.get("body", b"")
    return body


async def _answer_json(send: Send, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def floor_app() -> App:
    """(a): any request's JSON body parsed, a tiny JSON answered."""
    import orjson

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            orjson.loads(await _read_body(receive))
            await _answer_json(send, b'{"ok":true}')

    return app


def lean_onnx_app() -> App:
    """(b): a one-row `/predict` object or v2 request -> the model's probabilities, as a v2 answer on both
    paths."""
    import numpy as np
    import onnxruntime as ort
    import orjson

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(
        os.environ[MODEL_FILE_VARIABLE], sess_options=options, providers=["CPUExecutionProvider"]
    )
    feature_names = [graph_input.name for graph_input in session.get_inputs()]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        payload = orjson.loads(await _read_body(receive))
        if scope["path"] == PREDICT:
            values = payload
        else:
            values = {tensor["name"]: tensor["data"][0] for tensor in payload["inputs"]}
        inputs = {name: np.array([[values[name]]], dtype=np.float32) for name in feature_names}
        probabilities = session.run(["probabilities"], inputs)[0][0]
        tensor = {"name": "probabilities", "datatype": "FP32", "shape": [1, len(probabilities)], "data": probabilities}
        await _answer_json(send, orjson.dumps({"outputs": [tensor]}, option=orjson.OPT_SERIALIZE_NUMPY))

    return app


# -- model and request bodies --------------------------------------------------------------------------------


def _build_model(raw_rows: int, workdir: Path) -> tuple[Path, Path, dict[str, int | float]]:
    """Fit the pipeline, write it as ONNX and as an MLflow model; returns (ONNX file, MLflow model dir, one
    real song as {feature: value}, integer features as JSON integers)."""
    import mlflow.sklearn
    from inference_bench import _fit_linear, _labelled_examples, _spec
    from mlflow.models import infer_signature

    from headliner.labels import class_display_names
    from headliner.model.estimators import feature_frame
    from headliner.model.onnx_packaging import package_onnx
    from headliner.model.tracking import _pip_requirements, _trusted_types

    spec = _spec()
    examples = _labelled_examples(spec, raw_rows)
    pipeline = _fit_linear(spec, examples)
    model = package_onnx(pipeline, spec, "1", {"class_names": json.dumps(class_display_names(spec))})
    onnx_file = workdir / "jukebox.onnx"
    onnx_file.write_bytes(model.SerializeToString())
    mlflow_dir = workdir / "mlflow_model"
    sample = feature_frame(examples.head(5), spec)
    mlflow.sklearn.save_model(  # as the training pipeline logs it, answering probabilities
        pipeline,
        str(mlflow_dir),
        signature=infer_signature(sample, pipeline.predict_proba(sample)),
        skops_trusted_types=_trusted_types(pipeline),
        pip_requirements=_pip_requirements(),
        pyfunc_predict_fn="predict_proba",
    )
    row = examples.dropna().iloc[0]
    song = {
        feature.name: int(row[feature.name]) if feature.dtype.value in ("int", "bool") else float(row[feature.name])
        for feature in spec.features
    }
    print(
        f"model: logistic_regression fitted on {len(examples):,} examples from {raw_rows:,} raw rows; "
        f"ONNX {model.ByteSize():,} bytes"
    )
    return onnx_file, mlflow_dir, song


def _bodies(song: dict[str, int | float]) -> dict[str, bytes]:
    v2 = {"inputs": [{"name": name, "shape": [1, 1], "datatype": "FP32", "data": [v]} for name, v in song.items()]}
    invocations = {"dataframe_split": {"columns": list(song), "data": [list(song.values())]}}
    return {path: json.dumps(body).encode() for path, body in ((PREDICT, song), (V2, v2), (INVOCATIONS, invocations))}


# -- answers each endpoint must give before it is timed ------------------------------------------------------


Check = Callable[[Any], bool]  # a parsed JSON answer -> whether it is right


def _is_json(answer: Any) -> bool:
    return isinstance(answer, dict)


def _has_probabilities(answer: Any) -> bool:
    return len(answer["outputs"][0]["data"]) == 72


def _has_top_five(answer: Any) -> bool:
    return len(answer["predictions"][0]["top"]) == 5


def _has_probability_row(answer: Any) -> bool:
    return len(answer["predictions"][0]) == 72


# -- targets -------------------------------------------------------------------------------------------------


@dataclass
class Target:
    key: str  # (a) to (d), as in the module docstring
    name: str
    command: list[str]  # PORT stands for the port
    checks: dict[str, Check]  # endpoint path -> check of its JSON answer
    ready_path: str | None = None  # GET answering 200 once the model is loaded; None: the port accepting
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    graceful_stop: int = signal.SIGTERM
    request_counter: str | None = None  # GET of Prometheus text with headliner_requests_total
    log_file: Path | None = None  # the target's inference log (SQLite), one row per request it answered


def _uvicorn(factory: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        f"serving_bench:{factory}",
        "--factory",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        PORT,
        "--no-access-log",
        "--log-level",
        "warning",
        "--lifespan",
        "off",
    ]


def _service(key: str, onnx_file: Path, workdir: Path, workers: int) -> Target:
    """The project's service of `onnx_file` with `workers` worker processes, its own inference log."""
    log_file = workdir / f"inference_log_{key.strip('()')}.sqlite"
    return Target(
        key,
        f"service, {workers} worker{'s' if workers > 1 else ''}",
        [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", PORT],
        {PREDICT: _has_top_five, V2: _has_probabilities},
        ready_path="/v2/health/ready",
        env={
            "HEADLINER_MODEL_FILE": str(onnx_file),
            "HEADLINER_INFERENCE_LOG": str(log_file),
            "HEADLINER_WORKERS": str(workers),
            "BENTOML_HOME": str(workdir / "bentoml"),
            "ZENML_CONFIG_PATH": str(workdir / "zenml"),
        },
        cwd=PROJECT_ROOT,
        graceful_stop=signal.SIGINT,
        request_counter="/metrics",
        log_file=log_file,
    )


def _targets(onnx_file: Path, mlflow_dir: Path, workdir: Path, workers: int) -> list[Target]:
    scaled = [_service("(e)", onnx_file, workdir, workers)] if workers > 1 else []
    return [
        Target("(a)", "bare ASGI, JSON parse only", _uvicorn("floor_app"), {PREDICT: _is_json, V2: _is_json}),
        Target(
            "(b)",
            "lean ASGI + onnxruntime",
            _uvicorn("lean_onnx_app"),
            {PREDICT: _has_probabilities, V2: _has_probabilities},
            env={MODEL_FILE_VARIABLE: str(onnx_file)},
        ),
        Target(
            "(c)",
            "mlflow models serve",
            [
                str(VENV_BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                str(mlflow_dir),
                "--env-manager",
                "local",
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                PORT,
            ],
            {INVOCATIONS: _has_probability_row},
            ready_path="/ping",
            cwd=workdir,
        ),
        _service("(d)", onnx_file, workdir, 1),
        *scaled,
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Running:
    """One target's process (in its own process group, so Ctrl+C reaches only this script and the cleanup
    reaches every process the target spawned), its output in a file. The venv's bin/ leads its PATH:
    `mlflow models serve` runs `uvicorn` from there."""

    def __init__(self, target: Target, workdir: Path):
        self.target = target
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.output = workdir / f"{target.key.strip('()')}.out"
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [str(self.port) if part == PORT else part for part in target.command],
                cwd=target.cwd or workdir,
                env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", **target.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target.key} exited with {self.process.returncode}:\n{self.output_tail()}")
            if self._ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.target.key} not ready after {START_TIMEOUT_SECONDS} s:\n{self.output_tail()}")

    def _ready(self) -> bool:
        if self.target.ready_path is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        try:
            with urllib.request.urlopen(self.base_url + self.target.ready_path, timeout=2) as response:
                status: int = response.status
                return status == 200
        except OSError:
            return False

    def stop(self, timeout: float) -> int | None:
        """Graceful stop, then whatever of the process group is left is killed; the exit code, None if the
        graceful stop timed out."""
        code = self.process.poll()
        if code is None:
            self.process.send_signal(self.target.graceful_stop)
            with suppress(subprocess.TimeoutExpired):
                code = self.process.wait(timeout)
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        return code

    def output_tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])


def _check(running: Running, path: str, body: bytes, is_right: Check) -> None:
    request = urllib.request.Request(
        running.base_url + path, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode(errors="replace")
    try:
        right = status == 200 and is_right(json.loads(text))
    except (ValueError, KeyError, IndexError, TypeError):
        right = False
    if not right:
        raise RuntimeError(f"{running.target.key} {path}: unexpected answer {status}: {text[:500]}")


# -- wrk -----------------------------------------------------------------------------------------------------

UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class Load:
    requests: int  # completed (answered) requests
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    failures: int  # non-2xx/3xx answers and socket errors


def _found(pattern: str, output: str) -> re.Match[str]:
    """A figure wrk always prints."""
    found = re.search(pattern, output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return found


def _latency_ms(output: str, percentile: str) -> float:
    value, unit = _found(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", output).groups()
    return float(value) * UNIT_MS[unit]


def _parse_wrk(output: str) -> Load:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Load(
        requests=int(_found(r"(\d+) requests in", output).group(1)),
        requests_per_second=float(_found(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_latency_ms(output, "50"),
        p99_ms=_latency_ms(output, "99"),
        failures=(int(non_2xx.group(1)) if non_2xx else 0)
        + (sum(int(count) for count in socket_errors.groups()) if socket_errors else 0),
    )


def _wrk(url: str, script: Path, seconds: int, connections: int) -> Load:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return _parse_wrk(output)


def _wrk_script(body: bytes, path: Path) -> Path:
    path.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body.decode()}]==]\n'
    )
    return path


# -- the run -------------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    loads: dict[str, Load]  # endpoint path -> its measured run
    answered_at_client: int  # answers the checks and wrk received, warm-up included
    wrk_runs: int  # warm-up included
    counted_by_target: int | None  # the target's own count of requests answered (its request_counter)
    exit_code: int | None  # None: still running GRACEFUL_STOP_SECONDS after the graceful stop signal
    log_rows: int | None  # rows in the target's inference log after it stopped


def _requests_counted(running: Running, counter_path: str) -> int:
    """The target's headliner_requests_total (GET `counter_path`), summed over endpoints and statuses."""
    with urllib.request.urlopen(running.base_url + counter_path, timeout=10) as response:
        text = response.read().decode()
    counts = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith("headliner_requests_total{")]
    return sum(int(float(count)) for count in counts)


def _measure(target: Target, workdir: Path, bodies: dict[str, bytes], args: argparse.Namespace) -> Measurement:
    """Start the target, check each endpoint, warm it up and load it, stop the target."""
    running = Running(target, workdir)
    loads, answered, counted = {}, 0, None
    try:
        running.wait_ready()
        for path, is_right in target.checks.items():
            _check(running, path, bodies[path], is_right)
            answered += 1
        for path in target.checks:
            script = _wrk_script(bodies[path], workdir / "request.lua")
            answered += _wrk(running.base_url + path, script, WARM_UP_SECONDS, args.connections).requests
            loads[path] = _wrk(running.base_url + path, script, args.duration, args.connections)
            answered += loads[path].requests
        if target.request_counter:
            time.sleep(1)  # the requests in flight when wrk stopped are still answered
            counted = _requests_counted(running, target.request_counter)
    finally:
        exit_code = running.stop(GRACEFUL_STOP_SECONDS)
    log_rows = _log_rows(target.log_file) if target.log_file else None
    return Measurement(loads, answered, 2 * len(target.checks), counted, exit_code, log_rows)


def _log_rows(log_file: Path) -> int:
    with closing(sqlite3.connect(log_file)) as connection:
        rows: int = connection.execute("SELECT COUNT(*) FROM inference_log").fetchone()[0]
        return rows


def _no_lost_rows(key: str, service: Measurement, connections: int) -> bool:
    """The goal that a service target's log holds one row per request it answered (its own count)."""
    served, log_rows = service.counted_by_target, service.log_rows
    if served is None or log_rows is None:  # service targets have a request counter and a log
        raise RuntimeError(f"{key} did not report how many requests it served or logged")
    in_flight = served - service.answered_at_client
    lost = served - log_rows
    print(
        f"{key} log rows: {log_rows:,}, requests served: {served:,} (its own count on /metrics; "
        f"{service.answered_at_client:,} answers reached the checks and wrk, {in_flight:,} were in flight when a wrk "
        f"run ended), lost: {lost:,}, exit code {service.exit_code}"
    )
    # Every answer the client saw must be counted, and at most one request per connection and wrk run may
    # have been in flight at its end.
    counts_agree = 0 <= in_flight <= service.wrk_runs * connections
    return goal(
        f"{key} zero lost inference log rows after a graceful stop",
        lost == 0 and counts_agree and service.exit_code == 0,
        f"{lost:,} lost; client and service counts {'agree' if counts_agree else 'DISAGREE'}; "
        f"exit code {service.exit_code}",
    )


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    sys.exit(128 + signum)  # unwinds through the targets' cleanup, as Ctrl+C does


def goal(description: str, met: bool, detail: str) -> bool:
    """Print a goal as PASS or FAIL with its figure (bench/soak.py prints its goals so too)."""
    print(f"{'PASS' if met else 'FAIL'}  {description} ({detail})")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of measured load per endpoint")
    parser.add_argument("--connections", type=int, default=16, help="wrk's concurrent connections")
    parser.add_argument("--raw-rows", type=int, default=60_000, help="raw chart rows generated to fit the model")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of target (e); 1: no (e)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("install wrk: apt-get install wrk")
        sys.exit(2)
    for stop_signal in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _exit_on_signal)

    print(f"{os.cpu_count()} cores; 1-minute load average before the run: {os.getloadavg()[0]:.2f}")
    results: dict[str, Measurement] = {}
    with tempfile.TemporaryDirectory(prefix="headliner-serving-bench-") as tmp:
        workdir = Path(tmp)
        onnx_file, mlflow_dir, song = _build_model(args.raw_rows, workdir)
        bodies = _bodies(song)
        print(
            f"wrk -t1 -c{args.connections}, {WARM_UP_SECONDS} s warm-up + {args.duration} s measured per endpoint; "
            f"one worker per target but (e), one target running at a time\n"
        )
        print(f"{'target':32} {'endpoint':26} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'failures':>9}")
        for target in _targets(onnx_file, mlflow_dir, workdir, args.workers):
            results[target.key] = measurement = _measure(target, workdir, bodies, args)
            for path, load in measurement.loads.items():
                print(
                    f"{f'{target.key} {target.name}':32} {path:26} {load.requests_per_second:9,.0f} "
                    f"{load.p50_ms:8.2f} {load.p99_ms:8.2f} {load.failures:9,}"
                )

    loads = {(key, path): load for key, result in results.items() for path, load in result.loads.items()}
    rps = {target_path: load.requests_per_second for target_path, load in loads.items()}
    p99 = {target_path: load.p99_ms for target_path, load in loads.items()}
    services = [key for key in ("(d)", "(e)") if key in results]
    if "(e)" in results:
        print(
            f"\n(e)/(d), {args.workers} workers over one: "
            + ", ".join(f"{path} {rps['(e)', path] / rps['(d)', path]:.2f}x" for path in (PREDICT, V2))
        )
    print()

    passed = [
        goal(
            f"service {path} throughput >= {SHARE_OF_LEAN_THROUGHPUT:.0%} of (b)'s",
            rps["(d)", path] >= SHARE_OF_LEAN_THROUGHPUT * rps["(b)", path],
            f"{rps['(d)', path] / rps['(b)', path]:.0%}",
        )
        for path in (PREDICT, V2)
    ]
    passed.append(
        goal(
            f"service {PREDICT} throughput >= {TIMES_MLFLOW_THROUGHPUT}x (c)'s",
            rps["(d)", PREDICT] >= TIMES_MLFLOW_THROUGHPUT * rps["(c)", INVOCATIONS],
            f"{rps['(d)', PREDICT] / rps['(c)', INVOCATIONS]:.1f}x",
        )
    )
    passed += [
        goal(
            f"service {path} p99 <= {TIMES_LEAN_P99}x (b)'s",
            p99["(d)", path] <= TIMES_LEAN_P99 * p99["(b)", path],
            f"{p99['(d)', path] / p99['(b)', path]:.1f}x",
        )
        for path in (PREDICT, V2)
    ]
    failures = sum(load.failures for key in services for load in results[key].loads.values())
    passed.append(goal(f"zero failed requests on {' and '.join(services)}", failures == 0, f"{failures:,} failed"))
    passed += [_no_lost_rows(key, results[key], args.connections) for key in services]
    print(
        "\ncontext: (b)/(a) throughput "
        + ", ".join(f"{path} {rps['(b)', path] / rps['(a)', path]:.0%}" for path in (PREDICT, V2))
    )
    sys.exit(0 if all(passed) else 1)


if __name__ == "__main__":
    main()
