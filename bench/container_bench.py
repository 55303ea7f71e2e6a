"""Benchmark of the service image against the same service as a process, measured in one run (podman, the
project's CONTAINERS_CONF, the local base image):

    python bench/container_bench.py [--starts 3] [--requests 300] [--base-image IMAGE]

  build   `python run.py image build`'s podman build of the `model` target with a small jukebox model baked
          in: cold (--no-cache: every package installed again from the index) and cached (nothing changed);
  size    the image's size as `podman images` reports it;
  start   cold start, `podman run` until /v2/health/ready answers 200 through the published port, against
          `bentoml serve` of the same model file as a process until the same answer (median of --starts);
  latency one-row POST /predict, sequential, one client, p50/p99 over --requests, container and process,
          and their ratio (what podman's port forwarding adds).

The model is a small linear jukebox model packaged like a trained one; no ZenML state is read or written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

TAG = "localhost/headliner-service:bench-jukebox-v1"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _latencies(client, requests: int) -> list[float]:
    """Milliseconds of `requests` one-song /predict calls, after 20 warm-up calls."""
    from tests.helpers.payloads import SONG

    times = []
    for number in range(20 + requests):
        start = time.perf_counter()
        response = client.post("/predict", json=SONG)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise SystemExit(f"/predict answered {response.status_code}: {response.text[:300]}")
        if number >= 20:
            times.append(elapsed)
    return times


def _container_runs(starts: int, requests: int) -> tuple[list[float], list[float]]:
    """(cold-start seconds of each run, latencies of the first run's requests)."""
    from tests.helpers.containers import RunningContainer

    seconds, latencies = [], []
    for run in range(starts):
        start = time.perf_counter()
        container = RunningContainer.launch(TAG, name_prefix="headliner-bench")
        seconds.append(time.perf_counter() - start)
        try:
            if run == 0:
                latencies = _latencies(container.client, requests)
            container.stop()
        finally:
            container.remove()
    return seconds, latencies


def _process_runs(model_file: Path, folder: Path, starts: int, requests: int) -> tuple[list[float], list[float]]:
    from tests.helpers.service import RunningService, bentoml_command

    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADLINER_")}
    seconds, latencies = [], []
    for run in range(starts):
        log_file = folder / f"process-log-{run}.sqlite"
        env.update(HEADLINER_MODEL_FILE=str(model_file), HEADLINER_INFERENCE_LOG=str(log_file))
        start = time.perf_counter()
        service = RunningService.launch(bentoml_command, env, folder, f"sqlite:///{log_file}")
        seconds.append(time.perf_counter() - start)
        try:
            if run == 0:
                latencies = _latencies(service.client, requests)
        finally:
            service.stop()
    return seconds, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="Cold starts of each (the median is reported).")
    parser.add_argument("--requests", type=int, default=300, help="Timed one-song requests to each.")
    parser.add_argument("--base-image", default=None, help="Parent image (default: the project's local base).")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="headliner-container-bench-"))
    os.environ.update(ZENML_CONFIG_PATH=str(folder / "zenml"), ZENML_ANALYTICS_OPT_IN="false")
    from headliner.deploy.image_build import MODEL_TARGET, build_image, image_size, podman_environment, stage_model
    from headliner.deploy.service_image import BASE_IMAGE
    from headliner.spec import USE_CASES_DIR, load_spec
    from tests.helpers.containers import podman
    from tests.helpers.models import packaged_linear_model

    base = args.base_image or BASE_IMAGE
    model_file = folder / "jukebox.onnx"
    model_file.write_bytes(packaged_linear_model(load_spec(USE_CASES_DIR / "jukebox.yaml"), rows=20_000))
    stage_model(model_file.read_bytes())

    print("building cold (--no-cache: every package from the index) ...", flush=True)
    cold = build_image(TAG, MODEL_TARGET, base, no_cache=True, quiet=True)
    cached = build_image(TAG, MODEL_TARGET, base, quiet=True)
    size = image_size(TAG, podman_environment())
    print("starting the container and the process ...", flush=True)
    container_starts, container_ms = _container_runs(args.starts, args.requests)
    process_starts, process_ms = _process_runs(model_file, folder, args.starts, args.requests)
    podman("image", "rm", TAG, check=False)

    rows = [
        ("image size", f"{size / 1e6:.0f} MB", ""),
        ("build, cold (--no-cache)", f"{cold:.1f} s", ""),
        ("build, cached", f"{cached:.1f} s", ""),
        (
            "cold start, run -> ready (median)",
            f"{statistics.median(container_starts):.2f} s",
            f"{statistics.median(process_starts):.2f} s",
        ),
        (
            "/predict latency p50",
            f"{statistics.median(container_ms):.2f} ms",
            f"{statistics.median(process_ms):.2f} ms",
        ),
        (
            "/predict latency p99",
            f"{_percentile(container_ms, 0.99):.2f} ms",
            f"{_percentile(process_ms, 0.99):.2f} ms",
        ),
    ]
    print(f"\n{'':36} {'container':>12} {'process':>12}")
    for name, container, process in rows:
        print(f"{name:36} {container:>12} {process:>12}")
    ratio = statistics.median(container_ms) / statistics.median(process_ms)
    print(
        f"\nlatency ratio container/process (p50): {ratio:.2f}; starts (s): container "
        f"{[round(s, 2) for s in container_starts]}, process {[round(s, 2) for s in process_starts]}"
    )


if __name__ == "__main__":
    main()
