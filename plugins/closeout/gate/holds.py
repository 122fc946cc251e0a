"""Payout holds: opened by a reconciliation breach, released only by an identified person with a reason.

The release goes through ``closeout_data.release_payout_hold`` (migration 0026): only the warehouse role
``closeout_finance`` may execute it (the pipeline's role cannot release a hold, nor update the table), it refuses
the person who caused the hold (the triggering user of the reconciliation run that opened it, ``caused_by``)
and records the decision in ``closeout.decisions``. Who the person is comes from the Airflow API server, not
from free text: see ``closeout.gate.identity`` and ``python -m closeout.gate release``.

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
    "released_at, released_by, release_reason, caused_by, evidence_pack"
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
    caused_by: str | None = None
    evidence_pack: str | None = None  # the incident pack's index.json (closeout.evidence.incident, 0029)

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
    caused_by: str | None = None,
) -> tuple[Hold, bool]:
    """Open a hold for the cause, or return the one already open; ``(hold, created)``. Committed on return.

    An advisory lock on the cause serialises concurrent breaches of it; the partial unique index is the
    backstop that keeps a second open hold out whatever the caller does. A hold without its incident pack gets
    it here, once the hold is committed (closeout.evidence.incident): a pack that cannot be written is logged and
    stops nothing, and the release then names the command that builds it late.
    """
    hold, created = _open_hold(conn, recon_run_id=recon_run_id, check_name=check_name, period=period,
                               reason=reason, details=details, key=key, caused_by=caused_by)  # fmt: skip
    if hold.evidence_pack is None:
        from closeout.evidence.incident import write_incident_pack_safely

        if write_incident_pack_safely(conn, hold.hold_id):
            hold = get_hold(conn, hold.hold_id) or hold
            conn.rollback()
    return hold, created


def _open_hold(
    conn: psycopg.Connection,
    *,
    recon_run_id: str,
    check_name: str,
    period: str | None,
    reason: str,
    details: dict[str, Any] | None,
    key: str | None,
    caused_by: str | None,
) -> tuple[Hold, bool]:
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
            f"""INSERT INTO closeout_data.payout_holds (reason, recon_run_id, check_name, period, cause_key, details,
                       caused_by)
                VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
            (reason, recon_run_id, check_name, period, key, Jsonb(details or {}), caused_by),
        )
        created = cur.fetchone()
        assert created is not None
        return created, True


def release_hold(
    conn: psycopg.Connection, hold_id: int, *, by: str, why: str, ref: dict[str, Any] | None = None
) -> Hold:
    """Record the release of an open hold: who, when (database clock) and why, and the decision. Committed.

    This is the only way a hold ends; a green reconcile does not call it. ``by`` must be an identity the caller
    verified (``closeout.gate.identity``); the database refuses the pipeline's role and the hold's causer.
    """
    if not by or not by.strip():
        raise HoldError("releasing a payout hold needs who releases it")
    if not why or not why.strip():
        raise HoldError("releasing a payout hold needs --why: the reason it is safe to pay out")
    _idle(conn)
    hold = get_hold(conn, hold_id)
    if hold is None:
        conn.rollback()
        raise HoldError(f"payout hold {hold_id} does not exist")
    if not hold.is_open:
        conn.rollback()
        raise HoldError(f"payout hold {hold_id} was already released at {hold.released_at} by {hold.released_by}")
    try:
        (released_at,) = conn.execute(
            "SELECT closeout_data.release_payout_hold(%s, %s, %s, %s)",
            (hold_id, by.strip(), why.strip(), Jsonb(ref or {})),
        ).fetchone()
        conn.commit()
    except psycopg.errors.InsufficientPrivilege as exc:
        conn.rollback()
        raise HoldError(f"payout hold {hold_id}: this database login may not release holds "
                        f"(it needs the closeout_finance role): {exc.diag.message_primary}") from exc  # fmt: skip
    except psycopg.errors.RaiseException as exc:
        conn.rollback()
        raise HoldError(str(exc.diag.message_primary)) from exc
    if released_at is None:  # refused, and the refusal recorded as a decision
        raise HoldError(f"payout hold {hold_id} was caused by {hold.caused_by}, who cannot release it; "
                        "the refusal is recorded in closeout.decisions")  # fmt: skip
    released = get_hold(conn, hold_id)
    conn.rollback()
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
