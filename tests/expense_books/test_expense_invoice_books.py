"""An invoice with an expense line, drafted by the real drafting (migration 0035), published to the Stripe sandbox
and posted: in pass-through mode the invoice journal credits the expenses' own cost to reimbursable_expenses
(clearing what was booked when they were approved) and the markup to expense_markup_revenue, revenue only the
time; in revenue mode the whole invoice is revenue, as before."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from expense_books_support import balances, check_balanced, invoice_with_expenses, policy_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
from ledger_support import check_invariants

pytestmark = pytest.mark.integration


def _invoice_journal(warehouse, invoice_id: str) -> list[tuple]:
    return warehouse.rows(
        """SELECT role, debit_minor, credit_minor FROM closeout.ledger_lines
           WHERE kind = 'invoice' AND source_ref = %s ORDER BY line_no""",
        (invoice_id,),
    )


def test_pass_through_books_the_cost_and_the_markup_to_their_roles(warehouse, stripe_sandbox) -> None:
    invoice_id = invoice_with_expenses(warehouse)
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
    invoice_id = invoice_with_expenses(warehouse)
    total = warehouse.scalar("SELECT total_minor FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,))
    assert _invoice_journal(warehouse, invoice_id) == [("receivable", total, 0), ("revenue", 0, total)]
    assert balances(warehouse, "reimbursable_expenses") == {("reimbursable_expenses", "USD"): 4235}  # cost of sales
    check_balanced(warehouse)
