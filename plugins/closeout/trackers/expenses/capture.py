"""The expense page loop: each page is committed together with its checkpoint, so a killed run resumes at
the first page it had not committed, and a spent request budget pauses instead of failing.

The time entry loop (``closeout.trackers.pipeline.drain``) is the model; it is bound to the time entry
store, so expenses have this twin bound to theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from closeout.trackers import runs
from closeout.trackers.expenses import store
from closeout.trackers.pipeline import Page
from closeout.trackers.records import Currencies, Problem
from closeout.trackers.runs import SyncRun
from closeout.trackers.transport import BudgetExhausted, CallLog

log = logging.getLogger(__name__)


def drain(
    conn: psycopg.Connection,
    run: SyncRun,
    *,
    phase: str,
    state: dict[str, Any],
    pages: Callable[[Any], Iterator[Page]],
    normalize: store.ExpenseNormalizer,
    currencies: Currencies,
    calls: CallLog,
    track_seen: bool,
) -> bool:
    """Page through one expense listing; True when complete, False when the budget ran out first."""
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
                    result = store.ExpensePage(quarantined=1)
                    state["partial"] = True
                else:
                    result = store.apply_expenses(conn, source=run.source, sync_run_id=run.sync_run_id,
                                                  items=page.items, currencies=currencies, normalize=normalize,
                                                  url=page.url, track_seen=track_seen)  # fmt: skip
                if result.max_updated_at and (state.get("max_updated_at") or "") < result.max_updated_at:
                    state["max_updated_at"] = result.max_updated_at
                if page.server_time and "server_time_first" not in state:
                    state["server_time_first"] = page.server_time.isoformat()
                if result.duplicates:
                    state["duplicates"] = state.get("duplicates", 0) + result.duplicates
                state["pages"] = state.get("pages", 0) + 1
                state["next"] = page.next
                state["done"] = page.next is None
                runs.save_progress(conn, run, phase, calls.drain(), records=result.records,
                                   versions=result.versions, quarantined=result.quarantined)  # fmt: skip
            log.info("%s %s: page %d, %d expenses, %d new versions, %d quarantined", run.source, phase,
                     page.number, result.records, result.versions, result.quarantined)  # fmt: skip
    except BudgetExhausted as exc:
        state["paused"] = str(exc)
        with conn.transaction():
            runs.save_progress(conn, run, phase, calls.drain())
        log.warning("%s %s: %s; the next run continues from page %d", run.source, phase, exc,
                    state.get("pages", 0) + 1)  # fmt: skip
        return False
    return True
