"""QuickBooks sandbox: sales tax codes with rates, an invoice's tax, and ``operation=void``.

Tax (what a UK/CA/AU company does, ``/work/shared/reference/accounting-apis.md``):

* The company's tax codes are configured through the sandbox's ``tax_codes``: a tuple of codes (each one taxes at 0%,
  as before) or a mapping ``{code: rate percent}`` (a ``TaxCode`` whose ``SalesTaxRateList`` names one ``TaxRate``
  of that ``RateValue``). ``tax_code_objects`` gives them in Intuit's ``TaxCode`` / ``TaxRate`` shapes.
* An invoice's tax: when the request carries ``TxnTaxDetail.TotalTax`` it stands (QuickBooks does not recalculate a
  given total); otherwise it is computed line by line from each line's ``TaxCodeRef`` rate, each line's tax rounded
  half up to the cent, and written back as ``TxnTaxDetail.TotalTax`` with one ``TaxLine`` per rate.
  ``GlobalTaxCalculation``: ``TaxExcluded`` (default) taxes ``Line.Amount``; ``TaxInclusive`` reads the line's gross
  from ``SalesItemLineDetail.TaxInclusiveAmt`` (``Line.Amount`` is then the net) and takes the tax out of it;
  ``NotApplicable`` taxes nothing. ``TotalAmt`` is always the lines' net plus the tax.

Void (``POST /v3/company/{realm}/invoice?operation=void`` with ``{"Id", "SyncToken"}``): the invoice stays, with
every amount zeroed, ``Voided`` prepended to its ``PrivateNote``, a new SyncToken and LastUpdatedTime (so CDC reports
it as changed). A stale SyncToken is refused with 5010 (Stale Object Error); an invoice a payment is applied to is
refused with 6000 (QuickBooks will not void an invoice a Payment settles: the payment must be removed first).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["CENT", "compute_tax", "rates_of", "tax_code_objects", "void_invoice"]

CENT = Decimal("0.01")


def rates_of(tax_codes: Any) -> dict[str, Decimal]:
    """code -> rate percent from the sandbox's ``tax_codes`` (a tuple of codes: 0% each; a mapping: its rates)."""
    if tax_codes is None:
        return {}
    if isinstance(tax_codes, Mapping):
        return {str(k): Decimal(str(v)) for k, v in tax_codes.items()}
    return {str(code): Decimal(0) for code in tax_codes}


def tax_code_objects(sandbox: Any) -> list[dict[str, Any]]:
    """The company's tax codes as Intuit shapes them: ``TaxCode`` with its ``SalesTaxRateList`` and the ``TaxRate``."""
    out = []
    for n, (code, rate) in enumerate(sorted(getattr(sandbox, "tax_rates", {}).items()), start=1):
        out.append({"Id": str(n), "Name": code, "Active": True, "Taxable": rate > 0,
                    "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": str(n), "name": code},
                                                            "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}]},
                    "TaxRate": {"Id": str(n), "Name": code, "RateValue": rate, "Active": True}})  # fmt: skip
    return out


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0))


def compute_tax(sandbox: Any, obj: dict[str, Any]) -> Decimal:
    """The invoice's tax: the given ``TxnTaxDetail.TotalTax`` when the client sent one, else computed per line from
    the codes' rates (half up to the cent per line), written back on ``TxnTaxDetail``."""
    rates: dict[str, Decimal] = getattr(sandbox, "tax_rates", {})
    detail = obj.get("TxnTaxDetail") or {}
    computed = obj.get("_tax_computed")
    if detail.get("TotalTax") is not None and (computed is None or _money(detail["TotalTax"]) != _money(computed)):
        return _money(detail["TotalTax"])  # given by the client (or an accountant): it stands
    mode = str(obj.get("GlobalTaxCalculation") or "TaxExcluded")
    total = Decimal(0)
    by_code: dict[str, tuple[Decimal, Decimal]] = {}
    for line in obj.get("Line") or []:
        if line.get("DetailType") != "SalesItemLineDetail" or mode == "NotApplicable":
            continue
        item = line.get("SalesItemLineDetail") or {}
        code = str((item.get("TaxCodeRef") or {}).get("value") or "")
        rate = rates.get(code)
        if not rate:
            continue
        if mode == "TaxInclusive":
            gross = _money(item.get("TaxInclusiveAmt", line.get("Amount")))
            tax = (gross * rate / (100 + rate)).quantize(CENT, ROUND_HALF_UP)
            net = gross - tax
        else:
            net = _money(line.get("Amount"))
            tax = (net * rate / 100).quantize(CENT, ROUND_HALF_UP)
        base, sofar = by_code.get(code, (Decimal(0), Decimal(0)))
        by_code[code] = (base + net, sofar + tax)
        total += tax
    if not by_code and detail.get("TotalTax") is None:
        return Decimal(0)
    obj["TxnTaxDetail"] = {"TotalTax": total, "TaxLine": [
        {"Amount": tax, "DetailType": "TaxLineDetail",
         "TaxLineDetail": {"TaxRateRef": {"value": code}, "PercentBased": True, "TaxPercent": rates[code],
                           "NetAmountTaxable": base}}
        for code, (base, tax) in sorted(by_code.items())]}  # fmt: skip
    obj["_tax_computed"] = total
    return total


def void_invoice(sandbox: Any, company: Any, data: dict[str, Any]) -> dict[str, Any]:
    """``invoice?operation=void``: zero the invoice, keep it, mark it Voided; stale tokens and paid invoices refused."""
    from sandbox.quickbooks.server import Fault

    with sandbox._lock:
        current = company.objects["Invoice"].get(str(data.get("Id", "")))
        if current is None:
            raise Fault(400, "610", "Object Not Found", f"Invoice {data.get('Id')} does not exist")
        if str(data.get("SyncToken")) != current["SyncToken"]:
            raise Fault(400, "5010", "Stale Object Error",
                        f"You and another user were working on this at the same time. SyncToken "
                        f"{data.get('SyncToken')} is stale; the current one is {current['SyncToken']}.",
                        element="SyncToken")  # fmt: skip
        if _money(current.get("_paid")) != 0:
            raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                        f"Business Validation Error: Invoice {current['Id']} has a payment applied to it; remove "
                        "the payment (or unlink it) before voiding the invoice.", element="LinkedTxn")  # fmt: skip
        for line in current.get("Line") or []:
            line["Amount"] = Decimal(0)
            item = line.get("SalesItemLineDetail")
            if isinstance(item, dict):
                item["Qty"] = Decimal(0)
                if "TaxInclusiveAmt" in item:
                    item["TaxInclusiveAmt"] = Decimal(0)
        current["TxnTaxDetail"] = {"TotalTax": Decimal(0)}
        current.pop("_tax_computed", None)
        current["TotalAmt"] = Decimal(0)
        current["Balance"] = Decimal(0)
        note = str(current.get("PrivateNote") or "")
        current["PrivateNote"] = f"Voided - {note}" if note else "Voided"
        current["SyncToken"] = str(int(current["SyncToken"]) + 1)
        current["MetaData"] = {**current.get("MetaData", {}), "LastUpdatedTime": sandbox._stamp()}
        return dict(current)


def is_voided(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("PrivateNote") or "").startswith("Voided")
