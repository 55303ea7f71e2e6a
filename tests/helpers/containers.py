"""Containers the tests run with podman (the project's CONTAINERS_CONF): an image started on a free port of
127.0.0.1 (published, or on the host's network to reach the servers there), ready once that port answers its
readiness path, stopped with SIGTERM (`podman stop`) as a container runtime stops it, then removed with its
volumes; its logs kept for failure messages."""

import subprocess
import time
import uuid
from collections.abc import Sequence
from typing import Self

import httpx
import pytest

from headliner.deploy.image_build import podman_environment
from tests.helpers.ports import free_port

STARTUP_SECONDS = 120
STOP_SECONDS = 30
# The service image's command on the host's network, where no port is published: it listens on 127.0.0.1:{port}.
SERVICE_ON_HOST_NETWORK = ("python", "-m", "serving", "--host", "127.0.0.1", "--port", "{port}")


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """One podman command with the project's settings; fails the test with its output when `check` and it fails."""
    done = subprocess.run(["podman", *args], env=podman_environment(), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(
            f"podman {' '.join(args)} exited with {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done


def unique_name(prefix: str) -> str:
    """A container or volume name no other run uses (sessions on one machine share podman's state)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def volume_path(volume: str) -> str:
    """The host folder of a named volume (rootful podman: readable by the test)."""
    return str(podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip())


class RunningContainer:
    """A detached container answering on 127.0.0.1:`port`, and an HTTP client to it."""

    def __init__(self, name: str, port: int, ready_path: str):
        self.name = name
        self.port = port
        self.ready_path = ready_path
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=30, trust_env=False)

    @classmethod
    def launch(
        cls,
        image: str,
        env: dict[str, str] | None = None,
        volumes: dict[str, str] | None = None,
        container_port: int = 3000,
        ready_path: str = "/v2/health/ready",
        name_prefix: str = "headliner-test",
        attempts: int = 3,
        host_network_command: Sequence[str] | None = None,
    ) -> Self:
        """`podman run -d` of `image` with `env` (-e) and `volumes` (volume or host path -> container path),
        waiting until it is ready; on another port if another program took the first one meanwhile. With
        `host_network_command` (e.g. SERVICE_ON_HOST_NETWORK) the container shares the host's network, to reach
        servers on its 127.0.0.1, and runs that command, `{port}` replaced by the free port, instead of
        publishing `container_port`."""
        options = [f"--env={key}={value}" for key, value in (env or {}).items()]
        options += [f"--volume={source}:{target}" for source, target in (volumes or {}).items()]
        for _ in range(attempts):
            port, name = free_port(), unique_name(name_prefix)
            if host_network_command is None:
                run = ["-p", f"127.0.0.1:{port}:{container_port}", *options, image]
            else:
                run = ["--network", "host", *options, image, *(arg.format(port=port) for arg in host_network_command)]
            started = podman("run", "-d", "--name", name, *run, check=False)
            if started.returncode != 0:
                podman("rm", "-f", name, check=False)
                if "address already in use" in started.stderr:
                    continue
                pytest.fail(f"podman run {image} failed:\n{started.stderr[-3000:]}")
            running = cls(name, port, ready_path)
            try:
                running.wait_until_ready()
            except pytest.fail.Exception:
                port_taken = "address already in use" in running.logs().lower()  # on the host's network
                running.remove()
                if port_taken:
                    continue
                raise
            except BaseException:
                running.remove()
                raise
            return running
        pytest.fail(f"{attempts} free ports were taken by other programs before {image} could publish one")

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def inspect(self, template: str) -> str:
        return str(podman("inspect", "--format", template, self.name).stdout.strip())

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def wait_until_ready(self) -> float:
        """Seconds until `ready_path` answers 200 through the published port; fails the test if the container
        exits first or after STARTUP_SECONDS."""
        start = time.monotonic()
        while time.monotonic() - start < STARTUP_SECONDS:
            try:
                if self.client.get(self.ready_path, timeout=2).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                if not self.running():
                    pytest.fail(f"container {self.name} exited while starting:\n{self.logs()[-6000:]}")
            time.sleep(0.1)
        pytest.fail(f"container {self.name} was not ready after {STARTUP_SECONDS} s:\n{self.logs()[-6000:]}")

    def stop(self) -> int:
        """SIGTERM (`podman stop`; SIGKILL after STOP_SECONDS); the container's exit code."""
        podman("stop", "--time", str(STOP_SECONDS), self.name, timeout=STOP_SECONDS + 30)
        return int(self.inspect("{{.State.ExitCode}}"))

    def remove(self) -> None:
        """Remove the container (stopping it hard if it still runs) with its anonymous volumes (an image's
        VOLUME not mounted by name), and close the client."""
        podman("rm", "-f", "--volumes", "--time", "0", self.name, check=False)
        self.client.close()
