"""The service image's name: `python run.py image build --registry` tags the image of serving/Dockerfile with
a tag made from its build context's content, and the deployers that run it (the `containers` stack's, the
Kubernetes one's) name the same tag, so a deployment runs the code it was built from and a changed checkout
never runs a stale image."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from headliner.spec import PROJECT_ROOT

REPOSITORY = "localhost/headliner-service"  # podman's name for a local image without a registry
BASE_IMAGE = "localhost/headliner-base:bookworm"  # the parent of the service and steps images: scripts/base-image.sh
IGNORE_FILE = PROJECT_ROOT / "serving" / "Dockerfile.dockerignore"
TAG_PREFIX = "src-"


def build_context_paths(ignore_file: Path = IGNORE_FILE) -> list[str]:
    """The project paths the image copies: the ignore file's `!path` exceptions, less the staged model (the
    `model` target's, which the `service` image does not hold)."""
    lines = (line.strip() for line in ignore_file.read_text().splitlines())
    return [line[1:] for line in lines if line.startswith("!") and not line.startswith("!.image-build")]


def _source_files(root: Path, paths: list[str]) -> list[str]:
    """The files under `paths`, relative to `root`, as ZenML's code archive takes them: git's tracked and
    untracked files less the ignored ones in a git checkout; else every file but Python's byte code (a step
    running from that archive, which has no .git, finds the same list)."""
    if (root / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *paths],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return sorted({name for name in listed.split("\0") if name and (root / name).is_file()})
    found: set[str] = set()
    for path in paths:
        top = root / path
        candidates = [top] if top.is_file() else top.rglob("*")
        for file in candidates:
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                found.add(file.relative_to(root).as_posix())
    return sorted(found)


def source_tag(root: Path = PROJECT_ROOT) -> str:
    """`src-` and 12 hex digits of the SHA-256 over the build context's files (names and bytes): the same for
    the same code, whichever machine or container computes it."""
    digest = hashlib.sha256()
    for name in _source_files(root, build_context_paths(root / IGNORE_FILE.relative_to(PROJECT_ROOT))):
        digest.update(name.encode() + b"\0")
        digest.update((root / name).read_bytes() + b"\0")
    return f"{TAG_PREFIX}{digest.hexdigest()[:12]}"


def service_image(repository: str = REPOSITORY, tag: str | None = None) -> str:
    """`repository:tag`, the tag this checkout's build gets unless one is given."""
    return f"{repository}:{tag or source_tag()}"
