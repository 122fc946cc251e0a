"""Issue 13's cash month end to end: the work behind it, the money Stripe moves for it, and the ways a movement goes
unbooked. Built on the break matrix's harness (``e2e_support``: warehouse copies, the alert receivers, the gate):
only what the cash leg adds lives here.

The work is captured through closeout's own capture path (``billing_support.Books``, what a tracker sync writes),
one draft per client for last month, USD clients and one EUR client; everything after that is closeout's real DAGs
against the Stripe sandbox.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import e2e_support as e2e
from billing_support import Books, Entry
from closeout.warehouse.db import connect
from payments_support import last_month

Work = dict[str, tuple[str, list[tuple[str, Decimal]]]]  # client -> (currency, [(user, hours)])


def draft_month(work: Work, *, rate: Decimal = Decimal("100.00"), first_id: int = 1) -> dict[str, str]:
    """One draft per client for last month, one entry per (user, hours) at ``rate`` in the client's currency,
    through closeout's capture and drafting; nothing published. Returns client -> the source id of its first
    entry (what a later edit changes)."""
    start = last_month()
    first: dict[str, str] = {}
    with connect() as conn:
        books = Books(conn)
        books.configure({
            "defaults": {"require_approval": False},
            "clients": [{"client_key": f"harvest:{c}", "currency": cur, "grouping": "entry",
                         "name": f"Client {c.upper()}", "email": f"ap@{c}.example"} for c, (cur, _) in work.items()],
        })  # fmt: skip
        n = first_id
        entries = []
        for client, (currency, items) in work.items():
            first[client] = str(n)
            for i, (user, hours) in enumerate(items):
                entries.append(Entry(str(n), client=client, user=user, hours=hours, rate=rate, currency=currency,
                                     spent_date=start + timedelta(days=i % 27)))  # fmt: skip
                n += 1
        books.put(*entries)
        books.draft()
        conn.commit()
    return first


def journal_ids(kind: str, **where: Any) -> list[str]:
    """The posted journals of ``kind`` matching ``where`` (columns of closeout.ledger_journals)."""
    clauses = " ".join(f"AND {column} = %({column})s" for column in where)
    with connect() as conn:
        rows = conn.execute(f"SELECT journal_id FROM closeout.ledger_journals WHERE kind = %(kind)s {clauses} "
                            "ORDER BY journal_id", {"kind": kind, **where}).fetchall()  # fmt: skip
    return [r[0] for r in rows]


def delete_journals(journal_ids: list[str]) -> list[tuple[str, str, int, int]]:
    """Posted journals go missing whole (header and lines), as if their movement had never been booked: deleted
    with the append-only guards switched off for the statements (a restore gone wrong, a manual 'clean-up').
    Returns the lines removed: (journal_id, role, debit_minor, credit_minor)."""
    assert journal_ids, "nothing to delete"
    with connect() as conn:
        conn.execute("ALTER TABLE closeout_data.journal_lines DISABLE TRIGGER journal_lines_append_only")
        conn.execute("ALTER TABLE closeout_data.journals DISABLE TRIGGER journals_append_only")
        lines = conn.execute(
            """DELETE FROM closeout_data.journal_lines WHERE journal_id = ANY(%s)
               RETURNING journal_id, role, debit_minor, credit_minor""",
            (journal_ids,),
        ).fetchall()
        gone = conn.execute("DELETE FROM closeout_data.journals WHERE journal_id = ANY(%s) RETURNING journal_id",
                            (journal_ids,)).fetchall()  # fmt: skip
        conn.execute("ALTER TABLE closeout_data.journals ENABLE TRIGGER journals_append_only")
        conn.execute("ALTER TABLE closeout_data.journal_lines ENABLE TRIGGER journal_lines_append_only")
        conn.commit()
    assert sorted(g[0] for g in gone) == sorted(journal_ids), gone
    return sorted(lines)


def payout_items_by_invoice(warehouse) -> dict[str, list[tuple[str, int, str]]]:
    """invoice_id -> [(payee_key, amount_minor, status)] of closeout's contractor payout items."""
    out: dict[str, list[tuple[str, int, str]]] = {}
    for invoice_id, payee, amount, status in warehouse.rows(
        "SELECT invoice_id, payee_key, amount_minor, status FROM closeout.payout_items ORDER BY 1, 2"
    ):
        out.setdefault(invoice_id, []).append((payee, amount, status))
    return out


# -- the accounting system, one General Ledger report per currency -------------------------------------------------
def _rows_in(files: list[Path], currency: str, out: Path) -> Path | None:
    """The rows of closeout's import files in ``currency`` (their Currency column), as one file: what the
    accounting system shows of them in a report run for that currency. None when there are none."""
    rows: list[dict[str, str]] = []
    header: list[str] = []
    for path in files:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or header)
            rows.extend(r for r in reader if r["Currency"].upper() == currency)
    if not rows:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(rows)
    return out


def accounting_round_trip(root: Path, invoice_period: str) -> list[dict[str, Any]]:
    """``e2e_support.accounting_round_trip`` for books in more than one currency: Xero's invoice export holds every
    currency; QuickBooks' General Ledger report is run once per currency (its amounts in that currency, as
    ``ingest_quickbooks_gl`` reads them), each built by the break matrix's ``quickbooks_general_ledger`` from
    closeout's import files' rows in that currency. Returns what each ingest did."""
    from closeout.accounting.export import export_period
    from closeout.accounting.ingest import currencies, ingest_quickbooks_gl, ingest_xero_invoices

    journal_period = datetime.now(UTC).strftime("%Y-%m")
    with connect() as conn:
        export_period(conn, invoice_period, root / "closeout")
        if journal_period != invoice_period:
            export_period(conn, journal_period, root / "closeout")
        exponents = currencies(conn)
    invoices = root / "closeout" / invoice_period
    journals = sorted((root / "closeout" / journal_period).glob("quickbooks_journals_*.csv")) + sorted(
        invoices.glob("quickbooks_credit_journals_*.csv"))  # fmt: skip
    xero = e2e.xero_invoice_export(sorted(invoices.glob("xero_invoices_*.csv")), root / "xero" / "invoices.csv",
                                   exponents)  # fmt: skip
    done = []
    with connect() as conn:
        done.append(ingest_xero_invoices(conn, xero))
    stamp = datetime.now(UTC).strftime("%H%M%S%f")
    for currency in sorted({"USD", "EUR"}):
        part = root / "quickbooks" / currency / stamp
        journal_rows = _rows_in(journals, currency, part / "journals.csv")
        invoice_rows = _rows_in(sorted(invoices.glob("quickbooks_invoices_*.csv")), currency, part / "invoices.csv")
        if journal_rows is None and invoice_rows is None:
            continue
        gl = e2e.quickbooks_general_ledger([journal_rows] if journal_rows else [], part / "general_ledger.csv",
                                           exponents[currency], datetime.now(UTC).strftime("%B %Y"),
                                           [invoice_rows] if invoice_rows else [])  # fmt: skip
        with connect() as conn:
            done.append(ingest_quickbooks_gl(conn, gl, currency=currency))
    assert all(not r["quarantined"] for r in done), done
    return done
