"""The accounting export of one period: QuickBooks Online and Xero import files in a folder per period,
and a manifest (file names, row counts, sha256) returned, written beside them and recorded in
``closeout.accounting_exports``.

Invoices are those of the period's billing cycles (``period_start`` in the month) that Stripe published:
status open, paid or uncollectible, with a Stripe number. Journals are the ledger lines posted in the month
(UTC), read from ``closeout.ledger_lines``; without that view there are no journal files and the manifest
says so.

**Revenue is imported once.** The invoice files already book each invoice in the accounting system (QuickBooks
and Xero post receivable and income for an imported invoice), so the journal files leave out the ledger's
journals of the same facts: ``INVOICE_FILE_KINDS``, an invoice's finalisation (``invoice``) and its void
reversal (``void``; a voided invoice is left out of the invoice files and listed under ``skipped``). Payments,
refunds, disputes and write-offs are only in the journal files. The manifest counts the journals left out
(``journals_left_to_invoice_files``).

**Account names from the chart.** The default options come from the chart of accounts
(``include/ledger/accounts.yaml``, ``closeout.ledger.accounts``): QuickBooks imports journal lines by account
*name*, so each ledger code maps to its name, and the credit journals debit the revenue account and credit the
receivable account by name; Xero imports by code, and its invoice lines go to the revenue account's code.

All reads run in one repeatable-read snapshot, so every file of a run describes
the same state, and rows stream from server-side cursors into the writers.

Re-running a period rewrites its folder: same data, byte-identical files and the same ``content_sha256``;
files of an earlier run that this run did not write (a part that is no longer needed) are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout import faults
from closeout.accounting import quickbooks, xero
from closeout.accounting.csv_safe import DirectorySink, FileEntry
from closeout.masking import mask_secrets
from closeout.paths import load_sql, state_dir

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_OWN_FILES = re.compile(r"^(quickbooks|xero)_[A-Za-z0-9_]+\.csv$")
# Ledger journal kinds the invoice files already carry: left out of the journal files (see the module doc).
INVOICE_FILE_KINDS = ("invoice", "void")


@dataclass(frozen=True)
class ExportOptions:
    quickbooks: quickbooks.QuickBooksOptions = field(default_factory=quickbooks.QuickBooksOptions)
    xero: xero.XeroOptions = field(default_factory=xero.XeroOptions)
    systems: tuple[str, ...] = ("quickbooks", "xero")


def chart_options(chart: Any = None) -> ExportOptions:
    """Options whose account names and codes are the chart's (read from its file unless given)."""
    from closeout.ledger import accounts, expense_policy

    chart = chart or accounts.read()
    by_role = {a.role: a for a in chart.accounts if a.role}
    # expense lines split like the ledger's invoice journal (docs/expense-books.md): in pass_through mode their
    # cost goes to reimbursable_expenses and their markup to expense_markup_revenue; in revenue mode to revenue
    split = expense_policy.read().revenue_mode == "pass_through" and "reimbursable_expenses" in by_role
    cost, markup = (by_role["reimbursable_expenses"], by_role["expense_markup_revenue"]) if split else (None, None)
    qb = quickbooks.QuickBooksOptions(accounts={a.code: a.name for a in chart.accounts},
                                      income_account=by_role["revenue"].name,
                                      receivable_account=by_role["receivable"].name,
                                      expense_cost_account=cost.name if cost else None,
                                      expense_markup_account=markup.name if markup else None)  # fmt: skip
    return ExportOptions(quickbooks=qb, xero=xero.XeroOptions(
        sales_account_code=by_role["revenue"].code, expense_cost_account_code=cost.code if cost else None,
        expense_markup_account_code=markup.code if markup else None))  # fmt: skip


def period_bounds(period: str) -> tuple[date, date]:
    match = _PERIOD.match(period)
    if not match:
        raise ValueError(f"period {period!r}: expected YYYY-MM")
    year, month = int(match.group(1)), int(match.group(2))
    return date(year, month, 1), date(year + month // 12, month % 12 + 1, 1)


def export_root() -> Path:
    override = os.environ.get("CLOSEOUT_EXPORT_DIR")
    return Path(override) if override else state_dir() / "exports"


def _stream(conn: psycopg.Connection, sql_file: str, params: dict) -> Iterator[dict[str, Any]]:
    with conn.cursor(name=f"accounting_{sql_file.split('/')[-1][:-4]}", row_factory=dict_row) as cur:
        cur.itersize = 2000
        cur.execute(load_sql(sql_file), params)
        yield from cur


def export_period(
    conn: psycopg.Connection,
    period: str,
    root: Path | str | None = None,
    *,
    options: ExportOptions | None = None,
    airflow_run_id: str | None = None,
) -> dict[str, Any]:
    """Write the period's files and return the manifest (options default to the chart's, ``chart_options``).

    ``root``: None for ``exports/`` under the artifacts location (or the local ``CLOSEOUT_EXPORT_DIR`` when set);
    a ``str`` names a folder in the artifact store (the dry run's ``exports/dry-run``); a ``Path`` a local folder.
    The files go to ``<root>/<period>/``."""
    options = options or chart_options()
    period_bounds(period)  # a malformed period is refused before anything is recorded or written
    if root is None and not os.environ.get("CLOSEOUT_EXPORT_DIR"):
        from closeout import artifacts

        root = artifacts.path("exports")
    if isinstance(root, str):
        return _export_to_artifacts(conn, period, f"{root.rstrip('/')}/{period}", options=options,
                                    airflow_run_id=airflow_run_id)  # fmt: skip
    folder = (root or export_root()) / period
    return _export(conn, period, folder, str(folder), options=options, airflow_run_id=airflow_run_id)


def _export(conn: psycopg.Connection, period: str, folder: Path, location: str, *, options: ExportOptions,
            airflow_run_id: str | None, publish: Callable[[], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """One recorded export run: the files are written to ``folder``, ``publish`` (if any) puts them where people
    read them (``location``), and only then is the run ``succeeded``. A worker that dies before that leaves a
    ``running`` run naming the real location, never a ``succeeded`` one pointing at its own temporary folder."""
    start, end = period_bounds(period)
    run_id = conn.execute(
        """INSERT INTO closeout_data.accounting_export_runs (period, airflow_run_id, folder, status)
           VALUES (%s, %s, %s, 'running') RETURNING export_run_id""",
        (period, airflow_run_id, location),
    ).fetchone()[0]
    conn.commit()
    try:
        params = {"start": start, "end": end, "invoice_file_kinds": list(INVOICE_FILE_KINDS)}
        manifest = _write(conn, period, folder, params, options)
        if publish is not None:
            publish()
    except Exception as exc:
        conn.rollback()
        conn.execute(
            """UPDATE closeout_data.accounting_export_runs SET status = 'failed', finished_at = clock_timestamp(),
                      error = %s WHERE export_run_id = %s""",
            (mask_secrets(str(exc))[:2000], run_id),
        )
        conn.commit()
        raise
    _record(conn, run_id, manifest)
    conn.commit()
    return {**manifest, "export_run_id": run_id, "folder": location}


def _export_to_artifacts(conn: psycopg.Connection, period: str, target: str, *, options: ExportOptions,
                         airflow_run_id: str | None) -> dict[str, Any]:  # fmt: skip
    """The export written where every worker and person finds it: the CSV writers need a local folder, so the
    files are written to a temporary one and copied to ``target`` (``exports/<period>/`` under the artifacts
    location, ``CLOSEOUT_ARTIFACTS_URL``); parts an earlier run wrote there and this one did not are removed."""
    import tempfile

    from closeout import artifacts

    with tempfile.TemporaryDirectory(prefix="closeout-export-") as tmp:
        local = Path(tmp) / period

        def publish() -> None:
            faults.point("export.before_upload")
            written = artifacts.upload_folder(local, target)
            faults.point("export.after_upload")
            for stale in artifacts.listing(target):
                name = stale.rsplit("/", 1)[-1]
                if _OWN_FILES.match(name) and stale not in written:
                    artifacts.remove(stale)

        manifest = _export(conn, period, local, target, options=options, airflow_run_id=airflow_run_id,
                           publish=publish)  # fmt: skip
    return {**manifest, "manifest_url": artifacts.url(f"{target}/manifest.json")}


def _write(conn: psycopg.Connection, period: str, folder: Path, params: dict, options: ExportOptions) -> dict:
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        conn.execute("SET LOCAL TIME ZONE 'UTC'")
        currencies = dict(conn.execute("SELECT code, exponent FROM closeout_data.currencies").fetchall())
        has_ledger = conn.execute("SELECT to_regclass('closeout.ledger_lines') IS NOT NULL").fetchone()[0]
        sink = DirectorySink(folder)
        files: list[FileEntry] = []
        notes: list[str] = []
        writers = {"quickbooks": (quickbooks.write_invoices, quickbooks.write_journals, options.quickbooks),
                   "xero": (xero.write_invoices, xero.write_journals, options.xero)}  # fmt: skip
        for system in options.systems:
            write_invoices, write_journals, opts = writers[system]
            files += write_invoices(_stream(conn, "accounting/invoice_lines.sql", params), sink, currencies, opts)
            if has_ledger:
                files += write_journals(_stream(conn, "accounting/journal_lines.sql", params), sink, currencies, opts)
        if not has_ledger:
            notes.append("closeout.ledger_lines does not exist yet: no journal files")
        invoices = conn.execute(load_sql("accounting/invoice_count.sql"), params).fetchone()[0]
        skipped = [
            {"invoice_id": r[0], "invoice_no": r[1], "currency": r[2], "total_minor": r[3], "reason": "void"}
            for r in conn.execute(load_sql("accounting/void_invoices.sql"), params).fetchall()
        ]
        journals, left = conn.execute(load_sql("accounting/journal_count.sql"), params).fetchone() if has_ledger \
            else (0, 0)
        if left:
            notes.append(f"{left} journals of kinds {', '.join(INVOICE_FILE_KINDS)} left out: the invoice files carry "
                         "them")
        conn.commit()
    finally:
        conn.isolation_level = None
    manifest = {"period": period, "invoices": invoices, "journals": journals, "journals_left_to_invoice_files": left,
                "files": [f.as_dict() for f in files], "skipped": skipped, "notes": notes}  # fmt: skip
    body = json.dumps(manifest, sort_keys=True, indent=2).encode() + b"\n"
    sink.write("manifest.json", [body])
    written = {f.name for f in files}
    for stale in folder.iterdir():
        if _OWN_FILES.match(stale.name) and stale.name not in written:
            stale.unlink()
    manifest["content_sha256"] = hashlib.sha256(body).hexdigest()
    return manifest


def _record(conn: psycopg.Connection, run_id: int, manifest: dict) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.accounting_export_files
                   (export_run_id, file_name, system, kind, part, rows, records, bytes, sha256, notes)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [(run_id, f["name"], f["system"], f["kind"], f["part"], f["rows"], f["records"], f["bytes"], f["sha256"],
              json.dumps(f["notes"])) for f in manifest["files"]],
        )  # fmt: skip
    conn.execute(
        """UPDATE closeout_data.accounting_export_runs
           SET status = 'succeeded', finished_at = clock_timestamp(), invoices = %s, journals = %s, skipped = %s,
               content_sha256 = %s
           WHERE export_run_id = %s""",
        (manifest["invoices"], manifest["journals"], json.dumps(manifest["skipped"]), manifest["content_sha256"],
         run_id),
    )  # fmt: skip


def run_export(period: str, airflow_run_id: str | None = None) -> dict[str, Any]:
    """The entry point for a task (the month-end close): export ``period`` (``YYYY-MM``) with its own warehouse
    connection, to ``exports/<period>/`` under the artifacts location (``CLOSEOUT_ARTIFACTS_URL``; a local
    ``$CLOSEOUT_EXPORT_DIR/<period>/`` when that is set), with the chart's account
    names, and return the manifest (plus ``export_run_id`` and ``folder``).

    Idempotent: the files are a function of the warehouse's data, so a re-run (an Airflow retry, a second close)
    rewrites the same bytes, removes parts no longer needed, and records one more row in
    ``closeout.accounting_exports`` with the same ``content_sha256``; nothing is sent anywhere. A failure is
    recorded as a failed export run and raised (an ``ExportError`` names the journal or currency at fault).
    """
    from closeout.warehouse.db import connect

    with connect() as conn:
        return export_period(conn, period, airflow_run_id=airflow_run_id)
