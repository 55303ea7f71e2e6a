"""`generate`: write a use case's raw data source to a file (e.g. jukebox's synthetic charts in the Kaggle
format), to look at or to feed back with --data."""

from __future__ import annotations

from pathlib import Path

import click

from headliner.cli.common import CONFIG_OPTION, fail, load_spec


@click.command()
@CONFIG_OPTION
@click.option("--rows", type=click.IntRange(min=1), help="Rows to generate (default: the spec's).")
@click.option("--seed", type=int, help="Random seed (default: the spec's).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write: .csv, .csv.gz or .parquet.")
def generate(config: str, rows: int | None, seed: int | None, out: str) -> None:
    """Write the spec's raw data source to a file (jukebox: synthetic Kaggle-format charts; store_sales:
    weekly sales in the Kaggle Store Sales layout)."""
    spec = load_spec(config)
    from headliner.data.sources import load_raw_data, table_format
    from headliner.errors import HeadlinerError

    try:
        fmt = table_format(out)
        if seed is not None:
            spec = spec.model_copy(update={"source": spec.source.model_copy(update={"seed": seed})})
        frame = load_raw_data(spec, rows=rows)
    except HeadlinerError as exc:
        fail(str(exc))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    click.echo(f"Wrote {len(frame):,} rows x {frame.shape[1]} columns to {out}")
