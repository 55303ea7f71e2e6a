"""`model-card NAME --version N`: print a model version's card (Markdown or HTML), the document a reviewer
reads before approving a promotion, as the newest `model_card` artifact of the version holds it."""

from __future__ import annotations

from pathlib import Path

import click

from headliner.cli.promote import governed


@click.command("model-card")
@click.argument("name")
@click.option("--version", required=True, type=click.IntRange(min=1), help="The model version's number.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["markdown", "html"]),
    default="markdown",
    show_default=True,
    help="Markdown (for a terminal or a pull request) or a static HTML page.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the card to this file.")
def model_card(name: str, version: int, output_format: str, out: Path | None) -> None:
    """Print the model card of version N of model NAME: use case (the classes, or the target with its unit),
    data, candidates, test metrics beside the baseline and gates, per-group and fairness figures (classifiers),
    explanations, limitations, governance history, the ONNX file's hash."""
    from headliner.governance.model_card import load_model_card

    card = governed(lambda: load_model_card(name, version))
    text = card.to_markdown() if output_format == "markdown" else card.to_html()
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot write {out}: {exc.strerror}", param_hint="--out") from None
    click.echo(f"Model card of {name} v{version} written to {out}")
