"""The `containers` stack's pure helpers: the pipelines' Docker settings, the Docker-API socket's address,
stopping a socket that was never started, and what the container deployer runs."""

import subprocess
import sys
from pathlib import Path

from headliner.stacks.containers.deployer import container_name, model_file, service_environment
from headliner.stacks.containers.podman import docker_host, socket_answers, stop_socket
from pipelines import docker_settings


def test_docker_settings_build_the_steps_dockerfile_and_install_nothing_on_top() -> None:
    settings = docker_settings.docker_settings("localhost/some-base:1")
    assert settings.dockerfile == str(docker_settings.STEPS_DOCKERFILE)
    build = settings.parent_image_build_config
    assert build.build_options.build_args == {"BASE_IMAGE": "localhost/some-base:1"}
    assert Path(build.dockerignore).read_text().split("\n")[-3:-1] == ["*", "!requirements.txt"]  # only the lock
    assert settings.parent_image is None and settings.requirements is None
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


def test_the_service_container_serves_the_exported_file_and_logs_in_the_local_stores(tmp_path: Path) -> None:
    stores = tmp_path / "local_stores"
    path = model_file(stores, "jukebox", "3")
    assert path == stores / "headliner" / "deployed" / "jukebox-v3.onnx"
    assert service_environment(path, stores, workers=3) == {
        "HEADLINER_MODEL_FILE": str(path),
        "HEADLINER_INFERENCE_LOG": f"sqlite:///{stores}/headliner/inference_log.sqlite",
        "HEADLINER_WORKERS": "3",
    }
    assert container_name("jukebox", "3") == "headliner-jukebox-v3"
