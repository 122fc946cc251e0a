"""Xero sandbox: Reports/TrialBalance computed from posted documents, and If-Modified-Since listings.

* ``GET /api.xro/2.0/Reports/TrialBalance?date=YYYY-MM-DD``: Xero's report shape, ``{"Reports": [{"ReportID",
  "ReportName", "ReportType", "ReportTitles", "ReportDate", "UpdatedDateUTC", "Rows": [...]}]}`` with a ``Header``
  row (Account, Debit, Credit, YTD Debit, YTD Credit), a ``Section`` of ``Row`` rows (the account cell is
  ``"<Name> (<Code>)"`` with an ``account`` attribute) and a ``SummaryRow``. Debit/Credit: the account's net movement
  in the month of ``date`` up to it; YTD Debit/Credit: its balance from everything dated on or before ``date``.
  Amounts in the organisation's base currency (a foreign document's amounts divided by its ``CurrencyRate``).
* ``GET /api.xro/2.0/<Kind>`` with ``If-Modified-Since`` (ISO 8601 UTC or an HTTP date): only the documents whose
  ``UpdatedDateUTC`` is at or after it, oldest first, voided and deleted ones included; ``page`` (100 a page, or
  ``pageSize`` up to 1000) and ``where`` (``Field=="value"``) as on every listing.

What posts, debit positive (receivables and payables on the organisation's control accounts: 610 and 800, or the
sandbox's ``receivable_account_code`` / ``payable_account_code`` when a harness sets them): sales invoices
(``ACCREC``) and bills (``ACCPAY``) once AUTHORISED or PAID (drafts, voided and deleted ones do not); credit notes
the same, reversed; payments (``AUTHORISED``) between the bank account and receivables (payables for a bill); manual
journals (``POSTED``) line by line; bank transactions and transfers.

Harness helpers (in process, what an accountant does in Xero): ``accountant_edits`` saves changes to a document (its
total is recomputed, its UpdatedDateUTC moves on); ``accountant_deletes`` voids an approved invoice or credit note,
deletes a draft, a payment or a journal, archives a contact.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["accountant_deletes", "accountant_edits", "postings", "route", "updated_at"]

CENT = Decimal("0.01")
MAX_PAGE_SIZE = 1000
AR, AP, SALES, BANK, TAX = "610", "800", "200", "090", "820"
DEFAULT_ACCOUNTS = {"200": "Sales", "610": "Accounts Receivable", "800": "Accounts Payable",
                    "090": "Business Bank Account", "820": "Sales Tax"}  # fmt: skip
_POSTED = ("AUTHORISED", "PAID")
_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def route(sandbox: Any, tenant: Any, rest: str, params: dict[str, str], headers: Any) -> tuple[int, dict[str, Any]]:
    from sandbox.xero.server import XeroFault

    parts = rest.split("/")
    if parts[0].lower() == "reports":
        if len(parts) == 2 and parts[1].lower() == "trialbalance":
            return 200, trial_balance(sandbox, tenant, params)
        raise XeroFault(404, {"Title": "Not Found", "Status": 404, "Detail": f"no report {rest}"})
    return 200, modified_since_listing(sandbox, tenant, parts, params, headers.get("If-Modified-Since") or "")


def parse_since(value: str) -> datetime:
    """If-Modified-Since as Xero takes it: ``2026-12-01T10:00:00`` (UTC) or an HTTP date."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = parsedate_to_datetime(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def updated_at(obj: dict[str, Any]) -> datetime:
    return _ms_date(str(obj.get("UpdatedDateUTC") or "/Date(0+0000)/"))


def _ms_date(text: str) -> datetime:
    found = _MS_DATE.match(text)
    if found:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def modified_since_listing(sandbox: Any, tenant: Any, parts: list[str], params: dict[str, str],
                           since_header: str) -> dict[str, Any]:  # fmt: skip
    from sandbox.xero.server import _ENTITIES, PAGE_SIZE, XeroFault, _dumps

    entity = _ENTITIES.get(parts[0].lower())
    if entity is None or len(parts) != 1:
        raise XeroFault(404, {"Title": "Not Found", "Status": 404})
    kind = entity[0]
    try:
        since = parse_since(since_header)
    except (TypeError, ValueError) as exc:
        raise XeroFault(400, {"Title": "Bad Request", "Detail": f"If-Modified-Since {since_header!r}"}) from exc
    size = PAGE_SIZE
    if params.get("pageSize"):
        size = int(params["pageSize"])
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise XeroFault(400, {"Title": "Bad Request", "Detail": f"pageSize is 1 to {MAX_PAGE_SIZE}"})
    with sandbox._lock:
        rows = [r for r in tenant.objects[kind].values() if updated_at(r) >= since]
        for field, value in re.findall(r'(\w+)\s*==\s*"([^"]*)"', params.get("where", "")):
            rows = [r for r in rows if str(r.get(field)) == value]
        rows.sort(key=updated_at)
        page = int(params.get("page", "1") or 1)
        chosen = copy.deepcopy(rows[(page - 1) * size : page * size])
    import json

    return {kind: json.loads(_dumps(chosen))}


def _date(obj: dict[str, Any]) -> date:
    value = obj.get("Date")
    if value:
        text = str(value)
        return _ms_date(text).date() if text.startswith("/Date(") else date.fromisoformat(text[:10])
    return updated_at(obj).date()


def _amount(value: Any) -> Decimal:
    return Decimal(str(value or 0))


def postings(tenant: Any, base: str, *, receivable: str = AR, payable: str = AP) -> list[tuple[str, date, Decimal]]:
    """(account code, date, amount in the base currency ``base``, debit positive) for every posted document; the
    organisation's receivable and payable accounts are ``receivable`` and ``payable``."""
    out: list[tuple[str, date, Decimal]] = []

    def add(code: str, obj: dict[str, Any], amount: Decimal) -> None:
        rate = _amount(obj.get("CurrencyRate") or 1)
        currency = obj.get("CurrencyCode") or base
        value = amount / rate if currency != base and rate else amount
        out.append((str(code), _date(obj), value.quantize(CENT)))

    def line_amount(line: dict[str, Any]) -> Decimal:
        if line.get("LineAmount") is not None:
            return _amount(line["LineAmount"])
        return _amount(line.get("Quantity", 1)) * _amount(line.get("UnitAmount"))

    def document(obj: dict[str, Any], control: str, sign: int) -> None:
        add(control, obj, sign * _amount(obj.get("Total")))
        inclusive = obj.get("LineAmountTypes") == "Inclusive"  # the line holds its tax: revenue is net of it
        for line in obj.get("LineItems") or []:
            net = line_amount(line) - (_amount(line.get("TaxAmount")) if inclusive else 0)
            add(line.get("AccountCode") or SALES, obj, -sign * net)
        if obj.get("TotalTax"):
            add(TAX, obj, -sign * _amount(obj["TotalTax"]))

    objects = tenant.objects
    for obj in objects.get("Invoices", {}).values():
        if obj.get("Status") in _POSTED:
            bill = obj.get("Type") == "ACCPAY"
            document(obj, payable if bill else receivable, -1 if bill else 1)
    for obj in objects.get("CreditNotes", {}).values():
        if obj.get("Status") in _POSTED:
            bill = obj.get("Type") == "ACCPAYCREDIT"
            document(obj, payable if bill else receivable, 1 if bill else -1)
    for obj in objects.get("Payments", {}).values():
        if obj.get("Status", "AUTHORISED") != "AUTHORISED":
            continue
        bank = str((obj.get("Account") or {}).get("Code") or BANK)
        invoice = obj.get("Invoice") or {}
        found = objects.get("Invoices", {}).get(str(invoice.get("InvoiceID", ""))) or invoice
        bill = found.get("Type") == "ACCPAY"
        merged = {**obj, "CurrencyCode": found.get("CurrencyCode") or obj.get("CurrencyCode")}
        add(bank, merged, (-1 if bill else 1) * _amount(obj.get("Amount")))
        add(payable if bill else receivable, merged, (1 if bill else -1) * _amount(obj.get("Amount")))
    for obj in objects.get("ManualJournals", {}).values():
        if obj.get("Status", "POSTED") == "POSTED":
            for line in obj.get("JournalLines") or []:
                add(line.get("AccountCode") or SALES, obj, _amount(line.get("LineAmount")))
    for obj in objects.get("BankTransactions", {}).values():
        if obj.get("Status", "AUTHORISED") == "AUTHORISED":
            sign = 1 if str(obj.get("Type", "RECEIVE")).startswith("RECEIVE") else -1
            add(str((obj.get("BankAccount") or {}).get("Code") or BANK), obj, sign * _amount(obj.get("Total")))
            for line in obj.get("LineItems") or []:
                add(line.get("AccountCode") or SALES, obj, -sign * line_amount(line))
    for obj in objects.get("BankTransfers", {}).values():
        add(str((obj.get("FromBankAccount") or {}).get("Code") or BANK), obj, -_amount(obj.get("Amount")))
        add(str((obj.get("ToBankAccount") or {}).get("Code") or BANK), obj, _amount(obj.get("Amount")))
    return out


def _label(tenant: Any, code: str) -> str:
    chart = getattr(tenant, "accounts", None) or {}
    entry = chart.get(code) if isinstance(chart, dict) else None
    name = (entry.get("Name") if isinstance(entry, dict) else entry) or DEFAULT_ACCOUNTS.get(code) or "Account"
    return f"{name} ({code})"


def _cell(value: Decimal) -> dict[str, str]:
    return {"Value": f"{value.quantize(CENT)}" if value else ""}


def trial_balance(sandbox: Any, tenant: Any, params: dict[str, str]) -> dict[str, Any]:
    from sandbox.xero.server import XeroFault

    now = datetime.fromtimestamp(sandbox.now(), UTC)
    try:
        as_of = date.fromisoformat(params["date"]) if params.get("date") else now.date()
    except ValueError as exc:
        raise XeroFault(400, {"Title": "Bad Request", "Detail": "date is YYYY-MM-DD"}) from exc
    with sandbox._lock:
        posted = postings(tenant, str(getattr(sandbox, "base_currency", None) or "USD"),
                          receivable=str(getattr(sandbox, "receivable_account_code", None) or AR),
                          payable=str(getattr(sandbox, "payable_account_code", None) or AP))  # fmt: skip
    month: dict[str, Decimal] = defaultdict(Decimal)
    ytd: dict[str, Decimal] = defaultdict(Decimal)
    for code, when, amount in posted:
        if when <= as_of:
            ytd[code] += amount
            if (when.year, when.month) == (as_of.year, as_of.month):
                month[code] += amount
    rows, totals = [], [Decimal(0)] * 4
    for code in sorted(c for c in ytd if ytd[c] or month[c]):
        m, y = month[code], ytd[code]
        values = [max(m, Decimal(0)), max(-m, Decimal(0)), max(y, Decimal(0)), max(-y, Decimal(0))]
        totals = [t + v for t, v in zip(totals, values, strict=True)]
        attributes = [{"Value": code, "Id": "account"}]
        rows.append({"RowType": "Row", "Cells": [{"Value": _label(tenant, code), "Attributes": attributes},
                                                 *({**_cell(v), "Attributes": attributes} for v in values)]})
    report = {
        "ReportID": "TrialBalance", "ReportName": "Trial Balance", "ReportType": "TrialBalance",
        "ReportTitles": ["Trial Balance", tenant.name, f"As at {as_of:%d %B %Y}"], "ReportDate": f"{as_of:%d %B %Y}",
        "UpdatedDateUTC": f"/Date({int(sandbox.now() * 1000)}+0000)/", "Fields": [],
        "Rows": [
            {"RowType": "Header", "Cells": [{"Value": "Account"}, {"Value": "Debit"}, {"Value": "Credit"},
                                            {"Value": "YTD Debit"}, {"Value": "YTD Credit"}]},
            {"RowType": "Section", "Title": "Accounts", "Rows": rows},
            {"RowType": "Section", "Title": "", "Rows": [
                {"RowType": "SummaryRow", "Cells": [{"Value": "Total"}, *(_cell(t) for t in totals)]}]},
        ],
    }  # fmt: skip
    return {"Reports": [report]}


def accountant_edits(sandbox: Any, kind: str, object_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """An accountant saves changes to a document in Xero (e.g. new ``LineItems``): total recomputed, new
    UpdatedDateUTC, exactly as a save through the API does."""
    from sandbox.xero.server import _ENTITIES

    id_field = next(f for k, f in _ENTITIES.values() if k == kind)
    with sandbox._lock:
        tenant = sandbox._tenants[sandbox.tenant_id]
        saved = sandbox._save(tenant, kind, id_field, {**copy.deepcopy(changes), id_field: object_id},
                              create_only=False)  # fmt: skip
    saved.pop("_created", None)
    return saved


def accountant_deletes(sandbox: Any, kind: str, object_id: str) -> dict[str, Any]:
    """An accountant removes a document: an approved invoice or credit note is voided, a draft deleted, a payment or
    journal deleted, a contact archived (Xero keeps them all, with that status)."""
    with sandbox._lock:
        obj = sandbox._tenants[sandbox.tenant_id].objects[kind][object_id]
        if kind == "Contacts":
            obj["ContactStatus"] = "ARCHIVED"
        elif kind in ("Invoices", "CreditNotes") and obj.get("Status") in _POSTED:
            obj["Status"] = "VOIDED"
        else:
            obj["Status"] = "DELETED"
        obj["UpdatedDateUTC"] = f"/Date({int(sandbox.now() * 1000)}+0000)/"
        return copy.deepcopy(obj)
