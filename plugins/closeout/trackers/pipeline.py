"""The capture loop every tracker shares: open a sync run, page through a listing, commit each page
with its checkpoint, and stop cleanly when the tracker's request budget is spent.

A tracker supplies three things: a page source (``pages(resume_token) -> Iterator[Page]``, where
the token is whatever lets its API continue after a page: a URL, a cursor pair, a page number), a
normaliser (vendor JSON -> ``EntryRow`` or ``Problem``), and the listing parameters. Everything
that makes capture safe - page + checkpoint in one transaction, quarantine, seen-id tracking for
deletion sweeps, budget pauses - lives here once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from closeout.trackers import identity, runs, store
from closeout.trackers.records import Currencies, Problem
from closeout.trackers.runs import SyncRun
from closeout.trackers.settings import SyncSettings
from closeout.trackers.transport import BudgetExhausted, CallLog

__all__ = ["BudgetExhausted", "Page", "begin", "drain", "open_run"]
from closeout.warehouse.db import connect
from closeout.warehouse.migrations import ensure_schema

log = logging.getLogger(__name__)


@dataclass
class Page:
    """One page of a listing. ``items`` is None when the body could not be read (``error`` says why);
    ``next`` is the token that continues after this page (None: this was the last one)."""

    url: str
    number: int
    items: list[Any] | None
    next: Any
    raw: bytes
    error: str | None = None
    server_time: datetime | None = None
    total: int | None = None


def open_run(source: str, sync_run_id: int) -> tuple[psycopg.Connection, SyncRun]:
    """A connection holding the tracker's sync lock, and the run it works on."""
    conn = connect(autocommit=True)  # explicit conn.transaction() blocks are the unit of work
    try:
        # A page and its checkpoint commit together, so a commit lost in a crash loses both and the
        # page is simply read again: waiting for the WAL flush buys nothing here.
        conn.execute("SET synchronous_commit = off")
        runs.acquire_source_lock(conn, source)
        run = runs.load(conn, sync_run_id)
        store.prepare_session(conn)
    except BaseException:
        conn.close()
        raise
    return conn, run


def begin(
    source: str,
    airflow_run_id: str | None,
    settings: SyncSettings,
    *,
    census_phase: str | None,
    cursor_key: str = "entries_since",
) -> dict[str, Any]:
    """Migrate, then adopt the tracker's unfinished run or start a new one.

    A first full sync into an empty warehouse is a census: the deletion sweep (``census_phase``) is
    skipped for it, because there is nothing yet that could have been deleted.
    """
    with connect(autocommit=True) as conn:
        ensure_schema(conn)  # cached per process: refuses an older/newer schema (migrates only if auto-migrate)
        identity.apply_from_variable(conn)
        runs.acquire_source_lock(conn, source)
        run = runs.begin(conn, source, airflow_run_id, full_refresh=settings.full_refresh, cursor_key=cursor_key)
        if census_phase and run.mode == "full" and not run.resumed:
            (heads,) = conn.execute(
                "SELECT count(*) FROM closeout_data.time_entry_heads WHERE source = %s", (source,)
            ).fetchone()
            if heads == 0:
                run.phase(census_phase).update(skipped="first full sync is a complete census", census=True)
                with conn.transaction():
                    runs.save_progress(conn, run, "begin", [])
        log.info("%s sync run %s: %s%s", source, run.sync_run_id, run.mode, " (resumed)" if run.resumed else "")
        return runs.summary(run)


def drain(
    conn: psycopg.Connection,
    run: SyncRun,
    *,
    phase: str,
    state: dict[str, Any],
    pages: Callable[[Any], Iterator[Page]],
    normalize: store.Normalizer,
    currencies: Currencies,
    calls: CallLog,
    track_seen: bool,
) -> bool:
    """Page through one listing, committing each page together with the checkpoint ``state``.

    Returns False when the budget ran out first (``state['paused']`` says why; the next attempt
    continues from the last committed page), True when the listing is complete.
    """
    if state.get("done"):
        return True
    state.pop("paused", None)
    try:
        for page in pages(state.get("next")):
            with conn.transaction():
                if page.items is None:
                    problem = Problem("page", None, "body", page.error or "malformed",
                                      page.raw.decode("utf-8", errors="replace"))  # fmt: skip
                    store.quarantine(conn, source=run.source, sync_run_id=run.sync_run_id, problems=[problem],
                                     url=page.url)  # fmt: skip
                    result = store.PageResult(quarantined=1)
                    state["partial"] = True
                else:
                    result = store.apply_entries(conn, source=run.source, sync_run_id=run.sync_run_id,
                                                 items=page.items, currencies=currencies, normalize=normalize,
                                                 url=page.url, track_seen=track_seen)  # fmt: skip
                if result.max_updated_at and (state.get("max_updated_at") or "") < result.max_updated_at:
                    state["max_updated_at"] = result.max_updated_at
                if page.server_time and "server_time_first" not in state:
                    state["server_time_first"] = page.server_time.isoformat()
                for counter in ("duplicates", "repaired"):  # reported with the run (checkpoint phase state)
                    if getattr(result, counter):
                        state[counter] = state.get(counter, 0) + getattr(result, counter)
                state["pages"] = state.get("pages", 0) + 1
                state["next"] = page.next
                state["done"] = page.next is None
                runs.save_progress(conn, run, phase, calls.drain(), records=result.records,
                                   versions=result.versions, quarantined=result.quarantined)  # fmt: skip
            log.info("%s %s: page %d, %d records, %d new versions, %d quarantined, %d duplicate ids, %d repaired",
                     run.source, phase, page.number, result.records, result.versions, result.quarantined,
                     result.duplicates, result.repaired)  # fmt: skip
    except BudgetExhausted as exc:
        state["paused"] = str(exc)
        with conn.transaction():
            runs.save_progress(conn, run, phase, calls.drain())
        log.warning("%s %s: %s; the next run continues from page %d", run.source, phase, exc,
                    state.get("pages", 0) + 1)  # fmt: skip
        return False
    return True
