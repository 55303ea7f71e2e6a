"""The service image's content tag: one value for one checkout, computed alike in a git checkout and in a
copy without git (a step's code archive), changed by any byte of what the image copies and by nothing else;
and the deployers name it."""

import shutil
import subprocess
from pathlib import Path

import pytest

from headliner.deploy.service_image import REPOSITORY, build_context_paths, service_image, source_tag
from headliner.spec import PROJECT_ROOT


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture()
def checkout(tmp_path) -> Path:
    """A small git checkout with the build context's layout: a module, the service, a config, the lock."""
    root = tmp_path / "checkout"
    (root / "serving").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "serving" / "Dockerfile.dockerignore", root / "serving")
    for name, text in {
        "headliner/__init__.py": '"""x"""\n',
        "headliner/model.py": "A = 1\n",
        "serving/service.py": "B = 2\n",
        "configs/use_cases/jukebox.yaml": "name: jukebox\n",
        "materializers/__init__.py": "",
        "requirements.txt": "zenml==0.98.0\n",
        "run.py": "print()\n",
        "docs/index.md": "# not copied into the image\n",
        ".gitignore": "__pycache__/\n*.pyc\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    _git(root, "init", "-q")
    _git(root, "add", ".")
    return root


def test_the_build_context_is_what_the_ignore_file_keeps_less_the_staged_model():
    assert build_context_paths() == ["requirements.txt", "serving", "headliner", "materializers", "configs", "run.py"]


def test_the_tag_is_the_same_with_and_without_git_and_ignores_byte_code(checkout, tmp_path):
    tag = source_tag(checkout)
    assert tag.startswith("src-") and len(tag) == len("src-") + 12
    (checkout / "headliner" / "__pycache__").mkdir()
    (checkout / "headliner" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\x00")
    (checkout / "docs" / "index.md").write_text("# docs change, the image does not\n")
    assert source_tag(checkout) == tag

    archive = tmp_path / "archive"  # as a step finds its code: the files, no .git, byte code beside them
    shutil.copytree(checkout, archive, ignore=shutil.ignore_patterns(".git"))
    assert not (archive / ".git").exists() and (archive / "headliner" / "__pycache__").is_dir()
    assert source_tag(archive) == tag


def test_any_copied_byte_or_new_file_changes_the_tag_and_a_git_ignored_file_does_not(checkout):
    tag = source_tag(checkout)
    (checkout / "serving" / "service.py").write_text("B = 3\n")  # modified, not committed
    changed = source_tag(checkout)
    assert changed != tag
    (checkout / "headliner" / "new.py").write_text("C = 1\n")  # untracked: ZenML's code archive takes it
    assert source_tag(checkout) not in (tag, changed)
    after_new = source_tag(checkout)
    (checkout / "headliner" / "leftover.pyc").write_bytes(b"\x01")  # git-ignored
    assert source_tag(checkout) == after_new
    (checkout / "headliner" / "new.py").unlink()
    (checkout / "serving" / "service.py").write_text("B = 2\n")
    assert source_tag(checkout) == tag


def test_the_image_name_takes_a_repository_and_a_tag_or_this_checkouts_tag():
    assert service_image("localhost:5001/headliner-service", "src-0123456789ab") == (
        "localhost:5001/headliner-service:src-0123456789ab"
    )
    assert service_image() == f"{REPOSITORY}:{source_tag(PROJECT_ROOT)}"


def test_both_deployers_name_this_checkouts_image_unless_a_tag_is_configured():
    from headliner.stacks.containers.deployer import ContainerDeployerConfig
    from headliner.stacks.kubernetes.manifests import ServingDeploymentSettings, serving_manifests

    tag = source_tag(PROJECT_ROOT)
    assert ContainerDeployerConfig().image_repository == REPOSITORY
    pod = serving_manifests(ServingDeploymentSettings(), "jukebox", "production")[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"localhost:5001/headliner-service:{tag}"
    pinned = ServingDeploymentSettings(image_repository="registry.example.com/ml/headliner", image_tag="v7")
    pod = serving_manifests(pinned, "jukebox", "3")[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.com/ml/headliner:v7"
