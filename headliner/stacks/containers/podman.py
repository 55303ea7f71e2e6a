"""Podman for the `containers` stack: the Docker-API socket ZenML's local Docker orchestrator and the
container model deployer talk to (`podman system service` on a unix socket, never TCP).

Started on demand and idempotently: `python run.py ...` on the `containers` stack calls
`prepare_containers_stack` (headliner.stacks.setup), which starts the socket unless it answers and sets
DOCKER_HOST for this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from headliner.deploy.image_build import podman_environment
from headliner.errors import StackSetupError

SOCKET_START_TIMEOUT = 30.0


def socket_path() -> Path:
    """The socket of ZenML's config in use: in its local stores folder, which the local Docker orchestrator
    mounts into every step container at the same path, so a step (the deployment's) reaches it too."""
    from zenml.config.global_config import GlobalConfiguration

    return Path(GlobalConfiguration().local_stores_path) / "podman" / "api.sock"


def docker_host(socket: Path) -> str:
    """The DOCKER_HOST of the socket (unix://, an absolute path)."""
    return f"unix://{socket.resolve()}"


def socket_answers(socket: Path) -> bool:
    """Whether the Docker API answers a ping on the socket."""
    if not socket.exists():
        return False
    import docker  # type: ignore[import-untyped]  # no stubs

    try:
        client = docker.DockerClient(base_url=docker_host(socket), timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except docker.errors.DockerException:
        return False


def start_socket(socket: Path | None = None) -> str:
    """Start `podman system service` on `socket` (by default `socket_path()`) unless it answers already; set
    DOCKER_HOST in this process (so ZenML's Docker clients use it) and return it. The service runs on after this
    process (its pid in api.pid beside the socket, its output in api.log); `stop_socket` ends it."""
    socket = socket or socket_path()
    host = docker_host(socket)
    if not socket_answers(socket):
        env = podman_environment()
        socket.parent.mkdir(parents=True, exist_ok=True)
        socket.unlink(missing_ok=True)
        with (socket.parent / "api.log").open("ab") as log:
            process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", host],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives the command that started it, like a daemon
            )
        (socket.parent / "api.pid").write_text(f"{process.pid}\n")
        deadline = time.monotonic() + SOCKET_START_TIMEOUT
        while not socket_answers(socket):
            if process.poll() is not None or time.monotonic() > deadline:
                raise StackSetupError(
                    f"podman system service did not answer on {socket} (see {socket.parent / 'api.log'})"
                )
            time.sleep(0.2)
    os.environ["DOCKER_HOST"] = host
    return host


def stop_socket(socket: Path | None = None) -> bool:
    """End the service `start_socket` started on `socket` (by its recorded pid); False when none was running."""
    pid_file = (socket or socket_path()).parent / "api.pid"
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
