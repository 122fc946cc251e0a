"""The sync of trackers whose complete listing has no "updated since" filter (Toggl, Clockify).

Completeness comes from re-listing a trailing window of dates and diffing ids; speed comes from the
tracker's webhooks, whose events name the days to re-list. Phases, each resumable and each able to
stop cleanly when the tracker's request budget is spent (the run is then *paused* and the next run
continues it from the last committed page):

1. reference - clients, projects, tasks, users (when due): rows need the project -> client link;
2. window    - when due, re-list [today - sweep_days, tomorrow] (a first sync: history_days), merge
               it, and give every entry of the window that the listing did not return a deleted version;
3. inbox     - pending webhook events -> the days they touch -> re-list just those days the same way.
               Events that arrived before a window listing of this run began are covered by it.
Applying an event is always a re-read of the tracker's current state, so duplicated, shuffled or
late events cannot move an entry backwards, and a dropped one is caught by the next window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from closeout.sanitize import escape_text, plausible_instant
from closeout.sanitize.events import Verdict, quarantine_events
from closeout.trackers import pipeline, runs, store
from closeout.trackers.pipeline import Page
from closeout.trackers.runs import SyncRun
from closeout.trackers.settings import SyncSettings
from closeout.trackers.store import Normalizer
from closeout.trackers.transport import BudgetExhausted

log = logging.getLogger(__name__)

MAX_WINDOW_DAYS = 366  # the longest range one report request may span (Toggl documents 366 days)


@dataclass(frozen=True)
class WindowedTracker:
    """What one tracker plugs into the windowed sync."""

    source: str
    make_hook: Callable[[], Any]  # a hook with .calls, .seed_pacing(), .pacing_window, .close()
    fetch_reference: Callable[[Any, psycopg.Connection, SyncRun], None]  # read + upsert (own transactions)
    pages: Callable[[Any, date, date, Any], Iterator[Page]]  # (hook, first day, last day, resume token)
    normalizer: Callable[[psycopg.Connection], Normalizer]  # built from the reference data in the warehouse
    event_days: Callable[[str, str], list[date]]  # (event_type, raw body) -> spent dates it touches
    # the tracker's expenses phase (sync_run_id, settings), run after the inbox; None: no expenses (Toggl)
    sync_expenses: Callable[[int, SyncSettings], Any] | None = None


def _hook(tracker: WindowedTracker, conn: psycopg.Connection) -> Any:
    hook = tracker.make_hook()
    hook.seed_pacing(runs.recent_calls(conn, tracker.source, hook.pacing_window))
    return hook


def begin_sync(tracker: WindowedTracker, airflow_run_id: str | None, settings: SyncSettings) -> dict[str, Any]:
    # "incremental" here means a previous run completed (and left reference_at in its cursor)
    return pipeline.begin(tracker.source, airflow_run_id, settings, census_phase=None, cursor_key="reference_at")


def _last(conn: psycopg.Connection, source: str, key: str) -> datetime | None:
    row = conn.execute(
        """SELECT (cursor->>%s)::timestamptz FROM closeout_data.sync_runs
           WHERE source = %s AND cursor ? %s ORDER BY sync_run_id DESC LIMIT 1""",
        (key, source, key),
    ).fetchone()
    return row[0] if row else None


def sync_reference(tracker: WindowedTracker, sync_run_id: int, settings: SyncSettings) -> dict[str, Any]:
    conn, run = pipeline.open_run(tracker.source, sync_run_id)
    hook = _hook(tracker, conn)
    try:
        state = run.phase("reference")
        if state.get("done") or state.get("skipped"):
            return runs.summary(run)
        last = _last(conn, tracker.source, "reference_at")
        now = datetime.now(UTC)
        if run.mode != "full" and last and now - last < timedelta(hours=settings.reference_interval_hours):
            state["skipped"] = f"read {last.isoformat()}, within {settings.reference_interval_hours:g} h"
        else:
            try:
                tracker.fetch_reference(hook, conn, run)
            except BudgetExhausted as exc:
                state["paused"] = str(exc)
                with conn.transaction():
                    runs.save_progress(conn, run, "reference", hook.calls.drain())
                return runs.summary(run)
            state.pop("paused", None)
            state["done"] = True
            state["read_at"] = now.isoformat()
        with conn.transaction():
            runs.save_progress(conn, run, "reference", hook.calls.drain())
        return runs.summary(run)
    finally:
        hook.close()
        conn.close()


def _listing_due(conn: psycopg.Connection, tracker: WindowedTracker, run: SyncRun, settings: SyncSettings) -> bool:
    if run.mode == "full" or settings.sweep == "always":
        return True
    if settings.sweep == "never":
        return False
    last = runs.last_sweep_completed_at(conn, tracker.source)
    return last is None or datetime.now(UTC) - last >= timedelta(hours=settings.sweep_interval_hours)


def _relist(
    conn: psycopg.Connection, tracker: WindowedTracker, hook: Any, run: SyncRun, phase: str, state: dict[str, Any],
    first: date, last: date, normalize: Normalizer, currencies: store.Currencies,
) -> bool:  # fmt: skip
    """List [first, last], merge it, and mark what the listing did not return as deleted.
    False when the budget ran out first (state keeps where to continue)."""
    complete = pipeline.drain(
        conn, run, phase=phase, state=state, pages=lambda token: tracker.pages(hook, first, last, token),
        normalize=normalize, currencies=currencies, calls=hook.calls, track_seen=True,
    )  # fmt: skip
    if not complete:
        return False
    if not state.get("partial") and not _confirmed(conn, tracker, hook, run, phase, state, first, last, normalize,
                                                   currencies):  # fmt: skip
        return False
    if "marked" not in state:
        with conn.transaction():
            if state.get("partial"):
                vanished: list[str] = []
                state["note"] = "listing incomplete (quarantined page): no deletion marked"
                conn.execute("DELETE FROM closeout_data.sweep_seen WHERE sync_run_id = %s", (run.sync_run_id,))
            else:
                vanished = store.mark_vanished(conn, source=run.source, sync_run_id=run.sync_run_id,
                                               window_from=first, window_to=last)  # fmt: skip
            state["marked"] = len(vanished)
            runs.save_progress(conn, run, phase, hook.calls.drain(), deletions=len(vanished))
        if vanished:
            log.info("%s %s: %d entries no longer listed marked deleted: %s", run.source, phase, len(vanished),
                     ", ".join(vanished[:20]) + (" ..." if len(vanished) > 20 else ""))  # fmt: skip
    return True


def _confirmed(
    conn: psycopg.Connection, tracker: WindowedTracker, hook: Any, run: SyncRun, phase: str, state: dict[str, Any],
    first: date, last: date, normalize: Normalizer, currencies: store.Currencies,
) -> bool:  # fmt: skip
    """Before anything is marked deleted, re-list the days of the entries the listing did not return.

    A listing paged by position (Clockify's page numbers) shifts when an entry before the cursor is
    deleted or moved while it is read, and can skip an entry that still exists. Re-reading just the
    candidates' days (usually none: no request at all) keeps a skip from becoming a false deletion.
    A single-page listing cannot shift and is not re-read.
    """
    if state.get("pages", 0) <= 1:
        return True
    state.pop("paused", None)
    confirm = state.get("confirm")
    if confirm is None:
        days = [d for (d,) in conn.execute(
            """SELECT DISTINCT h.spent_date FROM closeout_data.time_entry_heads h
               WHERE h.source = %s AND h.deleted_at IS NULL AND h.spent_date BETWEEN %s AND %s
                 AND NOT EXISTS (SELECT 1 FROM closeout_data.sweep_seen s
                                 WHERE s.sync_run_id = %s AND s.source_id = h.source_id)
               ORDER BY 1""", (run.source, first, last, run.sync_run_id)).fetchall()]  # fmt: skip
        confirm = state["confirm"] = {"ranges": [[a.isoformat(), b.isoformat()] for a, b in _contiguous(days)],
                                      "progress": {}}  # fmt: skip
        with conn.transaction():
            runs.save_progress(conn, run, phase, hook.calls.drain())
    for a, b in confirm["ranges"]:
        progress = confirm["progress"].setdefault(f"{a}..{b}", {})
        day_first, day_last = date.fromisoformat(a), date.fromisoformat(b)
        if not pipeline.drain(
            conn, run, phase=phase, state=progress,
            pages=lambda token, f=day_first, t=day_last: tracker.pages(hook, f, t, token),
            normalize=normalize, currencies=currencies, calls=hook.calls, track_seen=True,
        ):  # fmt: skip
            state["paused"] = progress.get("paused")
            return False
        if progress.get("partial"):
            state["partial"] = True
    return True


def sync_window(tracker: WindowedTracker, sync_run_id: int, settings: SyncSettings) -> dict[str, Any]:
    conn, run = pipeline.open_run(tracker.source, sync_run_id)
    hook = _hook(tracker, conn)
    try:
        state = run.phase("window")
        if state.get("marked") is not None or state.get("skipped"):
            return runs.summary(run)
        if "first" not in state:
            if not _listing_due(conn, tracker, run, settings):
                state["skipped"] = f"not due (every {settings.sweep_interval_hours:g} h)"
                with conn.transaction():
                    runs.save_progress(conn, run, "window", [])
                return runs.summary(run)
            today = datetime.now(UTC).date()
            days = settings.history_days if run.mode == "full" else settings.sweep_days
            last = today + timedelta(days=1)  # time zones ahead of UTC
            first = max(today - timedelta(days=days), last - timedelta(days=MAX_WINDOW_DAYS - 1))
            state["first"], state["last"] = first.isoformat(), last.isoformat()
            state["began_at"] = datetime.now(UTC).isoformat()
        _relist(conn, tracker, hook, run, "window", state, date.fromisoformat(state["first"]),
                date.fromisoformat(state["last"]), tracker.normalizer(conn), store.known_currencies(conn))  # fmt: skip
        return runs.summary(run)
    finally:
        hook.close()
        conn.close()


def apply_inbox(tracker: WindowedTracker, sync_run_id: int, settings: SyncSettings) -> dict[str, Any]:
    conn, run = pipeline.open_run(tracker.source, sync_run_id)
    hook = _hook(tracker, conn)
    try:
        state = run.phase("inbox")
        if state.get("done"):
            return runs.summary(run)
        if "ranges" not in state:
            state.update(_plan_inbox(conn, tracker, run))
            with conn.transaction():
                runs.save_progress(conn, run, "inbox", [])
        normalize = tracker.normalizer(conn)
        currencies = store.known_currencies(conn)
        for key, (first, last) in state["ranges"].items():
            progress = state.setdefault("progress", {}).setdefault(key, {})
            if progress.get("marked") is not None:
                continue
            if not _relist(conn, tracker, hook, run, "inbox", progress, date.fromisoformat(first),
                           date.fromisoformat(last), normalize, currencies):  # fmt: skip
                return runs.summary(run)
        with conn.transaction():
            conn.execute(
                """UPDATE closeout_data.webhook_inbox SET processed_at = clock_timestamp(), outcome = %s
                   WHERE vendor = %s AND processed_at IS NULL AND inbox_id <= %s""",
                (f"applied by sync run {run.sync_run_id}: re-listed {len(state['ranges'])} day range(s)",
                 tracker.source, state["upto"]),
            )  # fmt: skip
            state["done"] = True
            runs.save_progress(conn, run, "inbox", hook.calls.drain())
        return runs.summary(run)
    finally:
        hook.close()
        conn.close()


def _plan_inbox(conn: psycopg.Connection, tracker: WindowedTracker, run: SyncRun) -> dict[str, Any]:
    """Freeze which events this run applies and the day ranges they need re-listed."""
    window = run.phase("window")
    covered_before = window.get("began_at") if window.get("marked") is not None else None
    rows = conn.execute(
        """SELECT inbox_id, event_type, body, received_at, event_id FROM closeout_data.webhook_inbox
           WHERE vendor = %s AND processed_at IS NULL ORDER BY inbox_id""",
        (tracker.source,),
    ).fetchall()
    days: set[date] = set()
    refused: list[tuple[int, str, str, str, str]] = []  # (inbox_id, event_type, body, reason, event_id)
    upto = 0
    for inbox_id, event_type, body, received_at, event_id in rows:
        upto = inbox_id
        if covered_before and received_at.isoformat() < covered_before:
            continue  # this run's window listing already read the tracker's state after this event
        try:
            touched = tracker.event_days(event_type, body)
        except Exception as exc:  # one event's body must not stop the inbox
            touched, why = [], f"unreadable: {type(exc).__name__}: {exc}"
        else:
            why = "names no day to re-list (no start, or one unreadable or outside 2000..2100)"
        absurd = next((d for d in touched if plausible_instant(d) is not None), None)
        if absurd is not None:
            touched, why = [], plausible_instant(absurd) or ""
        if not touched:
            refused.append((inbox_id, event_type, body, why, event_id))
        days.update(touched)
    ranges: dict[str, list[str]] = {}
    for first, last in _contiguous(sorted(days)):
        ranges[f"{first}..{last}"] = [first.isoformat(), last.isoformat()]
    if refused:
        quarantine_inbox(conn, tracker.source, refused)
        log.warning("%s inbox: %d events quarantined (closeout.event_quarantine); the next window listing "
                    "covers their entries", tracker.source, len(refused))  # fmt: skip
    return {"ranges": ranges, "upto": upto, "events": len(rows), "quarantined": len(refused)}


def quarantine_inbox(conn: psycopg.Connection, vendor: str, refused: list[tuple[int, str, str, str, str]]) -> None:
    """Quarantine tracker webhook events that name nothing to re-list, each with its reason, and mark them
    processed so the inbox goes on (their entries are still caught by the next window listing)."""
    verdicts = [Verdict(body, event_id=event_id, event_type=event_type, field="(body)", reason=why)
                for _inbox_id, event_type, body, why, event_id in refused]  # fmt: skip
    with conn.transaction():
        quarantine_events(conn, vendor, verdicts, via="webhook", inbox_ids=[r[0] for r in refused])
        conn.execute(
            """UPDATE closeout_data.webhook_inbox i SET processed_at = clock_timestamp(), outcome = o.outcome
               FROM unnest(%s::bigint[], %s::text[]) AS o(inbox_id, outcome) WHERE i.inbox_id = o.inbox_id""",
            ([r[0] for r in refused], [escape_text(f"quarantined: {r[3]}")[:500] for r in refused]),
        )


def days_around(start: date) -> list[date]:
    """The days a webhook event about an entry starting at ``start`` asks to re-list: its date and a day
    either side, because reports filter dates in the workspace's time zone and the event's offset may differ."""
    return [start - timedelta(days=1), start, start + timedelta(days=1)]


def _contiguous(days: list[date]) -> Iterator[tuple[date, date]]:
    if not days:
        return
    first = last = days[0]
    for day in days[1:]:
        if day - last <= timedelta(days=1):
            last = day
            continue
        yield first, last
        first = last = day
    yield first, last


def finish_sync(tracker: WindowedTracker, sync_run_id: int, settings: SyncSettings) -> dict[str, Any]:
    conn, run = pipeline.open_run(tracker.source, sync_run_id)
    try:
        if run.status != "running":
            return runs.summary(run)
        phases = {name: run.phase(name) for name in ("reference", "window", "inbox")}
        paused = [f"{name}: {state['paused']}" for name, state in phases.items() if state.get("paused")]
        expenses = run.checkpoint.get("expenses") or {}  # closeout.trackers.expenses (Clockify)
        if (expenses.get("listing") or {}).get("paused"):
            paused.append(f"expenses: {expenses['listing']['paused']}")
        if paused:
            runs.pause(conn, run, "; ".join(paused))
            log.warning("%s sync run %s paused, the next run continues it: %s", tracker.source, run.sync_run_id,
                        "; ".join(paused))  # fmt: skip
            return runs.summary(run)
        window, reference = phases["window"], phases["reference"]
        cursor = dict(run.cursor_in)
        if reference.get("read_at"):
            cursor["reference_at"] = reference["read_at"]
        partial = bool(
            window.get("partial")
            or expenses.get("partial")
            or any(p.get("partial") for p in phases["inbox"].get("progress", {}).values())
        )
        runs.finish(conn, run, status="partial" if partial else "succeeded", cursor=cursor,
                    sweep_completed=window.get("marked") is not None and not window.get("partial"))  # fmt: skip
        log.info("%s sync run %s finished: %s", tracker.source, run.sync_run_id, runs.summary(run))
        return runs.summary(run)
    finally:
        conn.close()


def run_all(tracker: WindowedTracker, airflow_run_id: str | None = None,
            settings: SyncSettings | None = None) -> dict[str, Any]:  # fmt: skip
    """Every phase in order, outside Airflow (benchmarks, scripts)."""
    settings = settings or SyncSettings()
    sync_run_id = begin_sync(tracker, airflow_run_id, settings)["sync_run_id"]
    sync_reference(tracker, sync_run_id, settings)
    sync_window(tracker, sync_run_id, settings)
    apply_inbox(tracker, sync_run_id, settings)
    if tracker.sync_expenses is not None:
        tracker.sync_expenses(sync_run_id, settings)
    return finish_sync(tracker, sync_run_id, settings)
