"""Where closeout finds its SQL and keeps local state.

Deployments copy ``plugins/`` and ``include/`` side by side (DESIGN.md), so the SQL folder is found
relative to this package; ``CLOSEOUT_SQL_DIR`` overrides it for layouts that differ.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent.parent


def sql_dir() -> Path:
    override = os.environ.get("CLOSEOUT_SQL_DIR")
    return Path(override) if override else PROJECT_ROOT / "include" / "sql"


def state_dir() -> Path:
    """Git-ignored folder for local state (embedded Postgres data, demo Airflow home)."""
    override = os.environ.get("CLOSEOUT_HOME")
    return Path(override) if override else PROJECT_ROOT / ".closeout"


@cache
def load_sql(relative: str) -> str:
    """Text of one SQL file under include/sql (cached: files do not change while a worker runs)."""
    return (sql_dir() / relative).read_text(encoding="utf-8")


def sql_statements(relative: str) -> list[str]:
    """The statements of a multi-statement SQL file, split at semicolons that end a line.

    Only for scripts without function bodies or string literals that end a line with a semicolon."""
    text = load_sql(relative)
    parts, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            parts.append("\n".join(current).strip())
            current = []
    tail = "\n".join(current).strip()
    if tail and any(not ln.strip().startswith("--") for ln in tail.splitlines() if ln.strip()):
        parts.append(tail)
    return parts
