"""Accounting periods (calendar months, ``YYYY-MM``) and the period lock the month-end close takes.

Once a month is locked, the content of every invoice of a billing period ending in or before it is
fixed, as a frozen (published) invoice's is: the drafting bills a later edit, deletion or late entry
dated in a locked billing period as a linked adjustment or credit on the client's next draft in an
unlocked period, never by changing the locked invoice (``include/sql/billing/40_desired.sql``).

The rule for billing periods that straddle a month end (weekly, semi-monthly): a billing period is
locked when its ``period_end`` falls in or before a locked month. A week from Monday 26 October to
Sunday 1 November 2026 ends in November, so locking 2026-10 leaves it open, and time of 26-31 October
is still billed on it as ordinary time. Locks are a watermark: locking 2026-10 also covers every
billing period that ended earlier, so "the next unlocked draft" is always well defined.

A lock is taken under the billing advisory lock (``drafting.lock_billing``): it waits for a drafting
run in progress and the next run sees it. In the same transaction, before the lock is recorded, the
drafts are refreshed: what was captured before the lock (the close's final sync) is billed on the
period's own drafts, and only what arrives after it becomes an adjustment; there is no gap between the
last refresh and the lock for a sync to fall into. Locks are append-only (``closeout.period_locks``).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout.billing.drafting import lock_billing, refresh_drafts

_PERIOD = re.compile(r"([0-9]{4})-([0-9]{2})")  # ASCII digits only (\d also matches e.g. full-width ones)


class PeriodError(ValueError):
    """A period that is malformed, not over yet, or already locked, named in the message."""


@dataclass(frozen=True)
class Period:
    """One calendar month: ``label`` is ``YYYY-MM``, ``start`` its first day, ``end`` its last."""

    label: str
    start: date
    end: date

    def __str__(self) -> str:
        return self.label


def parse_period(text: str) -> Period:
    """Strict ``YYYY-MM`` (e.g. ``2026-10``); anything else is refused with a PeriodError naming it."""
    if not isinstance(text, str):
        raise PeriodError(f"period {text!r}: expected a string 'YYYY-MM', got {type(text).__name__}")
    match = _PERIOD.fullmatch(text)
    if not match:
        raise PeriodError(f"period {text!r}: expected 'YYYY-MM' (e.g. '2026-10')")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        raise PeriodError(f"period {text!r}: month must be 01-12")
    if year < 1:
        raise PeriodError(f"period {text!r}: year must be 0001 or later")
    return Period(text, date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))


def _as_period(period: Period | str) -> Period:
    return period if isinstance(period, Period) else parse_period(period)


def lock_status(conn: psycopg.Connection, period: Period | str) -> dict[str, Any] | None:
    """The lock that covers ``period``, or None when it is open.

    A month is covered by its own lock or by a lock of a later month (locks are a watermark); the
    result's ``covered_by`` names the lock's month, which differs from ``period`` in the latter case.
    """
    wanted = _as_period(period)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """SELECT period, locked_at, locked_by, close_run_id, drafts, frozen, entries
               FROM closeout_data.period_locks WHERE period_end >= %s
               ORDER BY (period = %s) DESC, period_end LIMIT 1""",
            (wanted.end, wanted.label),
        ).fetchone()
    if row is None:
        return None
    covered_by = row.pop("period")
    return {"period": wanted.label, "period_start": wanted.start, "period_end": wanted.end, "covered_by": covered_by,
            **row}  # fmt: skip


def is_locked(conn: psycopg.Connection, period: Period | str) -> bool:
    return lock_status(conn, period) is not None


def lock_period(
    conn: psycopg.Connection, period: Period | str, *, locked_by: str, close_run_id: str | None = None
) -> dict[str, Any]:
    """Lock a month that is over, in the caller's transaction (the caller commits; on an autocommit
    connection the lock is one transaction of its own); idempotent.

    Returns ``{"period", "period_start", "period_end", "covered_by", "already_locked", "locked_at",
    "locked_by", "close_run_id", "drafts", "frozen", "entries", "draft_run"}``: the invoices whose
    billing period the lock newly covers, still drafts or already frozen (void ones not counted), how
    many entries they bill, and the summary of the drafting run that brought them up to date first.
    Locking a month that is already covered (by its own lock or a later month's) changes nothing and
    returns that lock with ``already_locked: True`` (and no ``draft_run``). Raises PeriodError for a
    malformed period, a month not over yet (UTC, by the database clock) or a blank ``locked_by``.
    """
    wanted = _as_period(period)
    if not isinstance(locked_by, str) or not locked_by.strip():
        raise PeriodError(f"period '{wanted.label}': locked_by is required (who locks it)")
    # a savepoint inside the caller's transaction; a transaction of its own on an autocommit connection,
    # where the advisory lock and the drafting's temp tables would otherwise end with each statement
    with conn.transaction():
        return _lock(conn, wanted, locked_by.strip(), close_run_id)


def _lock(conn: psycopg.Connection, wanted: Period, locked_by: str, close_run_id: str | None) -> dict[str, Any]:
    lock_billing(conn)
    existing = lock_status(conn, wanted)
    if existing is not None:
        return {**existing, "already_locked": True}
    (today,) = conn.execute("SELECT (clock_timestamp() AT TIME ZONE 'UTC')::date").fetchone()
    if wanted.end >= today:
        raise PeriodError(
            f"period '{wanted.label}' has not ended yet (it ends {wanted.end}, today is {today} UTC): "
            "the close locks a month after it is over"
        )
    draft_run = refresh_drafts(conn, airflow_run_id=close_run_id).as_dict()
    draft_run.pop("step_seconds", None)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """WITH covered AS (
                   SELECT count(*) FILTER (WHERE i.status = 'draft')::integer AS drafts,
                          count(*) FILTER (WHERE i.status <> 'draft')::integer AS frozen,
                          coalesce(sum(i.entry_count), 0)::integer AS entries
                   FROM closeout_data.invoices i
                   WHERE i.status <> 'void' AND i.period_end <= %(end)s
                     AND i.period_end > coalesce(closeout_data.locked_through(), '-infinity'::date))
               INSERT INTO closeout_data.period_locks (period, period_start, period_end, locked_by, close_run_id,
                                                      drafts, frozen, entries)
               SELECT %(label)s, %(start)s, %(end)s, %(locked_by)s, %(close_run_id)s, c.drafts, c.frozen, c.entries
               FROM covered c
               RETURNING locked_at, locked_by, close_run_id, drafts, frozen, entries""",
            {"label": wanted.label, "start": wanted.start, "end": wanted.end, "locked_by": locked_by,
             "close_run_id": close_run_id},
        ).fetchone()  # fmt: skip
    return {"period": wanted.label, "period_start": wanted.start, "period_end": wanted.end, "covered_by": wanted.label,
            **row, "already_locked": False, "draft_run": draft_run}  # fmt: skip


def refuse_if_locked(conn: psycopg.Connection, period: Period | str) -> None:
    """For steps that must not run on a locked month: a PeriodError saying who locked it and when."""
    status = lock_status(conn, period)
    if status is not None:
        raise PeriodError(
            f"period '{status['period']}' is already locked (by {status['locked_by']}, at "
            f"{status['locked_at']:%Y-%m-%d %H:%M:%S %Z}, close run {status['close_run_id'] or '-'}"
            + (f"; covered by the lock of {status['covered_by']}" if status["covered_by"] != status["period"] else "")
            + ")"
        )
