"""closeout_sync_clockify: Clockify as a windowed tracker (see ``closeout.trackers.windowed``).

Why windowed: Clockify entries carry no update time and deletions leave no trace outside webhooks
(and an experimental feed that lags), so completeness comes from re-listing a trailing window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg

from closeout.trackers import store, windowed
from closeout.trackers.clockify.hook import ClockifyHook
from closeout.trackers.clockify.normalize import SOURCE, ClockifyContext, make_normalizer, parse_rounding
from closeout.trackers.pipeline import Page
from closeout.trackers.records import Invalid, Problem, require_datetime
from closeout.trackers.runs import SyncRun
from closeout.trackers.settings import SyncSettings

REFERENCE_KINDS = (("user", "users"), ("client", "clients"), ("project", "projects"))


def _entity(kind: str, raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        return None
    rate = raw.get("hourlyRate") if isinstance(raw.get("hourlyRate"), dict) else {}
    currency = rate.get("currency") if kind in ("workspace", "project") else None
    active = (raw.get("status") == "ACTIVE") if kind == "user" else not raw.get("archived", False)
    return {"source_id": raw["id"], "name": raw.get("name") or raw.get("email"), "currency": currency,
            "is_active": active, "updated_at": None, "payload": raw}  # fmt: skip


def fetch_reference(hook: ClockifyHook, conn: psycopg.Connection, run: SyncRun) -> None:
    batches: list[tuple[str, list[dict[str, Any]], list[Problem]]] = []
    workspace = _entity("workspace", hook.workspace())
    batches.append(("workspace", [workspace] if workspace else [], []))
    for kind, resource in REFERENCE_KINDS:
        rows, problems = [], []
        for raw in hook.listing(resource):
            entity = _entity(kind, raw)
            if entity is None:
                problems.append(Problem(kind, None, "id", "missing", raw))
            else:
                rows.append(entity)
        batches.append((kind, rows, problems))
    store.write_reference(conn, source=SOURCE, sync_run_id=run.sync_run_id, batches=batches)


def normalizer(conn: psycopg.Connection) -> store.Normalizer:
    workspace = store.workspace_payload(conn, SOURCE)
    currency = ((workspace.get("hourlyRate") or {}).get("currency") or "USD").upper()
    minutes, direction = parse_rounding(workspace)
    return make_normalizer(ClockifyContext(currency, minutes, direction))


def pages(hook: ClockifyHook, first: date, last: date, token: Any) -> Iterator[Page]:
    return hook.report_pages(first, last, token)


def event_days(event_type: str, body: str) -> list[date]:
    """Days to re-list for a Clockify event: around the entry's start (``timeInterval.start``)."""
    try:
        interval = json.loads(body).get("timeInterval") or {}
        start = require_datetime(interval.get("start"), "start").date()
    except (ValueError, AttributeError, Invalid):
        return []
    return windowed.days_around(start)


def sync_expenses(sync_run_id: int, settings: SyncSettings) -> dict[str, Any]:
    """The expenses phase (closeout.trackers.expenses.clockify), imported when it runs."""
    from closeout.trackers.expenses import clockify as expenses

    return expenses.sync_expenses(sync_run_id, settings)


TRACKER = CLOCKIFY = windowed.WindowedTracker(
    source=SOURCE, make_hook=ClockifyHook, fetch_reference=fetch_reference, pages=pages,
    normalizer=normalizer, event_days=event_days, sync_expenses=sync_expenses,
)  # fmt: skip


def run_all(airflow_run_id: str | None = None, settings: SyncSettings | None = None) -> dict[str, Any]:
    return windowed.run_all(CLOCKIFY, airflow_run_id, settings)
