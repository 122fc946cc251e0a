"""The expense journals in the accounting export: QuickBooks journal entries and Xero manual journals carry them
(account names and codes from the chart), and once the accounting system's own General Ledger report of the
imported files is ingested, the reconciliation's accounting checks stay green."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.ledger import tasks as ledger_tasks
from closeout.recon import run_reconciliation
from closeout.warehouse.db import connect
from expense_books_support import Expense, Tracker, check_balanced, invoice_with_expenses, policy_file
from payments_support import last_month

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import e2e_support
from ledger_support import follow, publish

pytestmark = pytest.mark.integration


def _csv(paths: list[Path]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in paths:
        with path.open(newline="", encoding="utf-8") as fh:
            rows.extend(csv.DictReader(fh))
    return rows


def test_the_export_carries_the_expense_journals_and_the_accounting_checks_stay_green(
    warehouse, stripe_sandbox, tmp_path, monkeypatch
) -> None:
    policy_file(tmp_path, monkeypatch, rules=[{"category": "Travel", "reimbursable": True}])
    publish(warehouse, {"a": [D("2")], "b": [D("1.5")]})
    follow()  # the invoices are finalised and posted
    tracker = Tracker()
    travel = Expense(801, "64.20", category="Travel", billable=True)  # paid by the person
    software = Expense(802, "19.99", category="Software", billable=False)  # company card
    tracker.sync(travel, software)
    ledger_tasks.post_journals("expenses")
    travel.total_cost = "70.00"  # edited: the difference is its own journal
    tracker.sync(travel)
    ledger_tasks.post_journals("edit")
    check_balanced(warehouse)

    period = last_month().strftime("%Y-%m")
    paths = e2e_support.accounting_round_trip(tmp_path / "accounting", period)

    expense_journals = {jid: ref for jid, ref in warehouse.rows(
        "SELECT journal_id, source_ref FROM closeout.ledger_journals WHERE kind = 'expense'")}  # fmt: skip
    assert len(expense_journals) == 3
    journal_folder = tmp_path / "accounting" / "closeout" / datetime.now(UTC).strftime("%Y-%m")  # as the round trip
    quickbooks = [r for r in _csv(sorted(journal_folder.glob("quickbooks_journals_*.csv")))
                  if r["JournalNo"] in expense_journals]  # fmt: skip
    assert {(r["JournalNo"], r["AccountName"], r["Debits"], r["Credits"], r["Description"]) for r in quickbooks} == {
        *((jid, name, debit, credit, ref) for jid, ref in expense_journals.items() if ref.endswith("801:v1:USD")
          for name, debit, credit in (("Reimbursable expenses (rebilled)", "64.20", ""),
                                      ("Expense reimbursements payable", "", "64.20"))),
        *((jid, name, debit, credit, ref) for jid, ref in expense_journals.items() if ref.endswith("801:v2:USD")
          for name, debit, credit in (("Reimbursable expenses (rebilled)", "5.80", ""),
                                      ("Expense reimbursements payable", "", "5.80"))),
        *((jid, name, debit, credit, ref) for jid, ref in expense_journals.items() if ref.endswith("802:v1:USD")
          for name, debit, credit in (("Project costs (non-billable expenses)", "19.99", ""),
                                      ("Company card and expense clearing", "", "19.99"))),
    }  # fmt: skip
    xero = [r for r in _csv(sorted(journal_folder.glob("xero_journals_USD_*.csv")))
            if r["*Narration"].removeprefix("closeout journal ") in expense_journals]  # fmt: skip
    assert sorted((r["*AccountCode"], r["*Amount"]) for r in xero) == sorted([
        ("5100", "64.20"), ("2110", "-64.20"), ("5100", "5.80"), ("2110", "-5.80"), ("5200", "19.99"),
        ("2160", "-19.99")])  # fmt: skip

    with connect() as conn:
        result = run_reconciliation(conn, data_docs_dir=tmp_path / "docs")
    statuses = {c.check_name: c.status for c in result.checks}
    assert statuses["accounting_ledger"] == "passed", result.by_name()["accounting_ledger"].evidence
    assert statuses["accounting_invoices"] == "passed"
    assert statuses["journals"] == "passed"
    assert paths["gl"].is_file()


def test_an_invoice_billing_expenses_books_cost_and_markup_in_the_accounting_system_too(
    warehouse, stripe_sandbox, tmp_path
) -> None:
    """QuickBooks imports the invoice to its income account, so an EX-<number> journal entry moves the expense
    lines' cost and markup to their accounts; Xero gets the line as two lines on those accounts. The General Ledger
    of the imported files then ties per account with the ledger (pass-through: 4000 only has the time)."""
    invoice_with_expenses(warehouse)
    number = warehouse.scalar("SELECT stripe_number FROM closeout.invoices WHERE status = 'open'")
    period = last_month().strftime("%Y-%m")
    e2e_support.accounting_round_trip(tmp_path / "accounting", period)
    folder = tmp_path / "accounting" / "closeout" / period

    journals = _csv(sorted(folder.glob("quickbooks_credit_journals_*.csv")))
    reclass = [(r["AccountName"], r["Debits"], r["Credits"]) for r in journals if r["JournalNo"] == f"EX-{number}"]
    assert reclass == [("Services revenue", "46.59", ""), ("Reimbursable expenses (rebilled)", "", "42.35"),
                       ("Expense markup revenue", "", "4.24")]  # fmt: skip
    xero = [(r["*Description"], r["*Quantity"], r["*UnitAmount"], r["*AccountCode"])
            for r in _csv(sorted(folder.glob("xero_invoices_*.csv"))) if r["*InvoiceNumber"] == number]  # fmt: skip
    assert [x[3] for x in xero] == ["4000", "5100", "4100"]
    assert (xero[1][1:], xero[2][1:]) == (("1", "42.35", "5100"), ("1", "4.24", "4100"))
    assert sum(D(q) * D(u) for _, q, u, _ in xero) == D("246.59")  # the invoice's total, unchanged

    with connect() as conn:
        result = run_reconciliation(conn, data_docs_dir=tmp_path / "docs")
    statuses = {c.check_name: c.status for c in result.checks}
    assert statuses["accounting_ledger"] == "passed", result.by_name()["accounting_ledger"].evidence
    assert statuses["accounting_invoices"] == "passed", result.by_name()["accounting_invoices"].evidence
