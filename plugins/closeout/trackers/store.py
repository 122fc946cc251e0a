"""The versioned entry store: stage a page with COPY, merge it with set-based SQL, quarantine the rest.

One page is one transaction together with the sync checkpoint (see ``runs.save_progress``): a crash
loses at most the page in flight, and a retry re-reads exactly that page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from closeout.paths import load_sql
from closeout.sanitize import escape_text, printable_raw, text_problem
from closeout.trackers.records import ENTRY_COLUMNS, ENTRY_COPY_TYPES, Currencies, EntryRow, Problem
from closeout.trackers.vetting import Repair, vet_entities, vet_rows

Normalizer = Callable[[Iterable[Any], Currencies], tuple[list[EntryRow], list[Problem], list[str]]]

_COPY_STAGE = f"COPY stage_time_entries ({', '.join(ENTRY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


@dataclass
class PageResult:
    records: int = 0
    versions: int = 0
    quarantined: int = 0
    max_updated_at: str | None = None
    duplicates: int = 0  # rows of the page dropped because a later row of the same id won
    repaired: int = 0  # free-text fields cleaned before storing (closeout.input_repairs)


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
    """Stage, merge and quarantine one page inside the caller's transaction.

    Every record is accounted for: ``records`` = rows stored (or unchanged) + ``quarantined`` +
    ``duplicates``. What Postgres would refuse never reaches it (``vetting``); should it refuse something
    anyway, the page is merged again row by row and only the refused rows are quarantined.
    """
    rows, problems, seen = normalize(items, currencies)
    result = PageResult(records=len(rows) + len(problems))
    vetted = vet_rows(rows)
    rows, problems = vetted.rows, [*problems, *vetted.problems]
    result.duplicates = vetted.duplicates
    if rows:
        refused = _stage_and_merge(conn, source=source, sync_run_id=sync_run_id, rows=rows, result=result)
        if refused:
            problems.extend(refused)
            refused_ids = {p.source_id for p in refused}
            rows = [row for row in rows if row.source_id not in refused_ids]
        stamps = [row.source_updated_at for row in rows if row.source_updated_at is not None]
        result.max_updated_at = max(stamps).isoformat() if stamps else None
    result.quarantined = len(problems)
    if problems:
        quarantine(conn, source=source, sync_run_id=sync_run_id, problems=problems, url=url)
    if vetted.repairs:
        record_repairs(conn, source=source, sync_run_id=sync_run_id, repairs=vetted.repairs)
        result.repaired = len(vetted.repairs)
    if track_seen:
        seen = [source_id for source_id in seen if text_problem(source_id) is None]  # such an id is never stored
    if track_seen and seen:
        conn.execute(load_sql("sync/record_sweep_seen.sql"), {"sync_run_id": sync_run_id, "ids": seen})
    return result


_REFUSALS = (psycopg.DataError, psycopg.errors.InvalidTextRepresentation, psycopg.errors.CharacterNotInRepertoire,
             UnicodeEncodeError)


def _stage_and_merge(
    conn: psycopg.Connection, *, source: str, sync_run_id: int, rows: list[EntryRow], result: PageResult
) -> list[Problem]:
    """COPY + merge the page under a savepoint; on a refusal, row by row so only the refused rows stay out."""
    try:
        with conn.transaction():
            result.versions = _merge(conn, source, sync_run_id, rows)
        return []
    except _REFUSALS as exc:
        first_error = exc
    refused: list[Problem] = []
    result.versions = 0
    for row in rows:
        try:
            with conn.transaction():
                conn.execute("TRUNCATE stage_time_entries")
                result.versions += _merge(conn, source, sync_run_id, [row])
        except _REFUSALS as exc:
            reason = f"refused by the warehouse: {type(exc).__name__}: {escape_text(str(exc))[:300]}"
            raw = {name: None if value is None else str(value) for name, value in row._asdict().items()}
            refused.append(Problem("time_entry", row.source_id, "(record)", reason, raw))
    if not refused:  # the page failed but no single row does: not a data problem, let it fail loudly
        raise first_error
    return refused


def _merge(conn: psycopg.Connection, source: str, sync_run_id: int, rows: list[EntryRow]) -> int:
    with conn.cursor().copy(_COPY_STAGE) as copy:
        copy.set_types(ENTRY_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
    versions = len(
        conn.execute(load_sql("sync/merge_time_entries.sql"), {"source": source, "sync_run_id": sync_run_id}).fetchall()
    )
    conn.execute(load_sql("sync/resolve_quarantine.sql"), {"source": source, "entity": "time_entry"})
    conn.execute("TRUNCATE stage_time_entries")
    return versions


def record_repairs(
    conn: psycopg.Connection, *, source: str, sync_run_id: int | None, repairs: Sequence[Repair]
) -> None:
    """Note every cleaned free-text field (one row per record, field and change; seen again: counted)."""
    with conn.cursor() as cur:
        cur.executemany(
            load_sql("sync/record_repair.sql"),
            [{"source": source, "entity": r.entity, "source_id": escape_text(r.source_id) if r.source_id else None,
              "field": escape_text(r.field), "change": r.change, "sync_run_id": sync_run_id}
             for r in repairs],
        )  # fmt: skip


def quarantine(
    conn: psycopg.Connection, *, source: str, sync_run_id: int, problems: Sequence[Problem], url: str | None
) -> None:
    """One row per distinct bad payload and reason. Every text is escaped first: the record is here because
    it may hold what Postgres refuses, and the quarantine must never be the thing that fails."""
    params = []
    for problem in problems:
        raw = printable_raw(problem.raw)
        params.append(
            {
                "source": source,
                "entity": problem.entity,
                "source_id": escape_text(problem.source_id) if problem.source_id is not None else None,
                "field": escape_text(problem.field),
                "reason": escape_text(problem.reason),
                "raw": raw,
                "raw_hash": hashlib.sha256(raw.encode()).hexdigest(),
                "url": escape_text(url) if url is not None else None,
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
) -> int:
    """Upsert what Postgres will take; quarantine the rest (returns how many were quarantined)."""
    vetted = vet_entities(kind, rows)
    if vetted.rows:
        conn.execute(
            load_sql("sync/upsert_entities.sql"),
            {"source": source, "kind": kind, "sync_run_id": sync_run_id,
             "rows": json.dumps(vetted.rows, default=str)},
        )  # fmt: skip
    if vetted.problems:
        quarantine(conn, source=source, sync_run_id=sync_run_id, problems=vetted.problems, url=kind)
    if vetted.repairs:
        record_repairs(conn, source=source, sync_run_id=sync_run_id, repairs=vetted.repairs)
    return len(vetted.problems)


def write_reference(
    conn: psycopg.Connection, *, source: str, sync_run_id: int,
    batches: Sequence[tuple[str, Sequence[dict[str, Any]], Sequence[Problem]]],
) -> int:  # fmt: skip
    """Reference data of one read (kind, rows, problems per kind) changes together or not at all;
    returns how many records were quarantined."""
    quarantined = 0
    with conn.transaction():
        for kind, rows, problems in batches:
            quarantined += upsert_entities(conn, source=source, kind=kind, sync_run_id=sync_run_id, rows=rows)
            if problems:
                quarantine(conn, source=source, sync_run_id=sync_run_id, problems=problems, url=kind)
                quarantined += len(problems)
    return quarantined


def workspace_payload(conn: psycopg.Connection, source: str) -> dict[str, Any]:
    """The tracker's workspace as last read (rounding, default currency); {} before the first read."""
    row = conn.execute(
        "SELECT payload FROM closeout_data.tracker_entities WHERE source = %s AND kind = 'workspace' LIMIT 1",
        (source,),
    ).fetchone()
    return row[0] if row else {}
