"""Read Xero back: modified-since listings for what changed, Reports/TrialBalance for the period.

* Each listing (Contacts, Invoices, CreditNotes, Payments, ManualJournals, BankTransactions, BankTransfers) has its
  own cursor: the newest ``UpdatedDateUTC`` it returned. The next read sends it (less the overlap) as ``If-Modified-
  Since`` and pages (100 a page) until a short page: one request per listing while nothing changed. Without a cursor
  the listing is read whole. Xero keeps voided and deleted documents, with that status: they arrive like any other
  change.
* The trial balance as at the end of each month read (the period's, or the previous and the current one) gives, per
  account, the month's movement and the balance to date; the movement is ingested as the period's general ledger
  (one row per account, dated on the period's first day, account by code), which is what the ``accounting_ledger``
  check compares per account and currency.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from closeout.accounting.readback.objects import XERO_LISTINGS, parse_timestamp, xero_object
from closeout.accounting.readback.quickbooks import report_months
from closeout.accounting.readback.reports import LedgerRow, xero_trial_balance
from closeout.accounting.readback.store import ReadBack

PAGE_SIZE = 100


def read_xero(hook: Any, cursors: Mapping[str, datetime], exponents: Mapping[str, int], *, period: str | None,
              listings: tuple[str, ...] = tuple(XERO_LISTINGS), overlap: timedelta = timedelta(seconds=60),
              base_currency: str | None = None, now: datetime | None = None) -> ReadBack:  # fmt: skip
    now = now or datetime.now(UTC)
    before = hook.requests_sent
    mode = "incremental" if any(cursors.get(name) for name in listings) else "full"
    read = ReadBack("xero", hook.tenant_id, mode)
    for listing in listings:
        cursor = cursors.get(listing)
        since = (cursor - overlap).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if cursor else None
        newest = cursor
        page = 1
        while True:
            rows = hook.get(listing, {"page": page}, modified_since=since).get(listing) or []
            for row in rows:
                read.objects.append(xero_object(listing, row, exponents))
                stamp = parse_timestamp(row.get("UpdatedDateUTC"))
                if stamp is not None and (newest is None or stamp > newest):
                    newest = stamp
            if len(rows) < PAGE_SIZE:
                break
            page += 1
        if newest is not None:
            read.cursors[listing] = newest
    base = str(base_currency or _base_currency(hook)).upper()
    read.ledger_currency = base
    for start, end in report_months(period, now.date()):
        report = (hook.get("Reports/TrialBalance", {"date": end.isoformat()}).get("Reports") or [{}])[0]
        balances = xero_trial_balance(report, base, exponents)
        read.ledgers.append(((start, end), [
            LedgerRow("transaction", month.account, start, "Trial Balance movement", None, None,
                      f"movement {start}..{end}", None, month.debit_minor - month.credit_minor, None)
            for month, _ in balances if month.debit_minor or month.credit_minor]))  # fmt: skip
        read.trial_balance_as_of, read.trial_balance = end, [balance for _, balance in balances]
    read.requests = hook.requests_sent - before
    return read


def _base_currency(hook: Any) -> str:
    organisations = hook.get("Organisation").get("Organisations") or [{}]
    return str(organisations[0].get("BaseCurrency") or "USD")
