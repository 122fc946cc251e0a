"""Shared set-up for the tax and void push tests: taxed invoices drafted by closeout's own drafting from the
billing config's ``tax`` (migration 0042), published to the Stripe sandbox, followed through events and cash; the
QuickBooks and Xero sandboxes with tax codes that carry rates; readers of links, holds and the accounting_links
check."""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for folder in ("ledger", "accounting_api", "accounting_push"):
    if str(ROOT / "tests" / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / folder))

from accounting_push_support import QBO_NO_LIMITS, XERO_NO_LIMITS, connect_quickbooks, connect_xero  # noqa: E402
from billing_support import Books, Entry  # noqa: E402
from closeout.payments import tasks as payment_tasks  # noqa: E402
from closeout.warehouse.db import connect  # noqa: E402
from ledger_support import follow_cash  # noqa: E402
from payments_support import last_month  # noqa: E402

from sandbox.quickbooks import QuickBooksSandbox  # noqa: E402
from sandbox.xero import XeroSandbox  # noqa: E402

__all__ = ["connect_quickbooks", "connect_xero"]  # re-exported: this module puts the push support on the path

# the books' tax codes there, with their rates (the sandboxes compute tax from them unless told)
QBO_TAX = {"VAT20": Decimal("20"), "RR5": Decimal("5"), "NON": Decimal("0")}
XERO_TAX = {"OUTPUT2": Decimal("20"), "RROUTPUT": Decimal("5"), "NONE": Decimal("0")}
VAT20 = {"rate_percent": "20", "inclusive": False, "name": "VAT", "jurisdiction": "GB",
         "codes": {"quickbooks": "VAT20", "xero": "OUTPUT2"}}  # fmt: skip
VAT20_INCLUSIVE = {**VAT20, "inclusive": True}


def quickbooks(**kwargs: Any) -> QuickBooksSandbox:
    sandbox = QuickBooksSandbox(**{**QBO_NO_LIMITS, "tax_codes": QBO_TAX, **kwargs})
    sandbox.start()
    return sandbox


def xero(**kwargs: Any) -> XeroSandbox:
    sandbox = XeroSandbox(**{**XERO_NO_LIMITS, "tax_types": XERO_TAX, **kwargs})
    sandbox.start()
    return sandbox


def taxed_month(stripe_sandbox, clients: dict[str, tuple[list[Decimal], dict | None]], *, paid: tuple[str, ...] = (),
                rate: Decimal = Decimal("100.00")) -> dict[str, tuple[str, str, int, int]]:  # fmt: skip
    """One invoice per client drafted by closeout with the client's ``tax`` config (None: untaxed), published to
    Stripe, those in ``paid`` paid in full, cash followed and journals posted:
    client -> (invoice_id, stripe_invoice_id, total_minor, tax_minor)."""
    start = last_month()
    with connect() as conn:
        books = Books(conn)
        books.configure({"defaults": {"require_approval": False},
                         "clients": [{"client_key": f"harvest:{c}", "currency": "USD", "grouping": "entry",
                                      "name": f"Client {c.upper()}", "email": f"ap@{c}.example", "tax": tax}
                                     for c, (_, tax) in clients.items()]})  # fmt: skip
        n, entries = 1, []
        for client, (hours_list, _) in clients.items():
            for i, hours in enumerate(hours_list):
                entries.append(Entry(str(n), client=client, hours=hours, rate=rate, currency="USD",
                                     spent_date=start + timedelta(days=i % 27)))  # fmt: skip
                n += 1
        books.put(*entries)
        books.draft()
        ids = [books.invoice_for(f"harvest:{c}", start, "USD") for c in clients]
        conn.commit()
    assert all(ids), ids
    payment_tasks.publish_drafts("publish")
    follow_cash()
    with connect() as conn:
        rows = conn.execute("SELECT client_key, invoice_id, stripe_invoice_id, total_minor, tax_minor "
                            "FROM closeout.invoices WHERE invoice_id = ANY(%s)", (ids,)).fetchall()  # fmt: skip
    invoices = {c.removeprefix("harvest:"): (iid, sid, total, tax) for c, iid, sid, total, tax in rows}
    for client in paid:
        stripe_sandbox.pay_invoice(invoices[client][1])
    follow_cash()
    return invoices


def link_row(warehouse, system: str, ref: str) -> dict[str, Any] | None:
    rows = warehouse.rows("SELECT external_id, total_minor, tax_minor, remote_state, remote_version "
                          "FROM closeout.accounting_links WHERE system = %s AND object_kind = 'invoice' "
                          "AND closeout_ref = %s", (system, ref))  # fmt: skip
    if not rows:
        return None
    external_id, total, tax, state, version = rows[0]
    return {"external_id": external_id, "total_minor": total, "tax_minor": tax, "remote_state": state,
            "remote_version": version}  # fmt: skip


def open_holds(warehouse, system: str) -> dict[str, tuple[str, str]]:
    """Open exceptions: closeout_ref -> (reason, detail)."""
    return {r[0]: (r[1], r[2]) for r in warehouse.rows(
        "SELECT closeout_ref, reason, detail FROM closeout.accounting_push_exceptions WHERE system = %s AND open",
        (system,))}  # fmt: skip


def links_breaks(period: str | None = None) -> list[tuple]:
    """The accounting_links check's rows (kind, currency, item, difference, hard), as the reconciliation reads them."""
    from closeout.paths import load_sql

    with connect() as conn:
        return [tuple(r) for r in conn.execute(load_sql("recon/accounting_links.sql")).fetchall()]
