"""Entries written through closeout's own capture path, drafts built by the real drafting, and the
invariants of DESIGN.md checked straight from the contract views. Shared by the billing tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg
from closeout.billing import config as billing_config
from closeout.billing import drafting, lifecycle
from closeout.trackers import store
from closeout.trackers.records import EntryRow

SOURCE = "harvest"


def _passthrough(items, currencies):
    return list(items), [], []


@dataclass
class Entry:
    source_id: str
    client: str = "c1"
    project: str = "p1"
    task: str | None = "t1"
    user: str = "u1"
    spent_date: date = date(2026, 10, 5)
    hours: Decimal = Decimal("1.00")
    rounded_hours: Decimal | None = None
    billable: bool = True
    approved: bool = True
    billed_in_source: bool = False
    rate: Decimal | None = Decimal("100.00")
    currency: str = "USD"
    running: bool = False
    notes: str | None = None

    def row(self) -> EntryRow:
        rounded = self.hours if self.rounded_hours is None else self.rounded_hours
        return EntryRow(
            source_id=self.source_id, client_source_id=self.client, project_source_id=self.project,
            task_source_id=self.task, user_source_id=self.user, spent_date=self.spent_date, hours=self.hours,
            rounded_hours=rounded, billable=self.billable, approved=self.approved,
            billed_in_source=self.billed_in_source, source_invoice_ref="H-1" if self.billed_in_source else None,
            is_locked=False, is_running=self.running, billable_rate=self.rate, currency=self.currency,
            notes=self.notes, source_created_at=None, source_updated_at=None,
        )  # fmt: skip


class Books:
    """One warehouse connection in one transaction: the caller decides to commit or roll back."""

    def __init__(self, conn: psycopg.Connection, source: str = SOURCE) -> None:
        self.conn = conn
        self.source = source
        store.prepare_session(conn)
        self.currencies = store.known_currencies(conn)
        (self.sync_run_id,) = conn.execute(
            """INSERT INTO closeout_data.sync_runs (source, mode, status) VALUES (%s, 'import', 'succeeded')
               RETURNING sync_run_id""",
            (source,),
        ).fetchone()

    def put(self, *entries: Entry) -> int:
        result = store.apply_entries(
            self.conn, source=self.source, sync_run_id=self.sync_run_id, items=[e.row() for e in entries],
            currencies=self.currencies, normalize=_passthrough, url="test://put",
        )  # fmt: skip
        return result.versions

    def delete(self, source_id: str) -> None:
        """A deletion as the sweep records it: a 'deleted' version."""
        (day,) = self.conn.execute(
            "SELECT spent_date FROM closeout_data.time_entry_heads WHERE source = %s AND source_id = %s",
            (self.source, source_id),
        ).fetchone()
        self.conn.execute(
            """INSERT INTO closeout_data.sweep_seen (sync_run_id, source_id)
               SELECT %s, source_id FROM closeout_data.time_entry_heads
               WHERE source = %s AND spent_date = %s AND source_id <> %s""",
            (self.sync_run_id, self.source, day, source_id),
        )
        store.mark_vanished(self.conn, source=self.source, sync_run_id=self.sync_run_id, window_from=day, window_to=day)

    def configure(self, raw: dict[str, Any]) -> dict[str, Any]:
        return billing_config.apply(self.conn, billing_config.parse(raw))

    def draft(self) -> drafting.DraftSummary:
        return drafting.refresh_drafts(self.conn)

    def freeze(self, invoice_id: str) -> int:
        return lifecycle.freeze(self.conn, invoice_id)

    def void(self, invoice_id: str) -> int:
        return lifecycle.void(self.conn, invoice_id)

    # -- reading ------------------------------------------------------------------------------------
    def rows(self, query: str, params: Any = None) -> list[tuple]:
        return self.conn.execute(query, params).fetchall()

    def invoices(self) -> dict[str, tuple]:
        return {r[0]: r for r in self.rows(
            "SELECT invoice_id, client_key, currency, period_start, status, total_minor, version, line_count"
            " FROM closeout.invoices ORDER BY invoice_id")}  # fmt: skip

    def lines(self, invoice_id: str) -> list[tuple]:
        return self.rows(
            """SELECT line_no, kind, description, quantity, unit_rate, amount_minor, rounding_minor, entry_count
               FROM closeout.invoice_lines WHERE invoice_id = %s ORDER BY line_no""",
            (invoice_id,),
        )

    def invoice_for(self, client_key: str, period_start: date, currency: str = "USD") -> str | None:
        rows = self.rows(
            """SELECT invoice_id FROM closeout.invoices WHERE client_key = %s AND period_start = %s
               AND currency = %s""",
            (client_key, period_start, currency),
        )
        return rows[0][0] if rows else None

    def billed(self, source_id: str) -> int:
        """What the entry is billed for across every non-void invoice (drafts included)."""
        return self.conn.execute(
            """SELECT coalesce(sum(e.amount_minor), 0)
                      + (SELECT coalesce(sum(c.amount_minor), 0) FROM closeout.credit_note_lines c
                         WHERE c.source = %s AND c.source_id = %s AND c.billed)
               FROM closeout.invoice_line_entries e
               JOIN closeout.invoices i USING (invoice_id)
               WHERE e.source = %s AND e.source_id = %s AND i.status <> 'void'""",
            (self.source, source_id, self.source, source_id),
        ).fetchone()[0]

    def check_invariants(self) -> None:
        check_invariants(self.conn)


def round_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def check_invariants(conn: psycopg.Connection) -> None:
    """Invariants 1 and 2 of DESIGN.md, from the contract views, plus the drafting's own promises."""
    # 1. every approved billable entry (not in exception) is billed exactly once: the sum of its line
    #    entries over non-void invoices equals its current amount (0 once deleted or no longer billable)
    #    (and, once corrections are issued, its rows on credit notes and customer balance credits not voided)
    wrong = conn.execute(
        """WITH billed AS (
               SELECT source, source_id, sum(amount_minor) AS billed FROM (
                   SELECT e.source, e.source_id, e.amount_minor
                   FROM closeout.invoice_line_entries e JOIN closeout.invoices i USING (invoice_id)
                   WHERE i.status <> 'void'
                   UNION ALL
                   SELECT c.source, c.source_id, c.amount_minor FROM closeout.credit_note_lines c WHERE c.billed
               ) x GROUP BY 1, 2),
           expected AS (
               SELECT b.source, b.source_id, b.state,
                      CASE WHEN b.state = 'billable' THEN b.amount_minor ELSE 0 END AS expected
               FROM closeout_data.billing_entries b)
           SELECT x.source, x.source_id, x.state, x.expected, coalesce(y.billed, 0)
           FROM expected x LEFT JOIN billed y USING (source, source_id)
           WHERE x.state <> 'exception' AND x.expected IS DISTINCT FROM coalesce(y.billed, 0)"""
    ).fetchall()
    assert not wrong, f"invariant 1: entries billed other than exactly once: {wrong[:10]}"
    # the contract view's amount is the billing amount for tracker rounding: cross-check it too
    mismatch = conn.execute(
        """SELECT t.source, t.source_id, t.amount_minor, b.amount_minor
           FROM closeout.time_entries t JOIN closeout_data.billing_entries b USING (source, source_id)
           JOIN closeout_data.billing_clients c ON c.client_key = '*'
           LEFT JOIN closeout_data.billing_clients bc ON bc.client_key = b.client_key
           WHERE b.state = 'billable' AND coalesce(bc.rounding, c.rounding) = 'tracker'
             AND t.currency = b.currency AND t.amount_minor IS DISTINCT FROM b.amount_minor"""
    ).fetchall()
    assert not mismatch, f"invariant 1: billing amount differs from closeout.time_entries: {mismatch[:10]}"
    # every billed entry is judged at its current version (nothing stale left behind)
    stale = conn.execute(
        """SELECT h.source, h.source_id FROM closeout_data.time_entry_heads h
           LEFT JOIN closeout_data.billing_entries b USING (source, source_id)
           WHERE b.entry_version IS DISTINCT FROM h.version"""
    ).fetchall()
    assert not stale, f"entries not judged at their current version: {stale[:10]}"
    # 2. a line is its quantity times its rate rounded once, half-up; an invoice is the sum of its lines
    lines = conn.execute(
        """SELECT l.invoice_id, l.line_no, l.quantity, l.unit_rate, l.amount_minor, l.rounding_minor, c.exponent,
                  (SELECT coalesce(sum(e.amount_minor), 0) FROM closeout.invoice_line_entries e
                   WHERE e.invoice_id = l.invoice_id AND e.line_no = l.line_no)
           FROM closeout.invoice_lines l JOIN closeout.invoices i USING (invoice_id)
           JOIN closeout_data.currencies c ON c.code = i.currency"""
    ).fetchall()
    for invoice_id, line_no, qty, rate, amount, rounding, exponent, entries in lines:
        exact = Decimal(qty) * Decimal(rate) * (Decimal(10) ** exponent)
        assert amount == round_half_up(exact), f"invariant 2: {invoice_id} line {line_no}: {qty} x {rate} != {amount}"
        assert entries + rounding == amount, f"{invoice_id} line {line_no}: entries {entries} + rounding {rounding}"
    totals = conn.execute(
        """SELECT i.invoice_id, i.total_minor, coalesce(sum(l.amount_minor), 0), i.line_count, count(l.line_no)
           FROM closeout.invoices i LEFT JOIN closeout.invoice_lines l USING (invoice_id)
           GROUP BY i.invoice_id, i.total_minor, i.line_count
           HAVING i.total_minor <> coalesce(sum(l.amount_minor), 0) OR i.line_count <> count(l.line_no)"""
    ).fetchall()
    assert not totals, f"invariant 2: invoice totals differ from the sum of their lines: {totals[:10]}"
    # an entry sits on at most one open draft per client and currency (moving it to another client after
    # publication rightly puts a credit on the old client's draft and a charge on the new client's; a
    # draft of a locked period is fixed, as a published invoice is, and may bill what a later one adjusts)
    doubled = conn.execute(
        """SELECT e.source, e.source_id, i.client_key, i.currency, count(DISTINCT e.invoice_id)
           FROM closeout.invoice_line_entries e JOIN closeout.invoices i USING (invoice_id)
           WHERE i.status = 'draft' AND NOT coalesce(i.period_end <= closeout_data.locked_through(), false)
           GROUP BY 1, 2, 3, 4 HAVING count(DISTINCT e.invoice_id) > 1"""
    ).fetchall()
    assert not doubled, f"entries on two drafts of one client and currency at once: {doubled[:10]}"
    empty = conn.execute("SELECT invoice_id, line_no FROM closeout.invoice_lines WHERE entry_count = 0").fetchall()
    assert not empty, f"lines without entries: {empty}"
    # lines and line entries are stored as validity ranges: one open row per line (and per entry of a
    # line), and every version's reconstructed line set adds up to the totals recorded for it
    doubled_lines = conn.execute(
        """SELECT invoice_id, line_key FROM closeout_data.invoice_lines WHERE valid_to IS NULL
           GROUP BY 1, 2 HAVING count(*) > 1"""
    ).fetchall()
    assert not doubled_lines, f"lines open twice: {doubled_lines[:10]}"
    doubled_rows = conn.execute(
        """SELECT invoice_id, line_key, source, source_id, valid_from FROM closeout_data.invoice_line_entries
           GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1
           UNION ALL
           SELECT invoice_id, line_key, source, source_id, NULL FROM closeout_data.invoice_line_entries
           WHERE valid_to IS NULL GROUP BY 1, 2, 3, 4 HAVING count(*) > 1"""
    ).fetchall()
    assert not doubled_rows, f"line entry rows written twice: {doubled_rows[:10]}"
    versions = conn.execute(
        """SELECT v.invoice_id, v.version, v.total_minor, v.line_count, v.entry_count,
                  coalesce(sum(l.amount_minor), 0), count(l.line_no), coalesce(sum(l.entry_count), 0)
           FROM closeout.invoice_versions v
           LEFT JOIN closeout.invoice_line_versions l USING (invoice_id, version)
           GROUP BY v.invoice_id, v.version, v.total_minor, v.line_count, v.entry_count
           HAVING v.total_minor <> coalesce(sum(l.amount_minor), 0) OR v.line_count <> count(l.line_no)
               OR v.entry_count <> coalesce(sum(l.entry_count), 0)"""
    ).fetchall()
    assert not versions, f"versions whose lines do not add up to their recorded totals: {versions[:10]}"
