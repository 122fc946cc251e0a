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
from collections import defaultdict
from datetime import UTC, date, datetime, time
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.accounting.export import export_period
from closeout.payments import tasks
from closeout.warehouse.db import connect
from payments_support import last_month, seed_drafts

pytestmark = pytest.mark.integration

CLIENTS = {"a": [D("1.5"), D("2")], "b": [D("3")], "c": [D("0.25"), D("4"), D("1")]}


def _stand_in_ledger(invoice_id: str, other_invoice_id: str, day: date) -> None:
    at = datetime.combine(day, time(10), UTC)
    lines = [
        ("j-1", 1, at, "1100", "USD", 15000, 0, invoice_id),
        ("j-1", 2, at, "4000", "USD", 0, 15000, invoice_id),
        ("j-2", 1, at, "1200", "USD", 290, 0, f"{other_invoice_id}:1"),
        ("j-2", 2, at, "1000", "USD", 0, 290, f"{other_invoice_id}:1"),
        ("j-9", 1, datetime(1999, 1, 1, tzinfo=UTC), "1000", "USD", 1, 0, "another period"),
        ("j-9", 2, datetime(1999, 1, 1, tzinfo=UTC), "1100", "USD", 0, 1, "another period"),
    ]
    with connect() as conn:
        if conn.execute("SELECT to_regclass('closeout.ledger_lines')").fetchone()[0]:
            conn.execute("ALTER VIEW closeout.ledger_lines RENAME TO ledger_lines_real")
        conn.execute(
            """CREATE TABLE closeout_data.stand_in_ledger_lines (journal_id text, line_no int, posted_at timestamptz,
                   account text, currency text, debit_minor bigint, credit_minor bigint, source_ref text)"""
        )
        conn.cursor().executemany(
            "INSERT INTO closeout_data.stand_in_ledger_lines VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", lines
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
    assert manifest["invoices"] == 2 and manifest["journals"] == 2
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
        ("j-1", "1100", "150.00", ""), ("j-1", "4000", "", "150.00"), ("j-2", "1200", "2.90", ""),
        ("j-2", "1000", "", "2.90")]  # fmt: skip
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
