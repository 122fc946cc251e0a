"""The warehouse's record of failure causes and the alerts sent for them (migration 0014).

Failure callbacks run in the worker, which cannot reach Airflow's metadata database, so "one alert per
new cause" is kept here: ``record_failure`` counts the failure against its open cause, ``deliver_once``
sends a channel's alert unless that channel already delivered it for the cause, ``resolve`` closes the
causes of a task that has just succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from closeout.masking import mask_data, mask_secrets
from closeout.paths import load_sql


@dataclass(frozen=True)
class Cause:
    fingerprint: str
    dag_id: str
    task_id: str
    exception_type: str
    normalised: str
    message: str
    money: bool


def record_failure(conn: psycopg.Connection, cause: Cause, run_id: str | None) -> tuple[int, int]:
    """(cause_id, occurrences) after counting this failure; committed."""
    with conn.transaction():
        cause_id, occurrences = conn.execute(
            load_sql("alerts/record_cause.sql"),
            {**cause.__dict__, **mask_data({"normalised": cause.normalised, "message": cause.message}),
             "run_id": run_id},
        ).fetchone()
    return cause_id, occurrences


def deliver_once(conn: psycopg.Connection, cause_id: int, channel: str, subject: str,
                 send: Callable[[], object]) -> tuple[str, str | None]:  # fmt: skip
    """Send unless this channel already delivered this cause: ('sent' | 'already_sent' | 'failed', error).

    Under a lock per cause and channel, the outcome is written after the attempt: a crash in between sends
    again next time (at least once) rather than never. ``send`` raising is a failed delivery, recorded with
    its message (the senders never put credentials in one); it is never raised from here.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 14))", (f"alert:{cause_id}:{channel}",))
        row = conn.execute(
            "SELECT status FROM closeout_data.alert_deliveries WHERE cause_id = %s AND channel = %s",
            (cause_id, channel),
        ).fetchone()
        if row and row[0] == "sent":
            return "already_sent", None
        error = None
        try:
            send()
        except Exception as exc:  # a receiver down must not mask the task's own failure
            error = mask_secrets(f"{type(exc).__name__}: {exc}")[:1000]
        status = "failed" if error else "sent"
        conn.execute(load_sql("alerts/record_delivery.sql"),
                     {"cause_id": cause_id, "channel": channel, "status": status, "subject": mask_secrets(subject),
                      "error": mask_secrets(error)})  # fmt: skip
    return status, error


def resolve(conn: psycopg.Connection, dag_id: str, task_id: str, run_id: str | None) -> int:
    """Close the open causes of a task that succeeded; how many were open."""
    with conn.transaction():
        cur = conn.execute(load_sql("alerts/resolve_causes.sql"), {"dag_id": dag_id, "task_id": task_id,
                                                                    "run_id": run_id})  # fmt: skip
        return cur.rowcount


def exponents(conn: psycopg.Connection) -> dict[str, int]:
    with conn.transaction():
        return dict(conn.execute("SELECT code, exponent FROM closeout_data.currencies").fetchall())
