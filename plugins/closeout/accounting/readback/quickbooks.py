"""Read QuickBooks Online back: change data capture for what changed, the GeneralLedger and TrialBalance reports for
the period.

* **Incremental** (a cursor younger than ``MAX_LOOKBACK``): ``GET /cdc?entities=...&changedSince=<cursor - overlap>``,
  one request for every entity while nothing changed. CDC returns at most 1000 objects per entity; an entity that
  had more is asked again from the last change it returned, until it is complete. Deletions come as
  ``status: Deleted``. The next cursor is the ``time`` of QuickBooks' first answer (its clock, never ours).
* **Reports**: the GeneralLedger of each month read (the period's, or the previous and the current one), the
  TrialBalance at the end of the last of them.
* **Full** (no cursor, or one older than CDC's 30 days): every object of every entity through ``query``, 1000 a
  page; deletions older than the cursor cannot be seen any more, which is why the cursor is kept young by the
  hourly run.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from closeout.accounting.readback.objects import QUICKBOOKS_ENTITIES, parse_timestamp, quickbooks_object
from closeout.accounting.readback.reports import quickbooks_general_ledger, quickbooks_trial_balance
from closeout.accounting.readback.store import ReadBack

STREAM = "cdc"
MAX_LOOKBACK = timedelta(days=29)  # CDC looks back 30 days; a day of margin for clocks and a slow run
QUERY_PAGE = 1000
CDC_LIMIT = 1000


class ReadBackError(RuntimeError):
    """The accounting system's answers cannot be read completely (the run fails; the cursor does not move)."""


def month_range(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def report_months(period: str | None, today: date) -> list[tuple[date, date]]:
    """The months whose reports a read-back pulls, each whole (a stable range, so the latest read of a month
    supersedes the earlier ones): the period's (``YYYY-MM``), or the previous and the current month (the close of
    last month still reads last month's books in the first days of this one)."""
    if period:
        year, month = (int(p) for p in period.split("-"))
        return [month_range(year, month)]
    previous = today.replace(day=1) - timedelta(days=1)
    return [month_range(previous.year, previous.month), month_range(today.year, today.month)]


def read_quickbooks(hook: Any, cursors: Mapping[str, datetime], exponents: Mapping[str, int], *,
                    period: str | None, entities: tuple[str, ...] = QUICKBOOKS_ENTITIES,
                    overlap: timedelta = timedelta(seconds=60), home_currency: str | None = None,
                    now: datetime | None = None) -> ReadBack:  # fmt: skip
    now = now or datetime.now(UTC)
    before = hook.requests_sent
    cursor = cursors.get(STREAM)
    mode = "incremental" if cursor is not None and now - cursor < MAX_LOOKBACK else "full"
    read = ReadBack("quickbooks", hook.realm_id, mode)
    found: list[tuple[str, dict[str, Any]]] = []
    if mode == "incremental":
        server_time = _changes(hook, cursor - overlap, entities, found)
    else:
        server_time = _everything(hook, entities, found)
    reports = []
    for start, end in report_months(period, now.date()):
        reports.append(((start, end), hook.get("reports/GeneralLedger", {
            "start_date": start.isoformat(), "end_date": end.isoformat(), "accounting_method": "Accrual"})))
    header = reports[-1][1].get("Header") or {}
    home = str(home_currency or header.get("Currency") or "USD").upper()
    read.objects = [quickbooks_object(entity, obj, home, exponents) for entity, obj in found]
    read.ledger_currency = home
    read.ledgers = [(months, list(quickbooks_general_ledger(report, exponents))) for months, report in reports]
    start, end = reports[-1][0]
    trial = hook.get("reports/TrialBalance", {"start_date": start.isoformat(), "end_date": end.isoformat(),
                                               "accounting_method": "Accrual"})  # fmt: skip
    read.trial_balance_as_of, read.trial_balance = end, quickbooks_trial_balance(trial, exponents)
    read.cursors = {STREAM: server_time} if server_time else {}
    read.requests = hook.requests_sent - before
    return read


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _changes(hook: Any, since: datetime, entities: tuple[str, ...],
             found: list[tuple[str, dict[str, Any]]]) -> datetime:  # fmt: skip
    """Every change since ``since``; an entity cut at CDC's limit is asked again from its last change."""
    first_time: datetime | None = None
    pending = {entity: since for entity in entities}
    seen: set[tuple[str, str, str]] = set()
    while pending:
        groups: dict[datetime, list[str]] = {}
        for entity, moment in pending.items():
            groups.setdefault(moment, []).append(entity)
        pending = {}
        for moment, names in sorted(groups.items()):
            body = hook.get("cdc", {"entities": ",".join(names), "changedSince": _iso(moment)})
            first_time = first_time or parse_timestamp(body.get("time"))
            for answer in ((body.get("CDCResponse") or [{}])[0].get("QueryResponse") or []):
                for entity in names:
                    objects = answer.get(entity)
                    if not isinstance(objects, list):
                        continue
                    for obj in objects:
                        key = (entity, str(obj.get("Id")), str(obj.get("SyncToken") or obj.get("status")))
                        if key not in seen:
                            seen.add(key)
                            found.append((entity, obj))
                    if int(answer.get("totalCount") or len(objects)) > len(objects) >= CDC_LIMIT:
                        last = max(parse_timestamp((o.get("MetaData") or {}).get("LastUpdatedTime")) or moment
                                   for o in objects)  # fmt: skip
                        if last <= moment:
                            raise ReadBackError(f"QuickBooks CDC: more than {CDC_LIMIT} {entity} changes at "
                                                f"{_iso(moment)}; cannot page past them")  # fmt: skip
                        pending[entity] = last
    return first_time or datetime.now(UTC)


def _everything(hook: Any, entities: tuple[str, ...], found: list[tuple[str, dict[str, Any]]]) -> datetime:
    """Every object of every entity (the first read, or after the cursor aged past CDC's look-back)."""
    first_time: datetime | None = None
    for entity in entities:
        start = 1
        while True:
            body = hook.get("query", {"query": f"select * from {entity} STARTPOSITION {start} MAXRESULTS {QUERY_PAGE}"})
            first_time = first_time or parse_timestamp(body.get("time"))
            page = (body.get("QueryResponse") or {}).get(entity) or []
            found.extend((entity, obj) for obj in page)
            if len(page) < QUERY_PAGE:
                break
            start += QUERY_PAGE
    return first_time or datetime.now(UTC)

