"""Where a serving process gets its one ONNX file, and the model card that travels with it: a file, a
registered version (number, 'latest' or stage) from the ZenML Model Control Plane, or the BentoML model
packed into the bento it runs from."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from headliner.errors import HeadlinerError
from headliner.serving.settings import ServingSettings

BENTO_MODEL_FILE = "model.onnx"  # headliner.deploy.deployment.save_bento_model writes it
BENTO_CARD_FILE = "model_card.html"  # beside it, when the deployment had the version's card
CARD_MAX_AGE_SECONDS = 60.0  # a registry card is read again after this (a promotion updates its history)

# (model name, version) -> the card's HTML, or None when that version has none
CardSource = Callable[[str, str], str | None]


def model_bytes(settings: ServingSettings, bento_model_dir: Path | None = None) -> tuple[bytes, str]:
    """(ONNX bytes, where they came from). The first that is set wins: the model packed into the bento
    (a bento is built for one model), HEADLINER_MODEL_FILE, HEADLINER_MODEL (+ HEADLINER_MODEL_VERSION)."""
    if bento_model_dir is not None:
        return (bento_model_dir / BENTO_MODEL_FILE).read_bytes(), f"bento model {bento_model_dir.name}"
    if settings.model_file is not None:
        path = Path(settings.model_file)
        if not path.is_file():
            raise HeadlinerError(f"HEADLINER_MODEL_FILE: no such file {path}")
        return path.read_bytes(), f"file {path}"
    if settings.model:
        from headliner.model.versions import onnx_model_bytes

        number, data = onnx_model_bytes(settings.model, settings.model_version)
        return data, f"the registry ({settings.model} version {number})"
    raise HeadlinerError("no model to serve: set HEADLINER_MODEL_FILE, or HEADLINER_MODEL and HEADLINER_MODEL_VERSION")


def card_source(settings: ServingSettings, bento_model_dir: Path | None = None) -> CardSource:
    """Where GET /model-card finds the card of the served version, by the rule `model_bytes` follows: the
    bento's `model_card.html`, HEADLINER_MODEL_CARD_FILE beside HEADLINER_MODEL_FILE, or the registry's newest
    card of the version (read again after `CARD_MAX_AGE_SECONDS`, so a promotion shows). A fixed file
    speaks only for the version it was deployed with. A named card file that is missing fails at start."""
    if bento_model_dir is not None:
        return fixed_card((bento_model_dir / BENTO_CARD_FILE), required=False)
    if settings.model_file is not None:
        if settings.model_card_file is None:
            return no_card
        return fixed_card(Path(settings.model_card_file), required=True)
    if settings.model:
        return registry_cards()
    return no_card


def no_card(model_name: str, version: str) -> str | None:
    return None


def fixed_card(path: Path, required: bool) -> CardSource:
    """The card in `path`, read now (HeadlinerError if `required` and it is not there)."""
    if not path.is_file():
        if required:
            raise HeadlinerError(f"HEADLINER_MODEL_CARD_FILE: no such file {path}")
        return no_card
    html = path.read_text(encoding="utf-8")

    def source(model_name: str, version: str) -> str | None:
        return html

    return source


def registry_cards(max_age: float = CARD_MAX_AGE_SECONDS) -> CardSource:
    """Cards from the ZenML store (`load_model_card`), each kept `max_age` seconds; a version without a card
    (or a store that cannot be reached) has none."""
    cache: dict[tuple[str, str], tuple[float, str | None]] = {}
    lock = threading.Lock()

    def source(model_name: str, version: str) -> str | None:
        key = (model_name, version)
        with lock:
            kept = cache.get(key)
            if kept is not None and time.monotonic() - kept[0] < max_age:
                return kept[1]
            html = registry_card(model_name, version)
            cache[key] = (time.monotonic(), html)
            return html

    return source


def registry_card(model_name: str, version: str) -> str | None:
    """The card's HTML, or None: no card, a store that cannot be reached, or a process that cannot read cards
    (the registry-reading service image has no scikit-learn, which the model card's module imports)."""
    import logging

    if not version.isdigit():
        return None
    try:
        from headliner.governance.model_card import load_model_card

        return load_model_card(model_name, int(version)).to_html()
    except HeadlinerError as exc:
        logging.getLogger(__name__).info("no model card for %s version %s: %s", model_name, version, exc)
    except Exception as exc:  # GET /model-card answers 404 and says how else to see the card
        logging.getLogger(__name__).warning(
            "cannot read the model card of %s version %s here: %s: %s", model_name, version, type(exc).__name__, exc
        )
    return None
