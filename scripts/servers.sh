#!/usr/bin/env bash
# The servers of the `servers` stack on 127.0.0.1 (ZenML server on MariaDB/MySQL, MLflow on PostgreSQL
# with S3 artifacts, moto's S3 server): up | down | status. See headliner/stacks/servers.py and docs/stacks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m headliner.stacks.servers "$@"
