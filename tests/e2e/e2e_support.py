"""The time-to-cash chain end to end, for the break-injection matrix (issue 6): a green baseline built once per
module through closeout's own code and real DAG runs, cloned per break (CREATE DATABASE ... TEMPLATE), the
accounting system's side of the round trip, and the five breaks, each injected the way it would really happen.

The accounting system is the one part with no sandbox: ``xero_invoice_export`` and ``quickbooks_general_ledger``
play it. They read the import files closeout wrote (``closeout.accounting.export``) and write what Xero's invoice
export and QuickBooks Online's General Ledger report hold once those files are imported (the layouts of
tests/fixtures/accounting/), which closeout then ingests like any export a finance person downloads.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from billing_support import Books, Entry
from closeout.warehouse.db import connect

XERO_EXPORT_HEADER = ["ContactName", "EmailAddress", "InvoiceNumber", "Reference", "InvoiceDate", "DueDate", "Total",
                      "TaxTotal", "InvoiceAmountPaid", "InvoiceAmountDue", "Description", "Quantity", "UnitAmount",
                      "LineAmount", "AccountCode", "Currency", "Type", "Status"]  # fmt: skip
GL_HEADER = ["", "Distribution account", "Transaction date", "Transaction type", "Num", "Name", "Memo/Description",
             "Split account", "Amount", "Balance"]  # fmt: skip


# -- warehouse databases --------------------------------------------------------------------------------------
def admin(server: dict):
    from conftest import _admin_connect

    return _admin_connect(server)


def clone_database(server: dict, source: str, name: str) -> None:
    """``name`` as an exact copy of ``source``; connections still open on the source (a GX engine's pool) are
    closed first, since Postgres copies only a database nobody is connected to."""
    with admin(server) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                     "AND pid <> pg_backend_pid()", (source,))  # fmt: skip
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')


def drop_database(server: dict, name: str) -> None:
    with admin(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def warehouse_conn_json(server: dict, name: str) -> str:
    return json.dumps({**server, "schema": name})


# -- the accounting system's side -----------------------------------------------------------------------------
def _read(files: list[Path]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in files:
        with path.open(newline="", encoding="utf-8") as fh:
            rows.extend(csv.DictReader(fh))
    return rows


def _major(amount: Decimal, exponent: int) -> str:
    return f"{amount.quantize(Decimal(1).scaleb(-exponent))}"


def xero_invoice_export(import_files: list[Path], path: Path, exponents: dict[str, int],
                        alter: dict[str, Decimal] | None = None) -> Path:  # fmt: skip
    """Xero's invoice export after importing closeout's sales invoice files: one row per line, the invoice's total
    repeated on each. ``alter`` (invoice number -> total) is someone editing an invoice in Xero afterwards."""
    alter = alter or {}
    invoices: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in _read(import_files):
        invoices[row["*InvoiceNumber"]].append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(XERO_EXPORT_HEADER)
        for number, lines in sorted(invoices.items()):
            exp = exponents[lines[0]["Currency"]]
            amounts = [Decimal(line["*Quantity"]) * Decimal(line["*UnitAmount"]) for line in lines]
            total = alter.get(number, sum(amounts, Decimal(0)))
            for line, amount in zip(lines, amounts, strict=True):
                out.writerow([line["*ContactName"], line["EmailAddress"], number, line["Reference"],
                              line["*InvoiceDate"], line["*DueDate"], _major(total, exp), _major(Decimal(0), exp),
                              _major(Decimal(0), exp), _major(total, exp), line["*Description"], line["*Quantity"],
                              line["*UnitAmount"], _major(amount, exp), line["*AccountCode"], line["Currency"],
                              "Sales Invoice", "Awaiting Payment"])  # fmt: skip
    return path


def _invoice_postings(invoice_files: list[Path]) -> list[dict[str, str]]:
    """What QuickBooks books for each imported invoice line: A/R debited, the item's income account credited (the
    chart's receivable and revenue accounts, by name, as closeout's credit journals use them)."""
    from closeout.ledger.accounts import read

    names = {a.role: a.name for a in read().accounts if a.role}
    postings = []
    for row in _read(invoice_files):
        common = {"JournalDate": row["InvoiceDate"], "JournalNo": row["InvoiceNo"], "Name": row["Customer"],
                  "Description": row["ItemDescription"], "Type": "Invoice"}  # fmt: skip
        postings.append({**common, "AccountName": names["receivable"], "Debits": row["ItemAmount"], "Credits": ""})
        postings.append({**common, "AccountName": names["revenue"], "Debits": "", "Credits": row["ItemAmount"]})
    return postings


def quickbooks_general_ledger(journal_files: list[Path], path: Path, exponent: int, title: str,
                              invoice_files: list[Path] = (), amend: dict[str, str] | None = None) -> Path:  # fmt: skip
    """QuickBooks Online's General Ledger report after importing closeout's journal entry files (and invoice files:
    the journal files leave the invoices' own journals to them): one section per account, a transaction row per
    journal line or invoice posting (debits positive, credits negative), account totals and TOTAL. ``amend``
    (journal number -> amount) is someone editing a two-line journal entry in QuickBooks: both lines now carry it."""
    by_account: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in _read(journal_files) + _invoice_postings(list(invoice_files)):
        if row["JournalNo"] in (amend or {}):
            side = "Debits" if row["Debits"] else "Credits"
            row = {**row, side: (amend or {})[row["JournalNo"]]}
        by_account[row["AccountName"]].append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    grand = Decimal(0)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerows([["General Ledger"], ["Closeout E2E Co"], [title], []])
        out.writerow(GL_HEADER)
        for account, rows in sorted(by_account.items()):
            out.writerow([account, *[""] * 9])
            balance = Decimal(0)
            for row in rows:
                amount = Decimal(row["Debits"] or 0) - Decimal(row["Credits"] or 0)
                balance += amount
                out.writerow(["", account, row["JournalDate"], row.get("Type", "Journal Entry"), row["JournalNo"],
                              row["Name"], row["Description"], "-Split-", _major(amount, exponent),
                              _major(balance, exponent)])  # fmt: skip
            out.writerow([f"Total for {account}", *[""] * 7, _major(balance, exponent), ""])
            grand += balance
        out.writerow(["TOTAL", *[""] * 7, _major(grand, exponent), ""])
    return path


def accounting_round_trip(root: Path, invoice_period: str, currency: str = "USD",
                          amend: dict[str, str] | None = None) -> dict[str, Path]:
    """Export the invoices of ``invoice_period`` and the journals posted this month (closeout's import files), have
    the accounting system import them, and ingest its two exports back. Returns the exports' paths. Run again after
    the books moved, the month's General Ledger report is downloaded again and supersedes the earlier one; Xero's
    unchanged invoice export is the same file, loaded once. ``amend``: see ``quickbooks_general_ledger``."""
    from closeout.accounting.export import export_period
    from closeout.accounting.ingest import currencies, ingest_quickbooks_gl, ingest_xero_invoices

    journal_period = datetime.now(UTC).strftime("%Y-%m")
    with connect() as conn:
        export_period(conn, invoice_period, root / "closeout")
        if journal_period != invoice_period:
            export_period(conn, journal_period, root / "closeout")
        exponents = currencies(conn)
    xero = xero_invoice_export(sorted((root / "closeout" / invoice_period).glob("xero_invoices_*.csv")),
                               root / "xero" / "invoices.csv", exponents)  # fmt: skip
    invoices = root / "closeout" / invoice_period
    gl = quickbooks_general_ledger(sorted((root / "closeout" / journal_period).glob("quickbooks_journals_*.csv"))
                                   + sorted(invoices.glob("quickbooks_credit_journals_*.csv")),
                                   root / "quickbooks" / "general_ledger.csv", exponents[currency],
                                   datetime.now(UTC).strftime("%B %Y"),
                                   sorted(invoices.glob("quickbooks_invoices_*.csv")), amend)  # fmt: skip
    with connect() as conn:
        loaded = [ingest_xero_invoices(conn, xero), ingest_quickbooks_gl(conn, gl, currency=currency)]
    assert all(r["loaded"] and not r["quarantined"] for r in loaded), loaded
    return {"xero": xero, "gl": gl, "closeout": root / "closeout" / invoice_period}


# -- the breaks -----------------------------------------------------------------------------------------------
def alter_accounting_invoice(root: Path, invoice_period: str, number: str, total: Decimal) -> dict[str, Any]:
    """Someone edits an invoice's total in Xero; the next export of Xero's invoices is ingested again."""
    from closeout.accounting.ingest import currencies, ingest_xero_invoices

    with connect() as conn:
        exponents = currencies(conn)
    path = xero_invoice_export(sorted((root / "closeout" / invoice_period).glob("xero_invoices_*.csv")),
                               root / "xero" / "invoices_after_edit.csv", exponents, {number: total})  # fmt: skip
    with connect() as conn:
        return ingest_xero_invoices(conn, path)


def edit_entry_after_invoicing(source_id: str, hours: Decimal) -> int:
    """A new version of an invoiced entry arrives through closeout's capture path, and drafting never runs, so
    no adjustment line is made for it. Returns the versions written (0 when nothing changed)."""
    with connect() as conn:
        row = conn.execute(
            """SELECT client_key, project_key, task_key, user_key, spent_date, billable_rate, currency
               FROM closeout.time_entries WHERE source = 'harvest' AND source_id = %s""",
            (source_id,),
        ).fetchone()
        client, project, task, user, spent, rate, currency = row
        key = lambda k: k.split(":", 1)[1] if k else None  # noqa: E731 - keys are '<source>:<id>'
        versions = Books(conn).put(Entry(source_id, client=key(client), project=key(project), task=key(task),
                                         user=key(user), spent_date=spent, hours=hours, rate=rate,
                                         currency=currency))  # fmt: skip
        conn.commit()
    return versions


def delete_journal_line(journal_id: str, role: str) -> tuple[int, int, int]:
    """One line of a posted journal goes missing: deleted with the append-only guard switched off for the
    statement (what a manual 'fix' or a restore gone wrong does). Returns (line_no, debit, credit) of it."""
    with connect() as conn:
        conn.execute("ALTER TABLE closeout_data.journal_lines DISABLE TRIGGER journal_lines_append_only")
        gone = conn.execute(
            """DELETE FROM closeout_data.journal_lines WHERE journal_id = %s AND role = %s
               RETURNING line_no, debit_minor, credit_minor""",
            (journal_id, role),
        ).fetchall()
        conn.execute("ALTER TABLE closeout_data.journal_lines ENABLE TRIGGER journal_lines_append_only")
        conn.commit()
    assert len(gone) == 1, gone
    return gone[0]


def replay_payout(payout_id: str) -> dict[str, Any]:
    """A replayed release: the same work planned a second time (a new item, batch and idempotency key, as a
    stale plan re-run with the one-item-per-work guard gone would make it) and released through closeout's own
    release code, so Stripe makes a second, real transfer for work already paid. Returns the new item."""
    from closeout.payments.hook import StripeHook
    from closeout.payouts import release

    replay_id, batch = f"{payout_id}_replay", f"pb_replay_{payout_id}"
    with connect() as conn:
        conn.execute("ALTER TABLE closeout_data.payout_items "
                     "DROP CONSTRAINT payout_items_payee_key_invoice_id_currency_key")  # fmt: skip
        conn.execute(
            """INSERT INTO closeout_data.payout_batches (batch_id, planned_by, item_count, size_limit, approved_at,
                   approved_by) VALUES (%s, 'replayed plan', 1, 500, clock_timestamp(), 'replayed approval')""",
            (batch,),
        )
        conn.execute(
            """INSERT INTO closeout_data.payout_items (payout_id, batch_id, payee_key, invoice_id, currency, hours,
                   cost_rate, amount_minor, entry_count, destination, idempotency_key, request)
               SELECT %(new)s, %(batch)s, payee_key, invoice_id, currency, hours, cost_rate, amount_minor,
                      entry_count, destination, idempotency_key || '/replay',
                      jsonb_set(jsonb_set(jsonb_set(request, '{transfer_group}', to_jsonb(%(batch)s::text)),
                                          '{metadata,closeout_payout_id}', to_jsonb(%(new)s::text)),
                                '{metadata,closeout_batch_id}', to_jsonb(%(batch)s::text))
               FROM closeout_data.payout_items WHERE payout_id = %(old)s""",
            {"new": replay_id, "batch": batch, "old": payout_id},
        )
        conn.commit()
        summary = release.release(conn, StripeHook())
    assert summary.transferred == 1, summary
    with connect() as conn:
        cols = ("payout_id", "payee_key", "invoice_id", "currency", "amount_minor", "external_id")
        row = conn.execute(f"SELECT {', '.join(cols)} FROM closeout.payout_items WHERE payout_id = %s",
                           (replay_id,)).fetchone()  # fmt: skip
    return dict(zip(cols, row, strict=True))


def major(amount_minor: int, currency: str = "USD") -> str:
    """How the alert should show an amount: major units with the currency (2-decimal currencies here)."""
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole:,}.{cents:02d} {currency}"


def first_of_month(day: date) -> date:
    return day.replace(day=1)
