"""Bounded advisory-lock waits that say who holds the lock.

``pg_advisory_lock`` waits forever; a task stuck behind a hung holder would never fail, retry or alert. Here a
wait polls ``pg_try_advisory_lock`` (or the transaction-scoped variant) until a deadline, then raises
``LockBusy`` naming the lock and its holder as ``pg_stat_activity`` sees it: the holder's ``application_name``
is set per task (``closeout.warehouse.db.application_name``: DAG, task and run), so the message says which
task of which run holds it. ``LockBusy`` is an ordinary exception: Airflow retries the task.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg

DEFAULT_WAIT_SECONDS = 120.0
WAIT_ENV = "CLOSEOUT_LOCK_WAIT_SECONDS"

_HOLDER_SQL = """
SELECT a.pid, coalesce(nullif(a.application_name, ''), '(no application_name)'), a.state,
       a.usename, date_trunc('second', a.xact_start), date_trunc('second', a.backend_start)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database
                                                               WHERE datname = current_database())
  AND l.classid = %(classid)s::bigint::oid AND l.objid = %(objid)s::bigint::oid AND l.objsubid = 1
  AND a.pid <> pg_backend_pid()
"""


class LockBusy(RuntimeError):
    """Another session holds the advisory lock past the wait's bound; retryable (the task fails and retries)."""

    def __init__(self, message: str, *, lock: str, holders: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.lock = lock
        self.holders = holders


def wait_seconds(default: float = DEFAULT_WAIT_SECONDS) -> float:
    """The deployment's bound for lock waits (``CLOSEOUT_LOCK_WAIT_SECONDS``), else ``default``."""
    raw = os.environ.get(WAIT_ENV, "").strip()
    return float(raw) if raw else default


def lock_key(conn: psycopg.Connection, name: str, seed: int = 8) -> int:
    """The bigint key of a named lock, as ``hashtextextended(name, seed)`` computes it in SQL."""
    (key,) = conn.execute("SELECT hashtextextended(%s, %s)", (name, seed)).fetchone()
    return int(key)


def holders(conn: psycopg.Connection, key: int) -> list[dict[str, Any]]:
    """Sessions holding advisory lock ``key`` in this database (pg_locks joined to pg_stat_activity)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    rows = conn.execute(_HOLDER_SQL, {"classid": unsigned >> 32, "objid": unsigned & 0xFFFFFFFF}).fetchall()
    fields = ("pid", "application_name", "state", "user", "xact_start", "backend_start")
    return [dict(zip(fields, row, strict=True)) for row in rows]


def describe_holders(found: list[dict[str, Any]]) -> str:
    if not found:
        return "no holder visible now (it may just have released it, or it runs as a role this login cannot see)"
    return "; ".join(
        f"pid {h['pid']} application_name {h['application_name']!r} (user {h['user']}, state {h['state']}, "
        f"transaction since {h['xact_start'] or '-'})"
        for h in found
    )


def acquire(
    conn: psycopg.Connection,
    key: int,
    *,
    name: str,
    wait: float | None = None,
    transaction: bool = False,
    poll: float = 0.05,
) -> None:
    """Take advisory lock ``key`` (session-level, or transaction-level with ``transaction=True``) within ``wait``
    seconds (default ``CLOSEOUT_LOCK_WAIT_SECONDS`` or 120 s), else raise ``LockBusy`` naming ``name`` and the
    holder. A session lock is taken outside any transaction the caller has open only if autocommit is on; the
    caller releases it with ``release`` (or by closing the connection)."""
    bound = wait_seconds() if wait is None else wait
    fn = "pg_try_advisory_xact_lock" if transaction else "pg_try_advisory_lock"
    deadline = time.monotonic() + bound
    delay = poll
    while True:
        (got,) = conn.execute(f"SELECT {fn}(%s)", (key,)).fetchone()
        if got:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
        delay = min(delay * 2, 1.0)
    found = holders(conn, key)
    raise LockBusy(
        f"lock {name!r} (advisory key {key}) still held after {bound:g} s by {describe_holders(found)}; "
        "this task fails and Airflow retries it (raise CLOSEOUT_LOCK_WAIT_SECONDS if the holder is legitimately slow)",
        lock=name,
        holders=found,
    )


def release(conn: psycopg.Connection, key: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
