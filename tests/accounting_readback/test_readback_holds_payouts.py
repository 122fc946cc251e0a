"""An invoice an accountant edited in QuickBooks holds payouts (issue 17, "done when"): the push's invoices read back,
the accountant's edit read back, and ``closeout_reconcile`` (dag.test, through the real gate: the Airflow API server
pauses the payouts DAG) fails accounting_links, accounting_invoices and accounting_ledger (the edit moved their
receivable and revenue), holds payouts and alerts finance."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests
from closeout.accounting.push import tasks as push_tasks
from closeout.accounting.readback.tasks import read_back
from readback_support import (
    books,  # noqa: F401 - the fixture
    money,
    published,
    quickbooks,  # noqa: F401 - the fixture
)

from sandbox.quickbooks.cdc import accountant_edits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support

pytestmark = pytest.mark.integration

api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server, gate_support.airflow_api, gate_support.smtp, gate_support.hook_receiver,
    gate_support.finance_conns,
)  # fmt: skip


@pytest.fixture
def payouts_dag(airflow_api, monkeypatch) -> str:
    """The DAG the gate pauses: closeout_payouts when the API server knows it, else the stand-in; unpaused."""
    known = requests.get(f"{airflow_api.url}/api/v2/dags/closeout_payouts",
                         headers={"Authorization": f"Bearer {airflow_api.token()}"}, timeout=30)  # fmt: skip
    dag_id = "closeout_payouts" if known.status_code == 200 else gate_support.TEST_DAG
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_DAG_ID", dag_id)
    airflow_api.set_paused(dag_id, False)
    return dag_id


def test_an_invoice_edited_in_quickbooks_fails_the_accounting_checks_and_holds_payouts(
    warehouse, books, quickbooks, run_dag, payouts_dag, airflow_api, smtp, hook_receiver, finance_conns,  # noqa: F811
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("CLOSEOUT_DATA_DOCS_DIR", str(tmp_path / "docs"))
    quickbooks.receivable_account = ("Accounts receivable", "1200")
    quickbooks.item_accounts = {"1": ("Services revenue", "4000")}
    push_tasks.sync_customers("quickbooks")
    push_tasks.push_books("quickbooks")
    read_back("quickbooks")
    green = run_dag("closeout_reconcile")
    assert green.state == "success", green
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 0

    invoice_id, _, number, total, _ = published(warehouse)[0]
    external = warehouse.scalar("SELECT external_id FROM closeout.accounting_links WHERE object_kind = 'invoice' "
                                "AND closeout_ref = %s", (invoice_id,))  # fmt: skip
    quickbooks.advance_clock(5)
    accountant_edits(quickbooks, "Invoice", external, {"Line": [
        {"Amount": money(total - 1500), "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})  # fmt: skip
    read_back("quickbooks")

    breach = run_dag("closeout_reconcile")
    assert breach.state == "failed", breach
    failed = dict(warehouse.rows(
        """SELECT c.check_name, c.evidence FROM closeout.recon_checks c JOIN closeout_data.recon_runs r USING (run_id)
           WHERE r.airflow_run_id = %s AND c.status = 'failed'""", (breach.run_id,)))  # fmt: skip
    # the edit moved their receivable and revenue too: the general ledger check says so as well
    assert set(failed) == {"accounting_links", "accounting_invoices", "accounting_ledger"}, failed
    [row] = failed["accounting_links"]["rows"]
    assert (row["item"], row["difference_minor"]) == (f"quickbooks invoice {invoice_id} -> {external}", -1500)
    assert airflow_api.is_paused(payouts_dag) is True
    reasons = [r for (r,) in warehouse.rows("SELECT reason FROM closeout.payout_holds WHERE released_at IS NULL")]
    assert any("accounting_links" in r for r in reasons), reasons  # one hold per breached check
    assert smtp.messages and any("accounting_links" in m.body for m in smtp.messages)
    assert number in str(failed["accounting_invoices"]["rows"])
