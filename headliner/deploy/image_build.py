"""Podman for the project's images: the environment its commands run in (the project's containers.conf), and
the service image of serving/Dockerfile built, by `python run.py image build` and by the `containers` stack
before a deployment when this checkout's image is missing (so `--pipeline all` there needs no build first)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from headliner.deploy.service_image import BASE_IMAGE, IGNORE_FILE
from headliner.errors import StackSetupError
from headliner.spec import PROJECT_ROOT

CONTAINERS_CONF = PROJECT_ROOT / ".podman" / "containers.conf"  # scripts/podman-setup.sh writes it
DOCKERFILE = PROJECT_ROOT / "serving" / "Dockerfile"
STAGING_DIR = PROJECT_ROOT / ".image-build"  # gitignored; the Dockerfile's `model` target copies model.onnx
SERVICE_TARGET, MODEL_TARGET = "service", "model"  # the model read from the registry; one file baked in


def podman_environment() -> dict[str, str]:
    """This process's environment with CONTAINERS_CONF set to the project's (runc, ulimits; see
    scripts/podman-setup.sh), unless the caller set one; refused when podman or that file is missing."""
    conf = os.environ.get("CONTAINERS_CONF") or str(CONTAINERS_CONF)
    if shutil.which("podman") is None or not Path(conf).is_file():
        raise StackSetupError("podman is not set up here: run scripts/podman-setup.sh")
    return {**os.environ, "CONTAINERS_CONF": conf}


def image_exists(image: str, env: dict[str, str]) -> bool:
    return subprocess.run(["podman", "image", "exists", image], env=env).returncode == 0


def image_size(image: str, env: dict[str, str]) -> int:
    """The image's size in bytes, as `podman images` shows it."""
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", image], env=env, capture_output=True, text=True
    )
    return int(out.stdout.strip())


def ensure_base_image(base_image: str, env: dict[str, str], echo: Callable[[str], None] = print) -> None:
    """Build the project's base image with scripts/base-image.sh when it is the one asked for and missing
    (any other base is podman's to find, e.g. python:3.11-slim from a registry)."""
    if base_image != BASE_IMAGE or image_exists(base_image, env):
        return
    echo(f"{base_image} missing: building it with scripts/base-image.sh (about a minute)")
    script = PROJECT_ROOT / "scripts" / "base-image.sh"
    if subprocess.run([str(script)], env={**env, "HEADLINER_BASE_IMAGE": base_image}).returncode != 0:
        raise StackSetupError(f"{script.name} failed to build {base_image} (see above)")


def build_command(tag: str, target: str, base_image: str, no_cache: bool = False) -> list[str]:
    """`podman build` of one target of serving/Dockerfile, from the project root. Docker format, since
    podman drops HEALTHCHECK from OCI images."""
    return [
        "podman",
        "build",
        "--format",
        "docker",
        "--file",
        str(DOCKERFILE),
        "--ignorefile",
        str(IGNORE_FILE),
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--target",
        target,
        "--tag",
        tag,
        *(["--no-cache"] if no_cache else []),
        str(PROJECT_ROOT),
    ]


def build_image(
    tag: str,
    target: str,
    base_image: str = BASE_IMAGE,
    no_cache: bool = False,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
) -> float:
    """Build `target` as `tag` (the base first if missing); the seconds the build itself took."""
    env = podman_environment()
    ensure_base_image(base_image, env, echo)
    start = time.perf_counter()
    done = subprocess.run(
        build_command(tag, target, base_image, no_cache), env=env, capture_output=quiet, text=True, cwd=PROJECT_ROOT
    )
    if done.returncode != 0:
        detail = f":\n{done.stdout[-3000:]}{done.stderr[-3000:]}" if quiet else ""
        raise StackSetupError(
            f"podman build of {tag} failed (exit {done.returncode}); leftovers: podman ps -a --external{detail}"
        )
    return time.perf_counter() - start


def ensure_service_image(image: str, echo: Callable[[str], None] = print) -> bool:
    """Build the registry-reading service image as `image` when podman has none of that name; whether it
    built. With the layers of an earlier build cached, a code change rebuilds in seconds."""
    if image_exists(image, podman_environment()):
        return False
    echo(f"Building the service image of this checkout, {image} (the first build takes a minute or two)")
    seconds = build_image(image, SERVICE_TARGET, quiet=True, echo=echo)
    echo(f"Built {image} in {seconds:.0f} s")
    return True


def stage_model(data: bytes) -> Path:
    """The ONNX file the `model` target bakes in, in the gitignored staging folder."""
    STAGING_DIR.mkdir(exist_ok=True)
    path = STAGING_DIR / "model.onnx"
    path.write_bytes(data)
    return path
