"""What a serving process needs to know, from environment variables (HEADLINER_*), so the same code
runs under `python run.py serve`, a ZenML-deployed bento and a Kubernetes pod.

A stack that runs its own servers may add defaults in `stack_settings_file()` (lines HEADLINER_X=value;
`scripts/servers.sh up` writes the inference log's PostgreSQL URL there, `down` removes it); the
environment wins over it."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def local_state_dir() -> Path:
    """Headliner's local state (inference log, exported models) beside ZenML's local stores, found by
    ZenML's own rule: ZENML_LOCAL_STORES_PATH (set in every step container, where the stores are mounted),
    else ZENML_CONFIG_PATH's local_stores (tests and users with several configs stay apart)."""
    stores = os.environ.get("ZENML_LOCAL_STORES_PATH")
    if stores:
        return Path(stores) / "headliner"
    config = os.environ.get("ZENML_CONFIG_PATH")
    if config:
        base = Path(config)
    else:
        import click  # ZenML's own rule for its config folder

        base = Path(click.get_app_dir("zenml"))
    return base / "local_stores" / "headliner"


def url_without_password(url: str) -> str:
    """A database URL fit for messages and reports."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def stack_settings_file() -> Path:
    """Serving defaults of the stack in use, beside ZenML's local stores (read when present)."""
    return local_state_dir() / "serving.env"


def default_inference_log_url() -> str:
    return f"sqlite:///{local_state_dir() / 'inference_log.sqlite'}"


class ServingSettings(BaseSettings):
    """Which model to serve and how; every field is read from HEADLINER_<FIELD> in upper case."""

    model_config = SettingsConfigDict(env_prefix="HEADLINER_", extra="ignore")

    model_file: Path | None = Field(None, description="An ONNX file to serve.")
    model: str | None = Field(None, description="A registered model to serve (with model_version).")
    model_version: str = Field("latest", description="Version number, 'latest' or a stage.")
    inference_log: str = Field(
        default_factory=default_inference_log_url,
        description="SQLAlchemy URL or file path of the inference log (default: SQLite beside ZenML's local stores).",
    )
    api_token: str | None = Field(None, description="Bearer token every request must carry.")
    api_token_secret: str | None = Field(None, description="ZenML secret whose 'token' value is the bearer token.")
    max_batch: int = Field(1000, ge=1, description="Most songs (rows) one request may carry.")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    max_upload_rows: int = Field(100_000, ge=1, description="Most rows one CSV file sent to POST /batch may have.")
    max_explain: int = Field(
        20, ge=1, le=1000, description="Most songs (rows) one POST /explain request may carry (~15 ms of CPU each)."
    )
    model_card_file: Path | None = Field(
        None, description="The model card (HTML) GET /model-card shows, for a model served from HEADLINER_MODEL_FILE."
    )
    log_flush_seconds: float = Field(0.2, gt=0, description="How often queued log rows go to the writer process.")
    rollout_poll_seconds: float = Field(1.0, gt=0, description="How often a rollout service reads its policy.")
    registry_poll_seconds: float = Field(
        5.0, gt=0, description="How often a rollout service asks the registry who holds production."
    )
    workers: int = Field(1, ge=1, le=64, description="Worker processes serving one port (BentoML's `workers`).")
    drain_seconds: int = Field(
        20,
        ge=1,
        le=600,
        description="On a stop signal, how long a worker lets the requests in flight finish before it cancels them.",
    )

    @property
    def follows_production(self) -> bool:
        """Serving the production stage from the registry: the service follows promotions and takes
        rollout policies (production plus a candidate)."""
        return self.model_file is None and bool(self.model) and self.model_version == "production"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        from pydantic_settings import DotEnvSettingsSource

        return (
            init_settings,
            env_settings,
            DotEnvSettingsSource(settings_cls, env_file=stack_settings_file()),
            file_secret_settings,
        )

    def inference_log_url(self) -> str:
        """A plain path means a SQLite file."""
        if "://" in self.inference_log:
            return self.inference_log
        return f"sqlite:///{Path(self.inference_log).expanduser().resolve()}"

    def inference_log_display(self) -> str:
        return url_without_password(self.inference_log_url())

    def bearer_token(self) -> str | None:
        if self.api_token:
            return self.api_token
        if self.api_token_secret:
            from zenml.client import Client

            values = Client().get_secret(self.api_token_secret).secret_values
            if "token" not in values:
                raise ValueError(f"ZenML secret '{self.api_token_secret}' has no 'token' value")
            return str(values["token"])
        return None
