"""`run.py --pipeline batch-inference --data FILE`: score a file with a registered version and print the
batch report (the file's rows, the predictions file, the inference log records)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from headliner.cli.common import echo_lines, version_text

if TYPE_CHECKING:
    from headliner.cli.runs import RunOptions
    from headliner.spec import UseCaseSpec


def score_file(spec: UseCaseSpec, data: str, version: str, output: str | None, options: RunOptions) -> None:
    """Score `data` with a registered version (number, 'latest' or stage) with the batch pipeline."""
    from headliner.cli import runs
    from headliner.model.versions import find_model_version

    number: int = find_model_version(spec.name, version).number
    click.echo(f"Scoring {data} with {version_text(spec.name, number, version)}")
    run = runs.run_batch_inference(spec, data, number, output, options)
    echo_lines(runs.batch_report(run).summary_lines())
