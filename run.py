#!/usr/bin/env python
"""Headliner's one entry point: runs the pipelines and the project's tools from the command line
(`python run.py --help`); the commands live in headliner.cli.

It stays at the project root: run from here, `pipelines`, `steps`, `materializers` and `serving` import
as top-level packages, the way ZenML records and reloads the steps' sources.
"""

from headliner.cli.main import cli

if __name__ == "__main__":
    cli()
