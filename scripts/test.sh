#!/usr/bin/env bash
# The project's one test command, in order: the system test tools (scripts/install_test_tools.sh), the
# pinned Python requirements into the active environment (uv), the linters (ruff check, ruff format --check),
# the type checker (mypy), the import layers (lint-imports), the manual (mkdocs build --strict), then pytest
# with this script's arguments:
#   scripts/test.sh                 everything (two pytest sessions side by side, see below)
#   scripts/test.sh -m unit         one tier (unit, pipelines, services, containers or dashboards; see tests/conftest.py)
#   scripts/test.sh tests/unit -x   any pytest arguments
# The first failing stage stops it with its non-zero exit; pytest finding no test (exit 5) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

stage "system test tools"
scripts/install_test_tools.sh
stage "install requirements-dev.txt"
# uv (pinned in requirements-dev.txt) installs the same pinned list as pip in a tenth of its time (2 min -> 15 s)
python -m pip install --quiet --disable-pip-version-check "$(grep '^uv==' requirements-dev.txt)"
python -m uv pip install --quiet --compile-bytecode --python "$(python -c 'import sys; print(sys.executable)')" \
    -r requirements-dev.txt
stage "ruff check"
ruff check .
stage "ruff format --check"
ruff format --check .
stage "mypy"
mypy
stage "lint-imports"
lint-imports
stage "mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
# --durations: the slowest tests of every run, to keep the whole run within CI's 30 minutes
if [ $# -gt 0 ]; then
    stage "pytest $*"
    exec python -m pytest --durations=25 "$@"
fi
# The whole suite: two pytest sessions side by side, because most of a session's time is waiting (servers
# starting, image builds downloading, services draining) and 2 cores sat half idle with one (27 min of CPU in
# 31 min). The side session takes the tests that bring their own ZenML config, stack and servers, and share
# nothing with the others but the machine: the containers tier (podman image builds, steps in containers)
# and the `servers` stack's tests, and store_sales' whole loop (the regression use case, trained once in its own
# store). Each session has its own temporary folders; both must pass.
SIDE=(tests/containers tests/services/test_servers.py tests/services/test_regression_loop.py)
runs=$(mktemp -d)
stage "pytest ${SIDE[*]} (side session, its output follows the main one's)"
python -m pytest --durations=10 --basetemp="$runs/side" "${SIDE[@]}" >"$runs/side.log" 2>&1 &
side_pid=$!
stage "pytest, every other test (main session)"
main_status=0
python -m pytest --durations=25 --basetemp="$runs/main" --ignore=tests/containers \
    --ignore=tests/services/test_servers.py --ignore=tests/services/test_regression_loop.py || main_status=$?
side_status=0
wait "$side_pid" || side_status=$?
stage "the side session's output (pytest ${SIDE[*]})"
cat "$runs/side.log"
printf '\n== main session exit %s, side session exit %s (%s)\n' "$main_status" "$side_status" "$(date -u +%H:%M:%S)"
rm -rf "$runs"
[ "$main_status" -eq 0 ] && [ "$side_status" -eq 0 ]
