#!/usr/bin/env bash
# Runs closeout on embedded defaults: sandbox trackers with generated data, the embedded Postgres,
# Airflow metadata in SQLite, real DAG runs; prints a summary at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
exec "${CLOSEOUT_VENV:-$root/.venv}/bin/python" -W ignore "$root/scripts/demo.py" "$@"
