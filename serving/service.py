"""The BentoML service: serves one packaged ONNX model (jukebox, wine, any model built by the training
pipeline) through headliner's inference app.

Which model comes from the environment (see headliner/serving/settings.py): HEADLINER_MODEL_FILE, or
HEADLINER_MODEL + HEADLINER_MODEL_VERSION (a number, 'latest' or a stage); a bento built by the
deployment pipeline packs its model (bento argument `bento_model`) and serves that one. Everything else
(input schema, class labels and names, model name and version) is read from the ONNX metadata. The
endpoints are an ASGI app (headliner/serving/app.py) added as service middleware, ahead of BentoML's
routing.

Served by stage `production` from the registry, the service follows promotions and rollout policies
(production plus a candidate: canary, A/B, shadow; see headliner/serving/rollout.py).

Run it with `python run.py serve`, or `python -m serving` (serving/__main__.py) with those variables set.
HEADLINER_WORKERS worker processes share the port (BentoML's `workers`); each loads the model and keeps
its own inference log writer, and they show each other their counters and routing on a `WorkerBoard`
(see docs/serving-api.md, "Several workers").
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any

import bentoml
from pydantic import BaseModel

from headliner.serving.app import InferenceApp, InferenceMiddleware
from headliner.serving.rollout import PolicyStore, RolloutController, registry_resolver
from headliner.serving.server import ModelServer, WorkerBoard
from headliner.serving.settings import ServingSettings

logger = logging.getLogger("bentoml.headliner")  # BentoML configures the bentoml.* loggers

app = InferenceApp()


class ServiceArguments(BaseModel):
    """Bento arguments (`bentoml build/serve --arg name=value`)."""

    bento_model: str | None = None  # tag of the BentoML model packed into the bento, e.g. jukebox:v3


arguments = bentoml.use_arguments(ServiceArguments)

# BentoML's per-request instrumentation (metrics, access log, tracing spans) is off for the paths that still
# reach its app (/livez, /readyz); the app keeps its own Prometheus metrics (/metrics) and the inference log.
SERVICE_CONFIG = {
    "metrics": {"enabled": False},
    "logging": {"access": {"enabled": False}},
    "tracing": {"sample_rate": 0.0},
    "workers": ServingSettings().workers,  # read where BentoML's arbiter imports this module
}


class InferenceFirstService(bentoml.Service):  # type: ignore[misc]  # bentoml ships no types
    """A BentoML service whose ASGI app is the inference app in front of BentoML's own: the inference endpoints,
    the page and /metrics answer before BentoML's error handling, tracing and timeout layers and its routing,
    which cost more than a one-row prediction (bench/serving_bench.py); every other path (/livez, /readyz, the
    lifespan that creates the service instance) goes on to BentoML's app."""

    def to_asgi(self, is_main: bool = True) -> Any:
        return InferenceMiddleware(super().to_asgi(is_main), endpoints=app)


@bentoml.service(name="headliner", service_class=InferenceFirstService, **SERVICE_CONFIG)
class Headliner:
    packed_model = bentoml.models.BentoModel(arguments.bento_model) if arguments.bento_model else None

    def __init__(self) -> None:
        from headliner.model.onnx_packaging import OnnxPredictor
        from headliner.serving.feedback import FeedbackStore
        from headliner.serving.inference_log import InferenceLog
        from headliner.serving.model_source import card_source, model_bytes

        settings = ServingSettings()
        bento_model_dir = Path(self.packed_model.path) if self.packed_model else None
        data, source = model_bytes(settings, bento_model_dir)
        predictor = OnnxPredictor(data)
        log = InferenceLog(settings.inference_log_url(), predictor.feature_names, settings.log_flush_seconds)
        feedback = FeedbackStore(settings.inference_log_url())
        self.inference_log, self.feedback_store = log, feedback  # closed on shutdown
        self.board = WorkerBoard.of_this_service()
        self.server = ModelServer(
            predictor,
            log,
            settings.bearer_token(),
            settings.max_batch,
            settings.max_body_bytes,
            feedback,
            max_upload_rows=settings.max_upload_rows,
            board=self.board,
            max_explain=settings.max_explain,
            card_source=card_source(settings, bento_model_dir),
        )
        self.rollout: RolloutController | None = None
        if settings.follows_production and self.packed_model is None:
            resolve, load = registry_resolver(predictor.model_name)
            self.rollout = RolloutController(
                app.route,
                self.server,
                PolicyStore(settings.inference_log_url()),
                resolve,
                load,
                settings.rollout_poll_seconds,
                settings.registry_poll_seconds,
                logger,
            )
            self.rollout.start()
        else:
            app.attach(self.server)
        self.board.start(self.board_state)
        # No per-request access log line (the inference log records every request); importing ZenML for
        # a registry model gives the root logger handlers, which would switch uvicorn's on.
        logging.getLogger("uvicorn.access").propagate = False
        # Everything loaded so far lives as long as the process: keep it out of the cyclic garbage
        # collector's full passes, which otherwise stall requests by tens of milliseconds.
        gc.collect()
        gc.freeze()
        logger.info(
            "worker %d: serving %s version %s from %s; inference log %s; auth %s",
            os.getpid(),
            predictor.model_name,
            predictor.model_version,
            source,
            settings.inference_log_display(),
            "on" if self.server.token else "off",
        )
        if self.rollout is not None:
            logger.info("rollouts on: production follows the registry; policy from `python run.py rollout set`")

    def board_state(self) -> dict[str, Any]:
        """What this worker shows the service's other workers: its counters and the routing it applies."""
        routing = app.routing
        return {
            "metrics": self.server.metrics.snapshot(),
            "routing": routing.worker_status() if routing is not None else None,
        }

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]  # from _bentoml_sdk, which ships no types
    def close_inference_log(self) -> None:
        if self.rollout is not None:
            self.rollout.stop()
        unwritten = self.inference_log.close()
        self.feedback_store.close()
        self.board.close()
        logger.info(
            "inference log closed: %d rows written%s",
            self.inference_log.written,
            f", {unwritten} spilled" if unwritten else "",
        )
