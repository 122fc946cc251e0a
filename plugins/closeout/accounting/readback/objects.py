"""What an accounting system's object says, in closeout's terms: one ``RemoteObject`` per QuickBooks entity or Xero
document, with its kind, the reference closeout gave it, its total in minor units, currency, date, status and version.

Pure functions over the JSON the APIs answer, so every shape is testable without a server. Money stays exact:
amounts arrive as ``Decimal`` (the hooks parse JSON numbers that way) and become integer minor units with the
currency's exponent from ``closeout_data.currencies``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# QuickBooks entity -> closeout object kind (accounting_links.object_kind)
QUICKBOOKS_KINDS = {"Customer": "customer", "Invoice": "invoice", "CreditMemo": "credit_note", "Payment": "payment",
                    "Deposit": "deposit", "Bill": "bill", "JournalEntry": "journal"}  # fmt: skip
QUICKBOOKS_ENTITIES = ("Customer", "Invoice", "CreditMemo", "Payment", "Deposit", "JournalEntry")
# Xero listing -> (id field, closeout object kind); Invoices of Type ACCPAY are bills
XERO_LISTINGS = {"Contacts": ("ContactID", "customer"), "Invoices": ("InvoiceID", "invoice"),
                 "CreditNotes": ("CreditNoteID", "credit_note"), "Payments": ("PaymentID", "payment"),
                 "ManualJournals": ("ManualJournalID", "journal"),
                 "BankTransactions": ("BankTransactionID", "deposit"),
                 "BankTransfers": ("BankTransferID", "deposit")}  # fmt: skip
XERO_GONE = ("DELETED", "VOIDED")
_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


@dataclass(frozen=True)
class RemoteObject:
    entity: str
    external_id: str
    object_kind: str | None
    reference: str | None
    txn_date: date | None
    currency: str | None
    total_minor: int | None
    status: str | None
    deleted: bool
    remote_version: str | None
    remote_updated_at: datetime | None
    raw: dict[str, Any]
    # the system's own tax total of a sales document (QuickBooks TxnTaxDetail.TotalTax, Xero TotalTax), minor units
    tax_minor: int | None = None

    def row(self) -> tuple:
        """The COPY row of ``include/sql/accounting_readback/merge_objects.sql``'s staging table."""
        return (self.entity, self.external_id, self.object_kind, self.reference, self.txn_date, self.currency,
                self.total_minor, self.status, self.deleted, self.remote_version, self.remote_updated_at,
                json.dumps(self.raw, default=str), self.tax_minor)  # fmt: skip


def to_minor(amount: Any, currency: str | None, exponents: Mapping[str, int]) -> int | None:
    """An API amount as integer minor units (half up, should a system ever send more decimals than the currency has)."""
    if amount is None or amount == "":
        return None
    exponent = exponents.get((currency or "").upper(), 2)
    return int((Decimal(str(amount)) * (Decimal(10) ** exponent)).to_integral_value(ROUND_HALF_UP))


def parse_timestamp(value: Any) -> datetime | None:
    """QuickBooks ``2026-12-06T12:00:00-08:00`` or Xero ``/Date(1733486400000+0000)/`` as an aware datetime."""
    if not value:
        return None
    text = str(value)
    found = _MS_DATE.match(text)
    if found:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_day(value: Any) -> date | None:
    if not value:
        return None
    text = str(value)
    if text.startswith("/Date("):
        stamp = parse_timestamp(text)
        return stamp.date() if stamp else None
    return date.fromisoformat(text[:10])


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def quickbooks_object(entity: str, obj: dict[str, Any], home: str, exponents: Mapping[str, int]) -> RemoteObject:
    """One object of a QuickBooks query or CDC answer (a CDC deletion is ``{"status": "Deleted", "Id", ...}``)."""
    meta = obj.get("MetaData") or {}
    kind = QUICKBOOKS_KINDS.get(entity)
    if str(obj.get("status", "")).lower() == "deleted":
        return RemoteObject(entity, str(obj["Id"]), kind, None, None, None, None, "Deleted", True, "deleted",
                            parse_timestamp(meta.get("LastUpdatedTime")), obj)  # fmt: skip
    currency = str((obj.get("CurrencyRef") or {}).get("value") or home).upper()
    if entity == "Customer":
        reference, total, status = None, None, "active" if obj.get("Active", True) else "inactive"
    else:
        reference = _text(obj.get("DocNumber")) or _text(obj.get("PaymentRefNum")) or _text(obj.get("PrivateNote"))
        amount = obj.get("TotalAmt")
        if entity == "JournalEntry":
            amount = sum((Decimal(str(line.get("Amount") or 0)) for line in obj.get("Line") or []
                          if str((line.get("JournalEntryLineDetail") or {}).get("PostingType")).lower() == "debit"),
                         Decimal(0))  # fmt: skip
        total, status = to_minor(amount, currency, exponents), _text(obj.get("status"))
        if str(obj.get("PrivateNote") or "").startswith("Voided"):  # QuickBooks keeps a voided one, zeroed
            status = "Voided"
    tax = (obj.get("TxnTaxDetail") or {}).get("TotalTax") if entity in ("Invoice", "CreditMemo") else None
    return RemoteObject(entity, str(obj["Id"]), kind, reference, parse_day(obj.get("TxnDate")), currency, total,
                        status, False, _text(obj.get("SyncToken")), parse_timestamp(meta.get("LastUpdatedTime")),
                        obj, to_minor(tax, currency, exponents) if tax is not None else None)  # fmt: skip


def xero_object(listing: str, obj: dict[str, Any], exponents: Mapping[str, int]) -> RemoteObject:
    """One document of a Xero listing; voided and deleted documents count as gone (Xero keeps them, marked)."""
    id_field, kind = XERO_LISTINGS[listing]
    status = _text(obj.get("Status") or obj.get("ContactStatus"))
    currency = _text(obj.get("CurrencyCode") or (obj.get("Invoice") or {}).get("CurrencyCode"))
    currency = currency.upper() if currency else None
    reference: str | None
    amount: Any
    if listing == "Contacts":
        reference, amount = _text(obj.get("ContactNumber")), None
    elif listing == "Invoices":
        kind = "bill" if obj.get("Type") == "ACCPAY" else "invoice"
        reference, amount = _text(obj.get("InvoiceNumber")) or _text(obj.get("Reference")), obj.get("Total")
    elif listing == "CreditNotes":
        reference, amount = _text(obj.get("CreditNoteNumber")) or _text(obj.get("Reference")), obj.get("Total")
    elif listing == "Payments":
        reference, amount = _text(obj.get("Reference")), obj.get("Amount")
    elif listing == "ManualJournals":
        reference = _text(obj.get("Narration"))
        amount = sum((Decimal(str(line.get("LineAmount") or 0)) for line in obj.get("JournalLines") or []
                      if Decimal(str(line.get("LineAmount") or 0)) > 0), Decimal(0))  # fmt: skip
    else:  # bank transactions (Total), bank transfers (Amount)
        reference, amount = _text(obj.get("Reference")), obj.get("Total", obj.get("Amount"))
    tax = obj.get("TotalTax") if listing in ("Invoices", "CreditNotes") else None
    return RemoteObject(listing, str(obj[id_field]), kind, reference, parse_day(obj.get("Date")), currency,
                        to_minor(amount, currency, exponents), status, (status or "").upper() in XERO_GONE,
                        _text(obj.get("UpdatedDateUTC")), parse_timestamp(obj.get("UpdatedDateUTC")), obj,
                        to_minor(tax, currency, exponents) if tax is not None else None)  # fmt: skip
