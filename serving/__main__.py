"""`python -m serving --host H --port P`: the one way every launcher (run.py serve, the service image, the
Kubernetes pods, the tests) starts the service, so each runs it with the drain timeout of its settings
(HEADLINER_DRAIN_SECONDS: how long a stopping worker lets requests in flight finish). The process becomes
`bentoml serve` (exec): stop signals reach BentoML's arbiter directly, also as a container's PID 1."""

from __future__ import annotations

import argparse
import os
import sys

from headliner.serving.settings import ServingSettings

SERVICE = "serving.service:Headliner"  # the BentoML service class, importable from the project root


def bentoml_serve_command(host: str, port: int, settings: ServingSettings) -> list[str]:
    """`bentoml serve` of the service on host:port in this Python, with the settings' drain timeout."""
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        host,
        "--port",
        str(port),
        "--timeout-graceful-shutdown",
        str(settings.drain_seconds),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every one)")
    parser.add_argument("--port", type=int, default=3000, help="port to listen on")
    arguments = parser.parse_args()
    command = bentoml_serve_command(arguments.host, arguments.port, ServingSettings())
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
