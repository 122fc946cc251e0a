"""The warehouse side of a read-back: the run row, the cursors, the read-back copy (COPY then one set-based merge),
and the API ingests the accounting checks read (``closeout_data.accounting_ingests`` with ``source``
``quickbooks_api`` / ``xero_api``: kind ``invoices`` into ``accounting_xero_invoice_lines``, kind ``general_ledger``
into ``accounting_gl_rows``), plus the trial balance.

Everything a read-back learned is written in ONE transaction at its end (``record``): a read-back that fails halfway
leaves neither a half-merged copy nor a moved cursor, and the next run reads the same changes again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg

from closeout.accounting.readback.objects import RemoteObject
from closeout.accounting.readback.reports import LedgerRow, TrialBalanceRow
from closeout.paths import load_sql

_STAGING = """CREATE TEMP TABLE readback_staging (
    entity text, external_id text, object_kind text, reference text, txn_date date, currency text,
    total_minor bigint, status text, deleted boolean, remote_version text, remote_updated_at timestamptz, raw jsonb,
    tax_minor bigint
) ON COMMIT DROP"""
_GL_COLUMNS = ("ingest_id", "line_no", "row_kind", "account", "txn_date", "txn_type", "num", "name", "memo",
               "split_account", "currency", "amount_minor", "balance_minor")  # fmt: skip


@dataclass
class ReadBack:
    """What one read-back brought home, before it is recorded."""

    system: str
    company_id: str
    mode: str
    objects: list[RemoteObject] = field(default_factory=list)
    cursors: dict[str, datetime] = field(default_factory=dict)
    ledger_currency: str | None = None
    # one general ledger per calendar month read: ((first day, last day), rows); a month's range is always the
    # whole month, so a later read-back of the same month supersedes the earlier one in the accounting_ledger check
    ledgers: list[tuple[tuple[date, date], list[LedgerRow]]] = field(default_factory=list)
    trial_balance_as_of: date | None = None
    trial_balance: list[TrialBalanceRow] = field(default_factory=list)
    requests: int = 0

    @property
    def source(self) -> str:
        return f"{self.system}_api"


def exponents(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT code, exponent FROM closeout_data.currencies").fetchall())


def cursors(conn: psycopg.Connection, system: str, company_id: str) -> dict[str, datetime]:
    rows = conn.execute("SELECT stream, cursor FROM closeout_data.accounting_readback_cursors "
                        "WHERE system = %s AND company_id = %s", (system, company_id)).fetchall()  # fmt: skip
    return dict(rows)


def start_run(conn: psycopg.Connection, system: str, company_id: str, mode: str, *, period: str | None,
              airflow_run_id: str | None) -> int:  # fmt: skip
    """The run row, committed at once so a read-back that dies still shows (as 'running', then 'failed')."""
    run_id = conn.execute(
        """INSERT INTO closeout_data.accounting_readback_runs (system, company_id, mode, period, airflow_run_id)
           VALUES (%s, %s, %s, %s, %s) RETURNING run_id""",
        (system, company_id, mode, period, airflow_run_id),
    ).fetchone()[0]
    conn.commit()
    return run_id


def fail_run(conn: psycopg.Connection, run_id: int, error: str, requests: int) -> None:
    conn.rollback()
    conn.execute(load_sql("accounting_readback/run_finish.sql"),
                 {"status": "failed", "requests": requests, "objects_read": 0, "objects_changed": 0,
                  "invoices_ingest_id": None, "ledger_ingest_id": None, "cursors": "{}", "error": error[:2000],
                  "run_id": run_id})  # fmt: skip
    conn.commit()


def _ingest(conn: psycopg.Connection, read: ReadBack, run_id: int, kind: str, currency: str | None,
            report_range: str | None) -> int:  # fmt: skip
    """An API ingest row: named after the read-back (there is no file), unique per run and kind."""
    digest = hashlib.sha256(f"{read.source}:{read.company_id}:{run_id}:{kind}:{report_range}".encode()).hexdigest()
    return conn.execute(
        """INSERT INTO closeout_data.accounting_ingests (system, kind, file_name, file_sha256, currency, report_range,
                                                         source)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING ingest_id""",
        (read.system, kind, f"{read.source} read-back {run_id}", digest, currency, report_range, read.source),
    ).fetchone()[0]


def _copy(conn: psycopg.Connection, statement: str, rows: Iterable[tuple]) -> None:
    with conn.cursor().copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def record(conn: psycopg.Connection, run_id: int, read: ReadBack) -> dict[str, Any]:
    """Merge, ingest, move the cursors and close the run: one transaction."""
    scope = {"system": read.system, "company_id": read.company_id, "run_id": run_id}
    conn.execute(_STAGING)
    _copy(conn, "COPY readback_staging FROM STDIN", (o.row() for o in read.objects))
    changed = conn.execute(load_sql("accounting_readback/merge_objects.sql"), scope).rowcount
    invoices_ingest = None
    if conn.execute("""SELECT 1 FROM closeout_data.accounting_remote_objects WHERE system = %(system)s
                       AND company_id = %(company_id)s AND run_id = %(run_id)s AND object_kind = 'invoice'
                       AND reference IS NOT NULL LIMIT 1""", scope).fetchone():  # fmt: skip
        invoices_ingest = _ingest(conn, read, run_id, "invoices", None, None)
        loaded = conn.execute(load_sql("accounting_readback/ingest_invoices.sql"),
                              {**scope, "ingest_id": invoices_ingest}).rowcount  # fmt: skip
        conn.execute("UPDATE closeout_data.accounting_ingests SET rows_loaded = %s WHERE ingest_id = %s",
                     (loaded, invoices_ingest))  # fmt: skip
    ledger_ingests = []
    for (start, end), rows in read.ledgers if read.ledger_currency else ():
        ledger_ingest = _ingest(conn, read, run_id, "general_ledger", read.ledger_currency, f"{start}..{end}")
        _copy(conn, f"COPY closeout_data.accounting_gl_rows ({', '.join(_GL_COLUMNS)}) FROM STDIN",
              ((ledger_ingest, n, r.row_kind, r.account, r.txn_date, r.txn_type, r.num, r.name, r.memo,
                r.split_account, read.ledger_currency, r.amount_minor, r.balance_minor)
               for n, r in enumerate(rows, start=1)))  # fmt: skip
        conn.execute("UPDATE closeout_data.accounting_ingests SET rows_loaded = %s WHERE ingest_id = %s",
                     (len(rows), ledger_ingest))  # fmt: skip
        ledger_ingests.append(ledger_ingest)
    ledger_ingest = ledger_ingests[-1] if ledger_ingests else None
    if read.trial_balance_as_of is not None and read.ledger_currency:
        _copy(conn, "COPY closeout_data.accounting_trial_balances (run_id, line_no, as_of, account, account_id, "
                    "currency, debit_minor, credit_minor) FROM STDIN",
              ((run_id, n, read.trial_balance_as_of, t.account, t.account_id, read.ledger_currency, t.debit_minor,
                t.credit_minor) for n, t in enumerate(read.trial_balance, start=1)))  # fmt: skip
    for stream, cursor in read.cursors.items():
        conn.execute(load_sql("accounting_readback/cursor_upsert.sql"), {**scope, "stream": stream, "cursor": cursor})
    summary = {"run_id": run_id, "system": read.system, "company_id": read.company_id, "mode": read.mode,
               "requests": read.requests, "objects_read": len(read.objects), "objects_changed": changed,
               "invoices_ingest_id": invoices_ingest, "ledger_ingest_id": ledger_ingest,
               "ledger_ingest_ids": ledger_ingests,
               "cursors": {k: v.isoformat() for k, v in read.cursors.items()}}  # fmt: skip
    conn.execute(load_sql("accounting_readback/run_finish.sql"),
                 {**summary, "status": "succeeded", "cursors": json.dumps(summary["cursors"]), "error": None})
    conn.commit()
    return summary
