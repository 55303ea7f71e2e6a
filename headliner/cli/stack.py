"""Stacks from the command line: `stack-import` (a stack file of stack_configs/, with the project's flavors
registered first) and `kubernetes-manifests` (the Kubernetes stack's dry run: what it would apply)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from headliner.cli.common import (
    CONFIG_OPTION,
    RUN_CONFIG_HELP,
    STAGE_OPTION,
    VERSION_OPTION,
    fail,
    load_spec,
    project_path,
    run_config_path,
    set_quiet_defaults,
    version_choice,
)


@click.command("stack-import")
@click.argument("stack_file", type=click.Path(dir_okay=False))
@click.option("--set", "activate", is_flag=True, help="Make it the active stack.")
def stack_import(stack_file: str, activate: bool) -> None:
    """Import a stack file of stack_configs/ (zenml stack import), registering the project's flavors it names."""
    set_quiet_defaults()
    from headliner.errors import HeadlinerError
    from headliner.stacks.setup import import_stack_file

    try:
        name = import_stack_file(project_path(stack_file), activate)
    except HeadlinerError as exc:
        fail(str(exc))
    click.echo(f"Stack '{name}' imported" + (" and active" if activate else f"; activate it: zenml stack set {name}"))


def write_manifests(folder: Path, manifests: list[dict[str, Any]]) -> None:
    """One YAML file per object, named by its kind and name."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for manifest in manifests:
        (folder / f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml").write_text(
            yaml.safe_dump(manifest, sort_keys=False)
        )


@click.command("kubernetes-manifests")
@CONFIG_OPTION
@STAGE_OPTION
@VERSION_OPTION
@click.option(
    "--stack", "stack_name", default="kubernetes", show_default=True, help="The Kubernetes stack to render for."
)
@click.option(
    "--what",
    "part",
    type=click.Choice(["all", "deployer", "orchestrator"]),
    default="all",
    show_default=True,
    help="deployer: what the model deployer applies to serve the version or stage; orchestrator: what one run of each "
    "pipeline creates (token Secret, orchestrator Job, one Job per step); all: both.",
)
@click.option(
    "--zenml-url", help="The ZenML server the pipeline pods talk to (default: the model deployer's zenml_server_url)."
)
@click.option(
    "--run-config",
    type=click.Path(dir_okay=False),
    help=RUN_CONFIG_HELP,
)
@click.option(
    "--output", type=click.Path(file_okay=False), help="Also write one YAML file per object into this folder."
)
def kubernetes_manifests(
    config: str,
    stage: str | None,
    version: str | None,
    stack_name: str,
    part: str,
    zenml_url: str | None,
    run_config: str | None,
    output: str | None,
) -> None:
    """Dry run of the Kubernetes stack: print (YAML) the objects its model deployer would apply for a version or
    stage and those its orchestrator would create for a run of each pipeline, validated against the Kubernetes
    schemas, and (on stderr) the images they name: what to push to the cluster's registry first; nothing is
    applied, no cluster is needed."""
    set_quiet_defaults()
    spec = load_spec(config)
    chosen = version_choice(stage, version)
    import yaml

    from headliner.errors import HeadlinerError
    from headliner.stacks.kubernetes.dry_run import dry_run, images_named
    from headliner.stacks.kubernetes.manifests import KUBERNETES_VERSION

    try:
        groups = dry_run(stack_name, spec, chosen, run_config_path(run_config, spec), part, zenml_url)
    except HeadlinerError as exc:
        fail(str(exc))
    except ValueError as exc:  # a manifest the Kubernetes schemas reject
        fail(f"invalid manifest: {exc}")
    click.echo(
        "---\n".join(
            f"# {group}: {len(manifests)} objects\n" + yaml.safe_dump_all(manifests, sort_keys=False)
            for group, manifests in groups.items()
        ),
        nl=False,
    )
    manifests = [manifest for group in groups.values() for manifest in group]
    if output:
        write_manifests(Path(output), manifests)
    for name in images_named(manifests):
        click.echo(f"# image: {name}", err=True)
    click.echo(
        f"# {len(manifests)} objects valid against the Kubernetes {KUBERNETES_VERSION} schemas; nothing was applied",
        err=True,
    )
