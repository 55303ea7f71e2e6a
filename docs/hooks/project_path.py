"""MkDocs hook: puts the checkout on sys.path, so the CLI reference (mkdocs-click) imports headliner.cli.main
as `python run.py` does, without the project being installed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def on_config(config: Any) -> Any:
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config
