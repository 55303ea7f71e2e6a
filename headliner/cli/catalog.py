"""`catalog --out DIR`: write the registered model versions as a static, self-contained STAC catalog (one
collection per model, one item per version with its ONNX file) and validate it offline, so models are found
and compared in a STAC browser the way SharingHub lists them."""

from __future__ import annotations

import click

from headliner.cli.common import PIPELINE_COMPONENTS, fail, set_quiet_defaults


@click.command("catalog")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write the catalog to: new or empty, or a catalog this command wrote (it is replaced).",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="NAME",
    help="A registered model to include (repeat for several). Default: every registered model.",
)
@click.option(
    "--validate/--no-validate",
    default=True,
    show_default=True,
    help="Validate every object against the STAC core, MLM, file and version schemas (offline) after writing.",
)
def catalog(out: str, models: tuple[str, ...], validate: bool) -> None:
    """Write every registered version as a STAC item (Machine Learning Model extension) with its ONNX file."""
    set_quiet_defaults()
    from headliner.errors import HeadlinerError
    from headliner.governance.catalog import (
        check_catalog_folder,
        registered_versions,
        validate_catalog,
        write_catalog,
    )
    from headliner.stacks.setup import ensure_stack

    try:
        check_catalog_folder(out)  # before the registry is read
        ensure_stack(PIPELINE_COMPONENTS["training"])  # the model registry gives the MLflow links
        versions, descriptions = registered_versions(list(models) or None, progress=click.echo)
        if not versions:
            fail(
                "no registered model version with an ONNX file: an empty catalog would describe nothing; "
                "train one first (python run.py --pipeline training)"
            )
        summary = write_catalog(versions, out, descriptions)
    except HeadlinerError as exc:
        fail(str(exc))
    per_model = ", ".join(f"{model}: {len(ids)}" for model, ids in summary.items.items())
    click.echo(
        f"Wrote a STAC catalog of {summary.item_count} version(s) in {len(summary.items)} collection(s) "
        f"({per_model}) to {summary.root}"
    )
    if not validate:
        return
    problems = validate_catalog(out)
    if problems:
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        fail(f"the catalog in {out} has {len(problems)} schema problem(s), listed above")
    click.echo("Valid: every catalog, collection and item against the STAC core, MLM, file and version schemas.")
