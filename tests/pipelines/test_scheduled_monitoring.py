"""Scheduled monitoring against the session's store: a retrained version gets a staging request filed by the
scheduler, which the scheduler itself cannot approve (four eyes) and which holds off further retraining
until a person decides it, and an alert naming both reaches the webhook; `python run.py monitor --every`
runs until SIGTERM, one scheduler per model."""

import json
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from headliner.governance import promotion as governance
from headliner.monitoring.loop import SCHEDULER_USER, awaiting_staging, request_staging
from headliner.spec import PROJECT_ROOT
from tests.helpers.cli import cli_command, run_cli

MODEL = "scheduled"


@pytest.fixture
def webhook():
    """A webhook on 127.0.0.1 that answers 204 and keeps the JSON bodies posted to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)  # binds a free port itself
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-path", received
    server.shutdown()
    server.server_close()


def test_a_scheduled_retrain_files_a_staging_request_a_person_must_approve(local_stack, jukebox_spec, webhook, caplog):
    from zenml.client import Client

    url, received = webhook
    client = Client()
    client.create_model(MODEL)
    number = client.create_model_version(MODEL).number
    spec = jukebox_spec.model_copy(
        update={"name": MODEL, "retraining": jukebox_spec.retraining.model_copy(update={"alert_webhook": url})}
    )
    trigger = {"by": "monitoring", "monitoring_run": "monitoring-1", "model_version": "3", "reason": "60% drifted"}
    assert awaiting_staging(MODEL) is None

    request, alert = request_staging(spec, number, trigger)
    # a version made by hand has no card to refresh: a warning, the request stands
    assert f"staging request of {MODEL} v{number} filed; its model card was not fully refreshed" in caplog.text

    assert (request.model, request.version, request.from_stage, request.to_stage) == (MODEL, number, "none", "staging")
    assert (request.requested_by, request.status) == (SCHEDULER_USER, "pending")
    assert request.reason == "retrained after monitoring run 'monitoring-1' decided retrain: 60% drifted"
    assert [r.id for r in governance.pending_requests(MODEL)] == [request.id]
    assert alert.level == "warning" and alert.webhook == f"{url.split('/hooks')[0]}/"
    assert alert.webhook_status == 204 and alert.webhook_error is None
    assert alert.message == (
        f"{MODEL} v{number} was retrained after monitoring run 'monitoring-1' of v3 decided retrain; staging "
        f"request {request.id} awaits a second person: python run.py promote approve {request.id} "
        f"(or promote reject {request.id} --reason TEXT)"
    )
    (posted,) = received
    assert posted["level"] == "warning" and posted["text"] == alert.message
    assert posted["request"]["id"] == request.id and posted["trigger"] == trigger
    with pytest.raises(governance.PromotionError, match=f"{SCHEDULER_USER} filed request {request.id} and cannot"):
        governance.approve(request.id, SCHEDULER_USER)
    assert governance.stage_name(client.get_model_version(MODEL, number)) == "none"
    (event,) = governance.history(MODEL, number)
    assert (event.event, event.by, event.stage) == ("requested", SCHEDULER_USER, "staging")
    # until a person decides it, the next scheduled retrain waits; a rejection lets it train again
    assert awaiting_staging(MODEL) == request
    governance.reject(request.id, "drift is seasonal", "bob")
    assert awaiting_staging(MODEL) is None


def test_the_monitor_command_runs_until_sigterm_one_scheduler_per_model(local_stack, isolated_env, tmp_path):
    log = tmp_path / "inference_log.sqlite"
    args = ["monitor", "--every", "2s", "--inference-log", str(log)]
    scheduler = subprocess.Popen(
        cli_command(args), cwd=PROJECT_ROOT, env=isolated_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = []
        deadline = time.monotonic() + 120
        while not any(line.startswith("Next run at ") for line in lines):
            assert time.monotonic() < deadline and scheduler.poll() is None, "\n".join(lines)
            lines.append(scheduler.stdout.readline().rstrip("\n"))
        second = run_cli(args, isolated_env)
        scheduler.send_signal(signal.SIGTERM)
        stdout, stderr = scheduler.communicate(timeout=60)
    finally:
        scheduler.kill()
    assert scheduler.returncode == 0, stderr
    assert second.returncode == 1
    assert second.stderr.strip().startswith(f"error: another scheduler (pid {scheduler.pid}) is monitoring this model")
    lines += stdout.splitlines()
    start = lines.index(f"Monitoring jukebox every 2s (pid {scheduler.pid}); stop with SIGTERM or Ctrl-C")
    assert lines[start + 1].startswith("Run 1 at ") and ": the window since " in lines[start + 1]
    # nothing was served: the run fails, the schedule goes on with its window
    failed = lines[start + 2]
    assert failed.startswith(f"Run 1 failed: MonitoringError: the inference log at sqlite:///{log} holds no requests")
    assert failed.endswith("its window is carried into the next run")
    assert "SIGTERM received: finishing the current run, then stopping (send it again to interrupt the run)" in lines
    assert lines[-1].startswith("Stopped after ") and lines[-1].endswith(" run(s)")
