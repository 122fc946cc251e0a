"""Expense decreases after issue become Stripe credit notes, as time decreases do (issue 16 item 2, issue 13
item 2): the real warehouse, closeout's own expense capture, drafting and publishing, the Stripe sandbox through
the real SDK. An expense deleted after its invoice was paid is credited on that invoice, the post-payment part
refunded as the client's policy says, linked to the expense version it takes back
(closeout.credit_note_expenses); a rerun makes nothing new; invariant 10 and the reconciliation's expense check
hold counting the credit note; in the books the credit note takes the expense's cost back from
reimbursable_expenses (pass-through mode)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from billing_support import Entry
from closeout.ledger import tasks as ledger_tasks
from closeout.payments import credit_notes, tasks
from closeout.warehouse.db import connect
from expense_billing_support import Expense, ExpenseBooks, check_expense_invariants
from payments_support import last_month

pytestmark = pytest.mark.integration

CLIENT = "harvest:a"
DAY = last_month() + timedelta(days=4)


def _publish_and_pay(stripe_sandbox, policy: str) -> tuple[str, str]:
    """Last month's invoice: 2 h of time (200.00) and two expenses at 10% markup (110.00 and 44.00), published
    through closeout's own publish and paid by card (closeout learns it from Stripe's events)."""
    with connect() as conn:
        books = ExpenseBooks(conn)
        client = {"client_key": CLIENT, "name": "Client A", "email": "ap@a.example", "currency": "USD",
                  "grouping": "entry", "credit_note_policy": policy, "expense_markup_percent": 10}
        books.configure({"defaults": {"require_approval": False}, "clients": [client]})
        books.put(Entry("1", client="a", hours=D("2"), spent_date=DAY))
        books.put_expenses(Expense("1", client="a", total=D("100.00"), spent_date=DAY),
                           Expense("2", client="a", total=D("40.00"), spent_date=DAY))  # fmt: skip
        books.draft()
        conn.commit()
    tasks.publish_drafts("seed")
    with connect() as conn:
        invoice_id, sid, total = conn.execute(
            "SELECT invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices WHERE client_key = %s", (CLIENT,)
        ).fetchone()
    assert total == 35400 and sid
    stripe_sandbox.pay_invoice(sid)
    tasks.collect_events("events")
    tasks.apply_events("events")
    return invoice_id, sid


def _delete_expense(source_id: str) -> None:
    with connect() as conn:
        books = ExpenseBooks(conn)
        books.delete_expense(source_id)
        books.draft()
        conn.commit()


def _credit_notes(stripe_sandbox, sid: str) -> list[dict]:
    return [n for n in stripe_sandbox.objects("credit_note") if n["invoice"] == sid]


def test_an_expense_deleted_after_its_invoice_was_paid_is_refunded_by_one_linked_credit_note(
    warehouse, stripe_sandbox, tmp_path
) -> None:
    from closeout.recon.checks import CHECKS
    from closeout.recon.runner import run_reconciliation

    invoice_id, sid = _publish_and_pay(stripe_sandbox, "refund")
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,)) == "paid"
    refunds_before = stripe_sandbox.count("refund")
    _delete_expense("2")
    (draft_id, deleted_version) = warehouse.rows(
        "SELECT invoice_id, version FROM closeout.invoice_line_expenses WHERE source_id = '2' AND kind = 'credit'"
    )[0]
    assert draft_id != invoice_id

    result = credit_notes.issue_corrections("expense-deleted", None)
    assert result["issued"]["credit_notes_issued"] == 1 and result["issued"]["refunded_minor"] == 4400
    (note,) = _credit_notes(stripe_sandbox, sid)
    assert (note["amount"], note["pre_payment_amount"], note["post_payment_amount"]) == (4400, 0, 4400)
    assert [ln["amount"] for ln in note["lines"]["data"]] == [4400]
    assert f"expense harvest:2 of {DAY}" in note["lines"]["data"][0]["description"]
    assert stripe_sandbox.count("refund") - refunds_before == 1
    assert warehouse.rows(
        """SELECT kind, invoice_id, from_invoice_id, amount_minor, state, policy, pre_payment_amount_minor,
                  refund_amount_minor, credit_note_id FROM closeout.corrections"""
    ) == [("credit_note", invoice_id, draft_id, 4400, "issued", "refund", 0, 4400, note["id"])]
    # linked to the expense version it takes back: cost 40.00 and markup 4.00, no time entry
    assert warehouse.rows(
        """SELECT source_id, version, amount_minor, cost_minor, markup_minor, credit_note_id, invoice_id, billed
           FROM closeout.credit_note_expenses"""
    ) == [("2", deleted_version, -4400, -4000, -400, note["id"], invoice_id, True)]
    assert warehouse.scalar("SELECT count(*) FROM closeout.credit_note_lines") == 0
    # nothing of it waits on the next draft; the paid invoice keeps what it billed
    assert warehouse.scalar(
        "SELECT count(*) FROM closeout.invoice_lines l JOIN closeout.invoices i USING (invoice_id) "
        "WHERE i.status = 'draft' AND l.amount_minor < 0"
    ) == 0
    assert warehouse.scalar(
        "SELECT sum(amount_minor) FROM closeout.invoice_line_expenses WHERE source_id = '2'"
    ) == 4400
    with connect() as conn:
        check_expense_invariants(conn, {"1": 11000, "2": 0})

    # a rerun (and a drafting run in between) makes nothing new, in Stripe or in the warehouse
    with connect() as conn:
        ExpenseBooks(conn).draft()
        conn.commit()
    again = credit_notes.issue_corrections("expense-deleted-again", None)
    assert again["recorded"]["credit_notes"] == 0 and again["issued"]["credit_notes_issued"] == 0
    assert len(_credit_notes(stripe_sandbox, sid)) == 1 and stripe_sandbox.count("refund") - refunds_before == 1
    assert warehouse.scalar("SELECT count(*) FROM closeout.corrections") == 1
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_outbox WHERE status <> 'done'") == 0
    with connect() as conn:
        check_expense_invariants(conn, {"1": 11000, "2": 0})
    expenses = tuple(c for c in CHECKS if c.name == "expenses_to_invoice_lines")
    with connect() as conn:
        recon = run_reconciliation(conn, data_docs_dir=tmp_path / "docs", checks=expenses)
    assert [(c.check_name, c.status) for c in recon.checks] == [("expenses_to_invoice_lines", "passed")]

    # the books (pass-through mode, the default): the credit note takes the expense's cost back from
    # reimbursable_expenses and only its markup from credit_notes; the refund is its credit
    ledger_tasks.post_journals("expense-credit-note")
    by_role = dict(warehouse.rows(
        """SELECT l.role, sum(l.debit_minor - l.credit_minor) FROM closeout.ledger_lines l
           JOIN closeout.ledger_journals j USING (journal_id)
           WHERE j.kind = 'credit_note' AND j.source_ref = %s GROUP BY l.role""", (note["id"],)))  # fmt: skip
    assert by_role == {"reimbursable_expenses": 4000, "credit_notes": 400, "refunds": -4400}
    invoice_cost = warehouse.scalar(
        """SELECT sum(l.credit_minor - l.debit_minor) FROM closeout.ledger_lines l
           JOIN closeout.ledger_journals j USING (journal_id)
           WHERE l.role = 'reimbursable_expenses' AND j.invoice_id = %s""", (invoice_id,))  # fmt: skip
    assert invoice_cost == 10000, "what stays billed of the expenses' cost: expense 1's 100.00"
    assert warehouse.rows("SELECT * FROM closeout.journal_balance WHERE NOT balanced") == []


def test_an_expense_decrease_on_an_open_invoice_reduces_what_is_due(warehouse, stripe_sandbox) -> None:
    """An expense edited down (not deleted: an 'xadj' row) on an invoice still open comes off what is due."""
    with connect() as conn:
        books = ExpenseBooks(conn)
        client = {"client_key": CLIENT, "currency": "USD", "credit_note_policy": "refund",
                  "expense_markup_percent": 10}  # fmt: skip
        books.configure({"defaults": {"require_approval": False}, "clients": [client]})
        books.put(Entry("1", client="a", hours=D("1"), spent_date=DAY))
        books.put_expenses(Expense("7", client="a", total=D("100.00"), spent_date=DAY))
        books.draft()
        conn.commit()
    tasks.publish_drafts("seed")
    (invoice_id, sid) = warehouse.rows(
        "SELECT invoice_id, stripe_invoice_id FROM closeout.invoices WHERE client_key = %s", (CLIENT,)
    )[0]
    assert stripe_sandbox.get(sid)["amount_remaining"] == 21000
    with connect() as conn:
        books = ExpenseBooks(conn)
        books.put_expenses(Expense("7", client="a", total=D("70.00"), spent_date=DAY))  # 110.00 -> 77.00
        books.draft()
        conn.commit()

    credit_notes.issue_corrections("expense-edited", None)
    (note,) = _credit_notes(stripe_sandbox, sid)
    assert (note["amount"], note["pre_payment_amount"], note["post_payment_amount"]) == (3300, 3300, 0)
    assert stripe_sandbox.get(sid)["amount_remaining"] == 21000 - 3300
    assert warehouse.rows(
        "SELECT source_id, amount_minor, cost_minor, credit_note_id, invoice_id FROM closeout.credit_note_expenses"
    ) == [("7", -3300, -3000, note["id"], invoice_id)]
    with connect() as conn:
        check_expense_invariants(conn, {"7": 7700})


def test_a_draft_netting_negative_from_expense_credits_alone_becomes_a_customer_balance_credit(warehouse) -> None:
    """No issued Stripe invoice to credit (October was only frozen), November's period over: the credit of a deleted
    expense leaves the draft as a customer balance credit, so the draft does not wait unpublished."""
    from closeout.payments.corrections import record_corrections

    oct_day, nov_day = date(2026, 10, 5), date(2026, 11, 3)
    with connect() as conn:
        books = ExpenseBooks(conn)
        books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD", "expense_markup_percent": 10}]})
        books.put_expenses(Expense("5", total=D("40.00"), spent_date=oct_day))
        books.draft()
        books.freeze(books.invoice_for("harvest:c1", oct_day.replace(day=1)))
        books.delete_expense("5")
        books.put_expenses(Expense("6", total=D("10.00"), spent_date=nov_day))  # 11.00 against the -44.00 credit
        books.draft()
        november = books.invoice_for("harvest:c1", nov_day.replace(day=1))
        assert books.invoices()[november][5] == 1100 - 4400
        recorded = record_corrections(conn, as_of=date(2026, 12, 6))
        assert (recorded.credit_notes, recorded.customer_balance_credits) == (0, 1)
        assert recorded.drafts_changed == [november]
        assert books.invoices()[november][5] == 1100, "only the expense charge is left to publish"
        assert conn.execute(
            """SELECT kind, source_id, amount_minor, cost_minor, from_invoice_id, state
               FROM closeout.credit_note_expenses"""
        ).fetchall() == [("customer_balance", "5", -4400, -4000, november, "pending")]
        check_expense_invariants(conn, {"5": 0, "6": 1100})
        again = record_corrections(conn, as_of=date(2026, 12, 6))
        assert (again.credit_notes, again.customer_balance_credits) == (0, 0)
        books.draft()
        assert books.invoices()[november][5] == 1100, "the drafting does not bring the credit back"
        conn.rollback()
