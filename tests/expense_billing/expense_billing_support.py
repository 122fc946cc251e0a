"""Expenses written through closeout's own expense capture path, drafts built by the real drafting, and
invariants 10 and 2 (DESIGN.md) checked straight from the contract views. Shared by the expense billing tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg
from billing_support import Books
from closeout.trackers.expenses import store as expense_store
from closeout.trackers.expenses.records import ExpenseRow

SOURCE = "harvest"


def _passthrough(items, currencies):
    return list(items), [], [row.source_id for row in items]


@dataclass
class Expense:
    source_id: str
    client: str | None = "c1"
    project: str = "p1"
    user: str = "u1"
    spent_date: date = date(2026, 10, 5)
    category: str | None = "Travel"
    total: Decimal = Decimal("10.00")
    units: Decimal | None = None
    unit_price: Decimal | None = None
    billable: bool = True
    approved: bool = True
    billed_in_source: bool = False
    currency: str = "USD"
    receipt_url: str | None = None
    notes: str | None = None

    def row(self) -> ExpenseRow:
        return ExpenseRow(
            source_id=self.source_id, client_source_id=self.client, project_source_id=self.project,
            user_source_id=self.user, spent_date=self.spent_date, category_source_id=self.category,
            category=self.category, unit_name="mile" if self.unit_price is not None else None, units=self.units,
            unit_price=self.unit_price, total_cost=self.total, billable=self.billable, approved=self.approved,
            billed_in_source=self.billed_in_source, source_invoice_ref="H-9" if self.billed_in_source else None,
            is_locked=self.approved or self.billed_in_source, locked_reason=None, currency=self.currency,
            receipt_url=self.receipt_url, receipt_file_name=None, receipt_file_size=None, receipt_content_type=None,
            notes=self.notes, source_created_at=None, source_updated_at=None,
        )  # fmt: skip


class ExpenseBooks(Books):
    """Books (time) plus expenses, on one warehouse connection in one transaction."""

    def __init__(self, conn: psycopg.Connection, source: str = SOURCE) -> None:
        super().__init__(conn, source)
        expense_store.prepare_session(conn)

    def put_expenses(self, *expenses: Expense) -> int:
        page = expense_store.apply_expenses(
            self.conn, source=self.source, sync_run_id=self.sync_run_id, items=[e.row() for e in expenses],
            currencies=self.currencies, normalize=_passthrough, url="test://expenses", track_seen=False,
        )  # fmt: skip
        assert page.quarantined == 0, page
        return page.versions

    def delete_expense(self, source_id: str) -> None:
        """A deletion as the sweep records it: a 'deleted' version."""
        (day,) = self.conn.execute(
            "SELECT spent_date FROM closeout_data.expense_heads WHERE source = %s AND source_id = %s",
            (self.source, source_id),
        ).fetchone()
        self.conn.execute(
            """INSERT INTO closeout_data.expense_sweep_seen (sync_run_id, source_id)
               SELECT %s, source_id FROM closeout_data.expense_heads
               WHERE source = %s AND spent_date = %s AND source_id <> %s AND deleted_at IS NULL
               ON CONFLICT DO NOTHING""",
            (self.sync_run_id, self.source, day, source_id),
        )
        expense_store.mark_vanished(
            self.conn, source=self.source, sync_run_id=self.sync_run_id, window_from=day, window_to=day
        )

    def expense_lines(self, invoice_id: str) -> list[tuple]:
        return self.rows(
            """SELECT line_no, kind, description, quantity, unit_rate, amount_minor, rounding_minor, entry_count
               FROM closeout.invoice_lines WHERE invoice_id = %s AND line_key LIKE 'x%%' ORDER BY line_no""",
            (invoice_id,),
        )

    def expense_billed(self, source_id: str) -> int:
        return expense_billed(self.conn, self.source, source_id)

    def check_expense_invariants(self, expected: dict[str, int] | None = None) -> None:
        check_expense_invariants(self.conn, expected)


def round_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def billed_with_markup(cost_minor: int, markup_percent: Decimal) -> int:
    """What an expense bills: its cost plus the markup, rounded once, half-up, in minor units."""
    return cost_minor + round_half_up(Decimal(cost_minor) * markup_percent / 100)


def expense_billed(conn: psycopg.Connection, source: str, source_id: str) -> int:
    """What the expense is billed for across every non-void invoice (drafts included) and correction."""
    return conn.execute(
        """SELECT coalesce((SELECT sum(e.amount_minor) FROM closeout.invoice_line_expenses e
                            JOIN closeout.invoices i USING (invoice_id)
                            WHERE e.source = %(s)s AND e.source_id = %(id)s AND i.status <> 'void'), 0)
                  + coalesce((SELECT sum(c.amount_minor) FROM closeout.credit_note_expenses c
                              WHERE c.source = %(s)s AND c.source_id = %(id)s AND c.billed), 0)""",
        {"s": source, "id": source_id},
    ).fetchone()[0]


def billed_per_expense(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        """SELECT source_id, sum(amount_minor) FROM (
               SELECT e.source_id, e.amount_minor FROM closeout.invoice_line_expenses e
               JOIN closeout.invoices i USING (invoice_id) WHERE i.status <> 'void'
               UNION ALL
               SELECT c.source_id, c.amount_minor FROM closeout.credit_note_expenses c WHERE c.billed) x
           GROUP BY source_id"""
    ).fetchall()
    return {source_id: int(amount) for source_id, amount in rows}


def check_expense_invariants(conn: psycopg.Connection, expected: dict[str, int] | None = None) -> None:
    """Invariant 10 (against the caller's own model of what each expense should bill, when given) and
    invariant 2 over every line, time and expense alike, from the contract views."""
    if expected is not None:
        billed = billed_per_expense(conn)
        wrong = {k: (v, billed.get(k, 0)) for k, v in expected.items() if billed.get(k, 0) != v}
        unknown = {k: v for k, v in billed.items() if k not in expected and v != 0}
        assert not wrong and not unknown, f"invariant 10: (expected, billed) {wrong}; billed unexpectedly {unknown}"
    # 2. a line is its quantity times its rate rounded once, half-up; its rows plus its rounding are its amount
    lines = conn.execute(
        """SELECT l.invoice_id, l.line_no, l.kind, l.quantity, l.unit_rate, l.amount_minor, l.rounding_minor,
                  l.entry_count, c.exponent,
                  (SELECT coalesce(sum(e.amount_minor), 0) FROM closeout.invoice_line_entries e
                   WHERE e.invoice_id = l.invoice_id AND e.line_no = l.line_no)
                  + (SELECT coalesce(sum(x.amount_minor), 0) FROM closeout.invoice_line_expenses x
                     WHERE x.invoice_id = l.invoice_id AND x.line_no = l.line_no),
                  (SELECT count(*) FROM closeout.invoice_line_entries e
                   WHERE e.invoice_id = l.invoice_id AND e.line_no = l.line_no)
                  + (SELECT count(*) FROM closeout.invoice_line_expenses x
                     WHERE x.invoice_id = l.invoice_id AND x.line_no = l.line_no)
           FROM closeout.invoice_lines l JOIN closeout.invoices i USING (invoice_id)
           JOIN closeout_data.currencies c ON c.code = i.currency"""
    ).fetchall()
    for invoice_id, line_no, kind, qty, rate, amount, rounding, count, exponent, rows_minor, rows in lines:
        exact = Decimal(qty) * Decimal(rate) * (Decimal(10) ** exponent)
        assert amount == round_half_up(exact), f"invariant 2: {invoice_id} line {line_no} ({kind}): {qty} x {rate}"
        assert rows_minor + rounding == amount, f"{invoice_id} line {line_no}: rows {rows_minor} + {rounding}"
        assert rows == count > 0, f"{invoice_id} line {line_no}: entry_count {count}, rows {rows}"
    totals = conn.execute(
        """SELECT i.invoice_id, i.total_minor, coalesce(sum(l.amount_minor), 0), i.line_count, count(l.line_no),
                  i.entry_count, coalesce(sum(l.entry_count), 0)
           FROM closeout.invoices i LEFT JOIN closeout.invoice_lines l USING (invoice_id)
           GROUP BY i.invoice_id, i.total_minor, i.line_count, i.entry_count
           HAVING i.total_minor <> coalesce(sum(l.amount_minor), 0) OR i.line_count <> count(l.line_no)
               OR i.entry_count <> coalesce(sum(l.entry_count), 0)"""
    ).fetchall()
    assert not totals, f"invariant 2: invoice totals differ from the sum of their lines: {totals[:10]}"
    versions = conn.execute(
        """SELECT v.invoice_id, v.version, v.total_minor, coalesce(sum(l.amount_minor), 0)
           FROM closeout.invoice_versions v
           LEFT JOIN closeout.invoice_line_versions l USING (invoice_id, version)
           GROUP BY v.invoice_id, v.version, v.total_minor, v.line_count
           HAVING v.total_minor <> coalesce(sum(l.amount_minor), 0) OR v.line_count <> count(l.line_no)"""
    ).fetchall()
    assert not versions, f"versions whose lines do not add up to their recorded totals: {versions[:10]}"
    # one open row per expense and line; an expense on at most one open draft per client and currency
    doubled = conn.execute(
        """SELECT invoice_id, line_key, source, source_id FROM closeout_data.invoice_line_expenses
           WHERE valid_to IS NULL GROUP BY 1, 2, 3, 4 HAVING count(*) > 1
           UNION ALL
           SELECT e.source, e.source_id, i.client_key, i.currency FROM closeout.invoice_line_expenses e
           JOIN closeout.invoices i USING (invoice_id)
           WHERE i.status = 'draft' AND NOT coalesce(i.period_end <= closeout_data.locked_through(), false)
           GROUP BY 1, 2, 3, 4 HAVING count(DISTINCT e.invoice_id) > 1"""
    ).fetchall()
    assert not doubled, f"expense rows written twice or on two drafts: {doubled[:10]}"
    split = conn.execute(
        "SELECT invoice_id, line_no FROM closeout.invoice_line_expenses WHERE amount_minor <> cost_minor + markup_minor"
    ).fetchall()
    assert not split, split


def expense_rows(conn: psycopg.Connection, source_id: str) -> list[dict[str, Any]]:
    """The current rows billing one expense, with their line and invoice."""
    rows = conn.execute(
        """SELECT e.invoice_id, e.line_no, e.kind, e.version, e.cost_minor, e.markup_minor, e.amount_minor,
                  l.description, l.adjusts_invoice_id, l.adjusts_line_no, i.status
           FROM closeout.invoice_line_expenses e
           JOIN closeout.invoice_lines l USING (invoice_id, line_no)
           JOIN closeout.invoices i USING (invoice_id)
           WHERE e.source = %s AND e.source_id = %s ORDER BY i.period_start, e.invoice_id, e.line_no""",
        (SOURCE, source_id),
    ).fetchall()
    keys = ("invoice_id", "line_no", "kind", "version", "cost_minor", "markup_minor", "amount_minor", "description",
            "adjusts_invoice_id", "adjusts_line_no", "status")  # fmt: skip
    return [dict(zip(keys, r, strict=True)) for r in rows]
