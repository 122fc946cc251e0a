"""The phases of ``closeout_sync_harvest``, as plain functions the DAG's tasks (and tests) call.

begin -> reference data -> time entries -> deletion sweep -> finish. Every phase is idempotent and
resumable: progress is committed page by page with the checkpoint in ``sync_runs``.

Cursor rule: the next run reads ``updated_since`` = (largest ``updated_at`` this run saw in its
entries phase) - overlap. Taking Harvest's own timestamps (not our clock) makes the cursor immune to
clock skew; the overlap absorbs commit lag upstream. Entries that slip past paging while the data
shifts under it are caught by the sweep, which re-lists a trailing window and diffs ids.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from closeout.trackers import pipeline, runs, store
from closeout.trackers.harvest.hook import HarvestHook
from closeout.trackers.harvest.normalize import SOURCE, normalize_page
from closeout.trackers.pipeline import Page
from closeout.trackers.records import Currencies, Problem
from closeout.trackers.runs import SyncRun
from closeout.trackers.settings import SyncSettings
from closeout.trackers.vetting import valid_timestamp

log = logging.getLogger(__name__)

REFERENCE_KINDS = (("client", "clients"), ("project", "projects"), ("task", "tasks"), ("user", "users"))


def _open(sync_run_id: int) -> tuple[psycopg.Connection, SyncRun]:
    return pipeline.open_run(SOURCE, sync_run_id)


def _hook(conn: psycopg.Connection) -> HarvestHook:
    """A hook whose pacing continues the rate window of this tracker's previous calls."""
    hook = HarvestHook()
    hook.seed_pacing(runs.recent_calls(conn, SOURCE, hook.pacing_window))
    return hook


def begin_sync(airflow_run_id: str | None, settings: SyncSettings) -> dict[str, Any]:
    return pipeline.begin(SOURCE, airflow_run_id, settings, census_phase="sweep")


def sync_reference(sync_run_id: int, settings: SyncSettings) -> dict[str, Any]:
    """Clients, projects, tasks and users (small listings; redone whole on retry, upserts are idempotent)."""
    conn, run = _open(sync_run_id)
    hook = _hook(conn)
    try:
        state = run.phase("reference")
        if state.get("done"):
            return runs.summary(run)
        since = run.cursor_in.get("reference_since") if run.mode == "incremental" else None
        newest: str | None = state.get("max_updated_at")
        for kind, resource in REFERENCE_KINDS:
            for page in hook.iter_pages(resource, {"updated_since": since}):
                rows, problems = _reference_rows(kind, page)
                with conn.transaction():
                    bad = store.upsert_entities(conn, source=SOURCE, kind=kind, sync_run_id=run.sync_run_id, rows=rows)
                    if problems:
                        store.quarantine(
                            conn, source=SOURCE, sync_run_id=run.sync_run_id, problems=problems, url=page.url
                        )
                    for row in rows:  # only a timestamp the upsert took may move the cursor
                        if valid_timestamp(row["updated_at"]) and (newest is None or row["updated_at"] > newest):
                            newest = row["updated_at"]
                    state["max_updated_at"] = newest
                    runs.save_progress(conn, run, "reference", hook.calls.drain(), quarantined=len(problems) + bad)
        state["done"] = True
        with conn.transaction():
            runs.save_progress(conn, run, "reference", hook.calls.drain())
        return runs.summary(run)
    finally:
        hook.close()
        conn.close()


def _reference_rows(kind: str, page: Page) -> tuple[list[dict[str, Any]], list[Problem]]:
    if page.items is None:
        return [], [Problem("page", None, f"/{kind}s", page.error or "malformed", page.raw.decode(errors="replace"))]
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for raw in page.items:
        if not isinstance(raw, dict) or isinstance(raw.get("id"), bool) or not isinstance(raw.get("id"), int):
            problems.append(Problem(kind, None, "id", "missing or not an integer", raw))
            continue
        name = raw.get("name")
        if kind == "user":
            name = " ".join(p for p in (raw.get("first_name"), raw.get("last_name")) if isinstance(p, str)) or None
        currency = raw.get("currency") if kind == "client" else None
        rows.append(
            {
                "source_id": str(raw["id"]),
                "name": name,
                "currency": currency,
                "is_active": raw.get("is_active"),
                "updated_at": raw.get("updated_at"),
                "payload": raw,
            }
        )
    return rows, problems


def _drain(
    conn: psycopg.Connection,
    hook: HarvestHook,
    run: SyncRun,
    phase: str,
    state: dict[str, Any],
    params: dict[str, Any],
    currencies: Currencies,
    *,
    track_seen: bool,
) -> None:
    """Page through one time entry listing (resuming at the checkpointed ``next`` URL)."""
    pipeline.drain(
        conn, run, phase=phase, state=state,
        pages=lambda start_url: hook.iter_pages("time_entries", params, start_url=start_url),
        normalize=normalize_page, currencies=currencies, calls=hook.calls, track_seen=track_seen,
    )  # fmt: skip


def sync_entries(sync_run_id: int, settings: SyncSettings) -> dict[str, Any]:
    conn, run = _open(sync_run_id)
    hook = _hook(conn)
    try:
        store.prepare_session(conn)
        params: dict[str, Any] = {}
        if run.mode == "incremental":
            params["updated_since"] = run.cursor_in["entries_since"]
        _drain(conn, hook, run, "entries", run.phase("entries"), params, store.known_currencies(conn), track_seen=False)
        return runs.summary(run)
    finally:
        hook.close()
        conn.close()


def sweep_due(conn: psycopg.Connection, settings: SyncSettings, now: datetime) -> bool:
    if settings.sweep == "always":
        return True
    if settings.sweep == "never":
        return False
    last = runs.last_sweep_completed_at(conn, SOURCE)
    return last is None or now - last >= timedelta(hours=settings.sweep_interval_hours)


def sweep_deletions(sync_run_id: int, settings: SyncSettings, *, today: date | None = None) -> dict[str, Any]:
    """Re-list the trailing window, then mark what the tracker no longer has as deleted.

    Three steps, each resumable: (1) list every entry with spent_date >= window start and merge it
    (this also catches entries that paging skipped); (2) list what changed since the sweep began,
    so an entry edited out of the window meanwhile is not mistaken for deleted; (3) entries in the
    window that neither listing returned get a 'deleted' version. An incomplete listing marks nothing.
    """
    conn, run = _open(sync_run_id)
    hook = _hook(conn)
    try:
        state = run.phase("sweep")
        if state.get("done") or state.get("skipped"):
            return runs.summary(run)
        if "window_from" not in state:
            if not sweep_due(conn, settings, datetime.now(UTC)):
                state["skipped"] = f"not due (every {settings.sweep_interval_hours:g} h)"
                with conn.transaction():
                    runs.save_progress(conn, run, "sweep", [])
                return runs.summary(run)
            state["window_from"] = (
                (today or datetime.now(UTC).date()) - timedelta(days=settings.sweep_days)
            ).isoformat()
        store.prepare_session(conn)
        currencies = store.known_currencies(conn)
        listing = state.setdefault("listing", {})
        _drain(conn, hook, run, "sweep", listing, {"from": state["window_from"]}, currencies, track_seen=True)
        began = datetime.fromisoformat(listing.get("server_time_first") or run.started_at.isoformat())
        catchup_since = (began - timedelta(minutes=settings.overlap_minutes)).astimezone(UTC)
        catchup = state.setdefault("catchup", {})
        _drain(
            conn,
            hook,
            run,
            "sweep",
            catchup,
            {"updated_since": catchup_since.strftime("%Y-%m-%dT%H:%M:%SZ")},
            currencies,
            track_seen=True,
        )
        with conn.transaction():
            if listing.get("partial") or catchup.get("partial"):
                state["partial"] = True
                state["marked"] = 0
                state["note"] = "listing incomplete (quarantined page): no deletion marked this run"
                vanished: list[str] = []
            else:
                vanished = store.mark_vanished(
                    conn,
                    source=SOURCE,
                    sync_run_id=run.sync_run_id,
                    window_from=date.fromisoformat(state["window_from"]),
                )
                state["marked"] = len(vanished)
            state["done"] = True
            runs.save_progress(conn, run, "sweep", hook.calls.drain(), deletions=len(vanished))
        if vanished:
            log.info(
                "Harvest sweep: %d entries no longer in Harvest marked deleted: %s",
                len(vanished),
                ", ".join(vanished[:20]) + (" ..." if len(vanished) > 20 else ""),
            )
        return runs.summary(run)
    finally:
        hook.close()
        conn.close()


def finish_sync(sync_run_id: int, settings: SyncSettings) -> dict[str, Any]:
    conn, run = _open(sync_run_id)
    try:
        if run.status != "running":
            return runs.summary(run)
        entries = run.phase("entries")
        sweep = run.phase("sweep")
        reference = run.phase("reference")
        if not (entries.get("done") and reference.get("done") and (sweep.get("done") or sweep.get("skipped"))):
            raise RuntimeError(f"sync run {sync_run_id}: finish called before every phase completed")
        from closeout.trackers.expenses import harvest as expenses  # the expenses phase and its cursor

        partial = bool(entries.get("partial") or sweep.get("partial") or expenses.phase_partial(run))
        overlap = timedelta(minutes=settings.overlap_minutes)
        cursor = dict(run.cursor_in)
        cursor.update(expenses.cursor_after(run, overlap))
        if not entries.get("partial") and entries.get("max_updated_at"):
            cursor["entries_since"] = _minus(entries["max_updated_at"], overlap)
        if reference.get("max_updated_at"):
            cursor["reference_since"] = _minus(reference["max_updated_at"], overlap)
        if entries.get("partial") and run.mode == "full":
            cursor.pop("entries_since", None)  # an incomplete census is redone in full
        sweep_completed = bool(
            (sweep.get("census") and not entries.get("partial")) or (sweep.get("done") and not sweep.get("partial"))
        )
        runs.finish(
            conn, run, status="partial" if partial else "succeeded", cursor=cursor, sweep_completed=sweep_completed
        )
        log.info("Harvest sync run %s finished: %s", run.sync_run_id, runs.summary(run))
        return runs.summary(run)
    finally:
        conn.close()


def _minus(timestamp: str, delta: timedelta) -> str:
    return (datetime.fromisoformat(timestamp) - delta).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_all(airflow_run_id: str | None = None, settings: SyncSettings | None = None) -> dict[str, Any]:
    """All phases in order, outside Airflow (benchmarks, the demo's warm-up, ad-hoc backfills)."""
    settings = settings or SyncSettings()
    sync_run_id = begin_sync(airflow_run_id, settings)["sync_run_id"]
    sync_reference(sync_run_id, settings)
    sync_entries(sync_run_id, settings)
    from closeout.trackers.expenses import harvest as expenses

    expenses.sync_expenses(sync_run_id, settings)
    sweep_deletions(sync_run_id, settings)
    return finish_sync(sync_run_id, settings)
