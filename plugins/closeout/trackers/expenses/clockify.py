"""Clockify expenses (``GET /workspaces/{ws}/expenses``): normalise, and the ``expenses`` phase of
``closeout_sync_clockify``.

Clockify's expense listing has no date or "updated since" filter and keeps no update time, so the phase
lists every expense of the workspace (paged, each page committed with its checkpoint) whenever the time
entry window is re-listed (the same ``sweep`` settings), and every expense the warehouse holds that the
complete listing did not return gets a 'deleted' version. An incomplete listing marks nothing.

Amounts: ``total`` is in minor units (cents) of the workspace currency; a unit-priced category carries
``quantity`` and ``priceInCents``. Clockify shows no approval or invoiced state on an expense: a *locked*
expense (its period approved and locked) counts as approved, and ``billed_in_source`` is always false.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec
import requests

from closeout.trackers import pipeline, runs, windowed
from closeout.trackers import store as entry_store
from closeout.trackers.clockify.hook import ClockifyHook
from closeout.trackers.clockify.normalize import require_clockify_id
from closeout.trackers.expenses import capture, store
from closeout.trackers.expenses.records import (
    MAX_UNITS,
    ExpenseRow,
    optional_quantity,
    optional_text,
    require_total,
)
from closeout.trackers.harvest.hook import decode
from closeout.trackers.pipeline import Page
from closeout.trackers.records import Currencies, Invalid, Problem, require_bool, require_date, require_decimal
from closeout.trackers.settings import SyncSettings
from closeout.trackers.transport import TrackerAPIError, server_time

log = logging.getLogger(__name__)

SOURCE = "clockify"
PHASE = "expenses"
_EVERYTHING = date(1, 1, 1)


def expense_pages(hook: ClockifyHook, token: int | None) -> Iterator[Page]:
    """Pages of the workspace's expenses from page ``token`` (default 1); ``Page.next`` is the next number."""
    transport = hook.get_conn()
    page = token or 1
    unreadable = 0
    while True:
        url = f"{hook._base}/workspaces/{hook.workspace_id}/expenses?page={page}&page-size={hook.page_size}"
        result = _page(hook, transport, url, page)
        unreadable = unreadable + 1 if result.error else 0
        if unreadable >= 3:
            result.next = None  # three unreadable pages in a row: stop; the run is partial, re-listed later
        yield result
        if result.next is None:
            return
        page = result.next


def _page(hook: ClockifyHook, transport: Any, url: str, page: int) -> Page:
    error = ""
    response: requests.Response | None = None
    for _attempt in range(hook.policy.malformed_attempts):
        response, call = transport.send("GET", url)
        if response.status_code == 404:
            raise TrackerAPIError(f"GET {url}: expenses not found (404)", status=404, url=url)
        try:
            items = decode(response.content)["expenses"]["expenses"]
            if not isinstance(items, list):
                raise TypeError("expenses.expenses is not a list")
        except (msgspec.DecodeError, ValueError, TypeError, KeyError) as exc:
            error = f"malformed page: {type(exc).__name__}: {exc}"[:500]
            call.outcome = "malformed"
            log.warning("Clockify expenses page %d: %s", page, error)
            continue
        call.records = len(items)
        following = page + 1 if len(items) >= hook.page_size else None
        return Page(url, page, items, following, response.content, server_time=server_time(response))
    assert response is not None
    return Page(url, page, None, page + 1, response.content, error=error)


def _day(value: Any) -> date:
    if isinstance(value, str) and len(value) > 10:  # some payloads carry the date as an instant
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            raise Invalid("date", f"not a date: {value!r}") from None
    return require_date(value, "date")


def make_normalizer(currency: str, receipt_base: str):
    """A page normaliser for expenses in ``currency`` (the workspace's), receipts linked under ``receipt_base``."""

    def normalize_expense(raw: Any, currencies: Currencies) -> ExpenseRow:
        if not isinstance(raw, dict):
            raise Invalid("(record)", f"not an object: {type(raw).__name__}")
        if currency not in currencies:
            raise Invalid("currency", f"unknown currency {currency!r} (the workspace's)")
        scale = Decimal(10) ** currencies[currency]
        source_id = require_clockify_id(raw.get("id"), "id")
        project = raw.get("project")
        if not isinstance(project, dict):
            raise Invalid("project.id", "missing")
        client = project.get("clientId")
        category = raw.get("category") if isinstance(raw.get("category"), dict) else {}
        price = category.get("priceInCents") if category.get("hasUnitPrice") else None
        unit_price = None if price is None else require_decimal(price, "category.priceInCents") / scale
        file_id = raw.get("fileId")
        receipt_url = None
        if file_id:
            receipt_url = f"{receipt_base}/{source_id}/files/{require_clockify_id(file_id, 'fileId')}"
        locked = require_bool(raw.get("locked", False), "locked")
        return ExpenseRow(
            source_id=source_id,
            client_source_id=None if client in (None, "") else require_clockify_id(client, "project.clientId"),
            project_source_id=require_clockify_id(project.get("id"), "project.id"),
            user_source_id=require_clockify_id(raw.get("userId"), "userId"),
            spent_date=_day(raw.get("date")),
            category_source_id=None if not category.get("id") else require_clockify_id(category["id"], "category.id"),
            category=optional_text(category.get("name"), "category.name"),
            unit_name=optional_text(category.get("unit"), "category.unit"),
            units=optional_quantity(raw.get("quantity"), "quantity", MAX_UNITS),
            unit_price=unit_price,
            total_cost=require_total(require_decimal(raw.get("total"), "total") / scale, "total"),
            billable=require_bool(raw.get("billable", False), "billable"),
            approved=locked,
            billed_in_source=False,
            source_invoice_ref=None,
            is_locked=locked,
            locked_reason=None,
            currency=currency,
            receipt_url=receipt_url,
            receipt_file_name=optional_text(raw.get("fileName"), "fileName"),
            receipt_file_size=None,
            receipt_content_type=None,
            notes=optional_text(raw.get("notes"), "notes"),
            source_created_at=None,
            source_updated_at=None,
        )

    def normalize_page(
        items: Iterable[Any], currencies: Currencies
    ) -> tuple[list[ExpenseRow], list[Problem], list[str]]:
        rows: list[ExpenseRow] = []
        problems: list[Problem] = []
        seen: list[str] = []
        for raw in items:
            try:
                row = normalize_expense(raw, currencies)
            except Invalid as exc:
                source_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
                if source_id:
                    seen.append(source_id)  # it exists in Clockify: not a deletion
                problems.append(Problem(store.ENTITY, source_id, exc.field, exc.reason, raw))
                continue
            rows.append(row)
            seen.append(row.source_id)
        return rows, problems, seen

    return normalize_page


def sync_expenses(sync_run_id: int, settings: SyncSettings) -> dict[str, Any]:
    """The expenses phase of one Clockify sync run (idempotent; resumes at its last committed page; pauses,
    like the other phases, when a free workspace's hourly budget is spent)."""
    from closeout.trackers.clockify.sync import CLOCKIFY

    conn, run = pipeline.open_run(SOURCE, sync_run_id)
    hook = windowed._hook(CLOCKIFY, conn)
    try:
        state = run.phase(PHASE)
        if state.get("done"):
            return runs.summary(run)
        if run.phase("window").get("skipped") and "listing" not in state:
            state.update(done=True, skipped="not due: listed with the time entry window")
            with conn.transaction():
                runs.save_progress(conn, run, PHASE, [])
            return runs.summary(run)
        store.prepare_session(conn)
        workspace = entry_store.workspace_payload(conn, SOURCE)
        currency = str((workspace.get("hourlyRate") or {}).get("currency") or "USD").upper()
        hook.get_conn()
        normalize = make_normalizer(currency, f"{hook._base}/workspaces/{hook.workspace_id}/expenses")
        listing = state.setdefault("listing", {})
        complete = capture.drain(
            conn, run, phase=PHASE, state=listing, pages=lambda token: expense_pages(hook, token),
            normalize=normalize, currencies=entry_store.known_currencies(conn), calls=hook.calls, track_seen=True,
        )  # fmt: skip
        if not complete:
            return runs.summary(run)
        with conn.transaction():
            vanished: list[str] = []
            if listing.get("partial"):
                state["partial"] = True
                state["note"] = "listing incomplete (quarantined page): no expense deletion marked this run"
            else:
                vanished = store.mark_vanished(conn, source=SOURCE, sync_run_id=run.sync_run_id,
                                               window_from=_EVERYTHING)  # fmt: skip
            state["marked"] = len(vanished)
            state["done"] = True
            runs.save_progress(conn, run, PHASE, hook.calls.drain(), deletions=len(vanished))
        if vanished:
            log.info("Clockify: %d expenses no longer listed marked deleted: %s", len(vanished),
                     ", ".join(vanished[:20]) + (" ..." if len(vanished) > 20 else ""))  # fmt: skip
        return runs.summary(run)
    finally:
        hook.close()
        conn.close()
