"""The versioned entry store: stage a page with COPY, merge it with set-based SQL, quarantine the rest.

One page is one transaction together with the sync checkpoint (see ``runs.save_progress``): a crash
loses at most the page in flight, and a retry re-reads exactly that page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from closeout.paths import load_sql
from closeout.trackers.records import ENTRY_COLUMNS, ENTRY_COPY_TYPES, Currencies, EntryRow, Problem

Normalizer = Callable[[Iterable[Any], Currencies], tuple[list[EntryRow], list[Problem], list[str]]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COPY_STAGE = f"COPY stage_time_entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


@dataclass
class PageResult:
    records: int = 0
    versions: int = 0
    quarantined: int = 0
    max_updated_at: str | None = None


def prepare_session(conn: psycopg.Connection) -> None:
    """Create this session's staging table (temporary: no WAL, private to the connection)."""
    with conn.transaction():
        conn.execute(load_sql("sync/stage_time_entries.sql"))


def known_currencies(conn: psycopg.Connection) -> Currencies:
    """ISO code -> minor-unit exponent, from the warehouse's currency table."""
    return dict(conn.execute("SELECT code, exponent FROM closeout_data.currencies").fetchall())


def apply_entries(
    conn: psycopg.Connection,
    *,
    source: str,
    sync_run_id: int,
    items: Sequence[Any],
    currencies: Currencies,
    normalize: Normalizer,
    url: str,
    track_seen: bool = False,
) -> PageResult:
    """Stage, merge and quarantine one page inside the caller's transaction."""
    rows, problems, seen = normalize(items, currencies)
    result = PageResult(records=len(rows) + len(problems), quarantined=len(problems))
    if len({row.source_id for row in rows}) != len(rows):
        rows = _latest_per_id(rows)
    if rows:
        with conn.cursor().copy(_COPY_STAGE) as copy:
            copy.set_types(ENTRY_COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        result.versions = len(
            conn.execute(
                load_sql("sync/merge_time_entries.sql"), {"source": source, "sync_run_id": sync_run_id}
            ).fetchall()
        )
        conn.execute(load_sql("sync/resolve_quarantine.sql"), {"source": source, "entity": "time_entry"})
        conn.execute("TRUNCATE stage_time_entries")
        stamps = [row.source_updated_at for row in rows if row.source_updated_at is not None]
        result.max_updated_at = max(stamps).isoformat() if stamps else None
    if problems:
        quarantine(conn, source=source, sync_run_id=sync_run_id, problems=problems, url=url)
    if track_seen and seen:
        conn.execute(load_sql("sync/record_sweep_seen.sql"), {"sync_run_id": sync_run_id, "ids": seen})
    return result


def _latest_per_id(rows: list[EntryRow]) -> list[EntryRow]:
    """A listing that shifts while paged can return an entry twice; keep its latest state."""
    latest: dict[str, EntryRow] = {}
    for row in rows:
        kept = latest.get(row.source_id)
        if kept is None or (row.source_updated_at or _EPOCH) >= (kept.source_updated_at or _EPOCH):
            latest[row.source_id] = row
    return list(latest.values())


def quarantine(
    conn: psycopg.Connection, *, source: str, sync_run_id: int, problems: Sequence[Problem], url: str | None
) -> None:
    params = []
    for problem in problems:
        raw = problem.raw if isinstance(problem.raw, str) else json.dumps(problem.raw, default=str, sort_keys=True)
        params.append(
            {
                "source": source,
                "entity": problem.entity,
                "source_id": problem.source_id,
                "field": problem.field,
                "reason": problem.reason,
                "raw": raw,
                "raw_hash": hashlib.sha256(raw.encode()).hexdigest(),
                "url": url,
                "sync_run_id": sync_run_id,
            }
        )
    with conn.cursor() as cur:
        cur.executemany(load_sql("sync/quarantine_record.sql"), params)


def mark_vanished(
    conn: psycopg.Connection, *, source: str, sync_run_id: int, window_from: date, window_to: date | None = None
) -> list[str]:
    """Entries with spent_date in [window_from, window_to] that the run's listings did not return get a
    'deleted' version. Call only after a complete listing of exactly that window."""
    rows = conn.execute(
        load_sql("sync/mark_vanished.sql"),
        {"source": source, "sync_run_id": sync_run_id, "window_from": window_from, "window_to": window_to},
    ).fetchall()
    conn.execute("DELETE FROM closeout_data.sweep_seen WHERE sync_run_id = %s", (sync_run_id,))
    return [source_id for (source_id,) in rows]


def upsert_entities(
    conn: psycopg.Connection, *, source: str, kind: str, sync_run_id: int, rows: Sequence[dict[str, Any]]
) -> None:
    if rows:
        conn.execute(
            load_sql("sync/upsert_entities.sql"),
            {"source": source, "kind": kind, "sync_run_id": sync_run_id, "rows": json.dumps(list(rows), default=str)},
        )


def write_reference(
    conn: psycopg.Connection, *, source: str, sync_run_id: int,
    batches: Sequence[tuple[str, Sequence[dict[str, Any]], Sequence[Problem]]],
) -> None:  # fmt: skip
    """Reference data of one read (kind, rows, problems per kind) changes together or not at all."""
    with conn.transaction():
        for kind, rows, problems in batches:
            upsert_entities(conn, source=source, kind=kind, sync_run_id=sync_run_id, rows=rows)
            if problems:
                quarantine(conn, source=source, sync_run_id=sync_run_id, problems=problems, url=kind)


def workspace_payload(conn: psycopg.Connection, source: str) -> dict[str, Any]:
    """The tracker's workspace as last read (rounding, default currency); {} before the first read."""
    row = conn.execute(
        "SELECT payload FROM closeout_data.tracker_entities WHERE source = %s AND kind = 'workspace' LIMIT 1",
        (source,),
    ).fetchone()
    return row[0] if row else {}
