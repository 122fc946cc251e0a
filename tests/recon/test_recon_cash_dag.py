"""A cash check breaching through closeout_reconcile as a real DAG run (``dag.test``), the same as every check: an
invoice made by hand in the Stripe Dashboard is read by the cash sync, stripe_objects fails (and only it), the run
fails unretried, the payouts DAG is paused by the real Airflow API server, one payout hold names the run and the
check, and finance gets one e-mail and one webhook naming the Dashboard invoice by its Stripe id."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import gate_support
import ledger_support
from test_recon_cash import follow_cash
from test_reconcile_dag import _checks, docs, payouts_dag  # noqa: F401 - fixtures shared with the DAG tests

pytestmark = pytest.mark.integration

books = ledger_support.books
api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server, gate_support.airflow_api, gate_support.smtp, gate_support.hook_receiver,
    gate_support.finance_conns,
)  # fmt: skip


def test_a_dashboard_invoice_holds_payouts_through_the_gate_naming_it(
    warehouse, books, stripe_sandbox, docs, run_dag, payouts_dag, airflow_api, smtp, hook_receiver,  # noqa: F811
    finance_conns,
) -> None:
    follow_cash()  # the month read from Stripe's lists and booked: green
    green = run_dag("closeout_reconcile", {})
    assert green.state == "success", green
    statuses = {k: v[0] for k, v in _checks(warehouse, green.run_id).items()}
    assert {statuses[c] for c in ("stripe_objects", "stripe_balance", "stripe_fees", "stripe_payouts")} == {"passed"}

    invoice = stripe_sandbox.dashboard_invoice([("Rush job", 12_345)])
    follow_cash()
    first = run_dag("closeout_reconcile", {})
    assert first.state == "failed" and first.tries["reconcile"] == 1, first
    checks = _checks(warehouse, first.run_id)
    assert {k for k, v in checks.items() if v[0] in ("failed", "error")} == {"stripe_objects"}, checks
    _, observed, tolerance, evidence, recon_run = checks["stripe_objects"]
    [row] = evidence["rows"]
    assert (row["kind"], row["item"], row["difference_minor"]) == ("invoice_unknown", invoice["id"], 12_345)
    assert observed["by_currency"]["USD"]["difference_minor"] == 12_345 and tolerance["default_minor"] == 0

    assert airflow_api.is_paused(payouts_dag) is True
    [(hold_id, hold_run, hold_check)] = warehouse.rows(
        "SELECT hold_id, recon_run_id, check_name FROM closeout.payout_holds WHERE released_at IS NULL")
    assert (hold_run, hold_check) == (recon_run, "stripe_objects")
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1
    body = smtp.messages[0].body
    for needed in ("Check:     stripe_objects", f"{invoice['id']} (invoice_unknown):", "123.45 USD",
                   f"python -m closeout.gate release --hold-id {hold_id}"):
        assert needed in body, (needed, body)
    assert hook_receiver.requests[0]["json"]["check_name"] == "stripe_objects"

    # again (payouts unpaused meanwhile): paused again, no second hold, nothing new sent
    airflow_api.set_paused(payouts_dag, False)
    assert run_dag("closeout_reconcile", {}).state == "failed"
    assert airflow_api.is_paused(payouts_dag) is True
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 1
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1
