"""Shared set-up for the push tests: a real chain (drafts published by closeout to the Stripe sandbox, paid, Stripe's
events and cash read back, journals posted), the QuickBooks and Xero sandboxes wired to ``quickbooks_default`` /
``xero_default`` as a platform team configures them, and readers of what each sandbox holds."""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from closeout.masking import forget_known_secrets

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.xero import XeroSandbox

ROOT = Path(__file__).resolve().parents[2]
for folder in ("ledger", "accounting_api"):
    if str(ROOT / "tests" / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / folder))

from ledger_support import follow_cash, publish  # noqa: E402

QBO_NO_LIMITS = {"requests_per_minute": None, "batch_per_minute": None, "max_concurrent": None}
XERO_NO_LIMITS = {"per_minute": None, "per_day": None, "max_concurrent": None, "app_per_minute": None}
# what each system's push creates, by closeout's object kind
QBO_ENTITIES = {"invoice": "Invoice", "payment": "Payment", "journal": "JournalEntry"}
XERO_ENTITIES = {"invoice": "Invoices", "payment": "Payments", "journal": "ManualJournals"}


def connect_quickbooks(monkeypatch: pytest.MonkeyPatch, sandbox: QuickBooksSandbox, *, push: dict | None = None,
                       **extra: Any) -> None:  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "login": sandbox.client_id, "password": sandbox.client_secret,
        "extra": {"realm_id": sandbox.realm_id, "refresh_token": sandbox.first_refresh_token,
                  "token_url": sandbox.token_url, "minorversion": 75, "push": push or {}, **extra}}))  # fmt: skip
    forget_known_secrets()


def connect_xero(monkeypatch: pytest.MonkeyPatch, sandbox: XeroSandbox, *, push: dict | None = None,
                 **extra: Any) -> None:  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_XERO_DEFAULT", json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "login": sandbox.client_id, "password": sandbox.client_secret,
        "extra": {"tenant_id": sandbox.tenant_id, "refresh_token": sandbox.first_refresh_token,
                  "token_url": sandbox.token_url, "push": push or {}, **extra}}))  # fmt: skip
    forget_known_secrets()


def set_push(monkeypatch: pytest.MonkeyPatch, system: str, **push: Any) -> None:
    """Change the connection's ``push`` extra (finance fixed a mapping, the key lifetime ...)."""
    name = f"AIRFLOW_CONN_{system.upper()}_DEFAULT"
    conn = json.loads(os.environ[name])
    conn["extra"]["push"] = {**conn["extra"].get("push", {}), **push}
    monkeypatch.setenv(name, json.dumps(conn))
    forget_known_secrets()


def a_month(warehouse, stripe_sandbox, clients: dict[str, list[Decimal]], *, paid: tuple[str, ...] = (),
            **publish_kwargs: Any) -> dict[str, tuple[str, str, int]]:  # fmt: skip
    """Publish one invoice per client through closeout, pay those in ``paid`` in full through Stripe, and let
    closeout read Stripe back and post every journal: client -> (invoice_id, stripe_invoice_id, total_minor)."""
    invoices = publish(warehouse, clients, **publish_kwargs)
    follow_cash()
    for client in paid:
        stripe_sandbox.pay_invoice(invoices[client][1])
    follow_cash()
    return invoices


def created(sandbox: Any) -> dict[str, int]:
    """What the sandbox's own counters say was created, by closeout's object kind."""
    counts = sandbox.create_counts()
    entities = QBO_ENTITIES if isinstance(sandbox, QuickBooksSandbox) else XERO_ENTITIES
    return {kind: counts.get(entity, 0) for kind, entity in entities.items()}


def objects(sandbox: Any, kind: str) -> list[dict[str, Any]]:
    entities = QBO_ENTITIES if isinstance(sandbox, QuickBooksSandbox) else XERO_ENTITIES
    return sandbox.objects(entities[kind])


def links(warehouse, system: str, kind: str) -> dict[str, tuple]:
    """closeout_ref -> (external_id, total_minor, currency, matched_by) of one system and kind."""
    rows = warehouse.rows("SELECT closeout_ref, external_id, total_minor, currency, matched_by "
                          "FROM closeout.accounting_links WHERE system = %s AND object_kind = %s",
                          (system, kind))  # fmt: skip
    return {r[0]: tuple(r[1:]) for r in rows}


def held(warehouse, system: str) -> dict[str, tuple]:
    """Open exceptions: closeout_ref -> (object_kind, reason, detail)."""
    rows = warehouse.rows("SELECT closeout_ref, object_kind, reason, detail FROM closeout.accounting_push_exceptions "
                          "WHERE system = %s AND open", (system,))  # fmt: skip
    return {r[0]: tuple(r[1:]) for r in rows}


def expected_journals(warehouse) -> int:
    """Journal parts the push owes: every ledger journal (one per currency it spans) beside the documents' kinds and
    the journals a credit note or deposit document books, Stripe fees counted once per day and currency (they go
    as one journal per day and currency, push/plan_journals.sql)."""
    return int(warehouse.scalar(
        "SELECT count(DISTINCT CASE WHEN l.kind = 'fee' THEN 'fees:' || (l.occurred_at AT TIME ZONE 'UTC')::date "
        "ELSE l.journal_id END || ':' || l.currency) FROM closeout.ledger_lines l "
        "WHERE l.kind NOT IN ('invoice', 'void', 'payment') AND NOT EXISTS (SELECT 1 FROM "
        "closeout_data.accounting_document_journals d WHERE d.journal_id = l.journal_id)"))  # fmt: skip
