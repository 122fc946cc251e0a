"""Harvest time entry JSON -> ``EntryRow``, or a ``Problem`` naming the field that is wrong.

Rates and rounding are taken as Harvest resolved them (``billable_rate``, ``rounded_hours``):
recomputing them from rate cards would disagree with what Harvest shows the client.

Two paths, one set of rules: ``_fast`` accepts only the common, plainly valid shape with a handful
of type checks (a million entries pass through here in a full sync); anything it does not accept
goes to ``normalize_entry``, the careful validator that names the field and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from closeout.trackers.records import (
    MAX_HOURLY_RATE,
    MAX_HOURS_PER_ENTRY,
    Currencies,
    EntryRow,
    Invalid,
    Problem,
    optional_datetime,
    optional_rate,
    require_bool,
    require_currency,
    require_date,
    require_datetime,
    require_hours,
    require_id,
)

SOURCE = "harvest"
_ZERO = Decimal(0)


class _NotPlain(Exception):
    """The fast path declines; the careful path decides."""


def _nested_id(raw: dict[str, Any], name: str) -> str:
    obj = raw.get(name)
    if not isinstance(obj, dict):
        raise Invalid(f"{name}.id", "missing")
    return require_id(obj.get("id"), f"{name}.id")


def _invoice_ref(invoice: Any) -> str | None:
    if isinstance(invoice, dict) and invoice.get("id") is not None:
        return str(invoice.get("number") or invoice.get("id"))
    return None


def normalize_entry(raw: Any, currencies: Currencies) -> EntryRow:
    """The careful path: every field checked, the first problem raised as ``Invalid(field, reason)``."""
    if not isinstance(raw, dict):
        raise Invalid("(record)", f"not an object: {type(raw).__name__}")
    source_id = require_id(raw.get("id"), "id")
    client_id = _nested_id(raw, "client")
    project_id = _nested_id(raw, "project")
    task_id = _nested_id(raw, "task")
    user_id = _nested_id(raw, "user")
    currency = require_currency(raw["client"].get("currency"), "client.currency", currencies)
    billable = require_bool(raw.get("billable"), "billable")
    rate = optional_rate(raw.get("billable_rate"), "billable_rate")
    notes = raw.get("notes")
    return EntryRow(
        source_id=source_id,
        client_source_id=client_id,
        project_source_id=project_id,
        task_source_id=task_id,
        user_source_id=user_id,
        spent_date=require_date(raw.get("spent_date"), "spent_date"),
        hours=require_hours(raw.get("hours"), "hours"),
        rounded_hours=require_hours(raw.get("rounded_hours", raw.get("hours")), "rounded_hours"),
        billable=billable,
        approved=require_bool(raw.get("is_closed", False), "is_closed"),
        billed_in_source=require_bool(raw.get("is_billed", False), "is_billed"),
        source_invoice_ref=_invoice_ref(raw.get("invoice")),
        is_locked=require_bool(raw.get("is_locked", False), "is_locked"),
        is_running=require_bool(raw.get("is_running", False), "is_running"),
        billable_rate=rate,
        currency=currency,
        notes=notes if isinstance(notes, str) else None,
        source_created_at=optional_datetime(raw.get("created_at"), "created_at"),
        source_updated_at=require_datetime(raw.get("updated_at"), "updated_at"),
    )


def _fast(raw: dict[str, Any], currencies: Currencies) -> EntryRow:
    """Accepts exactly what ``normalize_entry`` accepts in its most common form, or declines."""
    entry_id = raw["id"]
    client = raw["client"]
    client_id, project_id, task_id, user_id = client["id"], raw["project"]["id"], raw["task"]["id"], raw["user"]["id"]
    if not (
        type(entry_id) is int
        and type(client_id) is int
        and type(project_id) is int
        and type(task_id) is int
        and type(user_id) is int
        and entry_id > 0
        and client_id > 0
        and project_id > 0
        and task_id > 0
        and user_id > 0
    ):
        raise _NotPlain
    hours, rounded, rate, currency = raw["hours"], raw["rounded_hours"], raw["billable_rate"], client["currency"]
    billable, approved, billed = raw["billable"], raw["is_closed"], raw["is_billed"]
    locked, running, notes = raw["is_locked"], raw["is_running"], raw["notes"]
    if not (
        type(hours) is Decimal
        and type(rounded) is Decimal
        and _ZERO <= hours <= MAX_HOURS_PER_ENTRY
        and _ZERO <= rounded <= MAX_HOURS_PER_ENTRY
        and (rate is None or (type(rate) is Decimal and _ZERO <= rate <= MAX_HOURLY_RATE))
        and currency in currencies
        and type(billable) is bool
        and type(approved) is bool
        and type(billed) is bool
        and type(locked) is bool
        and type(running) is bool
        and (notes is None or type(notes) is str)
    ):
        raise _NotPlain
    updated = datetime.fromisoformat(raw["updated_at"])
    created = raw["created_at"]
    created_at = None if created is None else datetime.fromisoformat(created)
    if updated.tzinfo is None or (created_at is not None and created_at.tzinfo is None):
        raise _NotPlain
    return EntryRow(
        str(entry_id), str(client_id), str(project_id), str(task_id), str(user_id),
        date.fromisoformat(raw["spent_date"]), hours, rounded, billable, approved, billed,
        _invoice_ref(raw["invoice"]), locked, running, rate, currency, notes, created_at, updated,
    )  # fmt: skip


def normalize_page(items: Iterable[Any], currencies: Currencies) -> tuple[list[EntryRow], list[Problem], list[str]]:
    """Rows, problems, and every id seen (valid or not: a bad record still exists in Harvest)."""
    rows: list[EntryRow] = []
    problems: list[Problem] = []
    seen: list[str] = []
    for raw in items:
        try:
            row = _fast(raw, currencies)
        except Exception:
            try:
                row = normalize_entry(raw, currencies)
            except Invalid as exc:
                source_id = _id_if_any(raw)
                if source_id:
                    seen.append(source_id)
                problems.append(Problem("time_entry", source_id, exc.field, exc.reason, raw))
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
