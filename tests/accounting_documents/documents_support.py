"""Shared set-up for the document and grouped-journal push tests: both sandboxes connected as a platform team
configures them (``tests/accounting_push``), a real chain to the ledger (closeout published to the Stripe sandbox,
Stripe paid, cash read back, journals posted), and readers of what each sandbox holds by closeout's kind."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
for folder in ("accounting_push", "ledger"):
    if str(ROOT / "tests" / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / folder))

from accounting_push_support import (  # noqa: E402
    QBO_NO_LIMITS,
    XERO_NO_LIMITS,
    a_month,
    connect_quickbooks,
    connect_xero,
    held,
    links,
    set_push,
)
from closeout.accounting.push.run import books_for, push  # noqa: E402
from closeout.accounting.push.tasks import sync_customers  # noqa: E402
from ledger_support import follow_cash, put_cash  # noqa: E402

from sandbox.quickbooks import QuickBooksSandbox  # noqa: E402
from sandbox.xero import XeroSandbox  # noqa: E402

__all__ = ["a_month", "books_for", "follow_cash", "held", "links", "push", "put_cash", "set_push", "sync_customers"]

ENTITIES = {
    "quickbooks": {"invoice": "Invoice", "payment": "Payment", "journal": "JournalEntry", "credit_note": "CreditMemo",
                   "deposit": "Deposit"},
    "xero": {"invoice": "Invoices", "payment": "Payments", "journal": "ManualJournals", "credit_note": "CreditNotes",
             "deposit": "BankTransfers"},
}  # fmt: skip
ID_FIELD = {"quickbooks": {k: "Id" for k in ENTITIES["quickbooks"]},
            "xero": {"invoice": "InvoiceID", "payment": "PaymentID", "journal": "ManualJournalID",
                     "credit_note": "CreditNoteID", "deposit": "BankTransferID"}}  # fmt: skip


def start(system: str, monkeypatch: pytest.MonkeyPatch, push_extra: dict | None = None, **books: Any) -> Any:
    """One sandbox without rate limits, connected as ``<system>_default``; ``sandbox.system`` names it."""
    if system == "quickbooks":
        sandbox: Any = QuickBooksSandbox(**QBO_NO_LIMITS, **books)
        sandbox.start()
        connect_quickbooks(monkeypatch, sandbox, push=push_extra, max_attempts=2)
    else:
        sandbox = XeroSandbox(**XERO_NO_LIMITS, **books)
        sandbox.start()
        connect_xero(monkeypatch, sandbox, push=push_extra, max_attempts=2)
    sandbox.system = system
    return sandbox


def run_push(system: str):
    sync_customers(system)
    return push(books_for(system))


def created(sandbox: Any) -> dict[str, int]:
    """What the sandbox's own counters say was created, by closeout's object kind."""
    counts = sandbox.create_counts()
    return {kind: counts.get(entity, 0) for kind, entity in ENTITIES[sandbox.system].items()}


def there(sandbox: Any, kind: str) -> dict[str, dict[str, Any]]:
    """The sandbox's objects of one closeout kind, by their id there."""
    field = ID_FIELD[sandbox.system][kind]
    return {str(o[field]): o for o in sandbox.objects(ENTITIES[sandbox.system][kind])}


def journal_total(system: str, obj: dict[str, Any]) -> Decimal:
    """A journal's debits there (QuickBooks Debit lines; Xero positive line amounts)."""
    if system == "quickbooks":
        return sum((Decimal(str(line["Amount"])) for line in obj["Line"]
                    if line["JournalEntryLineDetail"]["PostingType"] == "Debit"), Decimal(0))  # fmt: skip
    return sum((Decimal(str(line["LineAmount"])) for line in obj["JournalLines"]
                if Decimal(str(line["LineAmount"])) > 0), Decimal(0))  # fmt: skip


def members(warehouse, system: str) -> dict[str, dict[str, int]]:
    """Pushed group ref -> {ledger journal id: its amount} (closeout.accounting_push_members)."""
    out: dict[str, dict[str, int]] = {}
    for ref, journal_id, amount in warehouse.rows(
        "SELECT closeout_ref, journal_id, amount_minor FROM closeout.accounting_push_members WHERE system = %s",
        (system,),
    ):
        out.setdefault(ref, {})[journal_id] = int(amount)
    return out


def fee_journals(warehouse) -> dict[str, tuple[str, str, int]]:
    """Every ledger fee journal: journal id -> (its UTC day, currency, debits)."""
    return {r[0]: (r[1].isoformat(), r[2], int(r[3])) for r in warehouse.rows(
        """SELECT journal_id, (min(occurred_at) AT TIME ZONE 'UTC')::date, min(currency), sum(debit_minor)
           FROM closeout.ledger_lines WHERE kind = 'fee' GROUP BY journal_id""")}  # fmt: skip


def write_path(sandbox: Any, kind: str) -> str:
    """Where the push's writes of one kind go: QuickBooks' batch endpoint, Xero's listing of the kind."""
    if isinstance(sandbox, QuickBooksSandbox):
        return f"/v3/company/{sandbox.realm_id}/batch"
    return f"/api.xro/2.0/{ENTITIES['xero'][kind]}"
