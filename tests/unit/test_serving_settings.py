"""Serving settings come from HEADLINER_* variables: where the inference log goes (a path or a URL,
never shown with its password) and the bearer token."""

import pytest

from headliner.serving.settings import ServingSettings, default_inference_log_url


def test_settings_read_the_environment_and_a_path_means_sqlite(monkeypatch, tmp_path):
    monkeypatch.setenv("HEADLINER_INFERENCE_LOG", str(tmp_path / "log.sqlite"))
    monkeypatch.setenv("HEADLINER_MAX_BATCH", "50")
    monkeypatch.setenv("HEADLINER_API_TOKEN", "t0k3n")
    settings = ServingSettings()
    assert settings.inference_log_url() == f"sqlite:///{tmp_path / 'log.sqlite'}"
    assert settings.max_batch == 50 and settings.bearer_token() == "t0k3n"

    monkeypatch.setenv("HEADLINER_INFERENCE_LOG", "postgresql://writer:s3cret@127.0.0.1:5432/headliner")
    assert ServingSettings().inference_log_display() == "postgresql://writer:***@127.0.0.1:5432/headliner"

    monkeypatch.delenv("HEADLINER_INFERENCE_LOG")
    assert ServingSettings().inference_log_url() == default_inference_log_url()
    assert default_inference_log_url().endswith("/local_stores/headliner/inference_log.sqlite")

    monkeypatch.setenv("HEADLINER_MAX_BATCH", "0")
    with pytest.raises(ValueError, match="max_batch"):
        ServingSettings()


def test_local_state_follows_zenml_local_stores_as_in_a_step_container(monkeypatch, tmp_path):
    from headliner.serving.settings import local_state_dir

    monkeypatch.setenv("ZENML_CONFIG_PATH", str(tmp_path / "config"))
    monkeypatch.delenv("ZENML_LOCAL_STORES_PATH", raising=False)
    assert local_state_dir() == tmp_path / "config" / "local_stores" / "headliner"
    monkeypatch.setenv("ZENML_LOCAL_STORES_PATH", str(tmp_path / "mounted"))
    assert local_state_dir() == tmp_path / "mounted" / "headliner"


def test_the_worker_count_is_read_and_checked(monkeypatch):
    monkeypatch.delenv("HEADLINER_WORKERS", raising=False)
    assert ServingSettings().workers == 1
    monkeypatch.setenv("HEADLINER_WORKERS", "3")
    assert ServingSettings().workers == 3
    for wrong in ("0", "65", "two"):
        monkeypatch.setenv("HEADLINER_WORKERS", wrong)
        with pytest.raises(ValueError, match="workers"):
            ServingSettings()
