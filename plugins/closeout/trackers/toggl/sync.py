"""closeout_sync_toggl: Toggl Track as a windowed tracker (see ``closeout.trackers.windowed``).

Why windowed: the only workspace-wide listing with resolved rates is the Reports API v3 search,
which has no "updated since" filter and never returns deleted entries. ``/me/time_entries?since``
does, but only for the token owner, so it cannot be the source of completeness.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg

from closeout.trackers import store, windowed
from closeout.trackers.pipeline import Page
from closeout.trackers.records import Invalid, Problem, require_datetime
from closeout.trackers.runs import SyncRun
from closeout.trackers.settings import SyncSettings
from closeout.trackers.toggl.hook import TogglHook
from closeout.trackers.toggl.normalize import SOURCE, TogglContext, make_normalizer, parse_rounding

REFERENCE_KINDS = (("client", "clients"), ("project", "projects"), ("task", "tasks"), ("user", "users"))


def _entity(kind: str, raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict) or isinstance(raw.get("id"), bool) or not isinstance(raw.get("id"), int):
        return None
    name = raw.get("fullname") if kind == "user" else raw.get("name")
    active = raw.get("active", not raw.get("archived", False))
    return {
        "source_id": str(raw["id"]),
        "name": name,
        "currency": raw.get("currency") or raw.get("default_currency"),
        "is_active": active if isinstance(active, bool) else None,
        "updated_at": raw.get("at"),
        "payload": raw,
    }


def fetch_reference(hook: TogglHook, conn: psycopg.Connection, run: SyncRun) -> None:
    workspace = hook.workspace()
    batches: list[tuple[str, list[dict[str, Any]], list[Problem]]] = []
    ws = _entity("workspace", workspace)
    batches.append(
        ("workspace", [ws] if ws else [], [] if ws else [Problem("workspace", None, "id", "missing", workspace)])
    )
    for kind, resource in REFERENCE_KINDS:
        rows, problems = [], []
        for raw in hook.reference(resource):
            entity = _entity(kind, raw)
            if entity is None:
                problems.append(Problem(kind, None, "id", "missing or not an integer", raw))
            else:
                rows.append(entity)
        batches.append((kind, rows, problems))
    store.write_reference(conn, source=SOURCE, sync_run_id=run.sync_run_id, batches=batches)


def normalizer(conn: psycopg.Connection) -> store.Normalizer:
    projects = dict(conn.execute(
        """SELECT source_id, payload->>'client_id' FROM closeout_data.tracker_entities
           WHERE source = %s AND kind = 'project'""", (SOURCE,)).fetchall())  # fmt: skip
    minutes, direction = parse_rounding(store.workspace_payload(conn, SOURCE))
    return make_normalizer(TogglContext(projects, minutes, direction))


def pages(hook: TogglHook, first: date, last: date, token: Any) -> Iterator[Page]:
    return hook.report_pages(first, last, token)


def event_days(event_type: str, body: str) -> list[date]:
    """Days to re-list for a Toggl event: around the entry's start (``payload.start``)."""
    try:
        payload = json.loads(body).get("payload") or {}
        start = require_datetime(payload.get("start"), "start").date()
    except (ValueError, AttributeError, Invalid):
        return []
    return windowed.days_around(start)


TRACKER = TOGGL = windowed.WindowedTracker(
    source=SOURCE, make_hook=TogglHook, fetch_reference=fetch_reference, pages=pages,
    normalizer=normalizer, event_days=event_days,
)  # fmt: skip


def run_all(airflow_run_id: str | None = None, settings: SyncSettings | None = None) -> dict[str, Any]:
    return windowed.run_all(TOGGL, airflow_run_id, settings)
