"""The `containers` stack's pure helpers: the steps image's tag follows the lock, the Docker-API socket's
address, and stopping a socket that was never started."""

import re
import subprocess
import sys
from pathlib import Path

from headliner.stacks.containers.podman import docker_host, socket_answers, stop_socket
from pipelines import docker_settings


def test_steps_image_tag_is_the_lock_hash(tmp_path: Path, monkeypatch) -> None:
    lock = tmp_path / "requirements.txt"
    lock.write_text("zenml==0.98.0\n")
    monkeypatch.setattr(docker_settings, "LOCK_FILE", lock)
    first = docker_settings.steps_image()
    assert re.fullmatch(r"localhost/headliner-steps:[0-9a-f]{12}", first)
    assert docker_settings.steps_image() == first  # unchanged lock: the same image, reused
    lock.write_text("zenml==0.98.0\nmlflow==3.17.2\n")
    assert docker_settings.steps_image() != first  # new lock: a new image


def test_docker_settings_build_on_the_steps_image_and_install_nothing() -> None:
    settings = docker_settings.docker_settings()
    assert settings.parent_image == docker_settings.steps_image()
    assert settings.requirements is None
    assert not settings.install_stack_requirements
    assert settings.python_package_installer.value == "pip"  # the steps image has no uv
    assert not settings.allow_including_files_in_images  # code from the artifact store: the image is reused


def test_docker_host_is_an_absolute_unix_address(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert docker_host(Path("api.sock")) == f"unix://{tmp_path.resolve()}/api.sock"


def test_no_socket_file_does_not_answer(tmp_path: Path) -> None:
    assert socket_answers(tmp_path / "none.sock") is False


def test_stop_socket_ends_the_recorded_process_once(tmp_path: Path) -> None:
    socket, pid_file = tmp_path / "api.sock", tmp_path / "api.pid"
    assert stop_socket(socket) is False  # never started
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pid_file.write_text(f"{process.pid}\n")
    assert stop_socket(socket) is True
    assert process.wait(timeout=10) == -15  # SIGTERM
    assert not pid_file.exists()
    assert stop_socket(socket) is False
