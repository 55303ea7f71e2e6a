"""Measures what clients see while the deployment pipeline replaces a running service: one client
sends a `/predict` request every 10 ms during `python run.py --pipeline deployment ...` and reports
how long requests failed, and when the answering model version changed.

    python bench/redeploy_window.py [--port 3000] [--interval 0.01] -- [run.py options, e.g. --version 2]

A service must already be running on the port (deployed by the same pipeline); the script uses the
current ZenML config (ZENML_CONFIG_PATH) like run.py does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


def _probe(url: str, body: bytes, token: str | None) -> tuple[bool, str | None]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    try:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200, json.loads(response.read())["model_version"]
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return False, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config", default="configs/use_cases/jukebox.yaml", help="Use-case spec of the deployed model."
    )
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=0.01, help="Seconds between requests.")
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="Options for run.py --pipeline deployment.")
    args = parser.parse_args()

    from headliner.model.onnx_packaging import example_inputs, feature_schema
    from headliner.serving.settings import ServingSettings
    from headliner.spec import load_spec

    url = f"http://127.0.0.1:{args.port}"
    spec = load_spec(PROJECT_ROOT / args.config)
    body = json.dumps(example_inputs(feature_schema(spec))).encode()
    token = ServingSettings().bearer_token()
    ok, before = _probe(f"{url}/predict", body, token)
    if not ok:
        print(f"no service answers on {url}: deploy one first (python run.py --pipeline deployment)")
        return 2

    samples: list[tuple[float, bool, str | None]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            started = time.monotonic()
            samples.append((started, *_probe(f"{url}/predict", body, token)))
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))

    thread = threading.Thread(target=client, daemon=True)
    started = time.monotonic()
    thread.start()
    run_args = [a for a in args.run_args if a != "--"]
    command = [
        sys.executable,
        "run.py",
        "--pipeline",
        "deployment",
        "--config",
        args.config,
        "--port",
        str(args.port),
        *run_args,
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    time.sleep(1.0)
    stop.set()
    thread.join()
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-2000:])
        return 1

    failures = [t for t, ok, _ in samples if not ok]
    switch = next((t for t, ok, version in samples if ok and version != before), None)
    after = samples[-1][2]
    print(
        f"requests: {len(samples)} over {samples[-1][0] - started:.1f} s (pipeline run included), "
        f"failed: {len(failures)}"
    )
    if failures:
        print(
            f"failure window: {failures[-1] - failures[0] + args.interval:.2f} s "
            f"(from {failures[0] - started:.1f} s to {failures[-1] - started:.1f} s after the pipeline started)"
        )
    else:
        print("failure window: none")
    print(
        f"version before: {before}, after: {after}"
        + (f", first answer from the new version at {switch - started:.1f} s" if switch else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
