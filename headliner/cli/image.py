"""`image build`: the service image of serving/Dockerfile built with podman (docs/containers.md), either with
one model version baked in (a registered version, exported, or a given ONNX file; tagged
localhost/headliner-service:<model>-v<version>) or reading its model from the registry at start (tagged with this
checkout's content tag, src-<hash>, the tag the containers and Kubernetes deployers run)."""

from __future__ import annotations

import click

from headliner.cli.common import CONFIG_OPTION, PIPELINE_COMPONENTS, fail, load_spec, set_quiet_defaults
from headliner.deploy.service_image import BASE_IMAGE, REPOSITORY, service_image
from headliner.errors import HeadlinerError


def model_tag(model_name: str, version: str | int) -> str:
    return f"{REPOSITORY}:{model_name}-v{version}"


def run_hint(tag: str, baked: bool, model_name: str) -> str:
    """The `podman run` command that tries the image, its inference log on a named volume. A registry-reading
    container shares the host's network, where the servers stack listens (127.0.0.1), and serves on port 3000."""
    if baked:
        return f"podman run --rm -p 127.0.0.1:3000:3000 -v headliner-log:/data {tag}"
    return (
        f"podman run --rm --network host -v headliner-log:/data -e HEADLINER_MODEL={model_name} "
        "-e HEADLINER_MODEL_VERSION=production -e ZENML_STORE_URL=http://127.0.0.1:8080 "
        f"-e ZENML_STORE_API_KEY=<a service account's API key> {tag}"
    )


def push_hint(tag: str, registry: str = "localhost:5001") -> str:
    """The `podman push` that puts the image where the kubernetes stack's deployer has the cluster pull it
    (stack_configs/kubernetes.yaml: `image_repository`, a kind cluster's plain-HTTP registry by default)."""
    name = tag.rsplit("/", 1)[-1]
    return f"podman push --tls-verify=false {tag} {registry}/{name}"


@click.group()
def image() -> None:
    """Container images of the service, built with podman (docs/containers.md)."""


@image.command("build")
@CONFIG_OPTION
@click.option("--version", help="Registered version to bake in: number, 'latest' or a stage (the default: latest).")
@click.option("--model-file", type=click.Path(dir_okay=False), help="Bake in this packaged .onnx file instead.")
@click.option(
    "--registry",
    "from_registry",
    is_flag=True,
    help="Bake in no model: the image reads HEADLINER_MODEL/_VERSION from the ZenML registry at start (tag :latest).",
)
@click.option(
    "--base-image",
    default=BASE_IMAGE,
    show_default=True,
    help="Parent image (python:3.11-slim where a registry serves it); the default is built when missing.",
)
@click.option(
    "--tag",
    help=f"Image name:tag (default: {REPOSITORY}:<model>-v<version>; with --registry {REPOSITORY}:src-<hash>).",
)
@click.option("--no-cache", is_flag=True, help="Build every layer again.")
def build(
    config: str,
    version: str | None,
    model_file: str | None,
    from_registry: bool,
    base_image: str,
    tag: str | None,
    no_cache: bool,
) -> None:
    """Build the service image with podman: one model version baked in, or (--registry) reading it at start."""
    if sum((version is not None, model_file is not None, from_registry)) > 1:
        raise click.UsageError("give one of --version, --model-file and --registry")
    set_quiet_defaults()
    from headliner.deploy.image_build import (
        MODEL_TARGET,
        SERVICE_TARGET,
        build_image,
        image_size,
        podman_environment,
        stage_model,
    )

    try:
        podman_environment()  # the setup error before any export
        if from_registry:
            model_name = load_spec(config).name
            tag = tag or service_image()
            what = f"the service reading '{model_name}' from the registry at start (HEADLINER_MODEL_VERSION)"
        elif model_file:
            from headliner.deploy.foreground import packaged_model

            path, predictor = packaged_model(model_file)
            model_name = predictor.model_name
            tag = tag or model_tag(model_name, predictor.model_version)
            stage_model(path.read_bytes())
            what = f"the service with '{model_name}' version {predictor.model_version} from {path} baked in"
        else:
            from headliner.model.versions import onnx_model_bytes
            from headliner.stacks.setup import ensure_stack

            model_name = load_spec(config).name
            ensure_stack(PIPELINE_COMPONENTS["data"])
            number, data = onnx_model_bytes(model_name, version or "latest")
            tag = tag or model_tag(model_name, number)
            stage_model(data)
            what = f"the service with '{model_name}' version {number} baked in"
        seconds = build_image(
            tag, SERVICE_TARGET if from_registry else MODEL_TARGET, base_image, no_cache, echo=click.echo
        )
        size = image_size(tag, podman_environment())
    except HeadlinerError as exc:
        fail(str(exc))
    click.echo(f"Built {tag} ({size / 1e6:.0f} MB) in {seconds:.1f} s: {what}")
    click.echo("Try it (the page and POST /predict at http://127.0.0.1:3000/; Ctrl+C or podman stop ends it):")
    click.echo(f"  {run_hint(tag, not from_registry, model_name)}")
    if from_registry:
        click.echo("For a cluster (docs/stacks.md), push it where the kubernetes stack's model deployer pulls it from:")
        click.echo(f"  {push_hint(tag)}")
