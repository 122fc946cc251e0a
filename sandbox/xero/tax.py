"""Xero sandbox: tax rates, the tax Xero computes on a document, and voiding an invoice.

Tax (``/work/shared/reference/accounting-apis.md``; Xero's TaxRates and Invoices docs):

* The organisation's tax rates are configured through the sandbox's ``tax_types``: a tuple of ``TaxType`` codes
  (each at 0%, as before) or a mapping ``{TaxType: rate percent}``. ``GET /TaxRates`` lists them as Xero does
  (``Name``, ``TaxType``, ``EffectiveRate``, ``DisplayTaxRate``, ``Status``, ``TaxComponents``).
* Xero computes a document's tax itself, line by line: each line's ``LineAmount`` (given, else ``Quantity`` x
  ``UnitAmount`` rounded to the cent) carries a ``TaxAmount`` rounded half up to the cent, by ``LineAmountTypes``:
  ``Exclusive`` (the default: tax on top of the line), ``Inclusive`` (the line includes its tax: rate / (100 + rate)
  of it) or ``NoTax``. The document answers ``SubTotal`` (lines net of tax), ``TotalTax`` and ``Total``.

Void (``POST /Invoices`` with ``{"InvoiceID", "Status": "VOIDED"}``): an approved invoice becomes VOIDED (kept, its
amounts as they were, AmountDue 0, UpdatedDateUTC moved on, so modified-since listings show it); an invoice with a
payment or credit note allocated to it is refused as Xero refuses it; a draft is deleted, never voided.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["CENT", "price", "rates_of", "tax_rates", "void_invoice"]

CENT = Decimal("0.01")


def rates_of(tax_types: Any) -> dict[str, Decimal]:
    """TaxType -> rate percent from the sandbox's ``tax_types`` (a tuple: 0% each; a mapping: its rates)."""
    if tax_types is None:
        return {}
    if isinstance(tax_types, Mapping):
        return {str(k): Decimal(str(v)) for k, v in tax_types.items()}
    return {str(code): Decimal(0) for code in tax_types}


def tax_rates(sandbox: Any) -> dict[str, Any]:
    """``GET /TaxRates``: the organisation's rates in Xero's shape."""
    rows = []
    for code, rate in sorted(getattr(sandbox, "tax_rates", {}).items()):
        rows.append({"Name": f"{code} {rate.normalize()}%", "TaxType": code, "Status": "ACTIVE",
                     "ReportTaxType": "OUTPUT", "CanApplyToRevenue": True, "EffectiveRate": rate,
                     "DisplayTaxRate": rate, "TaxComponents": [{"Name": code, "Rate": rate, "IsCompound": False}]})
    return {"TaxRates": rows}  # fmt: skip


def _amount(value: Any) -> Decimal:
    return Decimal(str(value if value is not None else 0))


def price(sandbox: Any, obj: dict[str, Any], paid: Decimal, due_field: str = "AmountDue") -> None:
    """SubTotal, TotalTax, Total and AmountDue / RemainingCredit of an invoice or credit note, as Xero computes them."""
    rates: dict[str, Decimal] = getattr(sandbox, "tax_rates", {})
    mode = str(obj.get("LineAmountTypes") or "Exclusive")
    if mode not in ("Exclusive", "Inclusive", "NoTax"):
        from sandbox.xero.server import _validation

        raise _validation(f"LineAmountTypes {mode} is not one of Exclusive, Inclusive, NoTax.")
    obj["LineAmountTypes"] = mode
    subtotal, total_tax, gross = Decimal(0), Decimal(0), Decimal(0)
    for line in obj.get("LineItems") or []:
        if line.get("LineAmount") is not None:
            amount = _amount(line["LineAmount"]).quantize(CENT, ROUND_HALF_UP)
        else:
            amount = (_amount(line.get("Quantity", 1)) * _amount(line.get("UnitAmount"))).quantize(CENT, ROUND_HALF_UP)
        rate = rates.get(str(line.get("TaxType") or ""), Decimal(0)) if mode != "NoTax" else Decimal(0)
        if mode == "Inclusive":
            tax = (amount * rate / (100 + rate)).quantize(CENT, ROUND_HALF_UP)
            net = amount - tax
        else:
            tax = (amount * rate / 100).quantize(CENT, ROUND_HALF_UP)
            net = amount
        line["LineAmount"], line["TaxAmount"] = amount, tax
        subtotal += net
        total_tax += tax
        gross += net + tax
    obj["SubTotal"], obj["TotalTax"], obj["Total"] = subtotal, total_tax, gross
    obj[due_field] = gross - paid


def void_invoice(sandbox: Any, tenant: Any, existing: dict[str, Any]) -> dict[str, Any]:
    """``Status: VOIDED`` on an approved invoice; refused with a payment or credit note allocated; drafts cannot be."""
    from sandbox.xero.server import _validation

    if _amount(existing.get("AmountPaid")) or _amount(existing.get("AmountCredited")):
        raise _validation("This document cannot be edited as it has a payment or credit note allocated to it. "
                          "Remove the payment (or allocation) before voiding the invoice.")  # fmt: skip
    if existing.get("Status") not in ("AUTHORISED", "SUBMITTED", "VOIDED"):
        raise _validation(f"Invoice not of valid status for modification: a {existing.get('Status')} invoice is "
                          "deleted (Status DELETED), not voided.")  # fmt: skip
    if existing.get("Status") != "VOIDED":
        existing["Status"] = "VOIDED"
        existing["AmountDue"] = Decimal(0)
        existing["UpdatedDateUTC"] = f"/Date({int(sandbox.now() * 1000)}+0000)/"
    import copy

    return {**copy.deepcopy(existing), "_created": False}
