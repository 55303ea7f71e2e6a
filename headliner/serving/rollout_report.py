"""How a rollout is going, from the inference log: per variant (production, candidate, shadow) the
requests, errors, latency p50/p99 and live accuracy (a regression model: live MAE) where true labels arrived,
and how often the two versions agree on the top class (a regression model: how far apart their forecasts are)
for the same items (both versions score a sample of the window's items, so canary and A/B traffic, where each
request saw one version, are compared on equal terms)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from pydantic import BaseModel

from headliner.errors import HeadlinerError
from headliner.reports.html import HtmlReport, html_page, html_table
from headliner.serving.inference_log import PREDICTION
from headliner.serving.routing import CANDIDATE, PRODUCTION, SHADOW

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Column, Connection, Table

AGREEMENT_REQUESTS = 5_000  # requests sampled (seeded) for the agreement figure
_FETCH_CHUNK = 500
VARIANT_ORDER = (PRODUCTION, CANDIDATE, SHADOW)


class VariantFigures(BaseModel):
    variant: str
    version: str
    requests: int
    errors: int  # answered 4xx/5xx
    items: int  # songs scored
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    labelled: int = 0
    accuracy: float | None = None  # top-1, where labels arrived
    top_k_accuracy: float | None = None
    mae: float | None = None  # a regression model's mean absolute error, where true values arrived


class RolloutReport(HtmlReport):
    model_name: str
    window: str
    policy: str | None = None
    variants: list[VariantFigures]
    top_k: int | None = None
    compared_versions: list[str] | None = None  # [production, candidate]
    agreement: float | None = None  # share of sampled songs with the same top-1 class from both versions
    agreement_items: int = 0
    regression: bool = False  # the versions forecast a number: live MAE, and forecasts compared
    unit: str | None = None  # a regression model's target unit
    forecast_difference: float | None = None  # mean |forecast of one version - the other's| on the sampled items

    def summary_metadata(self) -> dict[str, str | int | float]:
        figures: dict[str, str | int | float] = {"window": self.window}
        for v in self.variants:
            figures[f"{v.variant}_v{v.version}_requests"] = v.requests
        if self.agreement is not None:
            figures["top1_agreement"] = round(self.agreement, 4)
        if self.forecast_difference is not None:
            figures["mean_forecast_difference"] = round(self.forecast_difference, 4)
        return figures

    def table(self) -> tuple[list[str], list[list[str]]]:
        def show(value: float | None, fmt: str) -> str:
            return "-" if value is None else format(value, fmt)

        headers = ["variant", "version", "requests", "errors", "items" if self.regression else "songs"]
        headers += ["p50 ms", "p99 ms", "labelled"]
        headers += (
            [f"MAE ({self.unit})" if self.unit else "MAE"]
            if self.regression
            else ["accuracy", f"top-{self.top_k or 'k'} acc."]
        )
        rows = []
        for v in self.variants:
            row = [v.variant, v.version, f"{v.requests:,}", f"{v.errors:,}", f"{v.items:,}"]
            row += [show(v.latency_p50_ms, ".2f"), show(v.latency_p99_ms, ".2f"), f"{v.labelled:,}"]
            row += (
                [show(v.mae, ",.2f")] if self.regression else [show(v.accuracy, ".3f"), show(v.top_k_accuracy, ".3f")]
            )
            rows.append(row)
        return headers, rows

    def agreement_text(self) -> str:
        if self.compared_versions is None:  # set with agreement or forecast_difference
            return "agreement: needs requests answered by two versions in the window"
        production, candidate = self.compared_versions
        if self.forecast_difference is not None:
            return (
                f"forecasts of v{production} and v{candidate} differ by {self.forecast_difference:,.3g} "
                f"{self.unit or ''} on average over {self.agreement_items:,} items (both versions forecasting the "
                "same sampled items)"
            )
        return (
            f"top-1 agreement of v{production} and v{candidate}: {self.agreement:.1%} of {self.agreement_items:,} "
            "songs (both versions scoring the same sampled songs)"
        )

    def lines(self) -> list[str]:
        headers, rows = self.table()
        widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
        out = [
            f"Rollout of '{self.model_name}', {self.window}" + (f"; policy now: {self.policy}" if self.policy else "")
        ]
        out += [
            "  " + "  ".join(str(cell).rjust(width) for cell, width in zip(line, widths, strict=True))
            for line in [headers, *rows]
        ]
        out.append("  " + self.agreement_text())
        return out

    def to_html(self) -> str:
        headers, rows = self.table()
        head = f"<p>{self.window}</p>" + (f"<p>Policy now: {self.policy}</p>" if self.policy else "")
        return html_page(
            f"Rollout of {self.model_name}",
            [
                ("Window", head),
                ("Variants", html_table(headers, rows)),
                ("Agreement", f"<p>{self.agreement_text()}</p>"),
            ],
        )


def rollout_report(
    url: str,
    model_name: str,
    load_model: Callable[[str], bytes],
    since: datetime | None = None,
    policy: str | None = None,
    seed: int = 0,
) -> RolloutReport:
    """The report of the requests to `model_name` logged with a variant since `since` (all when None).
    `load_model(version)` gives a version's ONNX bytes, for the agreement figure."""
    import pandas as pd
    from sqlalchemy import and_, inspect, select

    from headliner.serving.feedback import FeedbackStore
    from headliner.serving.inference_log import TABLE_NAME, create_log_engine, log_table

    window = (
        "every request logged under a rollout"
        if since is None
        else f"requests since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    )
    engine = create_log_engine(url)
    try:
        if not inspect(engine).has_table(TABLE_NAME):
            raise HeadlinerError(
                f"no inference log at {url}: serve the model (python run.py serve --stage production) "
                "and send it requests"
            )
        table = log_table(engine)
        condition = and_(table.c.model_name == model_name, table.c.variant.is_not(None))
        if since is not None:
            condition = and_(condition, table.c.received_at >= since.astimezone(UTC).replace(tzinfo=None))
        columns = [
            table.c.id,
            table.c.request_id,
            table.c.variant,
            table.c.model_version,
            table.c.status,
            table.c.latency_ms,
            table.c.rows,
        ]
        with engine.connect() as connection:
            meta = pd.read_sql(select(*columns).where(condition).order_by(table.c.id), connection)
            if meta.empty:
                raise HeadlinerError(
                    f"no requests to '{model_name}' under a rollout in the window ({window}); a service started with "
                    "`python run.py serve --stage production` logs them: send traffic (python run.py simulate-traffic)"
                )
            store = FeedbackStore(url)
            try:
                labels = store.read()
            finally:
                store.close()
            ok = meta["status"] == 200
            labelled_rows = meta[ok & meta["request_id"].isin(set(labels["request_id"]))]
            outputs = _fetch(connection, table, table.c.outputs, labelled_rows["id"].tolist())
            scored = meta[ok & meta["variant"].isin([PRODUCTION, CANDIDATE])]
            sample = scored.sample(n=min(AGREEMENT_REQUESTS, len(scored)), random_state=seed) if len(scored) else scored
            inputs = _fetch(connection, table, table.c.inputs, sample["id"].tolist())
    finally:
        engine.dispose()

    label_of = {
        (r, i): label for r, i, label in zip(labels["request_id"], labels["item"], labels["label"], strict=True)
    }
    variants, top_k = [], None
    for (variant, version), group in meta.groupby(["variant", "model_version"], sort=False):
        answered = group[group["status"] == 200]
        figures = VariantFigures(
            variant=variant,
            version=str(version),
            requests=len(group),
            errors=int((group["status"] >= 400).sum()),
            items=int(answered["rows"].sum()),
        )
        if len(answered):
            figures.latency_p50_ms, figures.latency_p99_ms = (
                float(x) for x in np.percentile(answered["latency_ms"], [50, 99])
            )
        truth, ranks, absolute_errors = [], [], []
        of_version = labelled_rows[(labelled_rows["variant"] == variant) & (labelled_rows["model_version"] == version)]
        for row_id, request_id in zip(of_version["id"], of_version["request_id"], strict=True):
            answered_outputs = orjson.loads(outputs[row_id])
            if PREDICTION in answered_outputs:  # a regression model's forecasts; its labels are numbers
                for item, (value,) in enumerate(answered_outputs[PREDICTION]):
                    label = label_of.get((request_id, item))
                    if label is not None:
                        absolute_errors.append(abs(float(label) - value))
                continue
            for item, top in enumerate(answered_outputs["top"]):
                label = label_of.get((request_id, item))
                if label is not None:
                    top_k = len(top)
                    truth.append(label)
                    ranks.append(top.index(label) if label in top else -1)
        if absolute_errors:
            figures.labelled, figures.mae = len(absolute_errors), float(np.mean(absolute_errors))
        if truth:
            rank_array = np.asarray(ranks)
            figures.labelled, figures.accuracy, figures.top_k_accuracy = (
                len(truth),
                float(np.mean(rank_array == 0)),
                float(np.mean(rank_array >= 0)),
            )
        variants.append(figures)
    variants.sort(key=lambda v: (VARIANT_ORDER.index(v.variant) if v.variant in VARIANT_ORDER else 9, v.version))
    report = RolloutReport(model_name=model_name, window=window, policy=policy, variants=variants, top_k=top_k)
    if variants:  # the task of the served model, whether or not labels arrived
        from headliner.model.onnx_packaging import OnnxPredictor

        served = OnnxPredictor(load_model(variants[0].version))
        report.regression, report.unit = not served.is_classification, (served.target or {}).get("unit")
    _agreement(report, meta, inputs, load_model)
    return report


def _fetch(connection: Connection, table: Table, column: Column[Any], ids: list[int]) -> dict[int, str]:
    """`column` of the rows with these ids, in chunks (an IN list has limits)."""
    from sqlalchemy import select

    found: dict[int, str] = {}
    for start in range(0, len(ids), _FETCH_CHUNK):
        chunk = ids[start : start + _FETCH_CHUNK]
        for row_id, value in connection.execute(select(table.c.id, column).where(table.c.id.in_(chunk))):
            found[row_id] = value
    return found


def _agreement(
    report: RolloutReport, meta: pd.DataFrame, inputs: dict[int, str], load_model: Callable[[str], bytes]
) -> None:
    """The newest candidate (or shadow) version and the newest other version that answered as production
    both score the sampled items: how often their top classes agree, or how far apart their forecasts are."""
    from headliner.model.onnx_packaging import OnnxPredictor

    newest = meta.iloc[::-1]
    candidate = newest.loc[newest["variant"].isin([CANDIDATE, SHADOW]), "model_version"].head(1).tolist()
    if not candidate:
        return
    production = (
        newest.loc[(newest["variant"] == PRODUCTION) & (newest["model_version"] != candidate[0]), "model_version"]
        .head(1)
        .tolist()
    )
    if not production or not inputs:
        return
    matrix = np.array([row for text in inputs.values() for row in orjson.loads(text)["data"]], dtype=np.float64)
    answers = []
    for version in (production[0], candidate[0]):
        predictor = OnnxPredictor(load_model(str(version)))
        scores = predictor.scores(matrix)
        if predictor.is_classification:
            order, _ = predictor.top_classes(scores)
            answers.append(np.asarray(predictor.classes, dtype=object)[order[:, 0]])
        else:
            answers.append(scores[:, 0].astype(np.float64))
    report.compared_versions = [str(production[0]), str(candidate[0])]
    report.agreement_items = len(matrix)
    if predictor.is_classification:
        report.agreement = float(np.mean(answers[0] == answers[1]))
    else:
        report.forecast_difference = float(np.mean(np.abs(answers[0] - answers[1])))
