"""closeout_payouts in real DAG runs against the Stripe sandbox: paid work transferred exactly once, the gate
refusing while a hold is open, unpaid and unconfigured work not paid, bounded deterministic batches."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from closeout.gate import holds
from closeout.warehouse.db import connect
from payouts_support import check_invariant_6, green_recon, items, pay, payees_file, seed_invoices, user_key

pytestmark = pytest.mark.integration

ACCT_1, ACCT_2 = "acct_1U1Contractor", "acct_1U2Contractor"
WORK = {
    "a": [("u1", D("2.00")), ("u3", D("1.00"))],  # u3 has no payee configuration
    "b": [("u1", D("1.50")), ("u2", D("3.25")), ("u1", D("0.75"))],
    "c": [("u1", D("4.00"))],  # never paid
}


@pytest.fixture
def payees(tmp_path, monkeypatch):
    path = payees_file(tmp_path, {"u1": ("60.00", "USD", ACCT_1), "u2": ("33.333", "USD", ACCT_2)})
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(path))
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    return path


def test_paid_work_is_transferred_once_and_a_rerun_releases_nothing(warehouse, stripe_sandbox, run_dag, payees):
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, ["a", "b"])
    green_recon()

    result = run_dag("closeout_payouts")
    assert result.state == "success", result
    assert result.task_states["approve"] == "skipped", result

    inv_a, inv_b, inv_c = (invoices[c][0] for c in "abc")
    got = items(warehouse)
    assert {k: v[:3] for k, v in got.items()} == {
        (user_key("u1"), inv_a): (12000, "USD", "transferred"),  # 2.00 h x 60.00
        (user_key("u1"), inv_b): (13500, "USD", "transferred"),  # (1.50 + 0.75) h x 60.00
        (user_key("u2"), inv_b): (10833, "USD", "transferred"),  # 3.25 h x 33.333 = 108.33225, rounded once
    }
    assert not [k for k in got if k[1] == inv_c], "work on an unpaid invoice was planned"
    assert stripe_sandbox.count("transfer") == 3
    by_payee = {t["metadata"]["closeout_payee"]: t["destination"] for t in stripe_sandbox.objects("transfer")}
    assert by_payee == {user_key("u1"): ACCT_1, user_key("u2"): ACCT_2}
    check_invariant_6(warehouse, stripe_sandbox)

    exceptions = warehouse.rows("SELECT invoice_id, payee_key, reason, hours FROM closeout.payout_exceptions")
    assert exceptions == [(inv_a, user_key("u3"), "no_payee_config", D("1.00"))]

    again = run_dag("closeout_payouts")
    assert again.state == "success", again
    assert stripe_sandbox.count("transfer") == 3
    assert items(warehouse) == got
    batches = warehouse.rows("SELECT status, approved_by FROM closeout.payout_batches")
    assert batches == [("released", "auto: approval switched off")]

    # the customer of c pays later: only c's work is released, in a batch of its own
    pay(stripe_sandbox, invoices, ["c"])
    third = run_dag("closeout_payouts")
    assert third.state == "success", third
    assert stripe_sandbox.count("transfer") == 4
    assert items(warehouse)[(user_key("u1"), inv_c)][:3] == (24000, "USD", "transferred")
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_batches") == 2
    check_invariant_6(warehouse, stripe_sandbox)


def test_an_open_hold_refuses_even_when_triggered(warehouse, stripe_sandbox, run_dag, payees):
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, ["a", "b"])
    green_recon()
    with connect() as conn:
        hold, _ = holds.open_hold(conn, recon_run_id="recon-9", check_name="ar_matches", period="2026-10",
                                  reason="AR differs by 12.00 USD")  # fmt: skip

    result = run_dag("closeout_payouts")
    assert result.state == "failed", result
    assert result.task_states["gate"] == "failed", result
    assert result.tries["gate"] == 1, "a refusal is final for the run, not retried"
    assert result.task_states["plan"] == "upstream_failed", result
    assert stripe_sandbox.count("transfer") == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_items") == 0
    status, reason, counts = warehouse.rows(
        "SELECT status, reason, counts FROM closeout.payout_runs WHERE step = 'gate'"
    )[0]
    assert status == "refused"
    assert f"payout hold {hold.hold_id}" in reason and "AR differs by 12.00 USD" in reason
    assert counts["hold_ids"] == [hold.hold_id]

    with connect() as conn:
        holds.release_hold(conn, hold.hold_id, by="ana@finance", why="late import, now matching")
    assert run_dag("closeout_payouts").state == "success"
    assert stripe_sandbox.count("transfer") == 3


def test_no_reconciliation_or_a_red_one_refuses(warehouse, stripe_sandbox, run_dag, payees):
    from closeout.payouts import tasks

    with pytest.raises(tasks.PayoutsRefused, match="no reconciliation has run"):
        tasks.check_gate("t1")
    green_recon("recon-1")
    assert tasks.check_gate("t2")["recon_run_id"] == "recon-1"
    green_recon("recon-2", status="failed")
    with pytest.raises(
        tasks.PayoutsRefused, match=r"latest reconciliation \(recon-2\) is not green: invoices_to_stripe=failed"
    ):
        tasks.check_gate("t3")
    green_recon("recon-3", status="not_applicable")
    assert tasks.check_gate("t4")["recon_run_id"] == "recon-3"
    assert [r[0] for r in warehouse.rows("SELECT status FROM closeout.payout_runs ORDER BY payout_run_id")] == [
        "refused", "success", "refused", "success"]  # fmt: skip


def test_batches_are_bounded_and_their_ids_deterministic(warehouse, stripe_sandbox, run_dag, payees):
    from closeout.payouts import config, plan

    work = {c: [("u1", D("1.00"))] for c in "abcde"}
    invoices = seed_invoices(warehouse, work)
    pay(stripe_sandbox, invoices, list(work))
    green_recon()

    with connect() as conn:  # plan twice in a transaction rolled back in between: the same batches
        payees_ = config.load()
        conn.execute("SELECT 1")
        first = plan.plan(conn, key_prefix="closeout", batch_size=2, payees=payees_).batches_planned
        conn.rollback()
        conn.execute("SELECT 1")
        second = plan.plan(conn, key_prefix="closeout", batch_size=2, payees=payees_).batches_planned
        conn.rollback()
    assert len(first) == 3 and first == second

    result = run_dag("closeout_payouts", {"batch_size": 2})
    assert result.state == "success", result
    rows = warehouse.rows("SELECT batch_id, item_count, size_limit, status FROM closeout.payout_batches ORDER BY 1")
    assert sorted(r[0] for r in rows) == sorted(first)
    assert sorted(r[1] for r in rows) == [1, 2, 2] and {r[2] for r in rows} == {2} and {r[3] for r in rows} == {
        "released"}  # fmt: skip
    assert stripe_sandbox.count("transfer") == 5
    groups = sorted({t["transfer_group"] for t in stripe_sandbox.objects("transfer")})
    assert groups == sorted(first)
    check_invariant_6(warehouse, stripe_sandbox)
