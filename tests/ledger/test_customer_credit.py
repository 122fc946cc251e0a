"""Customer credit in the books, through the real chain: invoices published by closeout to the Stripe sandbox,
credit put on the customer's Stripe balance (a credit note's credit_amount, or closeout's own credit for a draft
that netted negative), Stripe applying that balance when it finalises the client's next invoice, Stripe's events
and lists read by closeout, then the journals posted.

What must hold: the credit is booked once (customer_credit), its use on the next invoice settles that invoice's
receivable without any cash (customer_credit_applied), invariant 5 (closeout.receivable_by_client: receivable per
client = unpaid remainder of its open invoices) holds while that invoice is open and after it is paid, a void
gives the credit back, and the ledger's Stripe balance still equals Stripe's."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from billing_support import Books, Entry
from closeout.ledger import tasks as ledger_tasks
from closeout.payments import credit_notes
from closeout.payments import tasks as payment_tasks
from closeout.warehouse.db import connect
from ledger_support import (
    check_cash_invariants,
    check_invariants,
    follow,
    follow_cash,
    ledger_stripe_balance,
    lines_of,
    publish,
    receivable,
    role_balance,
    sdk,
)
from payments_support import last_month

pytestmark = pytest.mark.integration


def _month_before(day: date, months: int = 1) -> date:
    for _ in range(months):
        day = (day.replace(day=1) - timedelta(days=1)).replace(day=1)
    return day


def _posts_nothing_again(warehouse) -> None:
    before = warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines")
    assert ledger_tasks.post_journals("again")["journals"] == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines") == before


def _receivable_row(warehouse, client: str) -> tuple:
    """(ledger receivable, unpaid remainder of open invoices, open invoices, holds) of one client (invariant 5)."""
    return warehouse.rows(
        """SELECT ledger_receivable_minor, open_unpaid_minor, open_invoices, holds FROM closeout.receivable_by_client
           WHERE client_key = %s""", (f"harvest:{client}",))[0]  # fmt: skip


def _credit_on_balance(warehouse, stripe_sandbox, credit: int) -> tuple[str, str, int]:
    """Client a's invoice for the month before last, paid by card, then credited after payment by a credit note
    whose whole amount goes to the customer's Stripe balance. Returns the invoice."""
    first = publish(warehouse, {"a": [D("4")]}, period=_month_before(last_month()))["a"]
    stripe_sandbox.pay_invoice(first[1])
    follow_cash()
    stripe_sandbox.dashboard_credit_note(first[1], amount=credit, credit_amount=credit)
    follow_cash()
    assert role_balance(warehouse, "customer_credit") == {"USD": -credit}
    return first


def test_a_credit_applied_to_an_open_invoice_keeps_invariant_5_while_open_and_once_paid(
    warehouse, stripe_sandbox
) -> None:
    _credit_on_balance(warehouse, stripe_sandbox, 1000)
    iid, sid, total = publish(warehouse, {"a": [D("2")]}, first_id=50)["a"]
    assert stripe_sandbox.get(sid)["amount_remaining"] == total - 1000, "Stripe applied the balance at finalisation"
    follow_cash()

    assert warehouse.rows(
        """SELECT invoice_id, starting_balance_minor, ending_balance_minor, applied_minor
           FROM closeout.invoice_customer_balance""") == [(iid, -1000, 0, 1000)]  # fmt: skip
    assert lines_of(warehouse, "customer_credit_applied", iid) == (
        ("USD", "customer_credit", 1000, 0), ("USD", "receivable", 0, 1000))
    # the invoice is open: the client owes its total less the credit Stripe applied, and the books say the same
    assert _receivable_row(warehouse, "a") == (total - 1000, total - 1000, 1, True)
    assert role_balance(warehouse, "customer_credit") == {}
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)

    stripe_sandbox.pay_invoice(sid)
    follow_cash()
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (iid,)) == "paid"
    assert lines_of(warehouse, "payment", warehouse.scalar(
        "SELECT source_ref FROM closeout.ledger_journals WHERE kind = 'payment' AND invoice_id = %s", (iid,)))[0] == (
        "USD", "cash_clearing", total - 1000, 0), "the card paid the rest, and only that is cash"  # fmt: skip
    assert receivable(warehouse, "a") == 0
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_the_application_is_booked_from_stripes_events_before_the_invoice_list_shows_it(
    warehouse, stripe_sandbox
) -> None:
    """The events DAG applies Stripe's events before its cash sync lists the invoice: the balance Stripe applied
    is read from the invoice's finalisation event, so invariant 5 holds at once; the list read later agrees and
    posts nothing more."""
    _credit_on_balance(warehouse, stripe_sandbox, 1000)
    iid, sid, total = publish(warehouse, {"a": [D("2")]}, first_id=50)["a"]
    follow("events-only")  # events in and applied, journals posted: no cash sync yet
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_invoice_snapshots WHERE stripe_invoice_id = %s",
                            (sid,)) == 0  # fmt: skip
    assert warehouse.rows("SELECT applied_minor, source FROM closeout.invoice_customer_balance") == [(1000, "event")]
    assert lines_of(warehouse, "customer_credit_applied", iid) == (
        ("USD", "customer_credit", 1000, 0), ("USD", "receivable", 0, 1000))
    assert _receivable_row(warehouse, "a") == (total - 1000, total - 1000, 1, True)
    check_invariants(warehouse)

    follow_cash()
    assert warehouse.rows("SELECT applied_minor, source FROM closeout.invoice_customer_balance") == [
        (1000, "invoice_list")]  # fmt: skip
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals WHERE kind = 'customer_credit_applied'") == 1
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_an_invoice_the_credit_covers_in_full_is_paid_with_no_cash(warehouse, stripe_sandbox) -> None:
    _credit_on_balance(warehouse, stripe_sandbox, 30000)
    stripe_before = ledger_stripe_balance(warehouse)
    iid, sid, total = publish(warehouse, {"a": [D("2")]}, first_id=50)["a"]
    assert total == 20000 and stripe_sandbox.get(sid)["status"] == "paid", "Stripe paid it from the balance"
    follow_cash()

    assert warehouse.rows("SELECT status, amount_paid_minor FROM closeout.invoices WHERE invoice_id = %s",
                          (iid,)) == [("paid", 0)]  # fmt: skip
    assert [k for k, *_ in warehouse.rows(
        "SELECT kind FROM closeout.ledger_journals WHERE invoice_id = %s ORDER BY kind", (iid,))] == [
        "customer_credit_applied", "invoice"]  # fmt: skip
    assert warehouse.scalar(
        """SELECT count(*) FROM closeout.ledger_lines WHERE invoice_id = %s AND role IN ('cash_clearing', 'cash')""",
        (iid,)) == 0, "Stripe's balance did not move: no cash"  # fmt: skip
    assert ledger_stripe_balance(warehouse) == stripe_before
    assert receivable(warehouse, "a") == 0
    assert role_balance(warehouse, "customer_credit") == {"USD": -10000}, "what the invoice did not use is still owed"
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_a_voided_invoice_gives_the_credit_it_used_back(warehouse, stripe_sandbox) -> None:
    _credit_on_balance(warehouse, stripe_sandbox, 1000)
    iid, sid, _ = publish(warehouse, {"a": [D("2")]}, first_id=50)["a"]
    follow_cash()
    sdk(stripe_sandbox).v1.invoices.void_invoice(sid)
    follow_cash()
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (iid,)) == "void"

    applied, unapplied = warehouse.rows(
        """SELECT journal_id, reverses_journal_id FROM closeout.ledger_journals
           WHERE kind IN ('customer_credit_applied', 'customer_credit_unapplied') ORDER BY kind""")  # fmt: skip
    assert unapplied[1] == applied[0]
    assert lines_of(warehouse, "customer_credit_unapplied", applied[0]) == (
        ("USD", "customer_credit", 0, 1000), ("USD", "receivable", 1000, 0))
    assert receivable(warehouse, "a") == 0
    assert role_balance(warehouse, "customer_credit") == {"USD": -1000}, "owed to the customer again"
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_a_debit_balance_added_to_the_next_invoice_is_owed_with_it(warehouse, stripe_sandbox) -> None:
    """A positive customer balance (the customer owes it, e.g. an adjustment made in the Dashboard) is added to
    the next invoice by Stripe: the receivable grows by it and invariant 5 still holds while the invoice is open."""
    publish(warehouse, {"a": [D("4")]}, period=_month_before(last_month()))
    customer = warehouse.scalar("SELECT stripe_customer_id FROM closeout_data.stripe_customers")
    sdk(stripe_sandbox).v1.customers.balance_transactions.create(
        customer, params={"amount": 500, "currency": "usd", "description": "late fee"})
    iid, sid, total = publish(warehouse, {"a": [D("2")]}, first_id=50)["a"]
    assert stripe_sandbox.get(sid)["amount_due"] == total + 500
    follow_cash()

    assert lines_of(warehouse, "customer_credit_applied", iid) == (
        ("USD", "customer_credit", 0, 500), ("USD", "receivable", 500, 0))
    first_total = 40000
    assert _receivable_row(warehouse, "a") == (first_total + total + 500, first_total + total + 500, 2, True)
    check_cash_invariants(warehouse)


def test_a_draft_that_nets_negative_is_booked_once_as_customer_credit_then_used_on_the_next_invoice(
    warehouse, stripe_sandbox
) -> None:
    """The corrections' customer balance credit (not a credit note: Stripe lists none for it) is contra revenue
    owed to the customer, booked once; the next invoice Stripe finalises uses it."""
    # entry 1 billed on two issued invoices (10 h, then +2 h), then corrected to 1 h at 50: this month's draft nets
    # -1,150.00, which becomes a credit on the customer's balance once the month is over (as the corrections do)
    two_months_ago = _month_before(last_month())
    day = two_months_ago + timedelta(days=4)
    with connect() as conn:
        books = Books(conn)
        client = {"client_key": "harvest:a", "name": "Client A", "email": "ap@a.example", "currency": "USD",
                  "grouping": "entry"}  # fmt: skip
        books.configure({"defaults": {"require_approval": False}, "clients": [client]})
        books.put(Entry("1", client="a", hours=D("10"), spent_date=day))
        books.draft()
        conn.commit()
    payment_tasks.publish_drafts("first")
    with connect() as conn:
        books = Books(conn)
        books.put(Entry("1", client="a", hours=D("12"), spent_date=day))
        books.draft()
        conn.commit()
    payment_tasks.publish_drafts("second")
    with connect() as conn:
        books = Books(conn)
        books.put(Entry("1", client="a", hours=D("1"), rate=D("50"), spent_date=day))
        books.draft()
        conn.commit()
    next_month = (date.today().replace(day=1) + timedelta(days=32)).replace(day=2)
    assert credit_notes.issue_corrections("month-over", next_month)["issued"]["customer_balance_credits"] == 1
    (correction_id, txn) = warehouse.rows(
        "SELECT correction_id, credit_note_id FROM closeout.corrections WHERE kind = 'customer_balance'")[0]
    follow_cash()

    assert lines_of(warehouse, "customer_balance_credit", correction_id) == (
        ("USD", "credit_notes", 115000, 0), ("USD", "customer_credit", 0, 115000))
    assert txn in warehouse.scalar(
        "SELECT description FROM closeout.ledger_journals WHERE kind = 'customer_balance_credit'")
    assert role_balance(warehouse, "customer_credit") == {"USD": -115000}
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)
    payment_tasks.collect_events("again")
    credit_notes.issue_corrections("rerun", next_month)
    follow_cash("again")
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals WHERE kind = 'customer_balance_credit'") == 1

    # the client's next invoice (time of a month not yet billed) is finalised: Stripe pays it from the balance
    iid, sid, total = publish(warehouse, {"a": [D("2")]}, first_id=50, period=_month_before(last_month(), 2))["a"]
    assert stripe_sandbox.get(sid)["status"] == "paid"
    follow_cash()
    assert lines_of(warehouse, "customer_credit_applied", iid) == (
        ("USD", "customer_credit", total, 0), ("USD", "receivable", 0, total))
    assert role_balance(warehouse, "customer_credit") == {"USD": -(115000 - total)}
    assert receivable(warehouse, "a") == 120000, "the two invoices of entry 1 are still open and owed"
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)
