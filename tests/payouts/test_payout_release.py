"""Releasing payout items under faults, against the Stripe sandbox (no SDK retries): a failed transfer leaves
the rest done and itself pending, the retry completes it without duplicates; a timeout after Stripe committed
is replayed under the same key; a key Stripe may have forgotten is looked up first. And the approval step's
wiring (the approval answered through the API: test_payout_approval.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from closeout.payouts import plan, release, tasks
from closeout.payouts.config import PayeeConfigError, parse
from closeout.warehouse.db import connect
from payouts_support import check_invariant_6, green_recon, items, pay, payees_file, seed_invoices

pytestmark = pytest.mark.integration

WORK = {c: [("u1", D("1.00")), ("u2", D("2.00"))] for c in "ab"}  # four items


@pytest.fixture
def ready(warehouse, stripe_sandbox, tmp_path, monkeypatch):
    path = payees_file(tmp_path, {"u1": ("50.00", "USD", "acct_1U1"), "u2": ("40.00", "EUR", "acct_1U2")})
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(path))
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, list(WORK))
    green_recon()
    tasks.check_gate("t")
    planned = tasks.plan_payouts("t")
    assert len(planned["awaiting_approval"]) == 1 and planned["items_planned"] == 4
    return planned["awaiting_approval"]


def test_a_failed_transfer_stays_pending_and_the_retry_completes_it_once(warehouse, stripe_sandbox, ready):
    stripe_sandbox.inject("error_500", times=1, path_prefix="/v1/transfers", after=1)
    with pytest.raises(release.ReleaseIncomplete, match="1 transfers failed"):
        tasks.release_batches("t", ready, "auto: approval switched off")
    statuses = sorted(v[2] for v in items(warehouse).values())
    assert statuses == ["pending", "transferred", "transferred", "transferred"]
    assert stripe_sandbox.count("transfer") == 3
    (error,) = warehouse.rows("SELECT last_error FROM closeout.payout_items WHERE status = 'pending'")[0]
    assert "500" in error
    assert warehouse.rows("SELECT status FROM closeout.payout_runs WHERE step = 'release'") == [("failed",)]

    again = tasks.release_batches("t2", ready, "auto: approval switched off")
    assert again["transferred"] == 1
    assert stripe_sandbox.count("transfer") == 4
    assert {v[2] for v in items(warehouse).values()} == {"transferred"}
    assert tasks.release_batches("t3", ready, "x")["transferred"] == 0  # nothing is ever re-sent
    assert stripe_sandbox.count("transfer") == 4
    check_invariant_6(warehouse, stripe_sandbox)
    amounts = sorted((t["currency"], t["amount"]) for t in stripe_sandbox.objects("transfer"))
    assert amounts == [("eur", 8000), ("eur", 8000), ("usd", 5000), ("usd", 5000)]


def test_a_timeout_after_commit_is_replayed_not_repeated(warehouse, stripe_sandbox, ready):
    stripe_sandbox.inject("timeout_after_commit", times=1, path_prefix="/v1/transfers")
    with pytest.raises(release.ReleaseIncomplete):
        tasks.release_batches("t", ready, "auto")
    assert stripe_sandbox.count("transfer") == 4  # Stripe made the first one, we did not hear back
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_items WHERE status = 'pending'") == 1

    tasks.release_batches("t2", ready, "auto")
    assert stripe_sandbox.count("transfer") == 4
    found = warehouse.rows("SELECT found_by, attempts FROM closeout.payout_items ORDER BY found_by")
    assert sorted(found) == [("create", 1), ("create", 1), ("create", 1), ("replay", 2)]
    check_invariant_6(warehouse, stripe_sandbox)


def test_a_key_stripe_may_have_forgotten_is_looked_up_first(warehouse, stripe_sandbox, ready):
    stripe_sandbox.inject("timeout_after_commit", times=1, path_prefix="/v1/transfers")
    with pytest.raises(release.ReleaseIncomplete):
        tasks.release_batches("t", ready, "auto")
    with connect() as conn:  # the first attempt was two days ago
        conn.execute(
            """UPDATE closeout_data.payout_items SET first_sent_at = now() - interval '2 days'
               WHERE status = 'pending'"""
        )
        conn.commit()
    before = stripe_sandbox.stats()["mutations"]
    tasks.release_batches("t2", ready, "auto")
    assert stripe_sandbox.stats()["mutations"] == before, "a transfer was sent although Stripe had it"
    assert stripe_sandbox.count("transfer") == 4
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_items WHERE found_by = 'lookup'") == 1
    check_invariant_6(warehouse, stripe_sandbox)


def test_a_batch_must_be_approved_before_release(warehouse, stripe_sandbox, ready):
    with connect() as conn:
        assert release.release(conn, __import__("closeout.payments.hook").payments.hook.StripeHook()).transferred == 0
    assert stripe_sandbox.count("transfer") == 0
    assert warehouse.rows("SELECT status FROM closeout.payout_batches") == [("awaiting_approval",)]


def test_payee_file_errors_are_caught_before_anything_is_written():
    with pytest.raises(PayeeConfigError, match="account_id"):
        parse({"payees": [{"user_key": "harvest:1", "cost_rate": "10", "currency": "USD", "account_id": "ba_1"}]})
    with pytest.raises(PayeeConfigError, match="appears twice"):
        parse({"payees": [{"user_key": "k", "cost_rate": "1", "currency": "USD", "account_id": "acct_1"}] * 2})
    with pytest.raises(PayeeConfigError, match="cost_rate"):
        parse({"payees": [{"user_key": "k", "cost_rate": "x", "currency": "USD", "account_id": "acct_1"}]})
    assert plan.bounded_size(50_000) == plan.MAX_BATCH_SIZE


def test_approval_precedes_release_unless_switched_off(monkeypatch):
    """The wiring and the switch (a deployment setting, default on; no trigger parameter). The approval answered
    through a real API server, approve and reject: test_payout_approval.py; segregation: tests/controls."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from conftest import load_dag

    dag = load_dag("closeout_payouts")
    approve = dag.get_task("approve")
    assert isinstance(approve, ApprovalOperator)
    assert dag.get_task("release").upstream_task_ids == {"approval_route", "approve", "plan"}
    assert dag.get_task("release").trigger_rule == "none_failed_min_one_success"
    assert dag.get_task("gate").upstream_task_ids == set()
    assert "approval" not in dag.params
    monkeypatch.delenv("CLOSEOUT_PAYOUTS_APPROVAL", raising=False)
    assert tasks.approval_required() is True
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    assert tasks.approval_required() is False
