"""Toggl Reports API v3 rows -> ``EntryRow``s, or ``Problem``s naming the field.

A report row groups entries that share user, project, task, billable flag and description; each of its
``time_entries`` becomes one contract row. The rate is the one Toggl resolved (project member >
project > workspace member > workspace), given in minor units of the row's currency. Toggl has no
approval step, so captured time counts as approved; it has no invoiced flag either. The client comes
through the project (reference data), as Toggl's rows carry none; without one it is ``none``.
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
    require_id,
)
from closeout.trackers.store import Normalizer

SOURCE = "toggl"
# Time with no project, or a project with no client, is normal in Toggl (internal work). It is kept
# with this explicit parent; drafting lists billable time without a billable client as an exception.
NO_PARENT = "none"


@dataclass(frozen=True)
class TogglContext:
    """What a row needs from reference data: project -> client, and the workspace's rounding."""

    project_clients: Mapping[str, str | None]
    rounding_minutes: int = 0
    rounding_direction: int = 0  # Toggl: -1 down, 0 nearest, 1 up


def _entry(row: dict[str, Any], te: Any, ctx: TogglContext, currencies: Currencies) -> EntryRow:
    if not isinstance(te, dict):
        raise Invalid("time_entries[]", f"not an object: {type(te).__name__}")
    source_id = require_id(te.get("id"), "id")
    project_id = row.get("project_id")
    if project_id is None:
        project, client = NO_PARENT, NO_PARENT
    else:
        project = require_id(project_id, "project_id")
        if project not in ctx.project_clients:
            raise Invalid("project_id", f"unknown project {project}")
        client = ctx.project_clients[project] or NO_PARENT
    user = require_id(row.get("user_id"), "user_id")
    task = None if row.get("task_id") is None else require_id(row.get("task_id"), "task_id")
    seconds = te.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise Invalid("seconds", "missing" if seconds is None else f"not whole seconds: {seconds!r}")
    if seconds < 0:
        raise Invalid("seconds", f"negative duration: {seconds}")
    hours = hours_from_seconds(seconds)
    if hours > MAX_HOURS_PER_ENTRY:
        raise Invalid("seconds", f"{hours} hours in one entry (more than {MAX_HOURS_PER_ENTRY})")
    start = require_datetime(te.get("start"), "start")
    stop = te.get("stop")
    currency = require_currency(row.get("currency"), "currency", currencies)
    cents = row.get("hourly_rate_in_cents")
    if cents is not None and (isinstance(cents, bool) or not isinstance(cents, int)):
        raise Invalid("hourly_rate_in_cents", f"not an integer: {cents!r}")
    rate = None if cents is None else optional_rate(Decimal(cents).scaleb(-currencies[currency]), "hourly_rate")
    description = row.get("description")
    return EntryRow(
        source_id=source_id,
        client_source_id=client,
        project_source_id=project,
        task_source_id=task,
        user_source_id=user,
        spent_date=start.date(),
        hours=hours,
        rounded_hours=hours_from_seconds(rounded_seconds(seconds, ctx.rounding_minutes, ctx.rounding_direction)),
        billable=require_bool(row.get("billable"), "billable"),
        approved=True,
        billed_in_source=False,
        source_invoice_ref=None,
        is_locked=False,
        is_running=stop is None,
        billable_rate=rate,
        currency=currency,
        notes=description if isinstance(description, str) else None,
        source_created_at=None,
        source_updated_at=require_datetime(te.get("at"), "at"),
    )


def make_normalizer(ctx: TogglContext) -> Normalizer:
    def normalize_rows(items: Iterable[Any], currencies: Currencies) -> tuple[list[EntryRow], list[Problem], list[str]]:
        rows: list[EntryRow] = []
        problems: list[Problem] = []
        seen: list[str] = []
        for row in items:
            entries = row.get("time_entries") if isinstance(row, dict) else None
            if not isinstance(entries, list):
                problems.append(Problem("report_row", None, "time_entries", "missing or not a list", row))
                continue
            for te in entries:
                raw = {**{k: v for k, v in row.items() if k != "time_entries"}, "time_entry": te}
                source_id = _id_if_any(te)
                if source_id:
                    seen.append(source_id)
                try:
                    rows.append(_entry(row, te, ctx, currencies))
                except Invalid as exc:
                    problems.append(Problem("time_entry", source_id, exc.field, exc.reason, raw))
        return rows, problems, seen

    return normalize_rows


def _id_if_any(te: Any) -> str | None:
    if not isinstance(te, dict):
        return None
    try:
        return require_id(te.get("id"), "id")
    except Invalid:
        return None


def parse_rounding(workspace: Mapping[str, Any]) -> tuple[int, int]:
    """(minutes, direction) from a v9 workspace object (``rounding``: -1/0/1, ``rounding_minutes``)."""
    minutes = workspace.get("rounding_minutes") or 0
    direction = workspace.get("rounding") or 0
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 0:
        minutes = 0
    if direction not in (-1, 0, 1):
        direction = 0
    return minutes, direction
