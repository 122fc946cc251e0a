"""Shared set-up for the read-back tests: the ledger tests' books (three invoices published to the Stripe sandbox,
two paid, every journal posted), the QuickBooks and Xero sandboxes wired to their connections, what closeout pushed
(customers through closeout.accounting.links, invoices and journals through the hooks, each recorded in
closeout.accounting_links as the push records it) and the reconciliation over it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from closeout.masking import forget_known_secrets
from closeout.recon import run_reconciliation
from closeout.warehouse.db import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
import ledger_support

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.xero import XeroSandbox

books = ledger_support.books
QB_UNLIMITED = {"requests_per_minute": None, "batch_per_minute": None, "max_concurrent": None}
XERO_UNLIMITED = {"per_minute": None, "per_day": None, "max_concurrent": None, "app_per_minute": None}


@pytest.fixture
def quickbooks(warehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[QuickBooksSandbox]:
    sandbox = QuickBooksSandbox(**QB_UNLIMITED)
    sandbox.start()
    monkeypatch.setenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "login": sandbox.client_id, "password": sandbox.client_secret,
        "extra": {"realm_id": sandbox.realm_id, "refresh_token": sandbox.first_refresh_token,
                  "token_url": sandbox.token_url, "minorversion": 75}}))  # fmt: skip
    forget_known_secrets()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def xero(warehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[XeroSandbox]:
    sandbox = XeroSandbox(**XERO_UNLIMITED)
    sandbox.start()
    monkeypatch.setenv("AIRFLOW_CONN_XERO_DEFAULT", json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "login": sandbox.client_id, "password": sandbox.client_secret,
        "extra": {"tenant_id": sandbox.tenant_id, "refresh_token": sandbox.first_refresh_token,
                  "token_url": sandbox.token_url}}))  # fmt: skip
    forget_known_secrets()
    yield sandbox
    sandbox.stop()


def published(warehouse) -> list[tuple[str, str, str, int, str]]:
    """(invoice_id, client_key, stripe number, total_minor, currency) of every published invoice."""
    return warehouse.rows("""SELECT invoice_id, client_key, stripe_number, total_minor, upper(currency)
                             FROM closeout.invoices WHERE stripe_number IS NOT NULL
                               AND status IN ('open', 'paid', 'uncollectible') ORDER BY stripe_number""")


def customer_ids(warehouse, system: str) -> dict[str, str]:
    return dict(warehouse.rows("SELECT closeout_ref, external_id FROM closeout.accounting_links "
                               "WHERE system = %s AND object_kind = 'customer'", (system,)))  # fmt: skip


def record_link(system: str, company_id: str, kind: str, closeout_ref: str, external_id: str, total_minor: int,
                currency: str) -> None:  # fmt: skip
    """What the push records once an object is created there (closeout.accounting_links, invariant 9's side)."""
    with connect() as conn:
        conn.execute(
            """INSERT INTO closeout_data.accounting_links (system, company_id, object_kind, closeout_ref, external_id,
                                                           matched_by, total_minor, currency, synced_at)
               VALUES (%s, %s, %s, %s, %s, 'created', %s, %s, now())""",
            (system, company_id, kind, closeout_ref, external_id, total_minor, currency),
        )
        conn.commit()


def ledger_lines(warehouse, *, except_kind: str) -> dict[str, list[tuple]]:
    """journal id -> [(account code, account name, debit, credit, posted date)] of every journal but one kind."""
    out: dict[str, list[tuple]] = {}
    for jid, code, name, debit, credit, posted in warehouse.rows(
        """SELECT journal_id, account, account_name, debit_minor, credit_minor, (posted_at AT TIME ZONE 'UTC')::date
           FROM closeout.ledger_lines WHERE kind <> %s ORDER BY journal_id, line_no""", (except_kind,)):  # fmt: skip
        out.setdefault(jid, []).append((code, name, debit, credit, posted))
    return out


def invoice_day(warehouse, invoice_id: str) -> date:
    """The day closeout booked the invoice (its invoicing journal), which the accounting system dates it on."""
    return warehouse.scalar("""SELECT (min(posted_at) AT TIME ZONE 'UTC')::date FROM closeout.ledger_journals
                               WHERE kind = 'invoice' AND invoice_id = %s""", (invoice_id,))  # fmt: skip


def money(minor: int) -> Decimal:
    return (Decimal(minor) / 100).quantize(Decimal("0.01"))


def reconcile(tmp_path: Path, **kwargs: Any):
    with connect() as conn:
        return run_reconciliation(conn, data_docs_dir=tmp_path / "docs", **kwargs)


def statuses(result) -> dict[str, str]:
    return {c.check_name: c.status for c in result.checks}
