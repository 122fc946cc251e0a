"""Expenses from the Harvest sandbox to Stripe and back through the real DAGs (dag.test) on the real warehouse:
closeout_sync_harvest captures them, closeout_invoice_drafts bills the approved billable ones with the client's
markup and receipt links (never the one Harvest shows billed by someone else), closeout_stripe_publish sends the
expense lines to the Stripe sandbox through the real SDK; an edit and a deletion in Harvest after issue become
a linked adjustment and credit on the next draft; the expenses_to_invoice_lines check passes, and fails naming
the expense once a line is tampered with; the invoice evidence pack lists the expense versions billed."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml
from closeout.evidence.packs import invoice_pack
from closeout.recon.checks import CHECKS
from closeout.recon.runner import run_reconciliation
from closeout.warehouse.db import connect
from expense_billing_support import billed_per_expense, check_expense_invariants, expense_rows
from payments_support import check_invariant_3, last_month

from sandbox.harvest import generate_dataset

pytestmark = pytest.mark.integration

MONTH = last_month()
PERIOD = MONTH.strftime("%Y-%m")
RECEIPT = "https://sandbox.harvestapp.com/expenses/{}/receipt"


@pytest.fixture
def account(harvest, monkeypatch, tmp_path):
    """One USD client with five expenses last month, and its billing configuration: 10% markup, receipts."""
    harvest.load(generate_dataset(0, seed=5, anchor=MONTH + timedelta(days=40), n_clients=3))
    project = next(pid for pid, p in harvest._projects.items() if p["client"]["currency"] == "USD")
    client_id = harvest._projects[project]["client"]["id"]
    book = harvest.expenses

    def add(day: int, **fields) -> str:
        fields.setdefault("is_closed", True)
        created = book.create_expense(spent_date=MONTH + timedelta(days=day), project_id=project, **fields)
        return str(created["id"])

    ids = {
        "travel": add(2, total_cost=120.00, expense_category_id=4195928,
                      receipt={"url": RECEIPT.format(1), "file_name": "train.pdf", "file_size": 1200,
                               "content_type": "application/pdf"}),
        "meals": add(3, total_cost=33.35),
        "mileage": add(4, expense_category_id=4195929, units=120.5),  # 120.5 x 0.655 = 78.93
        "billed_elsewhere": add(5, total_cost=50.00, is_billed=True),
        "unapproved": add(6, total_cost=9.99, is_closed=False),
    }  # fmt: skip
    config = tmp_path / "clients.yaml"
    config.write_text(yaml.safe_dump({
        "defaults": {"require_approval": True},
        "clients": [{"client_key": f"harvest:{client_id}", "name": "Oceanic", "email": "ap@oceanic.example",
                     "currency": "USD", "expense_markup_percent": "10", "expense_receipt_links": True}],
    }))  # fmt: skip
    monkeypatch.setenv("CLOSEOUT_BILLING_CONFIG", str(config))
    return {"client_key": f"harvest:{client_id}", "ids": ids, "book": book}


def _run(run_dag, dag_id: str, conf: dict | None = None):
    result = run_dag(dag_id, conf)
    assert result.state == "success", result
    return result


def _recon(tmp_path) -> dict:
    checks = tuple(c for c in CHECKS if c.name in ("entries_to_invoice_lines", "expenses_to_invoice_lines"))
    with connect() as conn:
        result = run_reconciliation(conn, period=PERIOD, data_docs_dir=tmp_path / "docs", checks=checks)
    return {c.check_name: c for c in result.checks}


def test_expenses_are_drafted_published_corrected_and_reconciled(
    warehouse, account, stripe_sandbox, run_dag, tmp_path
) -> None:
    ids = account["ids"]
    _run(run_dag, "closeout_sync_harvest")
    _run(run_dag, "closeout_invoice_drafts")
    invoice_id = warehouse.scalar(
        "SELECT invoice_id FROM closeout.invoices WHERE client_key = %s AND period_start = %s AND currency = 'USD'",
        (account["client_key"], MONTH),
    )
    lines = warehouse.rows(
        """SELECT kind, description, quantity, unit_rate, amount_minor, entry_count FROM closeout.invoice_lines
           WHERE invoice_id = %s ORDER BY line_no""",
        (invoice_id,),
    )
    # category lines: Meals 33.35, Mileage 78.93, Travel 120.00, each x 1.10 rounded once; receipts passed through
    assert lines == [
        ("expense", "Expenses: Meals (1 item), incl. 10% markup", D("33.35"), D("1.1"), 3669, 1),
        ("expense", "Expenses: Mileage (1 item), incl. 10% markup", D("78.93"), D("1.1"), 8682, 1),
        ("expense", f"Expenses: Travel (1 item), incl. 10% markup, receipt: {RECEIPT.format(1)}", D("120"), D("1.1"),
         13200, 1),
    ]  # fmt: skip
    expected = {ids["travel"]: 13200, ids["meals"]: 3669, ids["mileage"]: 8682}
    with connect() as conn:
        check_expense_invariants(conn, expected)
        assert set(billed_per_expense(conn)) == set(expected), "never the one billed elsewhere, nor the unapproved"

    # publish: each expense line is one Stripe line item with our amount; totals agree (invariant 3)
    _run(run_dag, "closeout_stripe_publish")
    status, sid = warehouse.rows("SELECT status, stripe_invoice_id FROM closeout.invoices WHERE invoice_id = %s",
                                 (invoice_id,))[0]  # fmt: skip
    assert status == "open"
    items = [ln for ln in stripe_sandbox.objects("line_item") if ln["invoice"] == sid]
    assert sorted(i["amount"] for i in items) == [3669, 8682, 13200]
    assert {i["metadata"]["closeout_kind"] for i in items} == {"expense"}
    assert any(i["description"].endswith("(120 USD x 1.1)") for i in items), [i["description"] for i in items]
    check_invariant_3(warehouse, stripe_sandbox)

    # after issue: the train ticket goes up to 150.00 and the meal is deleted in Harvest
    account["book"].update_expense(int(ids["travel"]), total_cost=150.00)
    account["book"].delete_expense(int(ids["meals"]))
    _run(run_dag, "closeout_sync_harvest", {"sweep": "always"})
    _run(run_dag, "closeout_invoice_drafts")
    with connect() as conn:
        travel = expense_rows(conn, ids["travel"])
        meals = expense_rows(conn, ids["meals"])
        check_expense_invariants(conn, {ids["travel"]: 16500, ids["meals"]: 0, ids["mileage"]: 8682})
    assert (travel[0]["invoice_id"], travel[0]["kind"], travel[0]["amount_minor"]) == (invoice_id, "expense", 13200)
    adjustment, credit = travel[-1], meals[-1]
    assert (adjustment["kind"], adjustment["cost_minor"], adjustment["amount_minor"]) == ("adjustment", 3000, 3300)
    assert (credit["kind"], credit["cost_minor"], credit["amount_minor"]) == ("credit", -3335, -3669)
    assert adjustment["adjusts_invoice_id"] == credit["adjusts_invoice_id"] == invoice_id
    assert adjustment["status"] == credit["status"] == "draft" and adjustment["invoice_id"] != invoice_id
    assert warehouse.scalar("SELECT total_minor FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,)) == 25551

    # invariant 10 as the reconciliation sees it: green, then red naming the expense billed twice
    checks = _recon(tmp_path)
    assert checks["expenses_to_invoice_lines"].status == "passed", checks["expenses_to_invoice_lines"].evidence
    assert checks["entries_to_invoice_lines"].status == "passed", checks["entries_to_invoice_lines"].evidence
    with connect() as conn:  # a forged second row: the issued invoice now bills the mileage twice
        conn.execute(
            """INSERT INTO closeout_data.invoice_line_expenses (invoice_id, line_key, source, source_id,
                   expense_version, cost_minor, markup_percent, amount_minor, valid_from)
               SELECT invoice_id, line_key, source, source_id, expense_version, cost_minor, markup_percent,
                      amount_minor, valid_from + 1
               FROM closeout_data.invoice_line_expenses WHERE invoice_id = %s AND source_id = %s""",
            (invoice_id, ids["mileage"]),
        )
        conn.commit()
    failed = _recon(tmp_path)["expenses_to_invoice_lines"]
    assert failed.status == "failed"
    rows = {(r["kind"], r["item"], r["difference_minor"]) for r in failed.evidence["rows"]}
    assert ("expense_billed", f"harvest:{ids['mileage']}", 8682) in rows, rows
    assert any(k == "expense_line_vs_expenses" and f"harvest:{ids['mileage']}" in item for k, item, _ in rows), rows


def test_the_evidence_pack_lists_the_expense_versions_each_line_bills(warehouse, account, run_dag, tmp_path,
                                                                      monkeypatch) -> None:  # fmt: skip
    monkeypatch.setenv("CLOSEOUT_ARTIFACTS_URL", str(tmp_path / "artifacts"))
    _run(run_dag, "closeout_sync_harvest")
    _run(run_dag, "closeout_invoice_drafts")
    invoice_id = warehouse.scalar("SELECT invoice_id FROM closeout.invoices WHERE client_key = %s",
                                  (account["client_key"],))  # fmt: skip
    with connect() as conn:
        pack = invoice_pack(conn, invoice_id)
    folder = Path(pack.index.removeprefix("file://")).parent
    rows = json.loads((folder / "line_expenses.json").read_text(encoding="utf-8"))
    ids = account["ids"]
    assert sorted(r["source_id"] for r in rows) == sorted([ids["travel"], ids["meals"], ids["mileage"]])
    mileage = next(r for r in rows if r["source_id"] == ids["mileage"])
    assert (mileage["cost_minor"], mileage["markup_minor"], mileage["amount_minor"]) == (7893, 789, 8682)
    assert D(str(mileage["units"])) == D("120.5") and D(str(mileage["unit_price"])) == D("0.655")
    assert mileage["version"] == 1 and mileage["sync_run_id"] is not None
    assert sum(r["amount_minor"] for r in rows) == warehouse.scalar(
        "SELECT total_minor FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,)
    )
