"""Payout holds: opened by a reconciliation breach, released only by a named person with a reason.

The hold table, not the DAG's paused state, is the payout lock (a paused DAG is unpaused by a trigger
from the UI), so ``payouts_blocked`` is what the first task of ``closeout_payouts`` asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

_COLUMNS = (
    "hold_id, opened_at, reason, recon_run_id, check_name, period, cause_key, details, "
    "released_at, released_by, release_reason"
)


class HoldError(RuntimeError):
    """A release that cannot be recorded (unknown hold, already released, who or why missing)."""


@dataclass(frozen=True)
class Hold:
    hold_id: int
    opened_at: datetime
    reason: str
    recon_run_id: str
    check_name: str
    period: str | None
    cause_key: str
    details: dict[str, Any]
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None

    @property
    def is_open(self) -> bool:
        return self.released_at is None


def cause_key(check_name: str, period: str | None) -> str:
    """One cause per check and period: the same check breaching again for the same period is a repeat
    (no new hold, no new alert); another check or another period is a new cause."""
    return f"{check_name}|{period or '-'}"


def _idle(conn: psycopg.Connection) -> None:
    # Holds must be durable before anyone is told about them: finish whatever the caller had open.
    if not conn.autocommit and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()


def open_hold(
    conn: psycopg.Connection,
    *,
    recon_run_id: str,
    check_name: str,
    period: str | None,
    reason: str,
    details: dict[str, Any] | None = None,
    key: str | None = None,
) -> tuple[Hold, bool]:
    """Open a hold for the cause, or return the one already open; ``(hold, created)``. Committed on return.

    An advisory lock on the cause serialises concurrent breaches of it; the partial unique index is the
    backstop that keeps a second open hold out whatever the caller does.
    """
    key = key or cause_key(check_name, period)
    _idle(conn)
    with conn.transaction(), conn.cursor(row_factory=class_row(Hold)) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 8))", (f"payout_hold:{key}",))
        cur.execute(
            f"SELECT {_COLUMNS} FROM closeout_data.payout_holds WHERE cause_key = %s AND released_at IS NULL",
            (key,),
        )
        existing = cur.fetchone()
        if existing is not None:
            return existing, False
        cur.execute(
            f"""INSERT INTO closeout_data.payout_holds (reason, recon_run_id, check_name, period, cause_key, details)
                VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
            (reason, recon_run_id, check_name, period, key, Jsonb(details or {})),
        )
        created = cur.fetchone()
        assert created is not None
        return created, True


def release_hold(conn: psycopg.Connection, hold_id: int, *, by: str, why: str) -> Hold:
    """Record the release of an open hold: who, when (database clock) and why. Committed on return.

    This is the only way a hold ends; a green reconcile does not call it.
    """
    if not by or not by.strip():
        raise HoldError("releasing a payout hold needs --by: who releases it")
    if not why or not why.strip():
        raise HoldError("releasing a payout hold needs --why: the reason it is safe to pay out")
    _idle(conn)
    with conn.transaction(), conn.cursor(row_factory=class_row(Hold)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM closeout_data.payout_holds WHERE hold_id = %s FOR UPDATE", (hold_id,))
        hold = cur.fetchone()
        if hold is None:
            raise HoldError(f"payout hold {hold_id} does not exist")
        if not hold.is_open:
            raise HoldError(f"payout hold {hold_id} was already released at {hold.released_at} by {hold.released_by}")
        cur.execute(
            f"""UPDATE closeout_data.payout_holds
                   SET released_at = clock_timestamp(), released_by = %s, release_reason = %s
                 WHERE hold_id = %s RETURNING {_COLUMNS}""",
            (by.strip(), why.strip(), hold_id),
        )
        released = cur.fetchone()
        assert released is not None
        return released


def get_hold(conn: psycopg.Connection, hold_id: int) -> Hold | None:
    with conn.cursor(row_factory=class_row(Hold)) as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM closeout_data.payout_holds WHERE hold_id = %s", (hold_id,))
        return cur.fetchone()


def open_holds(conn: psycopg.Connection) -> list[Hold]:
    with conn.cursor(row_factory=class_row(Hold)) as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM closeout_data.payout_holds WHERE released_at IS NULL ORDER BY opened_at, hold_id"
        )
        return cur.fetchall()


def payouts_blocked(conn: psycopg.Connection) -> list[Hold]:
    """The open holds; payouts may run only when this is empty. Read fresh on every call."""
    return open_holds(conn)
