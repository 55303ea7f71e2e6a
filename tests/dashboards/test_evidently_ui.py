"""The Evidently UI over the monitoring workspace, as a person opens it: two monitoring runs of jukebox added to
a workspace, `python run.py monitoring-ui --workspace ...` serving it on a free port of 127.0.0.1, and the
model's dashboard in Chromium showing every panel with a point per run on each of its lines. Writes a
screenshot of the dashboard to docs/screenshots/evidently-workspace.png (docs/monitoring.md shows it)."""

import sys

import pytest

from headliner.spec import PROJECT_ROOT
from tests.helpers.browser import chromium
from tests.helpers.evidently_workspace import record_two_runs
from tests.helpers.service import ServerProcess
from tests.unit.test_evidently_workspace import PANELS

SCREENSHOT = PROJECT_ROOT / "docs" / "screenshots" / "evidently-workspace.png"
MARK = "[class*='MuiMarkElement-root']"  # a data point of a line of Evidently's charts
LINE = "path[class*='MuiLineElement-root']"


class EvidentlyUI(ServerProcess):
    READY_PATH = "/api/version"
    NAME = "the Evidently UI"


@pytest.fixture(scope="module")
def workspace(jukebox_spec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("evidently-ui") / "workspace"
    records = record_two_runs(jukebox_spec, folder)
    return folder, records[0].project_id


@pytest.fixture(scope="module")
def evidently_ui(workspace, isolated_env, tmp_path_factory):
    folder, _ = workspace

    def command(port: int) -> list[str]:
        return [sys.executable, "run.py", "monitoring-ui", "--workspace", str(folder), "--port", str(port)]

    ui = EvidentlyUI.launch(command, isolated_env, tmp_path_factory.mktemp("evidently-ui-output"))
    yield ui
    assert ui.stop() in (0, -2), ui.text()[-3000:]


def test_the_project_is_listed_by_the_model_name(evidently_ui, workspace):
    _, project_id = workspace
    projects = evidently_ui.client.get("/api/projects").json()
    assert [(p["id"], p["name"]) for p in projects] == [(project_id, "jukebox")]
    assert f"http://127.0.0.1:{evidently_ui.port}" in evidently_ui.text()


def test_the_dashboard_shows_every_panel_with_a_point_per_run(evidently_ui, workspace, jukebox_spec):
    _, project_id = workspace
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.goto(f"{evidently_ui.url}/projects/{project_id}")
        for title in PANELS:
            page.get_by_role("heading", name=title, exact=True).wait_for(timeout=30_000)
        page.locator(MARK).nth(2 * len(jukebox_spec.feature_names)).wait_for(timeout=30_000)
        seen = {}
        cards = page.locator(".MuiCard-root")
        for index in range(cards.count()):
            card = cards.nth(index)
            seen[card.locator("h5").inner_text()] = (card.locator(LINE).count(), card.locator(MARK).count())
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert list(seen) == PANELS
    features = len(jukebox_spec.feature_names)
    # Lines with a figure in both runs; equal_opportunity/average_odds and live performance have one point.
    assert seen["Share of drifted features"] == (1, 2)
    assert seen["Drift score per feature"] == (features, 2 * features)
    assert seen["Predicted-class drift"] == (1, 2)
    assert seen["Rejected-request share"] == (1, 2)
    fairness_lines, fairness_points = seen["Fairness"]
    assert fairness_lines == 4 and fairness_points == 2 + 2 + 1 + 1
    performance_lines, performance_points = seen["Live and estimated performance"]
    assert performance_lines == 3 and performance_points == 1 + 2 + 2
