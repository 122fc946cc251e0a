"""Resolve Airflow connections for code that runs inside and outside tasks.

Airflow's own lookup (``BaseHook.get_connection``) is used everywhere so that connections defined in
the metadata database, a secrets backend or ``AIRFLOW_CONN_*`` variables all work the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConnectionInfo:
    conn_id: str
    conn_type: str | None
    host: str | None
    login: str | None
    password: str | None = field(repr=False)
    schema: str | None
    port: int | None
    extra: dict[str, Any]

    def base_url(self, default_scheme: str = "https") -> str:
        """The host field as a URL without trailing slash (DESIGN.md: host = API base URL)."""
        host = (self.host or "").rstrip("/")
        if not host:
            raise ValueError(f"connection {self.conn_id!r} has no host (the API base URL)")
        if "://" not in host:
            host = f"{default_scheme}://{host}"
            if self.port:
                host = f"{host}:{self.port}"
        return host


def get_connection(conn_id: str) -> ConnectionInfo:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson if conn.extra else {}
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=conn.conn_type,
        host=conn.host,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        port=conn.port,
        extra=dict(extra),
    )
