"""Clawbacks for credit notes, and causes that go away (issue 13 item 4), in real closeout_payouts DAG runs against
the Stripe sandbox, with the credit notes and refunds read back through closeout's cash sync.

A credit note issued after the payout claws the credited share back; voided, it is reversed by a second row (the
first is never edited) and the two cancel each other while nothing netted them. A credit note that refunds is
counted once, not once as credit note and again as refund. A refund that fails after its clawback was netted
gives the payee the amount back on their next transfer."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from payouts_support import (
    adjustments,
    check_invariant_6,
    check_netting,
    follow_money,
    green_recon,
    outstanding,
    pay,
    payees_file,
    seed_invoices,
    transfers,
    user_key,
)

pytestmark = pytest.mark.integration

ACCT_1, ACCT_2 = "acct_1U1Reversal", "acct_1U2Reversal"
U1, U2 = user_key("u1"), user_key("u2")
WORK = {
    "a": [("u1", D("2.00")), ("u2", D("1.00"))],  # invoice 300.00: u1 120.00, u2 40.00
    "b": [("u1", D("1.00"))],  # invoice 100.00: u1 60.00
    "c": [("u1", D("3.00"))],  # invoice 300.00: u1 180.00
}


@pytest.fixture
def payees(tmp_path, monkeypatch):
    path = payees_file(tmp_path, {"u1": ("60.00", "USD", ACCT_1), "u2": ("40.00", "USD", ACCT_2)})
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(path))
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    return path


def _run(run_dag) -> None:
    result = run_dag("closeout_payouts")
    assert result.state == "success", result


def _settlements(warehouse) -> list[tuple]:
    return warehouse.rows(
        """SELECT a.cause_id, a.kind, s.amount_minor, s.payout_id IS NOT NULL, s.offset_adjustment_id IS NOT NULL
           FROM closeout.payout_adjustment_settlements s JOIN closeout.payout_adjustments a USING (adjustment_id)
           ORDER BY a.payee_key, a.kind, s.settlement_id"""
    )


def test_a_credit_note_is_clawed_back_and_its_void_reversed(warehouse, stripe_sandbox, run_dag, payees):
    invoices = seed_invoices(warehouse, WORK)
    inv_a = invoices["a"][0]
    pay(stripe_sandbox, invoices, ["a"])
    green_recon()
    _run(run_dag)
    assert transfers(stripe_sandbox) == sorted([(U1, inv_a, 12000), (U2, inv_a, 4000)])

    note = stripe_sandbox.dashboard_credit_note(invoices["a"][1], amount=6000, out_of_band_amount=6000)
    follow_money()
    assert warehouse.scalar("SELECT invoice_id FROM closeout.credit_notes") == inv_a
    _run(run_dag)
    assert sorted(r[:6] for r in adjustments(warehouse)) == [  # a fifth of the invoice credited
        (U1, inv_a, "clawback", "credit_note", -2400, note["id"]),
        (U2, inv_a, "clawback", "credit_note", -800, note["id"])]  # fmt: skip
    assert outstanding(warehouse) == {(U1, "USD"): -2400, (U2, "USD"): -800}

    stripe_sandbox.void_credit_note(note["id"])
    follow_money()
    _run(run_dag)
    got = sorted(r[:7] for r in adjustments(warehouse))
    assert got == [
        (U1, inv_a, "clawback", "credit_note", -2400, note["id"], 0),
        (U1, inv_a, "reversal", "credit_note_voided", 2400, note["id"], 0),
        (U2, inv_a, "clawback", "credit_note", -800, note["id"], 0),
        (U2, inv_a, "reversal", "credit_note_voided", 800, note["id"], 0),
    ]
    assert outstanding(warehouse) == {}
    # settled by each other, not by a payout
    assert {(s[1], s[2], s[3], s[4]) for s in _settlements(warehouse)} == {
        ("clawback", -2400, False, True), ("reversal", 2400, False, True),
        ("clawback", -800, False, True), ("reversal", 800, False, True)}  # fmt: skip
    assert len(stripe_sandbox.objects("transfer")) == 2

    before = (adjustments(warehouse), _settlements(warehouse))
    _run(run_dag)
    assert (adjustments(warehouse), _settlements(warehouse)) == before
    check_netting(warehouse)
    check_invariant_6(warehouse, stripe_sandbox)


def test_a_credit_note_that_refunds_is_counted_once(warehouse, stripe_sandbox, run_dag, payees):
    invoices = seed_invoices(warehouse, WORK)
    inv_a = invoices["a"][0]
    pay(stripe_sandbox, invoices, ["a"])
    green_recon()
    _run(run_dag)

    note = stripe_sandbox.dashboard_credit_note(invoices["a"][1], amount=15000, refund_amount=15000)
    follow_money()
    assert warehouse.scalar("SELECT count(*) FROM closeout.refunds") == 1
    _run(run_dag)
    assert sorted(r[:6] for r in adjustments(warehouse)) == [  # half the invoice, once
        (U1, inv_a, "clawback", "credit_note", -6000, note["id"]),
        (U2, inv_a, "clawback", "credit_note", -2000, note["id"])]  # fmt: skip


def test_a_failed_refund_gives_the_netted_clawback_back_on_the_next_transfer(warehouse, stripe_sandbox, run_dag,
                                                                             payees):  # fmt: skip
    invoices = seed_invoices(warehouse, WORK)
    inv_a, inv_b, inv_c = (invoices[c][0] for c in "abc")
    pay(stripe_sandbox, invoices, ["a"])
    green_recon()
    _run(run_dag)

    stripe_sandbox.refunds_pending(True)
    (refund,) = stripe_sandbox.refund(invoices["a"][1], 7500)  # a quarter, pending: already counted
    follow_money()
    assert warehouse.scalar("SELECT status FROM closeout.refunds") == "pending"
    pay(stripe_sandbox, invoices, ["b"])
    follow_money()
    _run(run_dag)  # u1's clawback of 30.00 netted from b's 60.00
    assert (U1, inv_b, 3000) in transfers(stripe_sandbox)
    assert outstanding(warehouse) == {(U2, "USD"): -1000}

    stripe_sandbox.fail_refund(refund["id"])
    follow_money()
    assert warehouse.scalar("SELECT status FROM closeout.refunds") == "failed"
    pay(stripe_sandbox, invoices, ["c"])
    follow_money()
    _run(run_dag)
    # u1 gets the 30.00 back on top of c's 180.00; u2's reversal cancels the clawback nothing netted
    assert transfers(stripe_sandbox) == sorted([(U1, inv_a, 12000), (U2, inv_a, 4000), (U1, inv_b, 3000),
                                                (U1, inv_c, 21000)])  # fmt: skip
    assert sorted(r[:5] for r in adjustments(warehouse)) == [
        (U1, inv_a, "clawback", "refund", -3000), (U1, inv_a, "reversal", "refund_reversed", 3000),
        (U2, inv_a, "clawback", "refund", -1000), (U2, inv_a, "reversal", "refund_reversed", 1000)]  # fmt: skip
    assert outstanding(warehouse) == {}
    assert warehouse.rows(
        "SELECT amount_minor, netted_minor, transfer_minor FROM closeout.payout_items WHERE invoice_id = %s", (inv_c,)
    ) == [(18000, -3000, 21000)]
    check_netting(warehouse)
    check_invariant_6(warehouse, stripe_sandbox)


def test_work_planned_but_not_yet_transferred_is_clawed_back_once_it_is(warehouse, stripe_sandbox, payees):
    from closeout.payouts import tasks

    invoices = seed_invoices(warehouse, WORK)
    inv_a = invoices["a"][0]
    pay(stripe_sandbox, invoices, ["a"])
    green_recon()
    planned = tasks.plan_payouts("t1")["awaiting_approval"]  # planned; the approval waits
    (refund,) = stripe_sandbox.refund(invoices["a"][1])
    follow_money()
    assert tasks.plan_payouts("t2")["clawbacks_recorded"] == 0, "a pending item paid nothing out yet"
    tasks.release_batches("t3", planned, "ana@finance")  # its request was fixed when planned: it goes out
    assert transfers(stripe_sandbox) == sorted([(U1, inv_a, 12000), (U2, inv_a, 4000)])
    third = tasks.plan_payouts("t4")
    assert third["clawbacks_recorded"] == 2
    assert {(o["payee_key"], o["balance_minor"]) for o in third["outstanding_clawbacks"]} == {
        (U1, -12000), (U2, -4000)}  # fmt: skip
    assert {r[5] for r in adjustments(warehouse)} == {refund["id"]}
    assert tasks.plan_payouts("t5")["clawbacks_recorded"] == 0
