"""Crash matrix, corrections: the worker issuing corrections to Stripe is killed (SIGKILL) after the outbox row
of a credit note (on a paid invoice, refunded to the card: Stripe makes the refund with it) or of a customer
balance credit is committed and before the call, and after Stripe answered and before the answer is recorded.
The retry (the next ``closeout_stripe_publish`` run under ``dag.test`` for the credit note; the task again, a
month later, for the balance credit, which is only due once the month is over) leaves exactly one credit note
and one refund, or one customer balance transaction, in Stripe; the cash sync and posting book each once."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from billing_support import Books, Entry, check_invariants
from closeout.payments import credit_notes, tasks
from closeout.warehouse.db import connect
from crash_support import die_at, duplicate_journals, journal_count
from ledger_support import follow_cash
from payments_support import check_invariant_3, last_month

pytestmark = pytest.mark.integration

CLIENT = "harvest:a"
CREDIT_NOTE_POINTS = ["stripe.credit_note.create.before_call", "stripe.credit_note.create.after_call"]
BALANCE_POINTS = ["stripe.customer_balance.credit.before_call", "stripe.customer_balance.credit.after_call"]


def _configure(books: Books, policy: str = "refund") -> None:
    client = {"client_key": CLIENT, "name": "Client A", "email": "ap@a.example", "currency": "USD",
              "grouping": "entry", "credit_note_policy": policy}  # fmt: skip
    books.configure({"defaults": {"require_approval": False}, "clients": [client]})


def _put(*entries: Entry) -> None:
    with connect() as conn:
        books = Books(conn)
        books.put(*entries)
        books.draft()
        conn.commit()


def _issue_code(as_of: date | None) -> str:
    day = f"date.fromisoformat('{as_of.isoformat()}')" if as_of else "None"
    return ("from datetime import date; from closeout.payments import credit_notes; "
            f"credit_notes.issue_corrections('crashed-worker', {day})")  # fmt: skip


@pytest.mark.parametrize("point", CREDIT_NOTE_POINTS)
def test_a_refunding_credit_note_killed_between_intent_and_outcome_is_made_once(
    warehouse, stripe_sandbox, run_dag, point: str
) -> None:
    day = last_month() + timedelta(days=4)
    with connect() as conn:
        _configure(Books(conn), "refund")
        conn.commit()
    _put(Entry("1", client="a", hours=D("10"), spent_date=day), Entry("2", client="a", hours=D("2"), spent_date=day))
    tasks.publish_drafts("seed")
    invoice_id, sid = warehouse.rows("SELECT invoice_id, stripe_invoice_id FROM closeout.invoices")[0]
    stripe_sandbox.pay_invoice(sid)
    follow_cash("paid")
    assert warehouse.scalar("SELECT status FROM closeout.invoices") == "paid"
    _put(Entry("2", client="a", hours=D("0.5"), spent_date=day))  # 2 h -> 0.5 h after payment: 150.00 back

    die_at(point, _issue_code(None))
    assert warehouse.rows("SELECT state FROM closeout.corrections") == [("pending",)]

    result = run_dag("closeout_stripe_publish")  # the next run: its issue_corrections step resumes the outbox row
    assert result.state == "success", result
    (note,) = [n for n in stripe_sandbox.objects("credit_note") if n["invoice"] == sid]
    assert stripe_sandbox.count("credit_note") == 1
    assert (note["amount"], note["post_payment_amount"]) == (15000, 15000)
    (refund,) = stripe_sandbox.objects("refund")
    assert refund["amount"] == 15000
    assert warehouse.rows("SELECT state, credit_note_id, refund_amount_minor FROM closeout.corrections") == [
        ("issued", note["id"], 15000)
    ]
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_outbox WHERE status <> 'done'") == 0

    follow_cash("after-crash")
    assert warehouse.rows("SELECT credit_note_id, invoice_id FROM closeout.credit_notes") == [(note["id"], invoice_id)]
    assert warehouse.rows("SELECT refund_id, amount_minor FROM closeout.refunds") == [(refund["id"], 15000)]
    assert journal_count(warehouse, "credit_note") == 1
    assert journal_count(warehouse, "refund") == 1
    assert duplicate_journals(warehouse) == []
    with connect() as conn:
        check_invariants(conn)
    check_invariant_3(warehouse, stripe_sandbox)


@pytest.mark.parametrize("point", BALANCE_POINTS)
def test_a_customer_balance_credit_killed_between_intent_and_outcome_is_made_once(
    warehouse, stripe_sandbox, point: str
) -> None:
    # entry 1 billed on two issued invoices (10 h, then +2 h), then cut to 1 h at a lower rate: a decrease no
    # single invoice covers, credited to the customer's balance once this month is over
    two_months_ago = (last_month() - timedelta(days=1)).replace(day=1)
    day = two_months_ago + timedelta(days=4)
    with connect() as conn:
        _configure(Books(conn), "customer_balance")
        conn.commit()
    _put(Entry("1", client="a", hours=D("10"), spent_date=day))
    tasks.publish_drafts("first")
    _put(Entry("1", client="a", hours=D("12"), spent_date=day))
    tasks.publish_drafts("second")
    _put(Entry("1", client="a", hours=D("1"), rate=D("50"), spent_date=day))
    customer = warehouse.scalar("SELECT stripe_customer_id FROM closeout_data.stripe_customers")
    next_month = (date.today().replace(day=1) + timedelta(days=32)).replace(day=2)

    die_at(point, _issue_code(next_month))
    assert warehouse.rows("SELECT kind, state FROM closeout.corrections") == [("customer_balance", "pending")]

    result = credit_notes.issue_corrections("retry", next_month)
    assert result["issued"]["customer_balance_credits"] == 1
    (txn,) = [t for t in stripe_sandbox.objects("customer_balance_transaction") if t["customer"] == customer]
    assert txn["amount"] == -115000
    assert stripe_sandbox.get(customer)["balance"] == -115000
    assert warehouse.rows("SELECT kind, state, credit_note_id FROM closeout.corrections") == [
        ("customer_balance", "issued", txn["id"])
    ]
    assert not stripe_sandbox.objects("credit_note")

    follow_cash("after-crash")
    assert journal_count(warehouse, "customer_balance_credit") == 1
    assert duplicate_journals(warehouse) == []
    with connect() as conn:
        check_invariants(conn)
