"""The export over real published invoices: drafts built by closeout's own capture and drafting, published
to the Stripe sandbox through the real SDK, exported for their period. The files carry exactly the
warehouse's invoices (numbers, customers, totals to the minor unit), the manifest is recorded in
closeout.accounting_exports, and a second run writes byte-identical files.

Journals are read from closeout.ledger_lines through its contract columns only; the test puts a small
stand-in view with those columns in its own database (renaming the real view aside when the ledger
migration exists), so the journal path is tested whatever state the ledger is in."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, time
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.accounting.export import export_period, run_export
from closeout.payments import tasks
from closeout.warehouse.db import connect
from payments_support import last_month, seed_drafts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
from ledger_support import follow, publish, sdk

pytestmark = pytest.mark.integration

CLIENTS = {"a": [D("1.5"), D("2")], "b": [D("3")], "c": [D("0.25"), D("4"), D("1")]}


def _stand_in_ledger(invoice_id: str, other_invoice_id: str, day: date) -> None:
    at = datetime.combine(day, time(10), UTC)
    lines = [
        ("j-1", 1, at, "1100", "USD", 15000, 0, invoice_id, "payment"),  # 1100: not in the chart, kept as it is
        ("j-1", 2, at, "4000", "USD", 0, 15000, invoice_id, "payment"),
        ("j-2", 1, at, "1200", "USD", 290, 0, f"{other_invoice_id}:1", "writeoff_reversal"),
        ("j-2", 2, at, "1000", "USD", 0, 290, f"{other_invoice_id}:1", "writeoff_reversal"),
        ("j-3", 1, at, "1200", "USD", 15000, 0, invoice_id, "invoice"),  # the invoice files carry these two
        ("j-3", 2, at, "4000", "USD", 0, 15000, invoice_id, "invoice"),
        ("j-4", 1, at, "4000", "USD", 15000, 0, invoice_id, "void"),
        ("j-4", 2, at, "1200", "USD", 0, 15000, invoice_id, "void"),
        ("j-9", 1, datetime(1999, 1, 1, tzinfo=UTC), "1000", "USD", 1, 0, "another period", "payment"),
        ("j-9", 2, datetime(1999, 1, 1, tzinfo=UTC), "1100", "USD", 0, 1, "another period", "payment"),
    ]
    with connect() as conn:
        if conn.execute("SELECT to_regclass('closeout.ledger_lines')").fetchone()[0]:
            conn.execute("ALTER VIEW closeout.ledger_lines RENAME TO ledger_lines_real")
        conn.execute(
            """CREATE TABLE closeout_data.stand_in_ledger_lines (journal_id text, line_no int, posted_at timestamptz,
                   account text, currency text, debit_minor bigint, credit_minor bigint, source_ref text, kind text)"""
        )
        conn.cursor().executemany(
            "INSERT INTO closeout_data.stand_in_ledger_lines VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", lines
        )
        conn.execute("CREATE VIEW closeout.ledger_lines AS SELECT * FROM closeout_data.stand_in_ledger_lines")
        conn.commit()


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode(), newline="")))


def test_export_of_published_invoices_matches_the_warehouse_and_is_byte_identical_on_rerun(
    warehouse, stripe_sandbox, tmp_path: Path
) -> None:
    ids = seed_drafts(CLIENTS)
    tasks.publish_drafts()
    start = last_month()
    period = start.strftime("%Y-%m")
    invoices = {r[0]: r[1:] for r in warehouse.rows(
        """SELECT stripe_number, invoice_id, client_name, total_minor, currency FROM closeout.invoices
           WHERE status = 'open' AND stripe_number IS NOT NULL""")}  # fmt: skip
    assert sorted(v[0] for v in invoices.values()) == sorted(ids)
    _stand_in_ledger(ids[0], ids[1], start.replace(day=15))
    with connect() as conn:  # one invoice voided in Stripe: left out, listed in the manifest
        void_id = ids[2]
        conn.execute("UPDATE closeout_data.invoices SET status = 'void' WHERE invoice_id = %s", (void_id,))
        conn.commit()

    with connect() as conn:
        manifest = export_period(conn, period, tmp_path)
    folder = tmp_path / period
    assert manifest["invoices"] == 2 and manifest["journals"] == 2 and manifest["journals_left_to_invoice_files"] == 2
    assert manifest["notes"] == ["2 journals of kinds invoice, void left out: the invoice files carry them"]
    assert [s["invoice_id"] for s in manifest["skipped"]] == [void_id]
    names = [f["name"] for f in manifest["files"]]
    assert names == ["quickbooks_invoices_001.csv", "quickbooks_journals_001.csv", "xero_invoices_001.csv",
                     "xero_journals_USD_001.csv"]  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == sorted([*names, "manifest.json"])
    assert json.loads((folder / "manifest.json").read_text())["files"] == manifest["files"]

    qb = _csv(folder / "quickbooks_invoices_001.csv")
    totals: dict[str, D] = defaultdict(D)
    for row in qb:
        totals[row["InvoiceNo"]] += D(row["ItemAmount"])
        assert row["Customer"] == invoices[row["InvoiceNo"]][1] and row["Currency"] == "USD"
        assert row["Memo"] == invoices[row["InvoiceNo"]][0]
    expected = {n: D(v[2]).scaleb(-2) for n, v in invoices.items() if v[0] != void_id}
    assert totals == expected
    xe = _csv(folder / "xero_invoices_001.csv")
    assert {r["*InvoiceNumber"] for r in xe} == set(expected)
    assert len(xe) == len(qb) == manifest["files"][0]["rows"]

    journal = _csv(folder / "quickbooks_journals_001.csv")
    assert [(r["JournalNo"], r["AccountName"], r["Debits"], r["Credits"]) for r in journal] == [
        ("j-1", "1100", "150.00", ""), ("j-1", "Services revenue", "", "150.00"),
        ("j-2", "Accounts receivable", "2.90", ""), ("j-2", "Bank", "", "2.90")]  # fmt: skip
    xero_journal = _csv(folder / "xero_journals_USD_001.csv")
    assert [r["*Narration"] for r in xero_journal] == ["closeout journal j-1"] * 2 + ["closeout journal j-2"] * 2
    assert [r["*AccountCode"] for r in xero_journal] == ["1100", "4000", "1200", "1000"]
    assert {r["*AccountCode"] for r in _csv(folder / "xero_invoices_001.csv")} == {"4000"}, "the chart's revenue code"
    assert journal[0]["Name"] == invoices[_number_of(invoices, ids[0])][1], "receivable lines name the customer"
    assert journal[2]["Name"] == invoices[_number_of(invoices, ids[1])][1] and journal[2]["Description"].endswith(":1")

    recorded = warehouse.rows(
        """SELECT file_name, rows, sha256, status, content_sha256 FROM closeout.accounting_exports
           WHERE export_run_id = %s ORDER BY file_name""",
        (manifest["export_run_id"],),
    )
    assert [(r[0], r[1], r[2]) for r in recorded] == sorted(
        (f["name"], f["rows"], f["sha256"]) for f in manifest["files"]
    )
    assert {r[3] for r in recorded} == {"succeeded"} and recorded[0][4] == manifest["content_sha256"]

    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with connect() as conn:
        second = export_period(conn, period, tmp_path)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert second["content_sha256"] == manifest["content_sha256"]
    assert second["export_run_id"] != manifest["export_run_id"]


def _number_of(invoices: dict, invoice_id: str) -> str:
    return next(n for n, v in invoices.items() if v[0] == invoice_id)


def test_export_without_a_ledger_view_says_so_and_clears_parts_an_earlier_run_left(warehouse, tmp_path: Path) -> None:
    (tmp_path / "2026-10").mkdir()
    (tmp_path / "2026-10" / "quickbooks_invoices_002.csv").write_bytes(b"stale")
    (tmp_path / "2026-10" / "notes.txt").write_bytes(b"not ours")
    with connect() as conn:
        if conn.execute("SELECT to_regclass('closeout.ledger_lines')").fetchone()[0]:
            conn.execute("ALTER VIEW closeout.ledger_lines RENAME TO ledger_lines_real")
            conn.commit()
        manifest = export_period(conn, "2026-10", tmp_path)
    assert manifest["files"] == [] and manifest["invoices"] == 0
    assert manifest["notes"] == ["closeout.ledger_lines does not exist yet: no journal files"]
    assert warehouse.scalar("SELECT status FROM closeout.accounting_exports") == "succeeded"
    assert sorted(p.name for p in (tmp_path / "2026-10").iterdir()) == ["manifest.json", "notes.txt"]


def test_invoice_files_and_journal_files_together_book_each_account_once(
    warehouse, stripe_sandbox, tmp_path: Path, monkeypatch
) -> None:
    """Real journals (finalisations, a payment, a void) posted by closeout's own flow; the period's invoice files
    plus the month's journal files, imported together, give every QuickBooks account (by the chart's names) exactly
    the ledger's balance: the finalisation and void journals are not in the journal files twice over."""
    monkeypatch.setenv("CLOSEOUT_EXPORT_DIR", str(tmp_path))
    inv = publish(warehouse, {"a": [D("2")], "b": [D("3"), D("1.25")], "c": [D("1.5")]})
    follow()
    stripe_sandbox.pay_invoice(inv["a"][1])
    sdk(stripe_sandbox).v1.invoices.void_invoice(inv["c"][1])
    follow()
    invoice_period, journal_period = last_month().strftime("%Y-%m"), datetime.now(UTC).strftime("%Y-%m")
    assert invoice_period != journal_period
    invoices = run_export(invoice_period, airflow_run_id="test")
    journals = run_export(journal_period)
    assert invoices["invoices"] == 2 and [s["invoice_id"] for s in invoices["skipped"]] == [inv["c"][0]]
    assert journals["journals"] == 1 and journals["journals_left_to_invoice_files"] == 4  # 3 invoices + 1 void

    imported: dict[str, D] = defaultdict(D)
    for row in _csv(tmp_path / invoice_period / "quickbooks_invoices_001.csv"):
        imported["Accounts receivable"] += D(row["ItemAmount"])  # QuickBooks books an invoice: A/R / the item's
        imported["Services revenue"] -= D(row["ItemAmount"])  # income account (finance maps the item to it)
    journal_rows = _csv(tmp_path / journal_period / "quickbooks_journals_001.csv")
    assert {r["JournalNo"] for r in journal_rows} == {warehouse.scalar(
        "SELECT journal_id FROM closeout.ledger_journals WHERE kind = 'payment'")}  # fmt: skip
    for row in journal_rows:
        imported[row["AccountName"]] += D(row["Debits"] or 0) - D(row["Credits"] or 0)
    ledger = {name: D(total).scaleb(-2) for name, total in warehouse.rows(
        """SELECT account_name, sum(debit_minor - credit_minor) FROM closeout.ledger_lines GROUP BY 1
           HAVING sum(debit_minor - credit_minor) <> 0""")}  # fmt: skip
    assert {k: v for k, v in imported.items() if v} == ledger
    assert set(ledger) == {"Accounts receivable", "Services revenue", "Stripe balance"}
