"""The library functions behind the commands, called without the CLI: serving a file in the foreground
(headliner/deploy/foreground.py) and the monitoring loop's choices (headliner/monitoring/loop.py)."""

import sys

import pytest

from headliner.deploy.foreground import packaged_model, require_free_port, serve_command
from headliner.errors import HeadlinerError, MonitoringError
from headliner.monitoring.loop import monitored_version, retraining_allowed
from headliner.serving.inference_log import InferenceLog
from headliner.serving.settings import ServingSettings
from tests.helpers.inference_log import FEATURES, record
from tests.helpers.ports import bound_socket


def test_a_packaged_model_file_is_loaded_with_its_resolved_path(jukebox_onnx_file):
    path, predictor = packaged_model(str(jukebox_onnx_file))
    assert path == jukebox_onnx_file.resolve()
    assert (predictor.model_name, predictor.model_version) == ("jukebox", "1")


def test_a_missing_or_foreign_model_file_is_refused_naming_it(tmp_path):
    with pytest.raises(HeadlinerError, match=r"--model-file: no such file .*absent\.onnx"):
        packaged_model(str(tmp_path / "absent.onnx"))
    foreign = tmp_path / "notes.onnx"
    foreign.write_bytes(b"not a model")
    with pytest.raises(HeadlinerError, match=r"--model-file .*notes\.onnx: not a packaged Headliner model"):
        packaged_model(str(foreign))


def test_a_port_something_listens_on_is_refused_and_a_free_one_passes():
    with bound_socket() as server:
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(HeadlinerError, match=rf"^port {port} on 127\.0\.0\.1 is in use .*choose --port$"):
            require_free_port("127.0.0.1", port)
    require_free_port("127.0.0.1", port)  # closed again: free


def test_the_service_runs_in_this_python_on_the_given_interface():
    assert serve_command("0.0.0.0", 3100) == [sys.executable, "-m", "serving", "--host", "0.0.0.0", "--port", "3100"]


def test_bentoml_serves_with_the_drain_timeout_of_the_settings():
    from serving.__main__ import bentoml_serve_command

    command = bentoml_serve_command("127.0.0.1", 3100, ServingSettings(drain_seconds=7))
    assert command == [
        sys.executable, "-m", "bentoml", "serve", "serving.service:Headliner", "--host", "127.0.0.1", "--port", "3100",
        "--timeout-graceful-shutdown", "7",
    ]  # fmt: skip
    assert bentoml_serve_command("0.0.0.0", 3000, ServingSettings())[-1] == "20"
    with pytest.raises(ValueError, match="drain_seconds"):
        ServingSettings(drain_seconds=0)


def test_monitoring_judges_the_chosen_version_or_else_the_one_that_answered_last(tmp_path):
    url = f"sqlite:///{tmp_path / 'log.sqlite'}"
    assert monitored_version(url, "jukebox", "production") == "production"
    with pytest.raises(MonitoringError, match=r"holds no requests to 'jukebox': serve it"):
        monitored_version(url, "jukebox", None)
    log = InferenceLog(url, FEATURES, flush_seconds=60)
    log.append(record(1))
    assert log.close() == 0
    assert monitored_version(url, "jukebox", None) == "3"  # the version of the logged request


def test_retraining_follows_the_flag_else_the_spec(jukebox_spec):
    automatic = jukebox_spec.retraining.automatic
    assert retraining_allowed(jukebox_spec, None) is automatic
    assert retraining_allowed(jukebox_spec, True) is True
    assert retraining_allowed(jukebox_spec, False) is False
