"""The ledger's worked examples, through the real flow: drafts published to the Stripe sandbox by closeout,
customers paying, refunding, disputing, Stripe voiding or writing off, Stripe's events applied by closeout,
then the journals posted. Every step ends with invariants 4 and 5 holding, and a second posting posting
nothing."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from closeout.ledger import tasks as ledger_tasks
from ledger_support import (
    check_cash_invariants,
    check_invariants,
    follow,
    follow_cash,
    journals,
    kinds,
    publish,
    receivable,
    sdk,
)

pytestmark = pytest.mark.integration


def _post_again_posts_nothing(warehouse) -> None:
    before = warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines")
    assert ledger_tasks.post_journals("again")["journals"] == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines") == before


def test_published_then_paid_in_full_and_in_two_parts(warehouse, stripe_sandbox) -> None:
    inv = publish(warehouse, {"a": [D("2")], "b": [D("5")]})
    (a_id, a_sid, a_total), (b_id, b_sid, b_total) = inv["a"], inv["b"]
    assert follow()["by_kind"] == {"invoice": 2}
    assert journals(warehouse, a_id)[0][4] == (("receivable", a_total, 0), ("revenue", 0, a_total))
    assert receivable(warehouse, "a") == a_total and receivable(warehouse, "b") == b_total
    check_invariants(warehouse)

    stripe_sandbox.pay_invoice(a_sid)
    part = b_total * 40 // 100
    stripe_sandbox.pay_invoice(b_sid, part)
    assert follow()["by_kind"] == {"payment": 2}
    assert receivable(warehouse, "a") == 0 and receivable(warehouse, "b") == b_total - part
    check_invariants(warehouse)

    stripe_sandbox.pay_invoice(b_sid)
    follow()
    assert kinds(warehouse, b_id) == ["invoice", "payment", "payment"]
    payments = [j[4] for j in journals(warehouse, b_id)[1:]]
    assert payments == [(("cash_clearing", part, 0), ("receivable", 0, part)),
                        (("cash_clearing", b_total - part, 0), ("receivable", 0, b_total - part))]  # fmt: skip
    assert receivable(warehouse, "b") == 0
    assert dict(warehouse.rows("SELECT account, balance_minor FROM closeout.trial_balance")) == {
        "1150": a_total + b_total, "1200": 0, "4000": -(a_total + b_total)}  # fmt: skip
    check_invariants(warehouse)
    _post_again_posts_nothing(warehouse)


def test_a_voided_invoice_gets_a_linked_reversal(warehouse, stripe_sandbox) -> None:
    c_id, c_sid, total = publish(warehouse, {"c": [D("1")]})["c"]
    follow()
    sdk(stripe_sandbox).v1.invoices.void_invoice(c_sid)
    assert follow()["by_kind"] == {"void": 1}
    (k1, _, _, original, _), (k2, source, reverses, _, reversed_lines) = journals(warehouse, c_id)
    assert (k1, k2) == ("invoice", "void") and reverses == original == source
    assert reversed_lines == (("receivable", 0, total), ("revenue", total, 0))
    assert receivable(warehouse, "c") == 0
    assert warehouse.scalar("SELECT reversed_by_journal_id IS NOT NULL FROM closeout.ledger_journals "
                            "WHERE journal_id = %s", (original,))  # fmt: skip
    check_invariants(warehouse)
    _post_again_posts_nothing(warehouse)


def test_uncollectible_is_written_off_and_a_later_payment_reverses_the_write_off_first(warehouse, stripe_sandbox):
    d_id, d_sid, total = publish(warehouse, {"d": [D("3")]})["d"]
    follow()
    sdk(stripe_sandbox).v1.invoices.mark_uncollectible(d_sid)
    assert follow()["by_kind"] == {"writeoff": 1}
    writeoff = journals(warehouse, d_id)[1]
    assert writeoff[0:2] == ("writeoff", f"{d_id}:0")
    assert writeoff[4] == (("bad_debt", total, 0), ("receivable", 0, total))
    assert receivable(warehouse, "d") == 0
    check_invariants(warehouse)

    part = total // 3
    stripe_sandbox.pay_invoice(d_sid, part)  # still uncollectible: the rest is written off again
    follow()
    assert kinds(warehouse, d_id) == ["invoice", "writeoff", "writeoff_reversal", "payment", "writeoff"]
    reversal, second = journals(warehouse, d_id)[2], journals(warehouse, d_id)[4]
    assert reversal[2] == writeoff[3] and reversal[4] == (("bad_debt", 0, total), ("receivable", total, 0))
    assert second[1] == f"{d_id}:1" and second[4] == (("bad_debt", total - part, 0), ("receivable", 0, total - part))
    check_invariants(warehouse)

    stripe_sandbox.pay_invoice(d_sid)
    follow()
    assert kinds(warehouse, d_id)[5:] == ["writeoff_reversal", "payment"]
    assert journals(warehouse, d_id)[5][2] == second[3]
    assert receivable(warehouse, "d") == 0
    bad_debt = warehouse.scalar(
        "SELECT sum(debit_minor - credit_minor) FROM closeout.ledger_lines WHERE role = 'bad_debt'"
    )
    assert bad_debt == 0, "paid in full after all: nothing stays written off"
    check_invariants(warehouse)
    _post_again_posts_nothing(warehouse)


def test_refunds_and_disputes_leave_the_receivable_alone(warehouse, stripe_sandbox) -> None:
    # Since the cash leg (issue 13) refunds and disputes are booked from Stripe's refund and dispute objects and
    # their balance transactions (closeout's cash sync), no longer from invoice_payments; the card fees and the
    # dispute fee Stripe took are booked too, so the Stripe balance is what Stripe holds.
    inv = publish(warehouse, {"e": [D("4")], "f": [D("2")]})
    (e_id, e_sid, e_total), (f_id, f_sid, f_total) = inv["e"], inv["f"]
    stripe_sandbox.pay_invoice(e_sid)
    stripe_sandbox.pay_invoice(f_sid)
    stripe_sandbox.refund(e_sid, 1000)
    stripe_sandbox.refund(e_sid, 500)
    stripe_sandbox.dispute(f_sid)
    assert follow_cash()["by_kind"] == {"invoice": 2, "payment": 2, "refund": 2, "dispute": 1, "fee": 3}
    assert [j[4] for j in journals(warehouse, e_id) if j[0] == "refund"] == [
        (("refunds", 1000, 0), ("cash_clearing", 0, 1000)),
        (("refunds", 500, 0), ("cash_clearing", 0, 500)),
    ]
    assert [j[4] for j in journals(warehouse, f_id) if j[0] == "dispute"] == [
        (("disputes", f_total, 0), ("cash_clearing", 0, f_total))
    ]
    assert receivable(warehouse, "e") == 0 and receivable(warehouse, "f") == 0
    clearing = warehouse.scalar(
        "SELECT sum(debit_minor - credit_minor) FROM closeout.ledger_lines WHERE role = 'cash_clearing'"
    )
    fees = warehouse.scalar("SELECT sum(fee_minor) FROM closeout.stripe_balance_transactions")
    assert fees > 0 and clearing == e_total - 1500 - fees, "the Stripe balance holds what was paid less what went back"
    check_cash_invariants(warehouse)
    _post_again_posts_nothing(warehouse)


def test_a_payment_outside_stripe_is_posted_to_the_bank(warehouse, stripe_sandbox) -> None:
    g_id, g_sid, total = publish(warehouse, {"g": [D("2")]})["g"]
    sdk(stripe_sandbox).v1.invoices.pay(g_sid, params={"paid_out_of_band": True})
    follow()
    assert journals(warehouse, g_id)[1][4] == (("cash", total, 0), ("receivable", 0, total))
    check_invariants(warehouse)


def test_the_dag_posts_journals_after_the_events(warehouse, stripe_sandbox, run_dag) -> None:
    inv = publish(warehouse, {"h": [D("2")], "i": [D("3")]})
    stripe_sandbox.pay_invoice(inv["h"][1])
    result = run_dag("closeout_stripe_events")
    assert result.state == "success", result
    assert result.task_states["post_journals"] == "success"
    # the DAG's cash sync runs before the journals, so the card fee of the payment is booked too (issue 13)
    assert sorted(warehouse.rows("SELECT kind, count(*) FROM closeout.ledger_journals GROUP BY kind")) == [
        ("fee", 1),
        ("invoice", 2),
        ("payment", 1),
    ]
    assert warehouse.rows("SELECT status, counts ->> 'journals' FROM closeout.ledger_runs WHERE airflow_run_id = %s",
                          (result.run_id,)) == [("success", "4")]  # fmt: skip
    check_cash_invariants(warehouse)
    assert run_dag("closeout_stripe_events").state == "success"
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals") == 4, "a second run posts nothing"
