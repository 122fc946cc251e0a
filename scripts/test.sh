#!/usr/bin/env bash
# Runs the whole test suite (unit + integration: real Airflow DAG runs on the embedded Postgres).
# Extra arguments go to pytest, e.g. scripts/test.sh -k harvest -x
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec "${CLOSEOUT_VENV:-$root/.venv}/bin/python" -m pytest "$@"
