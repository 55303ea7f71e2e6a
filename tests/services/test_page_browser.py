"""The page for people in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright's
Python API, nothing downloaded) against the real BentoML service on 127.0.0.1. A person fills the form
with the keyboard and gets countries by name, an invalid value shows the API's message beside its
field, a preset works on a phone-sized screen, a CSV file comes back as a download, and the service
switched to the wine model shows a wine form. Screenshots go to test-artifacts/.

Missing Chromium or Playwright fails these tests with the command that installs them; they are never
skipped."""

import re
from pathlib import Path

import pandas as pd
import pytest

from headliner.model.onnx_packaging import OnnxPredictor
from headliner.spec import PROJECT_ROOT
from tests.helpers.browser import chromium
from tests.helpers.service import RunningService, bentoml_command

ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts"
TOKEN = "page-test-token"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


CARD = "<!doctype html><html><head><title>Model card</title></head><body><h1>jukebox v1: the card</h1></body></html>"


def start_service(
    model_file: Path, env: dict, folder: Path, token: str | None = None, card: str | None = None
) -> RunningService:
    env = {key: value for key, value in env.items() if not key.startswith("HEADLINER_")}
    env.update(HEADLINER_MODEL_FILE=str(model_file), HEADLINER_INFERENCE_LOG=str(folder / "inference.sqlite"))
    if token:
        env["HEADLINER_API_TOKEN"] = token
    if card:
        (folder / "model_card.html").write_text(card)
        env["HEADLINER_MODEL_CARD_FILE"] = str(folder / "model_card.html")
    return RunningService.launch(bentoml_command, env, folder, f"sqlite:///{folder / 'inference.sqlite'}")


@pytest.fixture(scope="module")
def jukebox_service(jukebox_onnx_file, isolated_env, tmp_path_factory):
    service = start_service(jukebox_onnx_file, isolated_env, tmp_path_factory.mktemp("page-jukebox"), card=CARD)
    yield service
    service.stop()


@pytest.fixture
def page(browser, jukebox_service):
    """A fresh page of the jukebox service that fails the test on a script error or a request elsewhere."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems = []
    origin = str(jukebox_service.client.base_url)

    def elsewhere(request) -> None:
        if not request.url.startswith((origin, "blob:", "data:")):
            problems.append(f"request elsewhere: {request.url}")

    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("request", elsewhere)
    page.goto(f"{origin}/")
    yield page
    context.close()
    assert problems == []


def shot(page, name: str) -> None:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky answer then sits where a reader first sees it
    page.screenshot(path=str(ARTIFACTS_DIR / f"{name}.png"), full_page=True)


def top_names(page) -> list[str]:
    return page.locator("#top .bar-name").all_inner_texts()


def test_a_person_gets_the_countries_by_name_with_the_keyboard(page, jukebox_service, jukebox_onnx_file):
    predictor = OnnxPredictor.from_path(jukebox_onnx_file)
    assert page.title() == "The Headliner · jukebox version 1"
    assert page.locator("label[for=f12]").inner_text() == "Tempo"
    page.focus("#f0")  # is_explicit: a checkbox
    page.keyboard.press("Space")
    page.focus("#f12")
    page.keyboard.press("Control+A")
    page.keyboard.type("128")
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_selector("#result:not([hidden])")

    names = top_names(page)
    sent = page_values(page)
    assert sent["tempo"] == 128 and sent["is_explicit"] is True
    answer = jukebox_service.client.post("/predict", json=sent).json()  # the API's answer to the same song
    assert names == [entry["name"] for entry in answer["predictions"][0]["top"]]
    assert len(names) == 5 and all(
        name in predictor.class_names and not re.fullmatch(r"[A-Z]{2}", name) for name in names
    )
    top = answer["predictions"][0]["top"]
    likely = [entry["name"] for entry in top if entry["probability"] >= top[0]["probability"] / 4]
    assert page.inner_text("#headline") == "Most likely a hit in: " + ", ".join(likely)
    assert all(re.fullmatch(r"\d+\.\d%", value) for value in page.locator("#top .bar-value").all_inner_texts())
    assert page.inner_text("#answered-by").startswith("Answered by model jukebox version 1 (request ")

    page.focus("#all summary")
    page.keyboard.press("Enter")  # opens the full list
    page.wait_for_selector("#all-list li >> nth=71")
    everything = page.locator("#all-list .bar-name").all_inner_texts()
    assert len(everything) == 72 and everything[0].startswith(names[0])
    assert page.inner_text("#all summary") == "All 72 countries"
    shot(page, "page-jukebox")


def page_values(page) -> dict:
    """What the form holds, as the page sends it (read through the page's own inputs)."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#predict-form [name]')].map((input) =>
            [input.name, input.type === 'checkbox' ? input.checked : Number(input.value)]))"""
    )


def test_why_these_countries_shows_a_bar_per_feature_and_the_card_is_one_click_away(page, jukebox_service):
    page.fill("#f12", "96")
    page.click("#predict")
    page.wait_for_selector("#why-classes .why-class")
    assert page.inner_text("#why-title") == "Why these countries"
    names = top_names(page)
    assert page.locator("#why-classes .why-class-name").all_inner_texts() == names
    assert page.locator("#why-classes .why-class[open]").count() == 1  # the first class; the others a click away
    explained = jukebox_service.client.post("/explain", json=page_values(page)).json()["explanations"][0]["classes"]
    first = page.locator("#why-classes .why-class").first
    assert first.locator(".why-text").all_inner_texts() == [c["text"] for c in explained[0]["contributions"]]
    amounts = first.locator(".why-amount").all_inner_texts()
    assert len(amounts) == 13 and all(re.fullmatch(r"[+−]?\d+\.\d+ pts", amount) for amount in amounts)
    tempo = first.locator(".why-name").filter(has_text="Tempo")
    assert tempo.locator(".why-value").inner_text() == "96 BPM"  # the value with its unit
    # right of the axis when a feature raises the class, left when it lowers it; the largest bar is half the track
    bars = first.locator(".why-bars li").evaluate_all(
        """(rows) => rows.map((row) => {
            const track = row.querySelector('.why-track').getBoundingClientRect();
            const fill = row.querySelector('.why-fill').getBoundingClientRect();
            return {up: row.classList.contains('why-up'), middle: track.left + track.width / 2, left: fill.left,
                    right: fill.right, share: fill.width / track.width};
        })"""
    )
    for bar, contribution in zip(bars, explained[0]["contributions"], strict=True):
        assert bar["up"] == (contribution["contribution"] >= 0)
        assert (bar["left"] >= bar["middle"] - 1) if bar["up"] else (bar["right"] <= bar["middle"] + 1)
        assert bar["share"] <= 0.5 + 1e-6
    largest = max(abs(c["contribution"]) for entry in explained for c in entry["contributions"])
    if abs(explained[0]["contributions"][0]["contribution"]) == largest:
        assert abs(bars[0]["share"] - 0.5) < 0.01
    shot(page, "page-jukebox-why")

    page.click("#model-card-link")
    page.wait_for_selector("h1")
    assert page.inner_text("h1") == "jukebox v1: the card"


def test_an_invalid_value_shows_the_apis_message_beside_its_field(page):
    page.fill("#f12", "300")
    page.click("#predict")
    error = page.locator("#f12-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "expected a number in [30, 250] BPM, got 300"
    assert page.inner_text("#alert") == "Tempo: expected a number in [30, 250] BPM, got 300"
    assert page.get_attribute("#f12", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "f12"
    assert page.locator("#result").is_hidden()
    shot(page, "page-jukebox-invalid")

    page.fill("#f12", "120")
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden])")
    assert error.is_hidden() and page.inner_text("#alert") == "" and page.get_attribute("#f12", "aria-invalid") is None


def test_a_preset_on_a_phone_sized_screen(page):
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("button", name=re.compile("^Acoustic ballad")).click()
    page.wait_for_selector("#result:not([hidden])")
    assert page.input_value("#f8") == "0.8" and page.input_value("#f12") == "78"  # acousticness, tempo
    assert len(top_names(page)) == 5
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
    shot(page, "page-jukebox-narrow")


def test_a_csv_file_is_scored_and_comes_back_as_a_download(page):
    songs = pd.DataFrame([page_values(page)] * 3).assign(is_explicit=[1, 0, 1])
    songs.loc[1, "tempo"] = 500
    songs.insert(0, "title", ["one", "two", "three"])
    page.set_input_files(
        "#csv-file", files=[{"name": "songs.csv", "mimeType": "text/csv", "buffer": songs.to_csv(index=False).encode()}]
    )
    page.click("text=Score the file")
    link = page.locator("#batch-download")
    link.wait_for(state="visible")
    assert page.inner_text("#batch-status") == "Scored 2 of 3 rows; 1 not scored, the error column says why."
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "predictions_jukebox_v1.csv"
    predictions = pd.read_csv(download.value.path())
    assert predictions["title"].tolist() == ["one", "two", "three"]
    assert predictions["top_1_name"].notna().tolist() == [True, False, True]
    assert predictions.loc[1, "error"] == "tempo: expected a number in [30, 250] BPM, got 500"

    page.set_input_files(
        "#csv-file",
        files=[
            {
                "name": "bad.csv",
                "mimeType": "text/csv",
                "buffer": songs.drop(columns="valence").to_csv(index=False).encode(),
            }
        ],
    )
    page.click("text=Score the file")
    page.wait_for_selector("#batch-alert:not(:empty)")
    assert "missing feature column(s) 'valence'" in page.inner_text("#batch-alert")
    assert link.is_hidden()


def test_the_service_switched_to_wine_shows_a_wine_form(browser, wine_onnx_file, isolated_env, tmp_path_factory):
    service = start_service(wine_onnx_file, isolated_env, tmp_path_factory.mktemp("page-wine"), token=TOKEN)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{service.client.base_url}/")
        assert page.inner_text("h1") == "Wine cultivar"
        labels = page.locator(".field-head label").all_inner_texts()
        assert labels[:3] == ["Alcohol", "Malic acid", "Ash"] and labels[-1] == "Proline" and len(labels) == 13
        body = page.inner_text("body")
        assert not any(word in body for word in ("Tempo", "Danceability", "song", "countries"))

        page.get_by_role("button", name=re.compile("^Like cultivar 3")).click()  # no token yet: the API refuses
        page.wait_for_selector("#alert:not(:empty)")
        assert "missing or wrong bearer token" in page.inner_text("#alert")
        assert page.evaluate("document.activeElement.id") == "token"
        page.keyboard.type(TOKEN)
        page.get_by_role("button", name=re.compile("^Like cultivar 3")).click()
        page.wait_for_selector("#result:not([hidden])")
        assert top_names(page)[0] == "Cultivar 3" and len(top_names(page)) == 3
        assert page.inner_text("#answered-by").startswith("Answered by model wine version 1")
        shot(page, "page-wine")
        page.close()
    finally:
        service.stop()


def test_the_service_of_a_regression_model_shows_the_forecast_in_its_unit(
    browser, store_sales_spec, isolated_env, tmp_path_factory
):
    """store_sales: a form of its 8 inputs with their units, a preset answered as 'About N units' (the API's
    words for the same values), and why the forecast is what it is."""
    from tests.helpers.models import packaged_model

    folder = tmp_path_factory.mktemp("page-store-sales")
    model_file = folder / "store_sales.onnx"
    model_file.write_bytes(packaged_model(store_sales_spec, rows=6_000))
    service = start_service(model_file, isolated_env, folder)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{service.client.base_url}/")
        assert page.inner_text("h1") == "Store sales forecast"
        labels = page.locator(".field-head label").all_inner_texts()
        assert len(labels) == len(store_sales_spec.features) and "countries" not in page.inner_text("body")
        assert page.locator("#top").count() == 0 and page.locator("#all").count() == 0

        page.get_by_role("button", name=re.compile("^Promotion week")).click()
        page.wait_for_selector("#result:not([hidden])")
        preset = next(p for p in store_sales_spec.presets if p.name == "Promotion week")
        values = {f.name: preset.values.get(f.name, f.default) for f in store_sales_spec.features}
        expected = service.client.post("/predict", json=values).json()["predictions"][0]
        assert re.fullmatch(r"About [\d,]+ units", expected["answer"])
        assert page.inner_text("#headline") == expected["answer"]
        assert page.inner_text("#answered-by").startswith("Answered by model store_sales version 1")
        page.wait_for_selector("#why:not([hidden])")
        assert "units" in page.inner_text("#why")
        shot(page, "page-store-sales")
        page.close()
    finally:
        service.stop()
