"""Servers in processes of their own (a model service from `bentoml serve` or `python run.py serve`, the
ZenML server, the MLflow UI), each started on a free port, ready once that process itself answers its
readiness path there, stopped with Ctrl+C as a user stops it."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import httpx
import pytest

from headliner.deploy.foreground import serve_command
from headliner.spec import PROJECT_ROOT
from tests.helpers.ports import free_port, listens_on, port_taken

STARTUP_SECONDS = 90
STOP_SECONDS = 30


def bentoml_command(port: int) -> list[str]:
    """`bentoml serve` of the project's service on 127.0.0.1:PORT, as every launcher starts it (`python -m
    serving`); the model comes from the environment."""
    return serve_command("127.0.0.1", port)


def quick_polling_env(isolated_env: dict[str, str], folder: Path) -> dict[str, str]:
    """The environment of a `serve --stage production` service under test: none of the session's HEADLINER_
    settings, its inference log in `folder`, and the log, rollout and registry polls a test need not wait for."""
    env = {key: value for key, value in isolated_env.items() if not key.startswith("HEADLINER_")}
    env.update(
        HEADLINER_INFERENCE_LOG=str(folder / "log.sqlite"),
        HEADLINER_LOG_FLUSH_SECONDS="0.2",
        HEADLINER_ROLLOUT_POLL_SECONDS="0.2",
        HEADLINER_REGISTRY_POLL_SECONDS="0.5",
    )
    return env


class ServerProcess:
    """A server process and an HTTP client to it; subclasses name the path that answers 200 once ready."""

    READY_PATH = "/"
    NAME = "the server"

    def __init__(self, process: subprocess.Popen, port: int, output: Path):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.output = output
        self.client = httpx.Client(base_url=self.url, timeout=30, trust_env=False)

    @classmethod
    def launch(
        cls,
        command_for: Callable[[int], list[str]],
        env: dict,
        folder: Path,
        *args: Any,
        attempts: int = 3,
        **kwargs: Any,
    ) -> Self:
        """Start `command_for(port)` on a free port in its own session, its output in `folder`, and wait
        until it is ready; on another port if another program took the first one before it could. `args` and
        `kwargs` go to the constructor."""
        for attempt in range(attempts):
            port = free_port()
            output = folder / f"server-output-{attempt}.txt"
            with output.open("wb") as sink:
                process = subprocess.Popen(
                    command_for(port),
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            running = cls(process, port, output, *args, **kwargs)
            try:
                if running.wait_until_ready():
                    return running
            except BaseException:
                running.stop()
                raise
            running.client.close()
        pytest.fail(f"{attempts} free ports were taken by other programs before {cls.NAME} could bind one")

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_until_ready(self) -> bool:
        """True once this process listens on its port and answers READY_PATH; False if it exited because
        another program holds the port; fails the test on any other exit or after STARTUP_SECONDS."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if port_taken(self.text(), self.port):
                    return False
                pytest.fail(f"{self.NAME} exited with {self.process.returncode} while starting:\n{self.text()[-6000:]}")
            if listens_on(self.process.pid, self.port):
                try:
                    if self.client.get(self.READY_PATH, timeout=2).status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
        pytest.fail(f"{self.NAME} was not ready after {STARTUP_SECONDS} s:\n{self.text()[-6000:]}")

    def stop(self) -> int:
        """Ctrl+C, as a user stops it; kill the process group only if that does not end it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
                pytest.fail(f"{self.NAME} did not stop within {STOP_SECONDS} s of SIGINT:\n{self.text()[-6000:]}")
        self.client.close()
        return self.process.returncode


class RunningService(ServerProcess):
    """A model service, and the requests that reached a scoring endpoint."""

    READY_PATH = "/v2/health/ready"
    NAME = "the service"

    def __init__(self, process: subprocess.Popen, port: int, output: Path, log_url: str, token: str | None = None):
        super().__init__(process, port, output)
        self.log_url = log_url
        self.authorized = {"Authorization": f"Bearer {token}"} if token else {}
        self.scored: list[tuple[str, int, str]] = []  # (endpoint, status, request id) of logged requests

    def score(self, endpoint: str, path: str, headers: dict | None = None, **kwargs) -> httpx.Response:
        """A request to /predict or v2 infer that passes auth: the app logs it, whatever its status."""
        response = self.client.post(path, headers={**self.authorized, **(headers or {})}, **kwargs)
        self.scored.append((endpoint, response.status_code, response.headers["x-request-id"]))
        return response


def launch_wine_production(isolated_env: dict[str, str], folder: Path, *options: str) -> RunningService:
    """`python run.py serve --stage production` of the wine use case (`options` added), its polls quick and its
    inference log in `folder`; the environment it runs in is its `env`."""
    env = quick_polling_env(isolated_env, folder)

    def command(port: int) -> list[str]:
        return [
            sys.executable, "run.py", "serve", "--stage", "production", "--config", "configs/use_cases/wine.yaml",
            *options, "--port", str(port),
        ]  # fmt: skip

    running = RunningService.launch(command, env, folder, f"sqlite:///{folder / 'log.sqlite'}")
    running.env = env
    return running
