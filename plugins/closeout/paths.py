"""Where closeout finds its resources (SQL, templates, default configs) and keeps local state.

Two ways to install, one lookup:

* **Installed package** (a wheel built from this repository): ``include/`` ships inside the package as
  ``closeout/_include`` and is found through :mod:`importlib.resources`, never through the source tree.
* **Copied folders** (``plugins/`` and ``include/`` side by side, DESIGN.md): the package has no
  ``_include`` folder, so the repository's ``include/`` next to ``plugins/`` is used.

``CLOSEOUT_INCLUDE_DIR`` overrides the whole resource root and ``CLOSEOUT_SQL_DIR`` only the SQL folder,
for layouts that differ. Every module that reads a resource by path asks this module.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent.parent
RESOURCES_FOLDER = "_include"


@cache
def packaged_include_dir() -> Path | None:
    """The resources shipped inside an installed wheel, or None when running from copied folders.

    Wheels install unpacked, so the traversable is a real folder; a zipped install is not supported.
    importlib.resources is imported here, not at module import: it costs ~60 ms of every DAG file's parse."""
    from importlib.resources import files

    candidate = files("closeout").joinpath(RESOURCES_FOLDER)
    if candidate.is_dir():
        return Path(str(candidate))
    return None


def include_dir() -> Path:
    """Root of closeout's resources: ``sql/``, ``close/``, ``ledger/``, ``billing/``, ``payouts/``, ``recon/``."""
    override = os.environ.get("CLOSEOUT_INCLUDE_DIR")
    if override:
        return Path(override)
    return packaged_include_dir() or PROJECT_ROOT / "include"


def resource(*parts: str) -> Path:
    """One resource below :func:`include_dir`, e.g. ``resource("ledger", "accounts.yaml")``."""
    return include_dir().joinpath(*parts)


def sql_dir() -> Path:
    override = os.environ.get("CLOSEOUT_SQL_DIR")
    return Path(override) if override else resource("sql")


def state_dir() -> Path:
    """Git-ignored folder for local state (embedded Postgres data, demo Airflow home).

    From the source tree it is ``.closeout`` in the repository; an installed package never writes into
    site-packages, so it uses ``$AIRFLOW_HOME/closeout`` (or ``~/.closeout``)."""
    override = os.environ.get("CLOSEOUT_HOME")
    if override:
        return Path(override)
    if packaged_include_dir() is None:
        return PROJECT_ROOT / ".closeout"
    airflow_home = os.environ.get("AIRFLOW_HOME")
    return Path(airflow_home) / "closeout" if airflow_home else Path.home() / ".closeout"


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
