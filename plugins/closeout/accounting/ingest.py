"""Ingest the accounting system's own exports into the warehouse, to reconcile against.

A file is identified by its bytes (sha256): ingesting the same file twice, under any name, loads it once.
Rows stream from the parser straight into COPY; rows that cannot be parsed go to
``closeout.accounting_quarantine`` with the file, line number and reason, and the rest still load.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg

from closeout.accounting.gl_report import Bad, GeneralLedgerParser, GlRow
from closeout.accounting.xero_export import XeroInvoiceLine, XeroInvoiceParser

_GL_COLUMNS = ("ingest_id", "line_no", "row_kind", "account", "txn_date", "txn_type", "num", "name", "memo",
               "split_account", "currency", "amount_minor", "balance_minor")  # fmt: skip
_XERO_COLUMNS = ("ingest_id", "line_no", "invoice_number", "contact_name", "reference", "invoice_type", "status",
                 "invoice_date", "due_date", "currency", "description", "quantity", "unit_amount",
                 "line_amount_minor", "total_minor", "tax_total_minor", "amount_paid_minor",
                 "amount_due_minor")  # fmt: skip


def _text_lines(data: bytes) -> Iterator[str]:
    """Lines of the file as text: a BOM dropped, undecodable bytes marked (the parser quarantines the row)."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="replace", newline="")
    yield from text


def currencies(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT code, exponent FROM closeout_data.currencies").fetchall())


def ingest_quickbooks_gl(conn: psycopg.Connection, path: Path, *, currency: str,
                         date_format: str = "%m/%d/%Y") -> dict[str, Any]:  # fmt: skip
    """A QuickBooks Online General Ledger report (CSV). Its amounts are in the company's home currency,
    which the report does not print: the caller names it."""
    exponent = currencies(conn).get(currency)
    if exponent is None:
        raise ValueError(f"currency {currency!r} is not in closeout_data.currencies")
    parser = GeneralLedgerParser(exponent, date_format)

    def rows(ingest_id: int, parsed: list[GlRow]) -> Iterator[tuple]:
        for r in parsed:
            yield (ingest_id, r.line_no, r.row_kind, r.account, r.txn_date, r.txn_type, r.num, r.name, r.memo,
                   r.split_account, currency, r.amount_minor, r.balance_minor)  # fmt: skip

    return _ingest(conn, path, "quickbooks", "general_ledger", currency, parser.parse, rows,
                   "accounting_gl_rows", _GL_COLUMNS, lambda: parser.report_range)  # fmt: skip


def ingest_xero_invoices(conn: psycopg.Connection, path: Path, *, default_currency: str | None = None,
                         date_format: str = "%d/%m/%Y") -> dict[str, Any]:  # fmt: skip
    """Xero's invoice export (CSV)."""
    parser = XeroInvoiceParser(currencies(conn), default_currency, date_format)

    def rows(ingest_id: int, parsed: list[XeroInvoiceLine]) -> Iterator[tuple]:
        for r in parsed:
            yield (ingest_id, *asdict(r).values())

    return _ingest(conn, path, "xero", "invoices", default_currency, parser.parse, rows,
                   "accounting_xero_invoice_lines", _XERO_COLUMNS, lambda: None)  # fmt: skip


def _ingest(conn, path, system, kind, currency, parse, to_tuples, table, columns, report_range) -> dict[str, Any]:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    existing = conn.execute(
        """SELECT ingest_id, rows_loaded, rows_quarantined FROM closeout_data.accounting_ingests
           WHERE system = %s AND kind = %s AND file_sha256 = %s""",
        (system, kind, digest),
    ).fetchone()
    if existing:
        conn.rollback()
        return {"ingest_id": existing[0], "loaded": existing[1], "quarantined": existing[2], "duplicate": True}
    ingest_id = conn.execute(
        """INSERT INTO closeout_data.accounting_ingests (system, kind, file_name, file_sha256, currency)
           VALUES (%s, %s, %s, %s, %s) RETURNING ingest_id""",
        (system, kind, path.name, digest, currency),
    ).fetchone()[0]
    bad: list[Bad] = []
    loaded = 0
    batch: list = []
    copy_sql = f"COPY closeout_data.{table} ({', '.join(columns)}) FROM STDIN"
    with conn.cursor().copy(copy_sql) as copy:
        for item in parse(_text_lines(data)):
            if isinstance(item, Bad):
                bad.append(item)
                continue
            batch.append(item)
            if len(batch) >= 5000:
                for row in to_tuples(ingest_id, batch):
                    copy.write_row(row)
                loaded, batch = loaded + len(batch), []
        for row in to_tuples(ingest_id, batch):
            copy.write_row(row)
        loaded += len(batch)
    with conn.cursor().copy(
        "COPY closeout_data.accounting_quarantine (ingest_id, file_name, line_no, reason, raw) FROM STDIN"
    ) as copy:
        for b in bad:
            copy.write_row((ingest_id, path.name, b.line_no, b.reason, b.raw))
    conn.execute(
        """UPDATE closeout_data.accounting_ingests SET rows_loaded = %s, rows_quarantined = %s, report_range = %s
           WHERE ingest_id = %s""",
        (loaded, len(bad), report_range(), ingest_id),
    )
    conn.commit()
    return {"ingest_id": ingest_id, "loaded": loaded, "quarantined": len(bad), "duplicate": False}
