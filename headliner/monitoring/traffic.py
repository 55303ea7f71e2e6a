"""Realistic live traffic for a running service, so a user sees monitoring work end to end: held-out rows
of the served model version, optionally shifted to simulate drift, go to `POST /predict` one per request,
and the true labels of a share of the answered requests go to `POST /feedback`."""

from __future__ import annotations

import difflib
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx
import numpy as np
from pydantic import BaseModel, Field
from tqdm import tqdm

from headliner.data.splitting import one_row_per_group
from headliner.errors import HeadlinerError
from headliner.labels import Artifact
from headliner.spec import FeatureType, UseCaseSpec

if TYPE_CHECKING:
    import pandas as pd

FEEDBACK_BATCH = 100  # labels per POST /feedback body
MAX_ERROR_MESSAGES = 3
CONNECTION_ERROR = "connection error"  # the failure "status" of a request that got no HTTP answer
TIMEOUT_SECONDS = 30.0
START_HINT = "start one with `python run.py serve` or `python run.py --pipeline deployment`"


class TrafficReport(BaseModel):
    """What a traffic run sent and how the service answered."""

    url: str
    model_name: str
    requests: int = Field(description="POST /predict requests sent, one row (song) each.")
    answered: int = Field(description="Requests answered 200.")
    failed_by_status: dict[str, int] = Field(
        default_factory=dict, description=f"Failed requests by HTTP status, or '{CONNECTION_ERROR}'."
    )
    errors: list[str] = Field(default_factory=list, description=f"Up to {MAX_ERROR_MESSAGES} distinct error messages.")
    feedback_sent: int = Field(default=0, description="True labels sent to POST /feedback.")
    feedback_accepted: int = Field(default=0, description="True labels the service stored.")
    feedback_errors: list[str] = Field(
        default_factory=list, description=f"Up to {MAX_ERROR_MESSAGES} distinct messages."
    )
    seconds: float = Field(description="Wall time of the predictions (feedback not included).")
    requests_per_second: float

    @property
    def failed(self) -> int:
        return sum(self.failed_by_status.values())

    def summary_lines(self) -> list[str]:
        lines = [
            f"Sent {self.requests:,} requests to '{self.model_name}' at {self.url} in {self.seconds:.1f} s "
            f"({self.requests_per_second:,.1f} requests/s)"
        ]
        by_status = ", ".join(f"{status}: {count:,}" for status, count in sorted(self.failed_by_status.items()))
        lines.append(
            f"  answered 200: {self.answered:,}; failed: {self.failed:,}" + (f" ({by_status})" if by_status else "")
        )
        lines += [f"  error: {message}" for message in self.errors]
        if self.feedback_sent or self.feedback_errors:
            lines.append(
                f"  feedback: {self.feedback_sent:,} true labels sent to POST /feedback, "
                f"{self.feedback_accepted:,} accepted"
            )
            lines += [f"  feedback error: {message}" for message in self.feedback_errors]
        return lines


def parse_drift(values: Sequence[str], spec: UseCaseSpec) -> dict[str, float]:
    """`FEATURE=SHIFT` items -> {feature: shift}; the shift is added to the feature in its own units
    (e.g. `tempo=30`: 30 BPM faster, `energy=-0.2`)."""
    names = spec.feature_names
    example = f"{next((f.name for f in spec.features if f.dtype is FeatureType.FLOAT), names[0])}=0.1"
    shifts: dict[str, float] = {}
    for value in values:
        name, equals, shift_text = (part.strip() for part in value.partition("="))
        if not equals or not name:
            raise HeadlinerError(f"--drift '{value}': expected FEATURE=SHIFT, e.g. {example}")
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise HeadlinerError(
                f"--drift '{value}': unknown feature '{name}'{hint}; expected one of {', '.join(names)}"
            )
        try:
            shift = float(shift_text)
        except ValueError:
            shift = math.nan
        if not math.isfinite(shift):
            raise HeadlinerError(
                f"--drift '{value}': shift '{shift_text}' is not a finite number; expected e.g. {example}"
            )
        if name in shifts:
            raise HeadlinerError(f"--drift '{value}': feature '{name}' is shifted twice; give each feature once")
        shifts[name] = shift
    return shifts


def traffic_songs(
    frame: pd.DataFrame, spec: UseCaseSpec, requests: int, drift: dict[str, float], seed: int
) -> tuple[list[dict[str, Any]], list[str | float]]:
    """`requests` rows of `frame`, one per group (song) of the spec, drawn at random (seeded; with replacement
    only when there are fewer), shifted by `drift`, clipped into each feature's valid range and rounded for int and bool
    features: JSON-ready feature objects in the spec's order, and each row's true label (a class, or a number
    for a regression target)."""
    if requests < 1:
        raise HeadlinerError(f"requests: expected at least 1, got {requests}")
    missing = [column for column in [*spec.feature_names, spec.target.column] if column not in frame.columns]
    if missing:
        raise HeadlinerError(
            f"held-out rows: missing column(s) {', '.join(missing)}; "
            f"expected the spec's features and target '{spec.target.column}'"
        )
    if frame.empty:
        raise HeadlinerError("held-out rows: none; expected at least one row to send")
    frame = one_row_per_group(frame, spec)  # one request per song, as a service sees them
    chosen = np.random.default_rng(seed).choice(len(frame), size=requests, replace=requests > len(frame))
    rows = frame.iloc[chosen]
    columns = []
    for feature in spec.features:
        values = rows[feature.name].to_numpy(dtype=np.float64) + drift.get(feature.name, 0.0)
        lower, upper = (0.0, 1.0) if feature.dtype is FeatureType.BOOL else (feature.min, feature.max)
        values = np.clip(values, -np.inf if lower is None else lower, np.inf if upper is None else upper)
        columns.append(
            values.tolist() if feature.dtype is FeatureType.FLOAT else np.rint(values).astype(np.int64).tolist()
        )
    songs = [dict(zip(spec.feature_names, row, strict=True)) for row in zip(*columns, strict=True)]
    truth = rows[spec.target.column]
    labels: list[str | float] = [str(label) if spec.is_classification else float(label) for label in truth]
    return songs, labels


def held_out_split(model_name: str, version: str) -> pd.DataFrame:
    """The `test_split` artifact of a registered model version: rows its model never saw in training."""
    from headliner.model.versions import find_model_version

    model_version = find_model_version(model_name, version)
    artifact = model_version.get_artifact(Artifact.TEST_SPLIT)
    if artifact is None:
        raise HeadlinerError(
            f"model '{model_name}' version {model_version.number} has no test_split artifact; "
            "expected one linked by the training pipeline"
        )
    split: pd.DataFrame = artifact.load()
    return split


def served_version(url: str, model_name: str, token: str | None = None) -> str:
    """The version of `model_name` that the service at `url` serves (from `GET /v2/models/{model_name}`)."""
    base = _base_url(url)
    path = f"/v2/models/{model_name}"
    try:
        response = httpx.get(base + path, headers=_auth(token), timeout=TIMEOUT_SECONDS)
    except httpx.TransportError as exc:
        raise HeadlinerError(f"no service answers at {base} ({exc}); {START_HINT}") from None
    if response.status_code == 401:
        raise HeadlinerError(
            f"the service at {base} answered 401 (missing or wrong bearer token): "
            "pass --token or set HEADLINER_API_TOKEN"
        )
    if response.status_code == 404:
        error = _error_text(response)
        other = re.search(r"this server serves '([^']+)'", error)
        if other:
            raise HeadlinerError(
                f"the service at {base} serves model '{other.group(1)}', not '{model_name}'; "
                f"pass the --config of '{other.group(1)}' or the --url of a '{model_name}' service"
            )
        raise HeadlinerError(f"the service at {base} has no model '{model_name}' (404 on GET {path}: {error})")
    if response.status_code != 200:
        raise HeadlinerError(
            f"the service at {base} answered {response.status_code} to GET {path}: {_error_text(response)}"
        )
    try:
        versions = response.json()["versions"]
        return str(versions[0])
    except (ValueError, KeyError, IndexError, TypeError):
        raise HeadlinerError(
            f"the service at {base} answered GET {path} without 'versions'; "
            "expected a Headliner service's model metadata"
        ) from None


class _Answer(NamedTuple):
    status: str  # "200", another HTTP status, or CONNECTION_ERROR
    request_id: str | None
    error: str | None
    refused: bool = False  # no connection could be made


def simulate_traffic(
    url: str,
    model_name: str,
    songs: Sequence[dict[str, Any]],
    labels: Sequence[str | float],
    feedback_rate: float,
    token: str | None = None,
    concurrency: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> TrafficReport:
    """Send each song as one `POST /predict` from `concurrency` threads sharing one connection pool.
    Once every prediction is answered, the true labels of a seeded random `feedback_rate` share of the
    answered requests go to `POST /feedback`, in list bodies of up to FEEDBACK_BATCH labels.

    A request that gets no answer counts as a failure, except the very first: then no service is
    listening, and this raises HeadlinerError."""
    base = _base_url(url)
    if not songs:
        raise HeadlinerError("songs: none to send; expected at least one")
    if len(songs) != len(labels):
        raise ValueError(f"{len(songs)} songs but {len(labels)} labels")
    if not 0 <= feedback_rate <= 1:
        raise HeadlinerError(f"feedback rate: expected a share in [0, 1], got {feedback_rate}")
    if concurrency < 1:
        raise HeadlinerError(f"concurrency: expected at least 1 thread, got {concurrency}")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a log line per request would bury the progress bar
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with (
        httpx.Client(base_url=base, headers=_auth(token), timeout=TIMEOUT_SECONDS, limits=limits) as client,
        tqdm(total=len(songs), unit="request", desc="POST /predict", disable=not progress) as bar,
    ):
        started = time.perf_counter()
        first = _predict(client, songs[0])
        if first.refused:
            raise HeadlinerError(f"no service answers at {base} ({first.error}); {START_HINT}")
        bar.update()
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="traffic") as pool:
            futures = [pool.submit(_predict, client, song) for song in songs[1:]]
            for _ in as_completed(futures):
                bar.update()
        answers = [first, *(future.result() for future in futures)]
        seconds = time.perf_counter() - started
        feedback_sent, feedback_accepted, feedback_errors = _send_feedback(client, answers, labels, feedback_rate, seed)
    failed = Counter(answer.status for answer in answers if answer.status != "200")
    return TrafficReport(
        url=base,
        model_name=model_name,
        requests=len(answers),
        answered=len(answers) - sum(failed.values()),
        failed_by_status=dict(failed),
        errors=_distinct(answer.error for answer in answers if answer.error),
        feedback_sent=feedback_sent,
        feedback_accepted=feedback_accepted,
        feedback_errors=feedback_errors,
        seconds=round(seconds, 3),
        requests_per_second=round(len(answers) / seconds, 1) if seconds > 0 else 0.0,
    )


def _predict(client: httpx.Client, song: dict[str, Any]) -> _Answer:
    try:
        response = client.post("/predict", json=song)
    except httpx.TransportError as exc:
        refused = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
        return _Answer(CONNECTION_ERROR, None, f"{type(exc).__name__}: {exc}", refused)
    if response.status_code != 200:
        return _Answer(str(response.status_code), None, f"HTTP {response.status_code}: {_error_text(response)}")
    return _Answer("200", response.headers.get("x-request-id") or response.json()["request_id"], None)


def _send_feedback(
    client: httpx.Client, answers: Sequence[_Answer], labels: Sequence[str | float], feedback_rate: float, seed: int
) -> tuple[int, int, list[str]]:
    """(labels sent, labels accepted, distinct error messages) for a seeded random share of the answers."""
    answered = [index for index, answer in enumerate(answers) if answer.request_id is not None]
    count = round(feedback_rate * len(answered))
    if count == 0:
        return 0, 0, []
    chosen = sorted(np.random.default_rng(seed).choice(answered, size=count, replace=False).tolist())
    entries = [{"request_id": answers[index].request_id, "label": labels[index]} for index in chosen]
    accepted, errors = 0, []
    for start in range(0, len(entries), FEEDBACK_BATCH):
        try:
            response = client.post("/feedback", json=entries[start : start + FEEDBACK_BATCH])
        except httpx.TransportError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if response.status_code == 200:
            accepted += int(response.json()["accepted"])
        else:
            errors.append(f"HTTP {response.status_code}: {_error_text(response)}")
    return len(entries), accepted, _distinct(errors)


def _distinct(messages: Iterable[str]) -> list[str]:
    """The first MAX_ERROR_MESSAGES distinct messages, in order."""
    return list(dict.fromkeys(messages))[:MAX_ERROR_MESSAGES]


def _error_text(response: httpx.Response) -> str:
    """The service's `error` message, or the start of the body if it is not a Headliner error."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(error := body.get("error"), str):
        return error
    return response.text[:200].strip() or response.reason_phrase


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _base_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise HeadlinerError(f"--url '{url}': expected http://HOST:PORT or https://HOST:PORT")
    return url.rstrip("/")
