"""Payouts follow the money back (issue 13 item 4, invariant 8), in real closeout_payouts DAG runs against the Stripe
sandbox, with the refunds and disputes Stripe records read back through closeout's events and cash sync.

Work on a refunded invoice is not paid out (pro rata when partly refunded); a refund after the payout is a
clawback per payee and refund, netted from the payee's next transfers (never below zero, the rest carried
forward); a dispute holds the work until it ends: won, it is paid; lost, it is not, or is clawed back; a rerun
records and transfers nothing twice; the books and the payout reconciliation agree."""

from __future__ import annotations

import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.ledger import accounts, posting
from closeout.ledger import tasks as ledger_tasks
from closeout.paths import load_sql
from closeout.recon import run_reconciliation
from closeout.warehouse.db import connect
from payouts_support import (
    adjustments,
    check_invariant_6,
    check_netting,
    exceptions_by_work,
    follow_money,
    green_recon,
    items,
    outstanding,
    pay,
    payees_file,
    seed_invoices,
    transfers,
    user_key,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
from ledger_support import check_invariants

pytestmark = pytest.mark.integration

ACCT_1, ACCT_2 = "acct_1U1Clawback", "acct_1U2Clawback"
U1, U2 = user_key("u1"), user_key("u2")
# client rate 100.00/h; u1 costs 60.00/h, u2 40.00/h
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


def _run(run_dag) -> dict:
    result = run_dag("closeout_payouts")
    assert result.state == "success", result
    return result


def _plan_counts(warehouse) -> dict:
    query = "SELECT counts FROM closeout.payout_runs WHERE step = 'plan' ORDER BY payout_run_id DESC"
    return warehouse.rows(query)[0][0]


def _post_books() -> None:
    """The ledger's posting, plus the clawback step (include/sql/ledger/75_payout_clawbacks.sql) where the ledger
    has not registered it yet (it posts only adjustments, whatever the order)."""
    ledger_tasks.post_journals("clawback-books")
    if not any(path.endswith("75_payout_clawbacks.sql") for _, path in posting.STEPS):
        with connect() as conn:
            conn.execute(load_sql("ledger/75_payout_clawbacks.sql"), {**accounts.read().codes, "run": None})
            conn.commit()


def test_refunded_work_is_not_paid_and_a_partial_refund_pays_pro_rata(warehouse, stripe_sandbox, run_dag, payees):
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, ["a", "b"])
    (full,) = stripe_sandbox.refund(invoices["a"][1])  # all of a
    (part,) = stripe_sandbox.refund(invoices["b"][1], 2500)  # a quarter of b
    follow_money()
    green_recon()

    _run(run_dag)
    inv_a, inv_b = invoices["a"][0], invoices["b"][0]
    assert not [k for k in items(warehouse) if k[1] == inv_a], "work on a refunded invoice was planned"
    got = exceptions_by_work(warehouse)
    assert {k: v[0] for k, v in got.items()} == {(U1, inv_a): "not_payable", (U2, inv_a): "not_payable"}
    assert full["id"] in got[(U1, inv_a)][1] and "300.00 USD" in got[(U1, inv_a)][1]

    # b: u1's 60.00 is planned whole; the refund's quarter (15.00) is clawed back and netted from its own transfer
    (item,) = warehouse.rows(
        "SELECT payout_id, amount_minor, netted_minor, transfer_minor, status FROM closeout.payout_items"
    )
    assert item[1:] == (6000, 1500, 4500, "transferred")
    assert transfers(stripe_sandbox) == [(U1, inv_b, 4500)]
    assert adjustments(warehouse) == [(U1, inv_b, "clawback", "refund", -1500, part["id"], 0, item[0])]
    source_ref = warehouse.scalar("SELECT source_ref FROM closeout.payout_adjustments")
    assert source_ref == f"{part['id']}/{item[0]}"
    assert outstanding(warehouse) == {}
    check_invariant_6(warehouse, stripe_sandbox)
    check_netting(warehouse)

    again = _run(run_dag)  # a rerun records, nets and transfers nothing
    assert again.task_states["release"] == "success"
    assert transfers(stripe_sandbox) == [(U1, inv_b, 4500)]
    assert len(adjustments(warehouse)) == 1
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_adjustment_settlements") == 1
    counts = _plan_counts(warehouse)
    assert (counts["items_planned"], counts["clawbacks_recorded"], counts["reversals_recorded"]) == (0, 0, 0)


def test_a_refund_after_payout_is_clawed_back_and_netted_from_the_next_payouts(warehouse, stripe_sandbox, run_dag,
                                                                               payees, tmp_path):  # fmt: skip
    invoices = seed_invoices(warehouse, WORK)
    inv_a, inv_b, inv_c = (invoices[c][0] for c in "abc")
    pay(stripe_sandbox, invoices, ["a"])
    ledger_tasks.post_journals("events")
    green_recon()
    _run(run_dag)
    assert transfers(stripe_sandbox) == sorted([(U1, inv_a, 12000), (U2, inv_a, 4000)])

    # a is refunded after its work was paid out, in two halves: one clawback per payee and refund
    (first,) = stripe_sandbox.refund(invoices["a"][1], 15000)
    follow_money()
    _run(run_dag)
    (second,) = stripe_sandbox.refund(invoices["a"][1], 15000)
    follow_money()
    _run(run_dag)
    got = adjustments(warehouse)
    assert sorted(r[:6] for r in got) == sorted([
        (U1, inv_a, "clawback", "refund", -6000, first["id"]), (U2, inv_a, "clawback", "refund", -2000, first["id"]),
        (U1, inv_a, "clawback", "refund", -6000, second["id"]), (U2, inv_a, "clawback", "refund", -2000, second["id"]),
    ])  # fmt: skip
    assert all(r[7] is None for r in got), "nothing netted: no new work yet"
    assert outstanding(warehouse) == {(U1, "USD"): -12000, (U2, "USD"): -4000}
    counts = _plan_counts(warehouse)
    assert {(o["payee_key"], o["balance"]) for o in counts["outstanding_clawbacks"]} == {
        (U1, "-120.00 USD"), (U2, "-40.00 USD")}  # fmt: skip
    assert len(stripe_sandbox.objects("transfer")) == 2, "a clawback made or changed a transfer"

    # b's work (60.00) is less than u1 owes back (120.00): netted whole, no transfer, 60.00 carried forward
    pay(stripe_sandbox, invoices, ["b"])
    follow_money()
    _run(run_dag)
    netted = items(warehouse)[(U1, inv_b)]
    assert netted[:4] == (6000, "USD", "netted", None)
    assert len(stripe_sandbox.objects("transfer")) == 2
    assert outstanding(warehouse) == {(U1, "USD"): -6000, (U2, "USD"): -4000}

    # c's work (180.00) nets the rest: one transfer of 120.00, nothing outstanding for u1; u2 still owes 40.00
    pay(stripe_sandbox, invoices, ["c"])
    follow_money()
    _run(run_dag)
    assert transfers(stripe_sandbox) == sorted([(U1, inv_a, 12000), (U2, inv_a, 4000), (U1, inv_c, 12000)])
    assert warehouse.rows(
        "SELECT amount_minor, netted_minor, transfer_minor FROM closeout.payout_items WHERE invoice_id = %s", (inv_c,)
    ) == [(18000, 6000, 12000)]
    assert outstanding(warehouse) == {(U2, "USD"): -4000}
    settled = {r[5]: r[7] for r in adjustments(warehouse) if r[0] == U1}
    b_item, c_item = (warehouse.scalar("SELECT payout_id FROM closeout.payout_items WHERE invoice_id = %s", (i,))
                      for i in (inv_b, inv_c))  # fmt: skip
    assert settled == {first["id"]: b_item, second["id"]: c_item}  # oldest clawback first
    check_invariant_6(warehouse, stripe_sandbox)
    check_netting(warehouse)

    before = (adjustments(warehouse), transfers(stripe_sandbox))
    _run(run_dag)
    assert (adjustments(warehouse), transfers(stripe_sandbox)) == before

    # the books: costs net of clawbacks, the payable holds what u2 still owes, journals balance
    _post_books()
    balances = dict(((r[0], r[1]), r[2]) for r in warehouse.rows(
        "SELECT account, currency, balance_minor FROM closeout.trial_balance WHERE account IN ('2100', '5000')"))
    assert balances == {("2100", "USD"): 4000, ("5000", "USD"): 12000 + 4000 + 6000 + 18000 - 16000}
    check_invariants(warehouse)
    with connect() as conn:
        recon = run_reconciliation(conn, data_docs_dir=tmp_path / "docs")
    statuses = {c.check_name: c.status for c in recon.checks}
    assert statuses["payouts_to_paid_invoices"] == "passed", statuses


def test_a_dispute_holds_the_work_until_it_is_won_and_a_lost_one_is_not_paid(warehouse, stripe_sandbox, run_dag,
                                                                             payees):  # fmt: skip
    invoices = seed_invoices(warehouse, WORK)
    inv_a, inv_b, inv_c = (invoices[c][0] for c in "abc")
    pay(stripe_sandbox, invoices, ["a", "b", "c"])
    disputed = {c: stripe_sandbox.dispute(invoices[c][1]) for c in "ab"}
    follow_money()
    green_recon()
    _run(run_dag)
    assert transfers(stripe_sandbox) == [(U1, inv_c, 18000)]
    got = exceptions_by_work(warehouse)
    assert {k: v[0] for k, v in got.items()} == {
        (U1, inv_a): "dispute_open", (U2, inv_a): "dispute_open", (U1, inv_b): "dispute_open"}  # fmt: skip
    assert disputed["a"]["id"] in got[(U1, inv_a)][1]

    stripe_sandbox.win_dispute(disputed["a"]["id"])
    stripe_sandbox.lose_dispute(disputed["b"]["id"])
    follow_money()
    _run(run_dag)
    assert transfers(stripe_sandbox) == sorted([(U1, inv_c, 18000), (U1, inv_a, 12000), (U2, inv_a, 4000)])
    assert {k: v[0] for k, v in exceptions_by_work(warehouse).items()} == {(U1, inv_b): "not_payable"}
    assert adjustments(warehouse) == []

    # c's work was paid out; its charge is disputed and lost afterwards: clawed back, reason dispute_lost
    lost = stripe_sandbox.dispute(invoices["c"][1], 15000)
    follow_money()
    _run(run_dag)
    assert adjustments(warehouse) == [], "an open dispute claws nothing back yet"
    stripe_sandbox.lose_dispute(lost["id"])
    follow_money()
    _run(run_dag)
    assert [r[:6] for r in adjustments(warehouse)] == [(U1, inv_c, "clawback", "dispute_lost", -9000, lost["id"])]
    assert outstanding(warehouse) == {(U1, "USD"): -9000}
    check_invariant_6(warehouse, stripe_sandbox)
