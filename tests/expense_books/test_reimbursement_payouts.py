"""Reimbursements paid with payouts, in real closeout_payouts DAG runs against the Stripe sandbox.

An approved expense the person paid is owed to them: a positive payout adjustment (reason 'reimbursement', source_ref
the expense version) that rides on the payee's next transfer, through the same gate, batch and idempotency key;
an edit adds a correcting row netted from the next transfer; a clawback larger than the reimbursement still never
makes a negative transfer; a person without payout setup is listed in closeout.unpaid_reimbursements; the books
move reimbursements_payable into payouts_payable when the transfer is made, so both end at zero."""

from __future__ import annotations

import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.ledger import tasks as ledger_tasks
from expense_books_support import Expense, Tracker, balances, check_balanced, policy_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payouts"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
from ledger_support import check_invariants
from payouts_support import (
    check_invariant_6,
    check_netting,
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

pytestmark = pytest.mark.integration

ACCT_1 = "acct_1U1Reimburse"
U1 = user_key("u1")
WORK = {"a": [("u1", D("2.00"))], "b": [("u1", D("1.00"))]}  # rate 100.00/h; u1 costs 60.00/h: 120.00 and 60.00


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """u1 is a payee in USD; everyone pays their own expenses (reimbursable by default)."""
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(payees_file(tmp_path, {"u1": ("60.00", "USD", ACCT_1)})))
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    policy_file(tmp_path, monkeypatch, default_reimbursable=True)


def _run(run_dag) -> None:
    result = run_dag("closeout_payouts")
    assert result.state == "success", result


def _reimbursements(warehouse) -> list[tuple]:
    """(payee, currency, amount, source_ref, status, settled on an item?, corrects another?) in recording order."""
    return warehouse.rows(
        """SELECT payee_key, currency, amount_minor, source_ref, status, settled_payout_id IS NOT NULL,
                  corrects_adjustment_id IS NOT NULL
           FROM closeout.payout_adjustments WHERE reason = 'reimbursement' ORDER BY created_at, adjustment_id"""
    )


def test_a_reimbursement_rides_on_the_next_transfer_and_an_edit_is_netted(warehouse, stripe_sandbox, run_dag,
                                                                          setup) -> None:  # fmt: skip
    invoices = seed_invoices(warehouse, WORK)
    inv_a, inv_b = invoices["a"][0], invoices["b"][0]
    pay(stripe_sandbox, invoices, ["a"])
    tracker = Tracker()
    taxi = Expense(501, "90.00", user="u1", billable=False)
    mileage = Expense(502, "35.10", user="u9", category="Mileage")  # u9 has no payout setup
    tolls = Expense(503, "12.00", user="u1", currency="EUR", client=8)  # u1 is paid in USD
    tracker.sync(taxi, mileage, tolls)
    ledger_tasks.post_journals("events")  # invoices, payments and the expenses, as the events DAG posts them
    green_recon()

    _run(run_dag)
    # one Stripe transfer: u1's work on a (120.00) plus the taxi (90.00)
    assert transfers(stripe_sandbox) == [(U1, inv_a, 21000)]
    (item,) = warehouse.rows("SELECT amount_minor, netted_minor, transfer_minor, status FROM closeout.payout_items")
    assert item == (12000, -9000, 21000, "transferred")
    assert _reimbursements(warehouse) == [(U1, "USD", 9000, "expense:harvest:501:v1", "settled", True, False)]
    (transfer,) = stripe_sandbox.objects("transfer")
    assert (transfer["destination"], transfer["currency"]) == (ACCT_1, "usd")
    # listed, never dropped: u9 has no payee; u1's EUR expense cannot ride on a USD payout
    assert warehouse.rows("""SELECT person, currency, amount_minor, expense_count, expenses, reason
                             FROM closeout.unpaid_reimbursements ORDER BY person, currency""") == [
        ("harvest:u1", "EUR", 1200, 1, "expense:harvest:503:v1", "payee_currency_differs"),
        ("harvest:u9", "USD", 3510, 1, "expense:harvest:502:v1", "no_payee_config"),
    ]  # fmt: skip
    plan_counts = warehouse.rows("SELECT counts FROM closeout.payout_runs WHERE step = 'plan' "
                                 "ORDER BY payout_run_id DESC LIMIT 1")[0][0]  # fmt: skip
    assert {(r["person"], r["amount"], r["reason"]) for r in plan_counts["unpaid_reimbursements"]} == {
        ("harvest:u1", "12.00 EUR", "payee_currency_differs"), ("harvest:u9", "35.10 USD", "no_payee_config")}
    # the books: the taxi's cost owed to u1, then moved into the payout and paid from the Stripe balance
    assert balances(warehouse, "reimbursements_payable", "payouts_payable") == {
        ("reimbursements_payable", "USD"): -3510, ("reimbursements_payable", "EUR"): -1200,
        ("payouts_payable", "USD"): 0,
    }  # fmt: skip  # what is still owed is what closeout.unpaid_reimbursements lists
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals WHERE kind = 'reimbursement_payment'") == 1
    check_invariant_6(warehouse, stripe_sandbox)
    check_netting(warehouse)

    _run(run_dag)  # a rerun records and transfers nothing
    assert transfers(stripe_sandbox) == [(U1, inv_a, 21000)] and len(_reimbursements(warehouse)) == 1

    taxi.total_cost = "70.00"  # edited down after it was paid: 20.00 comes off u1's next transfer
    tracker.sync(taxi)
    ledger_tasks.post_journals("edit")
    pay(stripe_sandbox, invoices, ["b"])
    follow_money()
    _run(run_dag)
    assert transfers(stripe_sandbox) == [(U1, inv_a, 21000), (U1, inv_b, 4000)]
    assert _reimbursements(warehouse) == [
        (U1, "USD", 9000, "expense:harvest:501:v1", "settled", True, False),
        (U1, "USD", -2000, "expense:harvest:501:v2", "settled", True, True),
    ]
    assert balances(warehouse, "reimbursements_payable", "payouts_payable") == {
        ("reimbursements_payable", "USD"): -3510, ("reimbursements_payable", "EUR"): -1200,
        ("payouts_payable", "USD"): 0,
    }  # fmt: skip  # what is still owed is what closeout.unpaid_reimbursements lists
    assert balances(warehouse, "project_costs") == {("project_costs", "USD"): 7000}  # the taxi, as edited
    check_invariant_6(warehouse, stripe_sandbox)
    check_netting(warehouse)
    check_balanced(warehouse)
    check_invariants(warehouse)


def test_a_clawback_larger_than_the_reimbursement_never_transfers_negative(warehouse, stripe_sandbox, run_dag,
                                                                           setup) -> None:  # fmt: skip
    invoices = seed_invoices(warehouse, WORK)
    inv_a, inv_b = invoices["a"][0], invoices["b"][0]
    pay(stripe_sandbox, invoices, ["a"])
    ledger_tasks.post_journals("events")
    green_recon()
    _run(run_dag)
    assert transfers(stripe_sandbox) == [(U1, inv_a, 12000)]

    stripe_sandbox.refund(invoices["a"][1])  # a refunded after u1 was paid: 120.00 clawed back
    Tracker().sync(Expense(601, "30.00", user="u1"))  # u1 is owed 30.00
    ledger_tasks.post_journals("expense")
    pay(stripe_sandbox, invoices, ["b"])  # 60.00 of new work
    follow_money()
    _run(run_dag)

    # the reimbursement is set off against the clawback (90.00 left), b's 60.00 is netted whole: no transfer
    assert transfers(stripe_sandbox) == [(U1, inv_a, 12000)]
    assert items(warehouse)[(U1, inv_b)][:3] == (6000, "USD", "netted")
    assert warehouse.rows("SELECT min(transfer_minor) FROM closeout.payout_items") == [(0,)]
    assert outstanding(warehouse) == {(U1, "USD"): -3000}
    assert _reimbursements(warehouse) == [(U1, "USD", 3000, "expense:harvest:601:v1", "settled", False, False)]
    assert balances(warehouse, "reimbursements_payable") == {("reimbursements_payable", "USD"): 0}
    # what u1 still owes back is the payable's debit balance
    assert balances(warehouse, "payouts_payable") == {("payouts_payable", "USD"): 3000}
    check_invariant_6(warehouse, stripe_sandbox)
    check_netting(warehouse)
    check_balanced(warehouse)
