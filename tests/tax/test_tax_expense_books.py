"""A taxed invoice with an expense line (migration 0035), drafted, published to the Stripe sandbox and posted in
pass-through mode: tax_payable gets the tax, reimbursable_expenses the expenses' cost and
expense_markup_revenue the rest of the expense line net of its tax, revenue the time net of its tax."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pytest
from billing_support import Entry
from closeout.payments import tasks as payment_tasks
from closeout.warehouse.db import connect
from payments_support import last_month
from tax_support import check_tax_invariant

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "expense_billing"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
from expense_billing_support import Expense as BilledExpense
from expense_billing_support import ExpenseBooks
from ledger_support import check_invariants, follow

pytestmark = pytest.mark.integration


def _invoice(warehouse, tax: dict) -> tuple[str, int, int]:
    day = last_month()
    with connect() as conn:
        books = ExpenseBooks(conn)
        books.configure({"defaults": {"require_approval": False},
                         "clients": [{"client_key": "harvest:c1", "currency": "USD", "name": "Client C1",
                                      "expense_markup_percent": 10, "tax": tax}]})  # fmt: skip
        books.put(Entry("t1", hours=Decimal("2"), rate=Decimal("100.00"), spent_date=day))
        books.put_expenses(BilledExpense("e1", total=Decimal("30.00"), spent_date=day),
                           BilledExpense("e2", total=Decimal("12.35"), spent_date=day))  # fmt: skip
        books.draft()
        check_tax_invariant(conn)
        conn.commit()
    payment_tasks.publish_drafts("publish")
    follow()
    return warehouse.rows("SELECT invoice_id, total_minor, tax_minor FROM closeout.invoices WHERE status = 'open'")[0]


def _journal(warehouse, invoice_id: str) -> list[tuple]:
    return warehouse.rows("""SELECT role, debit_minor, credit_minor FROM closeout.ledger_lines
                             WHERE kind = 'invoice' AND source_ref = %s ORDER BY line_no""", (invoice_id,))  # fmt: skip


def test_exclusive_tax_on_an_invoice_with_expenses(warehouse, stripe_sandbox) -> None:
    invoice_id, total, tax = _invoice(warehouse, {"rate_percent": "20", "name": "VAT"})
    # lines: time 20000, expenses 4235 + 424 markup = 4659; tax 4000 + 931.8 -> 932
    assert (total, tax) == (20000 + 4659 + 4932, 4932)
    assert _journal(warehouse, invoice_id) == [
        ("receivable", total, 0), ("revenue", 0, 20000), ("reimbursable_expenses", 0, 4235),
        ("expense_markup_revenue", 0, 424), ("tax_payable", 0, 4932)]
    check_invariants(warehouse)


def test_inclusive_tax_is_taken_out_of_the_expense_line_too(warehouse, stripe_sandbox) -> None:
    invoice_id, total, tax = _invoice(warehouse, {"rate_percent": "10", "inclusive": True, "name": "GST"})
    # time 20000 holds 1818.18 -> 1818 of tax; the expense line 4659 holds 423.5 -> 424 (rounded half-up)
    assert (total, tax) == (24659, 1818 + 424)
    # net of tax the expense line is 4235: the cost exactly, so no markup is left after the tax
    assert _journal(warehouse, invoice_id) == [
        ("receivable", 24659, 0), ("revenue", 0, 20000 - 1818), ("reimbursable_expenses", 0, 4235),
        ("tax_payable", 0, 2242)]
    check_invariants(warehouse)
