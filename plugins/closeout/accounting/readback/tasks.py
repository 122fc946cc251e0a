"""The read-back as the DAG calls it: ``read_back(system, ...)`` for ``closeout_accounting_sync`` (and the close).

One call reads what changed in one accounting system since its cursor and the period's reports, and records it
all in one transaction (``closeout.accounting.readback.store``). Two read-backs of the same company never run at
once (an advisory lock; the second waits), so cursors only move forward over what was recorded.

Connection extras read here (besides the hooks' own): ``readback_entities`` (QuickBooks, comma separated; default
Customer, Invoice, CreditMemo, Payment, Deposit, JournalEntry), ``readback_listings`` (Xero; default Contacts,
Invoices, CreditNotes, Payments, ManualJournals, BankTransactions, BankTransfers), ``readback_overlap_seconds`` (60:
how far before the cursor each incremental read starts), ``home_currency`` / ``base_currency`` (else the report's /
the organisation's).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from closeout.accounting.readback import store
from closeout.accounting.readback.objects import QUICKBOOKS_ENTITIES, XERO_LISTINGS
from closeout.masking import mask_secrets

log = logging.getLogger(__name__)

SYSTEMS = ("quickbooks", "xero")


def _names(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        return default
    names = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(n.strip() for n in names if str(n).strip())


def read_back(system: str, *, period: str | None = None, conn_id: str | None = None,
              warehouse_conn_id: str = "closeout_warehouse",
              airflow_run_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Read ``system`` (``quickbooks`` or ``xero``) back into the warehouse; returns the run's summary (run id,
    mode, requests, objects read and changed, the ingests made, the new cursors). ``period`` (``YYYY-MM``) chooses
    the reports' month; without it, the current month to date."""
    from closeout.connections import get_connection
    from closeout.warehouse.db import connect

    if system not in SYSTEMS:
        raise ValueError(f"unknown accounting system {system!r}; expected one of {', '.join(SYSTEMS)}")
    conn_id = conn_id or f"{system}_default"
    extra = get_connection(conn_id).extra
    overlap = timedelta(seconds=float(extra.get("readback_overlap_seconds", 60)))
    if system == "quickbooks":
        from closeout.accounting.api.quickbooks import QuickBooksHook

        hook: Any = QuickBooksHook(conn_id, warehouse_conn_id=warehouse_conn_id)
        company_id = hook.realm_id
    else:
        from closeout.accounting.api.xero import XeroHook

        hook = XeroHook(conn_id, warehouse_conn_id=warehouse_conn_id)
        company_id = hook.tenant_id
    with connect(warehouse_conn_id) as conn:
        lock = f"closeout.readback:{system}:{company_id}"
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock,))
        try:
            cursors = store.cursors(conn, system, company_id)
            exponents = store.exponents(conn)
            run_id = store.start_run(conn, system, company_id, "incremental" if cursors else "full", period=period,
                                     airflow_run_id=airflow_run_id)  # fmt: skip
            before = hook.requests_sent
            try:
                if system == "quickbooks":
                    from closeout.accounting.readback.quickbooks import read_quickbooks

                    read = read_quickbooks(hook, cursors, exponents, period=period, overlap=overlap,
                                           entities=_names(extra.get("readback_entities"), QUICKBOOKS_ENTITIES),
                                           home_currency=extra.get("home_currency"))  # fmt: skip
                else:
                    from closeout.accounting.readback.xero import read_xero

                    read = read_xero(hook, cursors, exponents, period=period, overlap=overlap,
                                     listings=_names(extra.get("readback_listings"), tuple(XERO_LISTINGS)),
                                     base_currency=extra.get("base_currency"))  # fmt: skip
                conn.execute("UPDATE closeout_data.accounting_readback_runs SET mode = %s WHERE run_id = %s",
                             (read.mode, run_id))  # fmt: skip
                summary = store.record(conn, run_id, read)
            except Exception as exc:
                store.fail_run(conn, run_id, mask_secrets(f"{type(exc).__name__}: {exc}"), hook.requests_sent - before)
                raise
        finally:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
            conn.commit()
    log.info("read back %s %s: %s mode, %s requests, %s objects read, %s changed", system, company_id,
             summary["mode"], summary["requests"], summary["objects_read"], summary["objects_changed"])  # fmt: skip
    return summary

