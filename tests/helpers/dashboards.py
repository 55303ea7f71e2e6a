"""The dashboards as a person sees them, for tests/dashboards: the ZenML server app over this session's store
(the server `zenml login --local` starts, without switching this session's client to it) and the MLflow UI,
every artifact visualization the ZenML server serves through its REST API, and each one rendered in Chromium
the way the dashboard renders it (HTML in a frame sandboxed without scripts, under the dashboard's own
Content-Security-Policy; Markdown, images and CSV tables in the page), read back as what is visible."""

import csv
import html
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.service import ServerProcess

SERVER_APP = "zenml.zen_server.zen_server_api:app"
# The dashboard shows an HTML visualization in <iframe sandbox="" srcdoc=...> of full width and 24rem height.
DASHBOARD_PANE = (1100, 384)
HARNESS_PATH = "/__headliner_visualization__"
INK_LEVEL = 235  # a pixel darker than this (0-255 grey) is content; a blank pane has none
# What the browser says when the sandbox or the Content-Security-Policy stops part of a page.
BLOCKED_MARKERS = ("Blocked script execution", "Content Security Policy", "Refused to")


class ZenMLServer(ServerProcess):
    READY_PATH = "/api/v1/info"
    NAME = "the ZenML server"


class MlflowUI(ServerProcess):
    READY_PATH = "/health"
    NAME = "the MLflow UI"


def zenml_server_command(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", SERVER_APP, "--host", "127.0.0.1", "--port", str(port)]


def zenml_server_env(env: dict[str, str], config_dir: Path) -> dict[str, str]:
    """What ZenML's local daemon server sets (zen_server/deploy/daemon): no login, its own config folder,
    and this session's local stores, hence this session's SQLite store and artifact store."""
    from zenml.config.global_config import GlobalConfiguration

    return {
        **env,
        "ZENML_CONFIG_PATH": str(config_dir),
        "ZENML_LOCAL_STORES_PATH": GlobalConfiguration().local_stores_path,
        "ZENML_SERVER": "true",
        "ZENML_SERVER_ALLOW_LOCAL_FILE_ACCESS": "true",
        "ZENML_SERVER_AUTH_SCHEME": "NO_AUTH",
        "ZENML_SERVER_DEPLOYMENT_TYPE": "local",
        "ZENML_DISABLE_DATABASE_MIGRATION": "True",
        "ZENML_SERVER_AUTO_ACTIVATE": "True",
    }


@dataclass
class Visualization:
    """One visualization of one artifact version, as the server's REST API serves it to the dashboard."""

    pipeline: str
    run: str
    step: str
    artifact: str
    artifact_version_id: str
    index: int
    type: str
    value: str

    @property
    def label(self) -> str:
        return f"{self.run} / {self.step} / {self.artifact} #{self.index} ({self.type})"


def _pages(client: httpx.Client, path: str, **params: Any) -> Iterator[dict]:
    page = 1
    while True:
        answer = client.get(path, params={**params, "page": page, "size": 100})
        answer.raise_for_status()
        body = answer.json()
        yield from body["items"]
        if page >= body["total_pages"]:
            return
        page += 1


def served_visualizations(client: httpx.Client) -> list[Visualization]:
    """Every visualization of every output artifact of every step of every run the server knows, each
    artifact version once (a cached step's output is listed under the run that made it)."""
    found = []
    seen_versions: set[str] = set()
    for run in sorted(_pages(client, "/api/v1/runs", hydrate=True), key=lambda r: r["body"]["created"]):
        pipeline = (run.get("resources") or {}).get("pipeline") or {}
        for step in _pages(client, "/api/v1/steps", pipeline_run_id=run["id"], hydrate=True):
            for name, versions in ((step.get("resources") or {}).get("outputs") or {}).items():
                for version in versions:
                    if version["id"] in seen_versions:
                        continue
                    seen_versions.add(version["id"])
                    detail = client.get(f"/api/v1/artifact_versions/{version['id']}")
                    detail.raise_for_status()
                    for index, _ in enumerate(detail.json()["metadata"]["visualizations"] or []):
                        loaded = client.get(
                            f"/api/v1/artifact_versions/{version['id']}/visualize", params={"index": index}
                        )
                        loaded.raise_for_status()
                        found.append(
                            Visualization(
                                pipeline=pipeline.get("name", "?"),
                                run=run["name"],
                                step=step["name"],
                                artifact=name,
                                artifact_version_id=version["id"],
                                index=index,
                                type=loaded.json()["type"],
                                value=loaded.json()["value"],
                            )
                        )
    return found


@dataclass
class Seen:
    """What a person sees of one visualization."""

    text: str
    images: list[tuple[int, int]]  # natural width and height of each image that loaded
    broken_images: int
    tables: int
    ink_share: float  # share of the pane's pixels (as the dashboard sizes it) that are not background
    blocked: list[str] = field(default_factory=list)  # what the sandbox or the CSP stopped

    def summary(self) -> str:
        images = ", ".join(f"{w}x{h}" for w, h in self.images) or "none"
        return (
            f"{len(self.text):,} chars of text, {self.tables} tables, images: {images}, "
            f"ink {self.ink_share:.1%} of the first pane"
        )


_READ_VISIBLE = """root => ({
    text: root.innerText,
    images: [...root.querySelectorAll('img')].map(
        i => [i.complete && i.naturalWidth > 0, i.naturalWidth, i.naturalHeight]),
    tables: root.querySelectorAll('table').length,
})"""


def _csv_table(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{cells}</table>"


def _ink_share(png: bytes) -> float:
    from PIL import Image

    grey = Image.open(io.BytesIO(png)).convert("L")
    histogram = grey.histogram()
    return sum(histogram[:INK_LEVEL]) / (grey.width * grey.height)


class DashboardRenderer:
    """One browser page on the ZenML server's origin with the dashboard's Content-Security-Policy (taken
    from the server's own answer), where each visualization is shown as the dashboard shows it."""

    def __init__(self, browser: Any, server_url: str):
        policy = httpx.get(server_url + "/", timeout=30, trust_env=False).headers.get("content-security-policy", "")
        self.context = browser.new_context(viewport={"width": DASHBOARD_PANE[0] + 100, "height": 900})
        self.page = self.context.new_page()
        self.url = server_url + HARNESS_PATH
        self._body = ""
        self._console: list[str] = []
        headers = {"content-type": "text/html; charset=utf-8"}
        if policy:
            headers["content-security-policy"] = policy
        self.page.route(self.url, lambda route: route.fulfill(status=200, headers=headers, body=self._body))
        self.page.on("console", lambda message: self._console.append(message.text))

    def close(self) -> None:
        self.context.close()

    def _show(self, body: str) -> None:
        self._body = (
            f"<!doctype html><html><head><meta charset='utf-8'></head><body style='margin:0'>{body}</body></html>"
        )
        self._console.clear()
        self.page.goto(self.url, wait_until="load")

    def render(self, visualization: Visualization, height: int = DASHBOARD_PANE[1]) -> Seen:
        """Show `visualization` in a pane of the dashboard's width and `height`, and read what is visible."""
        width = DASHBOARD_PANE[0]
        pane_style = f"width:{width}px;height:{height}px;border:0;overflow:auto;display:block"
        if visualization.type == "html":
            self._show(
                f"<iframe id='pane' sandbox='' style='{pane_style}' srcdoc=\"{html.escape(visualization.value)}\">"
            )
            root_frame = self.page.frames[1]
            visible = root_frame.evaluate(f"() => ({_READ_VISIBLE})(document.body)")
        else:
            if visualization.type == "markdown":
                import markdown

                inner = markdown.markdown(visualization.value, extensions=["tables"])
            elif visualization.type == "image":
                inner = f"<img src='data:image/png;base64,{visualization.value}' style='max-width:100%'>"
            elif visualization.type == "csv":
                inner = _csv_table(visualization.value)
            else:  # json
                inner = f"<pre>{html.escape(visualization.value)}</pre>"
            self._show(f"<div id='pane' style='{pane_style};font-family:sans-serif'>{inner}</div>")
            visible = self.page.evaluate(f"() => ({_READ_VISIBLE})(document.getElementById('pane'))")
        shot = self.page.locator("#pane").screenshot()
        return Seen(
            text=visible["text"].strip(),
            images=[(w, h) for ok, w, h in visible["images"] if ok],
            broken_images=sum(1 for ok, _, _ in visible["images"] if not ok),
            tables=visible["tables"],
            ink_share=_ink_share(shot),
            blocked=[m for m in self._console if any(marker in m for marker in BLOCKED_MARKERS)],
        )

    def screenshot(self, visualization: Visualization, path: Path, height: int = 760) -> None:
        """The pane of `visualization`, taller than the dashboard's so that a page of the docs shows more."""
        self.render(visualization, height=height)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.locator("#pane").screenshot(path=str(path))
