"""Corrections after issue: decreases of issued invoices leave the drafts and become credits.

The drafting bills a change to an entry that an issued invoice already billed as adjustment or credit rows
on the client's next draft (``include/sql/billing/40_desired.sql``). A decrease waiting there would reach the
customer a month late, as a negative line on another invoice. This step takes those rows off the draft and
records them as a *correction* of the invoice they correct, issued to Stripe as a credit note against it
(``closeout.payments.credit_notes``); a draft whose period is over and that still nets negative has its
remaining adjustment and credit rows turned into one credit on the client's Stripe customer balance, so it
never sits unpublished. Increases stay on the draft, as before.

The rows move, they are not copied: each is closed on the draft (a new draft version, as a drafting run
would write it) and recorded, same entry version and amount, in ``closeout_data.correction_entries``. So
invariant 1 holds counting both: what an entry is billed for is its current line entries on invoices not
voided plus its correction entries not voided (``closeout.credit_note_lines``), and the drafting counts the
corrections as billed when the entry changes again. The SQL is in ``include/sql/corrections/``.

Runs under the billing lock, in the caller's transaction: a failed run leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import psycopg

from closeout.billing.drafting import lock_billing
from closeout.paths import sql_statements

SELECT_SCRIPTS = ("corrections/10_void.sql", "corrections/20_select.sql")
RECORD_SCRIPT = "corrections/30_record.sql"
TEMP_TABLES = ("correction_rows", "correction_nets", "correction_billed", "correction_moves", "correction_new")


@dataclass
class CorrectionsRecorded:
    """What one run took off the drafts."""

    credit_notes: int = 0
    customer_balance_credits: int = 0
    entries: int = 0
    amount_minor_by_currency: dict[str, int] = field(default_factory=dict)
    drafts_changed: list[str] = field(default_factory=list)
    voided: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_corrections(
    conn: psycopg.Connection, *, as_of: date, airflow_run_id: str | None = None
) -> CorrectionsRecorded:
    """Select and record every correction due on ``as_of`` in the caller's transaction (the caller commits)."""
    lock_billing(conn)
    _drop_temp_tables(conn)
    (locked_through,) = conn.execute("SELECT closeout_data.locked_through()").fetchone()
    params = {"locked_through": locked_through, "as_of": as_of}
    summary = CorrectionsRecorded()
    before_void = conn.execute("SELECT count(*) FROM closeout_data.corrections WHERE state = 'void'").fetchone()[0]
    for script in SELECT_SCRIPTS:
        for statement in sql_statements(script):
            conn.execute(statement, params if "%(" in statement else None)
    summary.voided = (
        conn.execute("SELECT count(*) FROM closeout_data.corrections WHERE state = 'void'").fetchone()[0] - before_void
    )
    rows = conn.execute(
        """SELECT kind, currency, count(*), sum(amount_minor), array_agg(DISTINCT draft_id)
           FROM correction_new GROUP BY kind, currency"""
    ).fetchall()
    if rows:
        (run_id,) = conn.execute(
            """INSERT INTO closeout_data.draft_runs (airflow_run_id, status, finished_at)
               VALUES (%s, 'succeeded', clock_timestamp()) RETURNING draft_run_id""",
            (f"corrections:{airflow_run_id or 'manual'}",),
        ).fetchone()
        for statement in sql_statements(RECORD_SCRIPT):
            conn.execute(statement, {"draft_run_id": run_id} if "%(" in statement else None)
        (summary.entries,) = conn.execute("SELECT count(DISTINCT (source, source_id)) FROM correction_moves").fetchone()
        drafts: set[str] = set()
        for kind, currency, count, amount, draft_ids in rows:
            if kind == "credit_note":
                summary.credit_notes += count
            else:
                summary.customer_balance_credits += count
            summary.amount_minor_by_currency[currency] = summary.amount_minor_by_currency.get(currency, 0) + int(amount)
            drafts.update(draft_ids)
        summary.drafts_changed = sorted(drafts)
    _drop_temp_tables(conn)
    return summary


def _drop_temp_tables(conn: psycopg.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS " + ", ".join(f"pg_temp.{name}" for name in TEMP_TABLES))
