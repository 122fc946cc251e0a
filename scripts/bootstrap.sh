#!/usr/bin/env bash
# Creates .venv (Python 3.11 or 3.12) and installs the exact pins of requirements.lock into it.
# Re-running is cheap: the install is skipped while the lock file is unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CLOSEOUT_VENV:-$root/.venv}"
lock="$root/requirements.lock"

pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for candidate in python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "closeout needs Python 3.11 or 3.12 on PATH (or PYTHON=/path/to/python)" >&2
  exit 1
}

stamp="$venv/.closeout-lock.sha256"
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
py="$(pick_python)"
echo "bootstrap: creating $venv with $($py --version) and installing requirements.lock (first run takes a few minutes)" >&2
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock"
echo "$want" > "$stamp"
