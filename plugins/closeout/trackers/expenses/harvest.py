"""Harvest expenses (``GET /v2/expenses``): normalise, and the ``expenses`` phase of ``closeout_sync_harvest``.

The phase runs inside the Harvest sync run, after time entries and before the time entry sweep:

1. changes: every expense updated since the cursor ``expenses_since`` (the largest ``updated_at`` the
   last complete listing saw, minus the overlap); without a cursor, every expense;
2. deletion sweep, when the time entry sweep is due as well (same settings): list every expense dated
   in the trailing window, then what changed since the sweep began, and give every expense of the window
   that neither listing returned a 'deleted' version. An incomplete listing marks nothing. The first
   listing into an empty warehouse is a census and needs no sweep.

Every step checkpoints each page in ``sync_runs.checkpoint['expenses']``: a retried task resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from closeout.sanitize import plausible_instant, text_problem
from closeout.trackers import runs
from closeout.trackers.expenses import capture, store
from closeout.trackers.expenses.records import (
    MAX_EXPENSE_TOTAL,
    MAX_UNITS,
    ExpenseRow,
    optional_quantity,
    optional_size,
    optional_text,
    require_total,
)
from closeout.trackers.records import (
    MAX_HOURLY_RATE,
    Currencies,
    Invalid,
    Problem,
    optional_datetime,
    require_bool,
    require_currency,
    require_date,
    require_datetime,
    require_id,
)
from closeout.trackers.runs import SyncRun
from closeout.trackers.settings import SyncSettings

log = logging.getLogger(__name__)

SOURCE = "harvest"
PHASE = "expenses"
CURSOR_KEY = "expenses_since"


def _nested(raw: dict[str, Any], name: str) -> dict[str, Any]:
    obj = raw.get(name)
    if not isinstance(obj, dict):
        raise Invalid(f"{name}.id", "missing")
    return obj


def normalize_expense(raw: Any, currencies: Currencies) -> ExpenseRow:
    """One Harvest expense, every field checked; the first problem raised as ``Invalid(field, reason)``.

    ``total_cost`` is in the client's currency (Harvest's documented rule), so the currency comes from
    ``client.currency``; a unit-priced category (mileage) carries ``units`` and its ``unit_price``."""
    if not isinstance(raw, dict):
        raise Invalid("(record)", f"not an object: {type(raw).__name__}")
    source_id = require_id(raw.get("id"), "id")
    client = _nested(raw, "client")
    project = _nested(raw, "project")
    user = _nested(raw, "user")
    category = raw.get("expense_category")
    if category is not None and not isinstance(category, dict):
        raise Invalid("expense_category", f"not an object: {category!r}")
    category = category or {}
    receipt = raw.get("receipt")
    if receipt is not None and not isinstance(receipt, dict):
        raise Invalid("receipt", f"not an object: {receipt!r}")
    receipt = receipt or {}
    invoice = raw.get("invoice")
    invoice_ref = None
    category_id = None if category.get("id") is None else require_id(category.get("id"), "expense_category.id")
    if isinstance(invoice, dict) and invoice.get("id") is not None:
        invoice_ref = optional_text(str(invoice.get("number") or invoice.get("id")), "invoice.number")
    return ExpenseRow(
        source_id=source_id,
        client_source_id=require_id(client.get("id"), "client.id"),
        project_source_id=require_id(project.get("id"), "project.id"),
        user_source_id=require_id(user.get("id"), "user.id"),
        spent_date=require_date(raw.get("spent_date"), "spent_date"),
        category_source_id=category_id,
        category=optional_text(category.get("name"), "expense_category.name"),
        unit_name=optional_text(category.get("unit_name"), "expense_category.unit_name"),
        units=optional_quantity(raw.get("units"), "units", MAX_UNITS),
        unit_price=optional_quantity(category.get("unit_price"), "expense_category.unit_price", MAX_HOURLY_RATE),
        total_cost=require_total(raw.get("total_cost"), "total_cost"),
        billable=require_bool(raw.get("billable"), "billable"),
        approved=require_bool(raw.get("is_closed", False), "is_closed"),
        billed_in_source=require_bool(raw.get("is_billed", False), "is_billed"),
        source_invoice_ref=invoice_ref,
        is_locked=require_bool(raw.get("is_locked", False), "is_locked"),
        locked_reason=optional_text(raw.get("locked_reason"), "locked_reason"),
        currency=require_currency(client.get("currency"), "client.currency", currencies),
        receipt_url=optional_text(receipt.get("url"), "receipt.url"),
        receipt_file_name=optional_text(receipt.get("file_name"), "receipt.file_name"),
        receipt_file_size=optional_size(receipt.get("file_size"), "receipt.file_size"),
        receipt_content_type=optional_text(receipt.get("content_type"), "receipt.content_type"),
        notes=optional_text(raw.get("notes"), "notes"),
        source_created_at=optional_datetime(raw.get("created_at"), "created_at"),
        source_updated_at=require_datetime(raw.get("updated_at"), "updated_at"),
    )


class _NotPlain(Exception):
    """The fast path declines; the careful path decides."""


_ZERO = Decimal(0)


def _plain_number(value: Any, limit: Decimal) -> bool:
    """An exact JSON number in [0, limit] with a sane exponent (anything else: the careful path)."""
    if type(value) is int:
        return 0 <= value <= limit
    return type(value) is Decimal and value.is_finite() and _ZERO <= value <= limit and value.adjusted() > -30


def _plain_text(value: Any) -> bool:
    return value is None or (type(value) is str and text_problem(value) is None)


def _fast(raw: dict[str, Any], currencies: Currencies) -> ExpenseRow:
    """Accepts exactly what ``normalize_expense`` accepts in its most common form, or declines: a sync of
    200,000 expenses spends most of its Python time here."""
    expense_id, client, project, user = raw["id"], raw["client"], raw["project"], raw["user"]
    category, receipt, invoice = raw["expense_category"], raw["receipt"], raw["invoice"]
    client_id, project_id, user_id = client["id"], project["id"], user["id"]
    total, units, currency = raw["total_cost"], raw["units"], client["currency"]
    billable, closed, billed, locked = raw["billable"], raw["is_closed"], raw["is_billed"], raw["is_locked"]
    notes, reason = raw["notes"], raw["locked_reason"]
    if not (
        type(expense_id) is int and type(client_id) is int and type(project_id) is int and type(user_id) is int
        and expense_id > 0 and client_id > 0 and project_id > 0 and user_id > 0
        and type(category) is dict and type(category["id"]) is int and category["id"] > 0
        and type(billable) is bool and type(closed) is bool and type(billed) is bool and type(locked) is bool
        and currency in currencies and _plain_number(total, MAX_EXPENSE_TOTAL)
        and (units is None or _plain_number(units, MAX_UNITS))
        and (category["unit_price"] is None or _plain_number(category["unit_price"], MAX_HOURLY_RATE))
        and _plain_text(category["name"]) and _plain_text(category["unit_name"])
        and _plain_text(notes) and _plain_text(reason) and invoice is None
        and (receipt is None or (type(receipt) is dict and _plain_text(receipt["url"])
                                 and _plain_text(receipt["file_name"]) and _plain_text(receipt["content_type"])
                                 and (receipt["file_size"] is None or type(receipt["file_size"]) is int)))
    ):  # fmt: skip
        raise _NotPlain
    updated = datetime.fromisoformat(raw["updated_at"])
    created = raw["created_at"]
    created_at = None if created is None else datetime.fromisoformat(created)
    spent = date.fromisoformat(raw["spent_date"])
    if updated.tzinfo is None or (created_at is not None and created_at.tzinfo is None):
        raise _NotPlain
    if plausible_instant(updated) or plausible_instant(spent) or (created_at and plausible_instant(created_at)):
        raise _NotPlain
    receipt = receipt or {}
    size = receipt.get("file_size")
    if size is not None and not 0 <= size < 2**62:
        raise _NotPlain
    return ExpenseRow(
        str(expense_id), str(client_id), str(project_id), str(user_id), spent, str(category["id"]),
        category["name"], category["unit_name"], None if units is None else Decimal(units),
        None if category["unit_price"] is None else Decimal(category["unit_price"]), Decimal(total),
        billable, closed, billed, None, locked, reason, currency, receipt.get("url"), receipt.get("file_name"),
        size, receipt.get("content_type"), notes, created_at, updated,
    )  # fmt: skip


def normalize_page(items: Iterable[Any], currencies: Currencies) -> tuple[list[ExpenseRow], list[Problem], list[str]]:
    """Rows, problems, and every id seen (valid or not: a bad expense still exists in Harvest)."""
    rows: list[ExpenseRow] = []
    problems: list[Problem] = []
    seen: list[str] = []
    for raw in items:
        try:
            row = _fast(raw, currencies)
        except Exception:
            row = None
        try:
            row = row or normalize_expense(raw, currencies)
        except Invalid as exc:
            source_id = _id_if_any(raw)
            if source_id:
                seen.append(source_id)
            problems.append(Problem(store.ENTITY, source_id, exc.field, exc.reason, raw))
            continue
        rows.append(row)
        seen.append(row.source_id)
    return rows, problems, seen


def _id_if_any(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    try:
        return require_id(raw.get("id"), "id")
    except Invalid:
        return None


def sync_expenses(sync_run_id: int, settings: SyncSettings, *, today: date | None = None) -> dict[str, Any]:
    """The expenses phase of one Harvest sync run (idempotent; resumes at its last committed page)."""
    from closeout.trackers.harvest import sync as harvest_sync  # its helpers open the run and pace the hook

    conn, run = harvest_sync._open(sync_run_id)
    hook = harvest_sync._hook(conn)
    try:
        state = run.phase(PHASE)
        if state.get("done"):
            return runs.summary(run)
        store.prepare_session(conn)
        if "sweep" not in state:  # decided once, before the first page, so a resumed run decides alike
            state["sweep"] = _sweep_decision(conn, run, settings, today, harvest_sync.sweep_due)
        currencies = dict(conn.execute("SELECT code, exponent FROM closeout_data.currencies").fetchall())
        params: dict[str, Any] = {}
        if run.mode == "incremental" and run.cursor_in.get(CURSOR_KEY):
            params["updated_since"] = run.cursor_in[CURSOR_KEY]
        changes = state.setdefault("changes", {})

        def listing(sub: dict[str, Any], query: dict[str, Any], track_seen: bool) -> bool:
            return capture.drain(
                conn, run, phase=PHASE, state=sub,
                pages=lambda start_url: hook.iter_pages("expenses", query, start_url=start_url),
                normalize=normalize_page, currencies=currencies, calls=hook.calls, track_seen=track_seen,
            )  # fmt: skip

        if not listing(changes, params, False):
            return runs.summary(run)
        sweep = state["sweep"]
        if isinstance(sweep, dict):
            window = sweep.setdefault("listing", {})
            if not listing(window, {"from": sweep["window_from"]}, True):
                return runs.summary(run)
            began = datetime.fromisoformat(window.get("server_time_first") or run.started_at.isoformat())
            since = (began - timedelta(minutes=settings.overlap_minutes)).astimezone(UTC)
            catchup = sweep.setdefault("catchup", {})
            if not listing(catchup, {"updated_since": since.strftime("%Y-%m-%dT%H:%M:%SZ")}, True):
                return runs.summary(run)
        _finish_phase(conn, run, state)
        return runs.summary(run)
    finally:
        hook.close()
        conn.close()


def _sweep_decision(
    conn: psycopg.Connection, run: SyncRun, settings: SyncSettings, today: date | None, sweep_due: Any
) -> dict[str, Any] | str:
    if not store.has_expenses(conn, SOURCE):
        return "skipped: first listing into an empty warehouse is a complete census"
    if not sweep_due(conn, settings, datetime.now(UTC)):
        return f"skipped: not due (every {settings.sweep_interval_hours:g} h)"
    start = (today or datetime.now(UTC).date()) - timedelta(days=settings.sweep_days)
    return {"window_from": start.isoformat()}


def _finish_phase(conn: psycopg.Connection, run: SyncRun, state: dict[str, Any]) -> None:
    sweep = state["sweep"]
    vanished: list[str] = []
    with conn.transaction():
        if isinstance(sweep, dict):
            if sweep["listing"].get("partial") or sweep["catchup"].get("partial"):
                state["partial"] = True
                sweep["note"] = "listing incomplete (quarantined page): no expense deletion marked this run"
            else:
                vanished = store.mark_vanished(conn, source=SOURCE, sync_run_id=run.sync_run_id,
                                               window_from=date.fromisoformat(sweep["window_from"]))  # fmt: skip
            sweep["marked"] = len(vanished)
        if state["changes"].get("partial"):
            state["partial"] = True
        state["done"] = True
        runs.save_progress(conn, run, PHASE, [], deletions=len(vanished))
    if vanished:
        log.info("Harvest expense sweep: %d expenses no longer in Harvest marked deleted: %s", len(vanished),
                 ", ".join(vanished[:20]) + (" ..." if len(vanished) > 20 else ""))  # fmt: skip


def cursor_after(run: SyncRun, overlap: timedelta) -> dict[str, str]:
    """The expense cursor the finished run hands to the next one (nothing when the changes listing was
    incomplete or saw nothing: the old cursor stays and the next run re-reads from there)."""
    changes = run.phase(PHASE).get("changes", {})
    newest = changes.get("max_updated_at")
    if not run.phase(PHASE).get("done") or changes.get("partial") or not newest:
        return {}
    moved = (datetime.fromisoformat(newest) - overlap).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {CURSOR_KEY: moved}


def phase_partial(run: SyncRun) -> bool:
    """Whether the expenses phase of this run missed something (a quarantined page)."""
    return bool(run.phase(PHASE).get("partial"))
