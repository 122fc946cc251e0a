"""An invoice with an expense line, drafted by the real drafting (migration 0035), published to the Stripe sandbox
and posted: in pass-through mode the invoice journal credits the expenses' own cost to reimbursable_expenses
(clearing what was booked when they were approved) and the markup to expense_markup_revenue, revenue only the
time; in revenue mode the whole invoice is revenue, as before."""

from __future__ import annotations

import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.payments import tasks as payment_tasks
from closeout.warehouse.db import connect
from expense_books_support import balances, check_balanced, policy_file
from payments_support import last_month

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "expense_billing"))
from billing_support import Entry
from expense_billing_support import Expense, ExpenseBooks
from ledger_support import check_invariants, follow

pytestmark = pytest.mark.integration


def _invoice_with_expenses(warehouse) -> str:
    """Client c1 (10% markup on expenses): 2 h at 100.00 and two approved billable travel expenses, drafted,
    published and followed (the invoice and the expenses are posted)."""
    day = last_month()
    with connect() as conn:
        books = ExpenseBooks(conn)
        books.configure({"defaults": {"require_approval": False},
                         "clients": [{"client_key": "harvest:c1", "currency": "USD", "name": "Client C1",
                                      "email": "ap@c1.example", "expense_markup_percent": 10}]})  # fmt: skip
        books.put(Entry("t1", hours=D("2"), rate=D("100.00"), spent_date=day))
        books.put_expenses(Expense("e1", total=D("30.00"), spent_date=day),
                           Expense("e2", total=D("12.35"), spent_date=day))  # fmt: skip
        books.draft()
        conn.commit()
    payment_tasks.publish_drafts("publish")
    follow()
    (invoice_id,) = [r[0] for r in warehouse.rows("SELECT invoice_id FROM closeout.invoices WHERE status = 'open'")]
    return invoice_id


def _invoice_journal(warehouse, invoice_id: str) -> list[tuple]:
    return warehouse.rows(
        """SELECT role, debit_minor, credit_minor FROM closeout.ledger_lines
           WHERE kind = 'invoice' AND source_ref = %s ORDER BY line_no""",
        (invoice_id,),
    )


def test_pass_through_books_the_cost_and_the_markup_to_their_roles(warehouse, stripe_sandbox) -> None:
    invoice_id = _invoice_with_expenses(warehouse)
    (total,) = warehouse.rows("SELECT total_minor FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,))[0]
    (cost, billed) = warehouse.rows(
        """SELECT sum(cost_minor), sum(amount_minor) FROM closeout.invoice_line_expenses WHERE invoice_id = %s""",
        (invoice_id,),
    )[0]
    expense_line = warehouse.scalar("SELECT sum(amount_minor) FROM closeout.invoice_lines "
                                    "WHERE invoice_id = %s AND kind = 'expense'", (invoice_id,))  # fmt: skip
    assert (cost, total) == (4235, 20000 + expense_line)
    assert expense_line == 4235 + 424 and billed <= expense_line  # 423.5 markup rounded once per line
    assert _invoice_journal(warehouse, invoice_id) == [
        ("receivable", total, 0), ("revenue", 0, 20000), ("reimbursable_expenses", 0, 4235),
        ("expense_markup_revenue", 0, 424),
    ]
    # booked at approval (company paid, billable), cleared by the invoice: nothing left to rebill
    assert balances(warehouse, "reimbursable_expenses", "expense_clearing", "expense_markup_revenue") == {
        ("reimbursable_expenses", "USD"): 0, ("expense_clearing", "USD"): -4235,
        ("expense_markup_revenue", "USD"): -424}  # fmt: skip
    check_balanced(warehouse)
    check_invariants(warehouse)


def test_revenue_mode_books_the_whole_invoice_as_revenue(warehouse, stripe_sandbox, tmp_path, monkeypatch) -> None:
    policy_file(tmp_path, monkeypatch, expense_revenue_mode="revenue")
    invoice_id = _invoice_with_expenses(warehouse)
    total = warehouse.scalar("SELECT total_minor FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,))
    assert _invoice_journal(warehouse, invoice_id) == [("receivable", total, 0), ("revenue", 0, total)]
    assert balances(warehouse, "reimbursable_expenses") == {("reimbursable_expenses", "USD"): 4235}  # cost of sales
    check_balanced(warehouse)
