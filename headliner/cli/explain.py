"""`explain`: what POST /explain answers, without a service: each feature's contribution to the top classes of
the songs (a classifier), or to the forecast in the target's unit (a regression model), of the items in a JSON
file (the body of /predict), from a registered version or an ONNX file, as readable text (the features ranked,
with their words and a bar) or as the endpoint's JSON."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from headliner.cli.common import PIPELINE_COMPONENTS, fail, set_quiet_defaults

if TYPE_CHECKING:
    from headliner.model.onnx_packaging import OnnxPredictor

MAX_SONGS = 1000  # as many as one /predict request may carry by default
BAR_WIDTH = 12  # characters on each side of the bar's axis


@click.command()
@click.option("--model", "model_name", help="A registered model (default: jukebox).")
@click.option(
    "--version",
    metavar="N|latest|staging|production",
    help="The registered version: a number, the newest (default), or the holder of a stage.",
)
@click.option(
    "--model-file", type=click.Path(dir_okay=False), help="Explain with this .onnx file, not a registered version."
)
@click.option(
    "--json",
    "json_file",
    required=True,
    metavar="FILE|-",
    help="The items (songs, store-weeks...): a JSON object of features or a list of them (the body of POST "
    "/predict); - reads stdin.",
)
@click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Readable text, or the JSON POST /explain answers.",
)
@click.option(
    "--features", type=click.IntRange(min=1), help="Show only the N largest contributions per class or forecast."
)
def explain(
    model_name: str | None,
    version: str | None,
    model_file: str | None,
    json_file: str,
    output: str,
    features: int | None,
) -> None:
    """Why the model answers what it does: each feature's contribution to the top classes of each song, or to
    the forecast of each item of a regression model."""
    if model_file and (version or model_name):
        raise click.UsageError("--model-file cannot be combined with --model or --version")
    if version and version not in ("latest", "staging", "production") and not version.isdigit():
        message = f"'{version}' is not a version number, latest, staging or production"
        raise click.BadParameter(message, param_hint="--version")
    body = _read_body(json_file)
    set_quiet_defaults()
    from headliner.errors import HeadlinerError
    from headliner.model.explanations import ForecastExplanation, LocalExplainer, SongExplanation, explanation_answer
    from headliner.serving.payloads import FeatureRules, RequestError

    try:
        predictor, source = _predictor(model_name or "jukebox", version or "latest", model_file)
        try:
            matrix = FeatureRules(predictor.feature_schema).songs_matrix_of(body, MAX_SONGS)
        except RequestError as exc:
            where = "stdin" if json_file == "-" else json_file
            fail(f"{where}: {exc.message}")
        explainer = LocalExplainer(predictor)
        explanations: list[SongExplanation] | list[ForecastExplanation] = (
            explainer.explain(matrix) if predictor.is_classification else explainer.explain_forecasts(matrix)
        )
    except HeadlinerError as exc:
        fail(str(exc))
    answer = explanation_answer(predictor.model_name, predictor.model_version, "cli", explanations)
    if output == "json":
        import orjson

        click.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
        return
    for line in explanation_lines(answer, source, features):
        click.echo(line)


def _read_body(json_file: str) -> bytes:
    if json_file == "-":
        return sys.stdin.buffer.read()
    try:
        with open(json_file, "rb") as handle:
            return handle.read()
    except OSError as exc:
        fail(f"--json {json_file}: {exc.strerror}")


def _predictor(model_name: str, version: str, model_file: str | None) -> tuple[OnnxPredictor, str]:
    """The model to explain with, and where it came from."""
    if model_file:
        from headliner.deploy.foreground import packaged_model

        path, predictor = packaged_model(model_file)
        return predictor, f"from {path}"
    from headliner.model.onnx_packaging import OnnxPredictor
    from headliner.model.versions import onnx_model_bytes
    from headliner.stacks.setup import ensure_stack

    ensure_stack(PIPELINE_COMPONENTS["data"])
    number, data = onnx_model_bytes(model_name, version)
    chosen = "" if version.isdigit() else f" ({version})"
    return OnnxPredictor(data), f"registered as version {number}{chosen}"


def text_bar(contribution: float, largest: float, width: int = BAR_WIDTH, visible: float = 0.00005) -> str:
    """A contribution as a bar about an axis: left of it when it lowers the answer, right when it raises it;
    `width` characters a side for the largest contribution shown; one character at least from `visible` on."""
    cells = round(width * abs(contribution) / largest) if largest > 0 else 0
    if cells == 0 and contribution != 0:
        cells = 1 if abs(contribution) >= visible else 0  # a visible change gets a visible bar
    left = " " * (width - cells) + "█" * cells if contribution < 0 else " " * width
    right = "█" * cells + " " * (width - cells) if contribution > 0 else " " * width
    return f"{left}│{right}"


def explanation_lines(answer: dict[str, Any], source: str, features: int | None = None) -> list[str]:
    """The answer of /explain as text: per item, each top class with its probability and the average it
    starts from (a classifier), or the forecast and the mean forecast it starts from (a regression model),
    then its features ranked, each with its contribution, a bar and its words."""
    from headliner.model.explanations import rounded_amount

    items = answer["explanations"]
    forecasts = bool(items) and "prediction" in items[0]
    lines = [f"Why: model '{answer['model_name']}' version {answer['model_version']} ({source})"]
    for number, item in enumerate(items, start=1):
        lines.append("")
        if len(items) > 1:
            lines.append(f"{'Item' if forecasts else 'Song'} {number} of {len(items)}")
        answers = [item] if forecasts else item["classes"]
        largest = max((abs(c["contribution"]) for entry in answers for c in entry["contributions"]), default=0.0)
        for rank, entry in enumerate(answers, start=1):
            unit = entry.get("unit", "")
            if forecasts:
                lines.append(
                    f"Forecast: {rounded_amount(entry['prediction'])} {unit}, from an average of "
                    f"{rounded_amount(entry['base_value'])} {unit}"
                )
            else:
                lines.append(
                    f"{rank}. {entry['name']} ({entry['label']}): {entry['probability']:.1%}, "
                    f"from an average of {entry['base_probability']:.1%}"
                )
            shown = entry["contributions"][:features] if features else entry["contributions"]
            for contribution in shown:
                value = contribution["contribution"]
                amount = f"{value:+9.1f} {unit}" if forecasts else f"{value * 100:+6.2f} pts"
                bar = text_bar(value, largest, visible=0.005 if forecasts else 0.00005)
                lines.append(f"   {amount} {bar} {contribution['text']}")
            hidden = len(entry["contributions"]) - len(shown)
            if hidden:
                lines.append(f"   ... and {hidden} smaller")
    scale = (
        "Amounts: the change of the forecast, in its unit"
        if forecasts
        else "Points: percentage points of the class's probability"
    )
    lines += ["", f"{scale}; bars are to one scale per {'item' if forecasts else 'song'}."]
    return lines
