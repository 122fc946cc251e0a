#!/usr/bin/env bash
# Runs closeout on embedded defaults: sandbox trackers with generated data, the embedded Postgres,
# Airflow metadata in SQLite, real DAG runs; prints a summary at the end.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec "${CLOSEOUT_VENV:-$root/.venv}/bin/python" "$root/scripts/demo.py" "$@"
