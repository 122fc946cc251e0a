"""The versioned expense store: stage a page with COPY, merge it with set-based SQL, quarantine the rest.

The same shape as the time entry store (``closeout.trackers.store``): one page is one transaction with
the sync checkpoint, and a page Postgres refuses is merged again row by row so that only the refused
expenses are quarantined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from closeout.paths import load_sql
from closeout.sanitize import escape_text, text_problem
from closeout.trackers.expenses.records import EXPENSE_COLUMNS, EXPENSE_COPY_TYPES, ExpenseRow
from closeout.trackers.records import Currencies, Problem
from closeout.trackers.store import quarantine

ExpenseNormalizer = Callable[[Iterable[Any], Currencies], tuple[list[ExpenseRow], list[Problem], list[str]]]

ENTITY = "expense"
_COPY_STAGE = f"COPY stage_expenses ({', '.join(EXPENSE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_REFUSALS = (psycopg.DataError, psycopg.errors.InvalidTextRepresentation, psycopg.errors.CharacterNotInRepertoire,
             UnicodeEncodeError)  # fmt: skip


@dataclass
class ExpensePage:
    records: int = 0
    versions: int = 0
    quarantined: int = 0
    duplicates: int = 0
    max_updated_at: str | None = None


def prepare_session(conn: psycopg.Connection) -> None:
    """Create this session's expense staging table (temporary, private to the connection)."""
    with conn.transaction():
        conn.execute(load_sql("expenses/stage_expenses.sql"))


def apply_expenses(
    conn: psycopg.Connection,
    *,
    source: str,
    sync_run_id: int,
    items: Sequence[Any],
    currencies: Currencies,
    normalize: ExpenseNormalizer,
    url: str,
    track_seen: bool,
) -> ExpensePage:
    """Stage, merge and quarantine one page inside the caller's transaction; every record is accounted
    for (stored or unchanged, quarantined, or a duplicate id superseded by a later row of the page)."""
    rows, problems, seen = normalize(items, currencies)
    result = ExpensePage(records=len(rows) + len(problems))
    latest: dict[str, ExpenseRow] = {}
    for row in rows:  # one row per id: the last one listed wins, as Harvest's own listing would
        latest[row.source_id] = row
    result.duplicates = len(rows) - len(latest)
    rows = list(latest.values())
    if rows:
        refused = _stage_and_merge(conn, source, sync_run_id, rows, result)
        if refused:
            problems.extend(refused)
            refused_ids = {p.source_id for p in refused}
            rows = [row for row in rows if row.source_id not in refused_ids]
        stamps = [row.source_updated_at for row in rows if row.source_updated_at is not None]
        result.max_updated_at = max(stamps).isoformat() if stamps else None
    result.quarantined = len(problems)
    if problems:
        quarantine(conn, source=source, sync_run_id=sync_run_id, problems=problems, url=url)
    seen = [source_id for source_id in seen if text_problem(source_id) is None]
    if track_seen and seen:
        conn.execute(load_sql("expenses/record_sweep_seen.sql"), {"sync_run_id": sync_run_id, "ids": seen})
    return result


def _stage_and_merge(
    conn: psycopg.Connection, source: str, sync_run_id: int, rows: list[ExpenseRow], result: ExpensePage
) -> list[Problem]:
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
                conn.execute("TRUNCATE stage_expenses")
                result.versions += _merge(conn, source, sync_run_id, [row])
        except _REFUSALS as exc:
            reason = f"refused by the warehouse: {type(exc).__name__}: {escape_text(str(exc))[:300]}"
            raw = {name: None if value is None else str(value) for name, value in row._asdict().items()}
            refused.append(Problem(ENTITY, row.source_id, "(record)", reason, raw))
    if not refused:  # the page failed but no single row does: not a data problem, let it fail loudly
        raise first_error
    return refused


def _merge(conn: psycopg.Connection, source: str, sync_run_id: int, rows: list[ExpenseRow]) -> int:
    with conn.cursor().copy(_COPY_STAGE) as copy:
        copy.set_types(EXPENSE_COPY_TYPES)
        for row in rows:
            copy.write_row(row)
    params = {"source": source, "sync_run_id": sync_run_id}
    versions = len(conn.execute(load_sql("expenses/merge_expenses.sql"), params).fetchall())
    conn.execute(load_sql("expenses/resolve_quarantine.sql"), {"source": source})
    conn.execute("TRUNCATE stage_expenses")
    return versions


def mark_vanished(
    conn: psycopg.Connection, *, source: str, sync_run_id: int, window_from: date, window_to: date | None = None
) -> list[str]:
    """Expenses dated in [window_from, window_to] that the run's sweep did not see get a 'deleted' version.
    Call only after a complete listing of exactly that window."""
    rows = conn.execute(
        load_sql("expenses/mark_vanished_expenses.sql"),
        {"source": source, "sync_run_id": sync_run_id, "window_from": window_from, "window_to": window_to},
    ).fetchall()
    conn.execute("DELETE FROM closeout_data.expense_sweep_seen WHERE sync_run_id = %s", (sync_run_id,))
    return [source_id for (source_id,) in rows]


def has_expenses(conn: psycopg.Connection, source: str) -> bool:
    """Whether the warehouse holds any expense of this tracker (none yet: the first listing is a census)."""
    row = conn.execute("SELECT 1 FROM closeout_data.expense_heads WHERE source = %s LIMIT 1", (source,)).fetchone()
    return row is not None
