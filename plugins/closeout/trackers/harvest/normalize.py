"""Harvest time entry JSON -> ``EntryRow``, or a ``Problem`` naming the field that is wrong.

Rates and rounding are taken as Harvest resolved them (``billable_rate``, ``rounded_hours``):
recomputing them from rate cards would disagree with what Harvest shows the client.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from closeout.trackers.records import (
    EntryRow,
    Invalid,
    Problem,
    optional_datetime,
    require_bool,
    require_currency,
    require_date,
    require_datetime,
    require_decimal,
    require_hours,
    require_id,
)

SOURCE = "harvest"


def key(source_id: str) -> str:
    return f"{SOURCE}:{source_id}"


def _nested_id(raw: dict[str, Any], name: str) -> str:
    obj = raw.get(name)
    if not isinstance(obj, dict):
        raise Invalid(f"{name}.id", "missing")
    return require_id(obj.get("id"), f"{name}.id")


def normalize_entry(raw: Any, currencies: frozenset[str]) -> EntryRow:
    if not isinstance(raw, dict):
        raise Invalid("(record)", f"not an object: {type(raw).__name__}")
    source_id = require_id(raw.get("id"), "id")
    client_id = _nested_id(raw, "client")
    project_id = _nested_id(raw, "project")
    task_id = _nested_id(raw, "task")
    user_id = _nested_id(raw, "user")
    currency = require_currency(raw["client"].get("currency"), "client.currency", currencies)
    billable = require_bool(raw.get("billable"), "billable")
    rate_raw = raw.get("billable_rate")
    rate = None if rate_raw is None else require_decimal(rate_raw, "billable_rate")
    if rate is not None and rate < 0:
        raise Invalid("billable_rate", f"negative rate: {rate}")
    invoice = raw.get("invoice")
    invoice_ref = None
    if isinstance(invoice, dict) and invoice.get("id") is not None:
        invoice_ref = str(invoice.get("number") or invoice.get("id"))
    notes = raw.get("notes")
    return EntryRow(
        source_id=source_id,
        client_key=key(client_id),
        project_key=key(project_id),
        task_key=key(task_id),
        user_key=key(user_id),
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
        source_invoice_ref=invoice_ref,
        is_locked=require_bool(raw.get("is_locked", False), "is_locked"),
        is_running=require_bool(raw.get("is_running", False), "is_running"),
        billable_rate=rate,
        currency=currency,
        notes=notes if isinstance(notes, str) else None,
        source_created_at=optional_datetime(raw.get("created_at"), "created_at"),
        source_updated_at=require_datetime(raw.get("updated_at"), "updated_at"),
    )


def normalize_page(items: Iterable[Any], currencies: frozenset[str]) -> tuple[list[EntryRow], list[Problem], list[str]]:
    """Rows, problems, and every id seen (valid or not: a bad record still exists in Harvest)."""
    rows: list[EntryRow] = []
    problems: list[Problem] = []
    seen: list[str] = []
    for raw in items:
        try:
            row = normalize_entry(raw, currencies)
        except Invalid as exc:
            source_id = None
            if isinstance(raw, dict):
                try:
                    source_id = require_id(raw.get("id"), "id")
                except Invalid:
                    source_id = None
            if source_id:
                seen.append(source_id)
            problems.append(Problem("time_entry", source_id, exc.field, exc.reason, raw))
            continue
        rows.append(row)
        seen.append(row.source_id)
    return rows, problems, seen
