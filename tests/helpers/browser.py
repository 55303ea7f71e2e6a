"""Headless Chromium for the browser tests: Debian's `chromium` (scripts/install_test_tools.sh installs it)
driven by Playwright's Python API, which never downloads a browser. A missing browser or Playwright fails
the test with the command that installs it; it is never a skip."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("HEADLINER_CHROMIUM", "/usr/bin/chromium"))


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright `Browser`), closed afterwards."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: run scripts/install_test_tools.sh (Debian's chromium and fonts), "
            "or set HEADLINER_CHROMIUM to a Chromium binary"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright's Python package is missing: pip install -r requirements-dev.txt (scripts/test.sh does)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()
