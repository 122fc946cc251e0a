"""Evidence packs per invoice and per accounting period: everything an auditor needs to trace a billed figure back
to the time entries and API calls that produced it, without SQL (docs/evidence.md).

One set of queries serves both: an invoice pack is the period pack's queries over one invoice. Each query is a
file in ``include/sql/evidence/`` over the contract views, parameterised by the list of invoice ids, so a period of
many invoices costs the same dozen queries as one invoice.

Where they go (artifact store): ``evidence/invoices/<invoice_id>/`` and ``evidence/<YYYY-MM>/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import psycopg

from closeout.evidence.bundle import Pack, Table, query, write_pack

PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class EvidenceError(RuntimeError):
    """A pack cannot be built: an unknown invoice, a malformed period."""


def period_bounds(period: str) -> tuple[date, date]:
    """``YYYY-MM`` -> [first day, first day of the next month)."""
    match = PERIOD.match(period or "")
    if not match:
        raise EvidenceError(f"period {period!r}: expected YYYY-MM, e.g. 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    start = date(year, month, 1)
    return start, date(year + month // 12, month % 12 + 1, 1)


@contextmanager
def snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """One read-only snapshot for the whole pack, so every file describes the same moment of the warehouse.
    Finishes whatever the caller had open first (SET TRANSACTION must be a transaction's first statement)."""
    if not conn.autocommit and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


# (file name, SQL file, what it holds): the tables every pack holds, from the entries to the journals
CHAIN = (
    ("invoices", "invoices.sql", "the invoices: totals, status, Stripe ids, approval"),
    ("invoice_lines", "invoice_lines.sql", "each invoice's current lines: quantity x rate = amount"),
    ("line_entries", "line_entries.sql", "which entry version each line bills, at what quantity, rate and amount"),
    ("line_expenses", "line_expenses.sql", "which expense version each expense line bills: its cost, the markup and "
     "the amount, with the version's date, category, units, receipt and sync run"),
    ("entry_versions", "entry_versions.sql", "every version of every billed entry: tracker ids, hours, rate inputs, "
     "the sync run that saw it; billed_here marks the versions billed"),
    ("sync_runs", "sync_runs.sql", "the tracker sync runs that saw those versions"),
    ("sync_requests", "sync_requests.sql", "the API calls behind the pack: tracker requests, Stripe calls with "
     "idempotency keys"),
    ("stripe_objects", "stripe_objects.sql", "Stripe's customer, invoice, payments, refunds, credit notes, disputes"),
    ("stripe_events", "stripe_events.sql", "the Stripe events about them and what closeout made of each"),
    ("journals", "journals.sql", "the journals posted for them"),
    ("journal_lines", "journal_lines.sql", "the journals' lines: account, debit, credit"),
)
PERIOD_ONLY = (
    ("recon_checks", "period_recon_checks.sql", "the period's reconciliation verdicts and their Data Docs"),
    ("payout_holds", "period_holds.sql", "the period's payout holds and their incident packs"),
    ("expense_versions", "period_expense_versions.sql", "every version of every expense spent in the period: "
     "tracker ids, amount, units and unit price, billable, approved, the sync run that saw it"),
)


def _tables(conn: psycopg.Connection, specs: tuple[tuple[str, str, str], ...], params: dict[str, Any]) -> list[Table]:
    return [query(conn, name, about, sql_file, params) for name, sql_file, about in specs]


def invoice_pack(conn: psycopg.Connection, invoice_id: str) -> Pack:
    """The evidence of one invoice, at ``evidence/invoices/<invoice_id>/``."""
    with snapshot(conn):
        row = conn.execute(
            "SELECT client_key, currency, total_minor, status, period_start, period_end FROM closeout.invoices "
            "WHERE invoice_id = %s",
            (invoice_id,),
        ).fetchone()
        if row is None:
            raise EvidenceError(f"invoice {invoice_id} does not exist")
        client_key, currency, total, status, start, end = row
        params = {"invoice_ids": [invoice_id], "start": None, "end": None}
        subject = {"invoice_id": invoice_id, "client_key": client_key, "currency": currency, "total_minor": total,
                   "status": status, "period_start": start.isoformat(), "period_end": end.isoformat()}  # fmt: skip
        tables = _tables(conn, CHAIN, params)
        return write_pack(conn, "invoice", ("evidence", "invoices", invoice_id), f"Invoice {invoice_id}", subject,
                          tables)  # fmt: skip


def period_pack(conn: psycopg.Connection, period: str) -> Pack:
    """The evidence of one accounting period, at ``evidence/<YYYY-MM>/``: every invoice of the period, every journal
    that occurred in it, the period's reconciliation verdicts and payout holds."""
    start, end = period_bounds(period)
    with snapshot(conn):
        invoice_ids = [r[0] for r in conn.execute(_sql("period_invoices.sql"), {"start": start, "end": end})]
        params = {"invoice_ids": invoice_ids, "start": start, "end": end, "period": period}
        tables = _tables(conn, CHAIN + PERIOD_ONLY, params)
        invoices = tables[0]
        at_currency, at_total = invoices.columns.index("currency"), invoices.columns.index("total_minor")
        totals: dict[str, int] = {}
        for row in invoices.rows:
            totals[row[at_currency]] = totals.get(row[at_currency], 0) + int(row[at_total])
        subject = {"period": period, "period_start": start.isoformat(), "period_end": end.isoformat(),
                   "invoices": len(invoice_ids), "total_minor_by_currency": totals}  # fmt: skip
        return write_pack(conn, "period", ("evidence", period), f"Period {period}", subject, tables)


def _sql(name: str) -> str:
    from closeout.paths import load_sql

    return load_sql(f"evidence/{name}")
