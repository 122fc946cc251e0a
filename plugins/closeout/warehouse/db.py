"""Open psycopg 3 connections to the warehouse named by the ``closeout_warehouse`` connection.

Every session is bounded so nothing hangs: ``statement_timeout``, ``lock_timeout`` and
``idle_in_transaction_session_timeout`` are set at connect time, and TCP keepalives notice a warehouse that
vanished behind a dead network path. Each can be changed through the connection's extras (same names; a
timeout is a Postgres duration such as ``"90s"`` or ``"30min"``, ``"0"`` switches it off). The session's
``application_name`` names the DAG, task and run (from Airflow's task context), so ``pg_stat_activity`` and a
lock-wait message say which task holds what.

A task's first connection per process also checks the schema against this package's migrations
(``closeout.warehouse.migrations.ensure_schema``): it refuses to run on an older or newer schema, or migrates an
older one when ``CLOSEOUT_AUTO_MIGRATE`` allows.
"""

from __future__ import annotations

import os
import re
from typing import Any

import psycopg

from closeout.connections import ConnectionInfo, get_connection

WAREHOUSE_CONN_ID = "closeout_warehouse"

# Extras that libpq understands and a platform team may set on the Airflow connection.
_LIBPQ_EXTRAS = (
    "sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "target_session_attrs",
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
)  # fmt: skip

# Session bounds (server settings) and their defaults; each overridable by the connection extra of that name.
SESSION_DEFAULTS: dict[str, str] = {
    "statement_timeout": "30min",
    "lock_timeout": "2min",
    "idle_in_transaction_session_timeout": "30min",
}
# TCP keepalives (libpq parameters): a dead peer is noticed after about idle + interval * count seconds.
KEEPALIVE_DEFAULTS: dict[str, int] = {"keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 10,
                                      "keepalives_count": 6}  # fmt: skip
CONNECT_TIMEOUT_DEFAULT = 30
_DURATION = re.compile(r"^\s*\d+(\.\d+)?\s*(us|ms|s|min|h|d)?\s*$")
_APP_NAME_MAX = 63  # Postgres keeps NAMEDATALEN - 1 bytes


def application_name(default: str = "closeout") -> str:
    """``closeout:<dag without closeout_>/<task>/<run id>`` inside a task (Airflow exports its context to the
    environment before ``execute``), ``CLOSEOUT_APPLICATION_NAME`` when set, else ``default``; at most 63 bytes."""
    explicit = os.environ.get("CLOSEOUT_APPLICATION_NAME")
    if explicit:
        return explicit[:_APP_NAME_MAX]
    dag_id = os.environ.get("AIRFLOW_CTX_DAG_ID")
    task_id = os.environ.get("AIRFLOW_CTX_TASK_ID")
    if not dag_id or not task_id:
        return default
    run_id = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID", "")
    name = f"closeout:{dag_id.removeprefix('closeout_')}/{task_id}/{run_id}"
    return name.encode()[:_APP_NAME_MAX].decode(errors="ignore")


def session_settings(conn: ConnectionInfo) -> dict[str, str]:
    """The server settings every session gets: defaults, overridden by the connection's extras."""
    settings: dict[str, str] = {}
    for key, default in SESSION_DEFAULTS.items():
        value = str(conn.extra.get(key, default)).strip()
        if not _DURATION.match(value):
            raise ValueError(f"connection {conn.conn_id!r}: extra {key}={value!r} is not a Postgres duration "
                             "(e.g. '90s', '30min', '0' for none)")  # fmt: skip
        settings[key] = value.replace(" ", "")
    return settings


def conninfo_kwargs(conn: ConnectionInfo, *, app_name: str | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "host": conn.host or conn.extra.get("host"),
        "port": conn.port or 5432,
        "user": conn.login,
        "password": conn.password or None,
        "dbname": conn.schema or conn.extra.get("dbname") or "postgres",
        "application_name": app_name or application_name(),
        "connect_timeout": CONNECT_TIMEOUT_DEFAULT,
        **KEEPALIVE_DEFAULTS,
    }
    for key in _LIBPQ_EXTRAS:
        if key in conn.extra:
            kwargs[key] = conn.extra[key]
    bounds = " ".join(f"-c {key}={value}" for key, value in session_settings(conn).items())
    kwargs["options"] = f"{conn.extra['options']} {bounds}" if conn.extra.get("options") else bounds
    return {k: v for k, v in kwargs.items() if v is not None}


def connect(
    conn_id: str = WAREHOUSE_CONN_ID,
    *,
    autocommit: bool = False,
    check_schema: bool = True,
    app_name: str | None = None,
) -> psycopg.Connection:
    """A new bounded connection; callers own it (use ``with connect() as conn``). The first one per process and
    database checks the schema version (``check_schema=False`` only for the migration step itself)."""
    info = get_connection(conn_id)
    conn = psycopg.connect(**conninfo_kwargs(info, app_name=app_name), autocommit=autocommit)
    if check_schema:
        from closeout.warehouse.migrations import ensure_schema

        try:
            ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
    return conn
