"""Open psycopg 3 connections to the warehouse named by the ``closeout_warehouse`` connection."""

from __future__ import annotations

from typing import Any

import psycopg

from closeout.connections import ConnectionInfo, get_connection

WAREHOUSE_CONN_ID = "closeout_warehouse"

# Extras that libpq understands and a platform team may set on the Airflow connection.
_LIBPQ_EXTRAS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options", "target_session_attrs")


def conninfo_kwargs(conn: ConnectionInfo) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "host": conn.host or conn.extra.get("host"),
        "port": conn.port or 5432,
        "user": conn.login,
        "password": conn.password or None,
        "dbname": conn.schema or conn.extra.get("dbname") or "postgres",
        "application_name": "closeout",
    }
    for key in _LIBPQ_EXTRAS:
        if key in conn.extra:
            kwargs[key] = conn.extra[key]
    return {k: v for k, v in kwargs.items() if v is not None}


def connect(conn_id: str = WAREHOUSE_CONN_ID, *, autocommit: bool = False) -> psycopg.Connection:
    """A new connection; callers own it (use ``with connect() as conn``)."""
    return psycopg.connect(**conninfo_kwargs(get_connection(conn_id)), autocommit=autocommit)
