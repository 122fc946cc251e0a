"""Clockify detailed-report items -> ``EntryRow``s, or ``Problem``s naming the field.

Only the detailed report carries approval (``approvalState``) and invoicing (``invoicingState``)
per entry, and the client, so it is the listing capture uses. Durations are whole seconds, the rate
is the one Clockify resolved (workspace < member < project < project member < task) in minor units.
Clockify keeps no update time: ``source_updated_at`` stays empty rather than invented.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from closeout.trackers.durations import hours_from_seconds, rounded_seconds
from closeout.trackers.records import (
    MAX_HOURS_PER_ENTRY,
    Currencies,
    EntryRow,
    Invalid,
    Problem,
    optional_rate,
    require_bool,
    require_currency,
    require_datetime,
)
from closeout.trackers.store import Normalizer

SOURCE = "clockify"
NO_PARENT = "none"  # time without a project or client is normal; drafting lists billable ones
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ClockifyContext:
    currency: str = "USD"  # the workspace's, for items that name none
    rounding_minutes: int = 0
    rounding_direction: int = 0


def require_clockify_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(field, "missing" if value in (None, "") else f"not an id: {value!r}")
    if len(value) != 24 or not set(value) <= _HEX:
        raise Invalid(field, f"not a Clockify id: {value!r}")
    return value


def _optional_id(value: Any, field: str) -> str | None:
    return None if value in (None, "") else require_clockify_id(value, field)


def _entry(item: Any, ctx: ClockifyContext, currencies: Currencies) -> EntryRow:
    if not isinstance(item, dict):
        raise Invalid("(record)", f"not an object: {type(item).__name__}")
    source_id = require_clockify_id(item.get("_id") or item.get("id"), "_id")
    user = require_clockify_id(item.get("userId"), "userId")
    project = _optional_id(item.get("projectId"), "projectId")
    client = _optional_id(item.get("clientId"), "clientId")
    interval = item.get("timeInterval")
    if not isinstance(interval, dict):
        raise Invalid("timeInterval", "missing")
    start = require_datetime(interval.get("start"), "timeInterval.start")
    seconds = interval.get("duration")
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise Invalid("timeInterval.duration", "missing" if seconds is None else f"not whole seconds: {seconds!r}")
    if seconds < 0:
        raise Invalid("timeInterval.duration", f"negative duration: {seconds}")
    hours = hours_from_seconds(seconds)
    if hours > MAX_HOURS_PER_ENTRY:
        raise Invalid("timeInterval.duration", f"{hours} hours in one entry (more than {MAX_HOURS_PER_ENTRY})")
    currency = require_currency(item.get("currency") or ctx.currency, "currency", currencies)
    rate_minor = item.get("rate")
    if rate_minor is not None and (isinstance(rate_minor, bool) or not isinstance(rate_minor, int)):
        raise Invalid("rate", f"not an integer amount of minor units: {rate_minor!r}")
    rate = None if rate_minor is None else optional_rate(Decimal(rate_minor).scaleb(-currencies[currency]), "rate")
    approval = item.get("approvalState")
    invoicing = item.get("invoicingState")
    if approval not in ("APPROVED", "PENDING", "UNSUBMITTED", None):
        raise Invalid("approvalState", f"unknown state {approval!r}")
    if invoicing not in ("INVOICED", "UNINVOICED", None):
        raise Invalid("invoicingState", f"unknown state {invoicing!r}")
    description = item.get("description")
    task = _optional_id(item.get("taskId"), "taskId")
    return EntryRow(
        source_id=source_id,
        client_source_id=client or NO_PARENT,
        project_source_id=project or NO_PARENT,
        task_source_id=task,
        user_source_id=user,
        spent_date=start.date(),
        hours=hours,
        rounded_hours=hours_from_seconds(rounded_seconds(seconds, ctx.rounding_minutes, ctx.rounding_direction)),
        billable=require_bool(item.get("billable"), "billable"),
        approved=approval == "APPROVED",
        billed_in_source=invoicing == "INVOICED",
        source_invoice_ref=None,
        is_locked=bool(item.get("isLocked")),
        is_running=interval.get("end") is None,
        billable_rate=rate,
        currency=currency,
        notes=description if isinstance(description, str) else None,
        source_created_at=None,
        source_updated_at=None,
    )


def make_normalizer(ctx: ClockifyContext) -> Normalizer:
    def normalize_items(
        items: Iterable[Any], currencies: Currencies
    ) -> tuple[list[EntryRow], list[Problem], list[str]]:
        rows: list[EntryRow] = []
        problems: list[Problem] = []
        seen: list[str] = []
        for item in items:
            source_id = None
            if isinstance(item, dict) and isinstance(item.get("_id") or item.get("id"), str):
                source_id = item.get("_id") or item.get("id")
            if source_id:
                seen.append(source_id)
            try:
                rows.append(_entry(item, ctx, currencies))
            except Invalid as exc:
                problems.append(Problem("time_entry", source_id, exc.field, exc.reason, item))
        return rows, problems, seen

    return normalize_items


def parse_rounding(workspace: Mapping[str, Any]) -> tuple[int, int]:
    """(minutes, direction) when the workspace rounds time in reports, else (0, 0)."""
    settings = workspace.get("workspaceSettings") or {}
    if not isinstance(settings, dict) or not settings.get("timeRoundingInReports"):
        return 0, 0
    spec = settings.get("round") or {}
    try:
        minutes = int(spec.get("minutes") or 0)
    except (TypeError, ValueError):
        return 0, 0
    kind = str(spec.get("round") or "").lower()
    direction = 1 if "up" in kind else -1 if "down" in kind else 0
    return max(minutes, 0), direction
