"""The read-back inside ``closeout_accounting_sync`` (dag.test, real warehouse, the sandboxes): the push's own objects
read back make the accounting checks pass on API data for QuickBooks and for Xero; an accountant then edits a pushed
invoice there, the next hourly run pushes nothing again but reads the edit, and the reconciliation fails
accounting_links naming it (and accounting_invoices with the difference), which holds payouts through the
reconciliation's breach handling."""

from __future__ import annotations

import pytest
from readback_support import (
    books,  # noqa: F401 - the fixture
    money,
    published,
    quickbooks,  # noqa: F401 - the fixture
    reconcile,
    statuses,
    xero,  # noqa: F401 - the fixture
)

from sandbox.quickbooks.cdc import accountant_edits as quickbooks_edits
from sandbox.xero.reports import accountant_edits as xero_edits

pytestmark = pytest.mark.integration

ACCOUNTING = ("accounting_ledger", "accounting_invoices", "accounting_links")


@pytest.mark.parametrize("system", ["quickbooks", "xero"])
def test_the_hourly_sync_reads_back_what_it_pushed_and_an_accountants_edit_fails_invariant_9(
    warehouse, books, quickbooks, xero, run_dag, monkeypatch, system, tmp_path  # noqa: F811 - fixtures
) -> None:
    other = "xero" if system == "quickbooks" else "quickbooks"
    monkeypatch.delenv(f"AIRFLOW_CONN_{other.upper()}_DEFAULT")  # only one system connected: the other skips
    # the company's chart as closeout's: receivable 1200, the invoice item's income account 4000
    quickbooks.receivable_account = ("Accounts receivable", "1200")
    quickbooks.item_accounts = {"1": ("Services revenue", "4000")}
    xero.receivable_account_code = "1200"

    first = run_dag("closeout_accounting_sync")
    assert first.state == "success", first
    assert first.task_states[f"{system}_read_back"] == "success", first
    assert first.task_states[f"{other}_read_back"] == "skipped", first
    runs = warehouse.rows("SELECT airflow_run_id, status, mode FROM closeout.accounting_readback_runs")
    assert runs == [(first.run_id, "succeeded", "full")]
    green = reconcile(tmp_path)
    assert {k: statuses(green)[k] for k in ACCOUNTING} == dict.fromkeys(ACCOUNTING, "passed"), [
        (c.check_name, c.evidence) for c in green.checks if c.check_name in ACCOUNTING]  # fmt: skip

    invoice_id, _, number, total, _ = published(warehouse)[0]
    external = warehouse.scalar("SELECT external_id FROM closeout.accounting_links WHERE system = %s "
                                "AND object_kind = 'invoice' AND closeout_ref = %s", (system, invoice_id))  # fmt: skip
    links = warehouse.scalar("SELECT count(*) FROM closeout.accounting_links")
    if system == "quickbooks":
        quickbooks.advance_clock(5)
        quickbooks_edits(quickbooks, "Invoice", external, {"Line": [
            {"Amount": money(total + 700), "DetailType": "SalesItemLineDetail",
             "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})  # fmt: skip
    else:
        xero.advance_clock(5)
        xero_edits(xero, "Invoices", external, {"LineItems": [
            {"Description": "edited", "Quantity": 1, "UnitAmount": money(total + 700), "AccountCode": "4000"}]})

    again = run_dag("closeout_accounting_sync")
    assert again.state == "success", again
    assert warehouse.scalar("SELECT count(*) FROM closeout.accounting_links") == links  # nothing pushed twice
    latest = warehouse.rows("SELECT mode, objects_changed FROM closeout.accounting_readback_runs "
                            "WHERE airflow_run_id = %s", (again.run_id,))  # fmt: skip
    assert latest == [("incremental", 1)]
    result = reconcile(tmp_path)
    assert statuses(result)["accounting_links"] == "failed"
    [row] = result.by_name()["accounting_links"].evidence["rows"]
    assert (row["kind"], row["item"], row["difference_minor"]) == (
        "total", f"{system} invoice {invoice_id} -> {external}", 700)  # fmt: skip
    differences = {r["item"]: r["difference_minor"] for r in result.by_name()["accounting_invoices"].evidence["rows"]}
    assert differences == {number: 700}
