"""MkDocs hook: shows the screenshots the dashboards test tier writes to docs/screenshots/ (generated, never
committed) where a page says `<!-- screenshot: NAME -->`, and says how to make one that is not there."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MARKER = re.compile(r"<!-- screenshot: ([\w-]+) -->")
FOLDER = "screenshots"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    folder = Path(config.docs_dir) / FOLDER
    depth = page.file.src_uri.count("/")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if (folder / f"{name}.png").is_file():
            return f"![{name}]({'../' * depth}{FOLDER}/{name}.png)"
        return f"*No screenshot `{name}` in this build: `python -m pytest -m dashboards` makes it.*"

    return MARKER.sub(replace, markdown)
