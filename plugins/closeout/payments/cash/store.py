"""Writing cash objects: COPY into a per-session stage, one set-based upsert per kind, links resolved in SQL.

The upserts (``include/sql/cash/upsert_<kind>.sql``) compare Stripe's state, never arrival order: a row is
replaced only by a snapshot further along (status rank, then progress such as the amount refunded, then the
time of the snapshot), so list reads and events, duplicated or shuffled, end in the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg

from closeout.paths import load_sql, sql_statements
from closeout.payments.cash.normalize import COLUMNS, Row

# primary key column per kind: to say which event's snapshot a row now holds
KEYS = {
    "balance_transaction": ("stripe_balance_transactions", "balance_transaction_id"),
    "charge": ("stripe_charges", "charge_id"),
    "payout": ("stripe_payouts", "payout_id"),
    "refund": ("refunds", "refund_id"),
    "credit_note": ("credit_notes", "credit_note_id"),
    "dispute": ("disputes", "dispute_id"),
    "invoice_payment": ("stripe_invoice_payments", "invoice_payment_id"),
    "invoice": ("stripe_invoice_snapshots", "stripe_invoice_id"),
}


class Store:
    """The cash tables as seen from one warehouse connection (stage tables are per session)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        for statement in sql_statements("cash/stage.sql"):
            conn.execute(statement)
        # a re-listable copy of Stripe: losing the last commits in a crash costs a re-read, never correctness
        conn.execute("SET synchronous_commit = off")

    def upsert(self, kind: str, rows: Sequence[Row], event_ids: Sequence[str] | None = None) -> int:
        """Stage ``rows`` (with the event each came from, for events) and upsert them; returns rows written."""
        if not rows:
            return 0
        columns = COLUMNS[kind] + (("event_id",) if event_ids is not None else ())
        stage = f"pg_temp.cash_stage_{kind}"
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY {stage} ({', '.join(columns)}) FROM STDIN") as copy:
                if event_ids is None:
                    for row in rows:
                        copy.write_row(row)
                else:
                    for row, event_id in zip(rows, event_ids, strict=True):
                        copy.write_row((*row, event_id))
            # the keys written are kept for the link pass (resolve_touched.sql): it costs what a run wrote
            key = KEYS[kind][1]
            written = cur.execute(
                f"WITH written AS ({load_sql(f'cash/upsert_{kind}.sql')} RETURNING t.{key}) "
                f"INSERT INTO pg_temp.cash_touched_{kind} (id) SELECT {key} FROM written"
            ).rowcount
            if event_ids is not None:
                self._record_outcomes(cur, kind)
            cur.execute(f"TRUNCATE {stage}")
        return written

    @staticmethod
    def _record_outcomes(cur: psycopg.Cursor, kind: str) -> None:
        """Each staged event: 'applied' when its snapshot is what the row now holds, else 'stale' (the object
        had already moved on, or nothing changed)."""
        if kind == "invoice":  # never from events
            return
        table, key = KEYS[kind]
        cur.execute(
            f"""UPDATE closeout_data.stripe_events e
                SET cash_applied_at = clock_timestamp(),
                    cash_outcome = CASE WHEN t.observed_at = s.observed_at THEN 'applied' ELSE 'stale' END
                FROM pg_temp.cash_stage_{kind} s JOIN closeout_data.{table} t ON t.{key} = s.{key}
                WHERE s.event_id IS NOT NULL AND e.event_id = s.event_id AND e.cash_applied_at IS NULL"""
        )

    def balances(self, rows: Iterable[tuple[str, int, int]], observed_at: datetime) -> int:
        """Stripe's balance per currency (available, pending), unless a newer reading is already stored."""
        with self.conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO closeout_data.stripe_balances AS b (currency, available_minor, pending_minor,
                       observed_at) VALUES (%s, %s, %s, %s)
                   ON CONFLICT (currency) DO UPDATE SET available_minor = excluded.available_minor,
                       pending_minor = excluded.pending_minor, observed_at = excluded.observed_at,
                       updated_at = clock_timestamp()
                   WHERE excluded.observed_at >= b.observed_at""",
                [(currency.upper(), available, pending, observed_at) for currency, available, pending in rows],
            )
            return cur.rowcount

    def resolve(self, *, full: bool = False) -> int:
        """Charge, invoice and presentment links, set-based; returns how many rows gained a link. By default
        for the rows written since the last call and what points at them (``resolve_touched.sql``); ``full``:
        every row still missing a link (``resolve.sql``: what a killed run left, what our invoices learnt)."""
        linked = 0
        with self.conn.cursor() as cur:
            if not full:
                for kind in KEYS:
                    cur.execute(f"ANALYZE pg_temp.cash_touched_{kind}")
            for statement in sql_statements("cash/resolve.sql" if full else "cash/resolve_touched.sql"):
                if statement.lstrip().upper().startswith("UPDATE"):
                    linked += max(cur.execute(statement).rowcount, 0)
                else:
                    cur.execute(statement)
            cur.execute(f"TRUNCATE {', '.join(f'pg_temp.cash_touched_{kind}' for kind in KEYS)}")
        return linked
