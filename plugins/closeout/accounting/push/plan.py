"""What is booked and not yet in one accounting system, read set-based (one statement per object kind).

Kinds go in this order because each refers to the one before: invoices (to their customer), payments (to their
invoice), credit notes (allocated to their invoice, after its payment so the allocation takes what is still due),
Stripe payouts to the bank as deposits, then the remaining journals. The invoice and payment journals of the ledger
are not pushed as journals: the documents book the same receivable, revenue and cash there (``DOCUMENT_KINDS``, as
the CSV export leaves the invoice journals to its invoice files); nor are the credit note and payout journals a
credit note or deposit document books (``closeout_data.accounting_document_journals``, migration 0044). Stripe fees
go as one journal per day and currency with the ledger journals it carries (``plan_journals.sql``, ``members``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from psycopg.rows import dict_row

from closeout.paths import load_sql

KINDS = ("invoice", "payment", "credit_note", "credit_application", "deposit", "journal")
# kinds linked and batched as another object kind: a credit memo's application is a QuickBooks payment of 0
OBJECT_KINDS = {"credit_application": "payment"}
# ledger journal kinds the pushed documents already book (invoice finalisation and its void reversal, payments)
DOCUMENT_KINDS = ("invoice", "void", "payment")


@dataclass(frozen=True)
class Record:
    """One object to push: what it is in closeout, its money, and the row the shapers read."""

    kind: str
    ref: str
    currency: str
    total_minor: int
    txn_date: date
    exponent: int
    attempts: int
    client_key: str | None
    ledger_rate: Decimal | None
    row: dict[str, Any] = field(repr=False, hash=False, compare=False)

    def major(self, minor: int) -> Decimal:
        """Minor units as the decimal amount the APIs take (exact: a Decimal scaled by the currency's exponent)."""
        return Decimal(int(minor)).scaleb(-self.exponent)


def read(conn: Any, kind: str, system: str, company_id: str, home_currency: str) -> list[Record]:
    params = {"system": system, "company_id": company_id, "home": home_currency,
              "document_kinds": list(DOCUMENT_KINDS)}  # fmt: skip
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(load_sql(f"accounting_push/plan_{kind}s.sql"), params).fetchall()
    return [
        Record(kind=kind, ref=str(r["ref"]), currency=str(r["currency"]), total_minor=int(r["total_minor"] or 0),
               txn_date=r["txn_date"], exponent=int(r["exponent"]), attempts=int(r["attempts"]),
               client_key=r.get("client_key"),
               ledger_rate=Decimal(str(r["ledger_rate"])) if r.get("ledger_rate") is not None else None, row=r)
        for r in rows
    ]  # fmt: skip


def object_kind(kind: str) -> str:
    """The accounting_links / batch object kind a planned kind is recorded as."""
    return OBJECT_KINDS.get(kind, kind)
