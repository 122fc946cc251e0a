"""The crash matrix's harness: run one closeout step in a child worker process that is killed (SIGKILL, by
``closeout.faults``) at a named point, and the checks every case ends with.

The child is a fresh interpreter with the test's environment (warehouse, sandboxes' connections) plus
``CLOSEOUT_CRASH_AT``; it calls the step's task function exactly as a worker would. Its death is asserted to be
the crash point's SIGKILL (return code -9), not an exception or a timeout: a step that raised before reaching
the point would prove nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from closeout.faults import ENV_VAR
from conftest import ROOT

# the other suites' helpers the matrix builds its cases with (imported after this module, by name)
for _folder in ("payouts", "ledger", "gate"):
    if str(Path(__file__).resolve().parents[1] / _folder) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / _folder))


def die_at(point: str, code: str, *, env: Mapping[str, str] | None = None, timeout: float = 180) -> None:
    """Run ``code`` (Python, one worker's step) in a child process armed to die at ``point``; assert it did."""
    child_env = {**os.environ, **(env or {}), ENV_VAR: point}
    done = subprocess.run([sys.executable, "-c", code], env=child_env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == -signal.SIGKILL, (
        f"the worker was to die by SIGKILL at {point}, it ended with {done.returncode}:\n{done.stderr[-4000:]}"
    )


def duplicate_journals(warehouse) -> list[tuple]:
    """Journals posted more than once for the same fact (kind and source): must be none."""
    return warehouse.rows(
        """SELECT kind, source_ref, count(*) FROM closeout.ledger_journals
           GROUP BY kind, source_ref HAVING count(*) > 1"""
    )


def journal_count(warehouse, kind: str) -> int:
    return int(warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals WHERE kind = %s", (kind,)))
