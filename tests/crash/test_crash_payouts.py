"""Crash matrix, payout transfers: the worker releasing an approved batch is killed (SIGKILL) after a payout
item's attempt is committed and before the transfer call, and after Stripe answered and before the transfer id is
recorded. The retry (the release task again) leaves exactly one Stripe transfer per payout item (invariant 6),
and the ledger posts one accrual and one transfer journal per item. The retry is the next run of
``closeout_payouts`` under ``dag.test``."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from closeout.ledger import tasks as ledger_tasks
from closeout.payouts import tasks
from crash_support import die_at, duplicate_journals, journal_count
from payouts_support import check_invariant_6, green_recon, items, pay, payees_file, seed_invoices

pytestmark = pytest.mark.integration

TRANSFER_POINTS = ["stripe.transfer.create.before_call", "stripe.transfer.create.after_call"]
WORK = {c: [("u1", D("1.00")), ("u2", D("2.00"))] for c in "ab"}  # four payout items


@pytest.mark.parametrize("point", TRANSFER_POINTS)
def test_a_release_killed_between_intent_and_outcome_makes_one_transfer_per_item(
    warehouse, stripe_sandbox, run_dag, tmp_path, monkeypatch, point: str
) -> None:
    path = payees_file(tmp_path, {"u1": ("50.00", "USD", "acct_1U1"), "u2": ("40.00", "EUR", "acct_1U2")})
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(path))
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, list(WORK))
    green_recon()
    tasks.check_gate("t")
    batches = tasks.plan_payouts("t")["awaiting_approval"]
    assert len(items(warehouse)) == 4

    die_at(point, "from closeout.payouts import tasks; "
                  f"tasks.release_batches('crashed-worker', {json.dumps(batches)}, 'auto: approval switched off')")
    assert stripe_sandbox.count("transfer") == (1 if point.endswith("after_call") else 0)
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_items WHERE status = 'transferred'") == 0

    result = run_dag("closeout_payouts")  # the DAG's next run: gate, plan (nothing new), release
    assert result.state == "success", result
    assert stripe_sandbox.count("transfer") == 4
    assert {v[2] for v in items(warehouse).values()} == {"transferred"}
    check_invariant_6(warehouse, stripe_sandbox)
    assert tasks.release_batches("rerun", batches, "auto: approval switched off")["transferred"] == 0
    assert stripe_sandbox.count("transfer") == 4

    ledger_tasks.post_journals("after-crash")
    assert journal_count(warehouse, "payout_accrual") == 4
    assert journal_count(warehouse, "payout_transfer") == 4
    assert duplicate_journals(warehouse) == []
