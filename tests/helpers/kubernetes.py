"""What the tests of the kubernetes stack's dry run share: the secrets its stack file names (test values)
and the images `python run.py kubernetes-manifests` lists."""

import subprocess

SECRETS = {
    "headliner_s3": {"aws_access_key_id": "test-key", "aws_secret_access_key": "test-secret"},
    "headliner_mlflow": {"username": "test-user", "password": "test-password"},
}
CREATE_SECRETS = (
    "from zenml.client import Client\n"
    f"for name, values in {SECRETS!r}.items():\n"
    "    Client().create_secret(name, values)\n"
)


def images_listed(result: subprocess.CompletedProcess) -> list[str]:
    """The `# image: NAME` lines `kubernetes-manifests` writes to stderr, in order."""
    return [line.removeprefix("# image: ") for line in result.stderr.splitlines() if line.startswith("# image: ")]
