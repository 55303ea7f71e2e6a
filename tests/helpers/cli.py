"""The project's CLI as the tests run it: `python run.py ARGS` in a subprocess, and a pipeline run through
it read back from the session's store."""

import re
import subprocess
import sys

from headliner.spec import PROJECT_ROOT
from tests.helpers.ports import free_port

FAST_RUN_CONFIG = str(PROJECT_ROOT / "tests" / "training_fast.yaml")
FAST_REGRESSION_RUN_CONFIG = str(PROJECT_ROOT / "tests" / "training_fast_regression.yaml")
STORE_SALES_CONFIG = "configs/use_cases/store_sales.yaml"
STORE_SALES_ROWS = "8000"  # 96 series over 83 weeks: 5,304 examples after a year of lag history


def cli_command(args: list[str]) -> list[str]:
    """`python run.py ARGS`, to run in the project folder."""
    return [sys.executable, "run.py", *args]


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python run.py ARGS` in the project, with the given environment (None: this process's)."""
    return subprocess.run(cli_command(args), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)


def finished_run(result: subprocess.CompletedProcess):
    """The first pipeline run a successful CLI call reports finished, from the session's store."""
    from zenml.client import Client

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    finished = re.search(r"Run '([^']+)' finished", result.stdout)
    assert finished, result.stdout[-4000:]
    return Client().get_pipeline_run(finished.group(1))


def run_pipeline(args: list[str], env: dict[str, str]):
    """Run a pipeline through the CLI; returns the finished run from the store and the CLI's output."""
    result = run_cli(args, env)
    return finished_run(result), result.stdout


def run_cli_on_a_free_port(args: list[str], env: dict[str, str], attempts: int = 3):
    """The CLI with `--port PORT` appended, PORT a free port; again on another port if another program took
    it first (the CLI's own 'port ... is in use' refusal). Returns the port and the finished process."""
    for _ in range(attempts):
        port = free_port()
        result = run_cli([*args, "--port", str(port)], env)
        if not (result.returncode == 1 and f"port {port}" in result.stderr and "is in use" in result.stderr):
            return port, result
    raise AssertionError(f"{attempts} free ports were taken before the CLI could use them: {result.stderr[-2000:]}")
