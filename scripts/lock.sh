#!/usr/bin/env bash
# Re-resolves requirements-dev.txt in a throwaway venv and rewrites requirements.lock.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
"${PYTHON:-python3.11}" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet -r "$root/requirements-dev.txt"
{
  echo "# Exact pins installed by the demo, the tests and CI (scripts/bootstrap.sh). Python 3.11 and 3.12."
  echo "# Regenerate: scripts/lock.sh (fresh venv from requirements-dev.txt, then pip freeze)."
  "$tmp/venv/bin/pip" freeze --exclude pip --exclude setuptools --exclude wheel
} > "$root/requirements.lock"
rm -rf "$tmp"
