"""Import a tracker's historical detailed exports into the same versioned contract as the syncs.

Two passes over the files. The first maps every row (user by email, or by name where the export has
no email; project by client and project name; both from the reference data the tracker's sync
captured) and counts per entity; if any row cannot be mapped or read, the import is *rejected* -
nothing is imported, and every such row is listed with file, line, field and reason - unless
``accept_unmapped`` is given with a reason, which is recorded. The second pass imports the mapped rows.

Identity and idempotency: exports carry no entry ids, so each row gets ``csv:<hash>`` from its mapped
content and its position among identical rows; importing the same files again writes nothing new.
Double billing guard: rows dated on or after ``cutoff`` (by default the first day the tracker's API
sync holds) are counted as covered by the sync and not imported.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from closeout.params import ParamError, confined_files, cutoff_param
from closeout.sanitize import escape_text
from closeout.trackers import runs, store
from closeout.trackers.history.exports import TRACKERS, ExportUnreadable, HistoryRow, read_export
from closeout.trackers.records import Currencies, EntryRow, Problem
from closeout.warehouse.db import connect
from closeout.warehouse.migrations import ensure_schema

log = logging.getLogger(__name__)
CHUNK = 2000


class ImportRejected(RuntimeError):
    """The export does not tie out (unmapped or unreadable rows) and was not accepted as such."""


@dataclass
class Directory:
    """Reference data of one tracker, keyed the way exports name things."""

    users_by_email: dict[str, str] = field(default_factory=dict)
    users_by_name: dict[str, str] = field(default_factory=dict)
    projects: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (client, project) -> ids
    tasks: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.users_by_email or self.users_by_name) or not self.projects


def _norm(value: str | None) -> str:
    return " ".join((value or "").split()).casefold()


def load_directory(conn: psycopg.Connection, source: str) -> Directory:
    entities = conn.execute(
        "SELECT kind, source_id, payload FROM closeout_data.tracker_entities WHERE source = %s", (source,)
    ).fetchall()
    clients = {sid: p.get("name") for kind, sid, p in entities if kind == "client"}
    directory = Directory()
    for kind, sid, p in entities:
        if kind == "user":
            if p.get("email"):
                directory.users_by_email[_norm(p["email"])] = sid
            name = (
                p.get("fullname")
                or p.get("name")
                or " ".join(x for x in (p.get("first_name"), p.get("last_name")) if x)
            )
            if name:
                directory.users_by_name[_norm(name)] = sid
        elif kind == "project":
            client_obj = p.get("client") if isinstance(p.get("client"), dict) else {}
            client_id = client_obj.get("id") or p.get("client_id") or p.get("clientId")
            client_name = client_obj.get("name") or p.get("clientName") or clients.get(str(client_id))
            key = (_norm(client_name), _norm(p.get("name")))
            directory.projects[key] = (sid, str(client_id) if client_id else "none")
        elif kind == "task":
            directory.tasks[_norm(p.get("name"))] = sid
    return directory


@dataclass
class Mapped:
    row: HistoryRow
    user: str
    project: str
    client: str
    task: str | None


def _map(row: HistoryRow, directory: Directory) -> tuple[Mapped | None, list[tuple[str, str | None, str]]]:
    problems: list[tuple[str, str | None, str]] = []
    user = None
    if row.user_email:
        user = directory.users_by_email.get(_norm(row.user_email))
    if user is None and row.user_name:
        user = directory.users_by_name.get(_norm(row.user_name))
    if user is None:
        problems.append(("user", row.user_email or row.user_name, "unknown user or email"))
    project = directory.projects.get((_norm(row.client), _norm(row.project)))
    if project is None:
        problems.append(("project", f"{row.client or ''} / {row.project or ''}", "unknown project"))
    if problems:
        return None, problems
    assert user is not None and project is not None
    return Mapped(row, user, project[0], project[1], directory.tasks.get(_norm(row.task)) if row.task else None), []


def _entry_id(source: str, m: Mapped, occurrence: int) -> str:
    r = m.row
    identity = "|".join(str(x) for x in (source, r.spent_date, m.user, m.project, m.task, r.notes, r.hours,
                                          r.rounded_hours, r.billable, r.rate, r.currency, occurrence))  # fmt: skip
    return "csv:" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def _entry_row(source_id: str, m: Mapped, currency: str) -> EntryRow:
    r = m.row
    return EntryRow(source_id, m.client, m.project, m.task, m.user, r.spent_date, r.hours, r.rounded_hours,
                    r.billable, r.approved, r.invoiced, None, True, False, r.rate, currency, r.notes, None,
                    None)  # fmt: skip


def resolve_cutoff(conn: psycopg.Connection, source: str, cutoff: str | None) -> date | None:
    if cutoff in (None, "", "none"):
        return None
    if cutoff != "auto":
        return date.fromisoformat(cutoff)
    (first,) = conn.execute(
        """SELECT min(h.spent_date) FROM closeout_data.time_entry_heads h
           WHERE h.source = %s AND h.source_id NOT LIKE 'csv:%%'""", (source,)).fetchone()  # fmt: skip
    return first


def run_import(
    source: str,
    location: str,
    *,
    accept_unmapped: bool = False,
    reason: str | None = None,
    cutoff: str | None = "auto",
    airflow_run_id: str | None = None,
) -> dict[str, Any]:
    if source not in TRACKERS:
        raise ParamError("tracker", source, f"one of {', '.join(TRACKERS)}")
    if accept_unmapped and not (reason or "").strip():
        raise ParamError("reason", reason, "accept_unmapped needs a reason (it is recorded with the import)")
    cutoff = cutoff_param("cutoff", cutoff)
    files = confined_files("path", location)  # only inside the import location (CLOSEOUT_IMPORT_URL)
    with connect(autocommit=True) as conn:
        ensure_schema(conn)
        runs.acquire_source_lock(conn, source)  # no sync of this tracker while its history goes in
        directory = load_directory(conn, source)
        if directory.empty:
            raise ImportRejected(f"no {source} users or projects in the warehouse: run closeout_sync_{source} "
                                 "first, so the export can be mapped")  # fmt: skip
        currencies = store.known_currencies(conn)
        first_synced = resolve_cutoff(conn, source, cutoff)
        (import_id,) = conn.execute(
            """INSERT INTO closeout_data.history_imports (source, files, status, cutoff, airflow_run_id)
               VALUES (%s, %s, 'running', %s, %s) RETURNING import_id""",
            (source, Jsonb([str(f) for f in files]), first_synced, airflow_run_id)).fetchone()  # fmt: skip
        try:
            counts, unmapped = _survey(files, source, directory, currencies, first_synced)
        except ExportUnreadable:  # not UTF-8: nothing is imported, the import is recorded as rejected
            _close(conn, import_id, "rejected", {}, None)
            raise
        _record_unmapped(conn, import_id, unmapped)
        ties_out = not unmapped
        if not ties_out and not accept_unmapped:
            _close(conn, import_id, "rejected", counts, None)
            raise ImportRejected(
                f"{source} export does not tie out: {len(unmapped)} rows could not be mapped or read "
                f"(see closeout.history_unmapped, import {import_id}); fix the reference data or pass "
                "accept_unmapped with a reason"
            )
        counts["time_entries"].update(_load(conn, import_id, files, source, directory, currencies, first_synced))
        expected = counts["time_entries"]["to_import"]
        if counts["time_entries"]["in_warehouse"] != expected:
            _close(conn, import_id, "failed", counts, reason)
            raise RuntimeError(f"import {import_id}: {counts['time_entries']['in_warehouse']} entries in the "
                               f"warehouse for {expected} imported rows")  # fmt: skip
        _close(conn, import_id, "imported", counts, reason if not ties_out else None)
        log.info("history import %s (%s): %s", import_id, source, json.dumps(counts))
        return {"import_id": import_id, "status": "imported", "counts": counts, "unmapped": len(unmapped)}


def _rows(files: Iterable[Any], source: str) -> Iterable[HistoryRow | tuple[str, int, dict, Any]]:
    for path in files:
        for item in read_export(source, path):
            yield item if isinstance(item, HistoryRow) else (path.name, *item)


def _survey(files: list[Any], source: str, directory: Directory, currencies: Currencies,
            cutoff: date | None) -> tuple[dict[str, Any], list[tuple]]:  # fmt: skip
    rows = users_seen = projects_seen = 0
    covered = to_import = 0
    users, users_ok, projects, projects_ok = set(), set(), set(), set()
    unmapped: list[tuple] = []
    for item in _rows(files, source):
        rows += 1
        if not isinstance(item, HistoryRow):
            file, line, raw, exc = item
            unmapped.append((file, line, exc.field, None, exc.reason, raw))
            continue
        user_label = item.user_email or item.user_name or ""
        project_label = (item.client or "", item.project or "")
        users.add(user_label)
        projects.add(project_label)
        _mapped, problems = _map(item, directory)
        currency = (item.currency or "").upper()
        if currency not in currencies:
            problems.append(("currency", item.currency, "unknown or missing currency"))
        if problems:
            unmapped.extend((item.file, item.line, f, v, r, item.raw) for f, v, r in problems)
            continue
        users_ok.add(user_label)
        projects_ok.add(project_label)
        if cutoff is not None and item.spent_date >= cutoff:
            covered += 1
        else:
            to_import += 1
    users_seen, projects_seen = len(users), len(projects)
    bad_rows = len({(u[0], u[1]) for u in unmapped})
    counts = {
        "time_entries": {"in_export": rows, "to_import": to_import, "covered_by_sync": covered,
                         "unmapped_or_unreadable": bad_rows},
        "users": {"in_export": users_seen, "mapped": len(users_ok), "unmapped": users_seen - len(users_ok)},
        "projects": {"in_export": projects_seen, "mapped": len(projects_ok),
                     "unmapped": projects_seen - len(projects_ok)},
    }  # fmt: skip
    assert rows == to_import + covered + bad_rows, counts  # every row is accounted for exactly once
    return counts, unmapped


def _load(conn: psycopg.Connection, import_id: int, files: list[Any], source: str, directory: Directory,
          currencies: Currencies, cutoff: date | None) -> dict[str, Any]:  # fmt: skip
    run_id = _import_run(conn, source)
    conn.execute("UPDATE closeout_data.history_imports SET sync_run_id = %s WHERE import_id = %s", (run_id, import_id))
    store.prepare_session(conn)
    occurrences: Counter[str] = Counter()
    batch: list[EntryRow] = []
    ids: list[str] = []
    written = 0

    def passthrough(items: Iterable[Any], _currencies: Currencies) -> tuple[list[EntryRow], list[Problem], list[str]]:
        rows = list(items)
        return rows, [], [r.source_id for r in rows]

    def flush() -> None:
        nonlocal written
        if batch:
            with conn.transaction():
                written += store.apply_entries(conn, source=source, sync_run_id=run_id, items=list(batch),
                                               currencies=currencies, normalize=passthrough,
                                               url=f"history import {import_id}").versions  # fmt: skip
            batch.clear()

    for item in _rows(files, source):
        if not isinstance(item, HistoryRow) or (cutoff is not None and item.spent_date >= cutoff):
            continue
        mapped, problems = _map(item, directory)
        currency = (item.currency or "").upper()
        if mapped is None or problems or currency not in currencies:
            continue
        base = _entry_id(source, mapped, 0)
        occurrences[base] += 1
        source_id = _entry_id(source, mapped, occurrences[base] - 1)
        ids.append(source_id)
        batch.append(_entry_row(source_id, mapped, currency))
        if len(batch) >= CHUNK:
            flush()
    flush()
    (present,) = conn.execute(
        """SELECT count(*) FROM closeout_data.time_entry_heads
           WHERE source = %s AND source_id = ANY(%s) AND deleted_at IS NULL""", (source, ids)).fetchone()  # fmt: skip
    runs.finish(conn, runs.load(conn, run_id), status="succeeded", cursor=None, sweep_completed=False)
    return {"new_versions": written, "already_imported": len(ids) - written, "in_warehouse": present}


def _import_run(conn: psycopg.Connection, source: str) -> int:
    (run_id,) = conn.execute(
        """INSERT INTO closeout_data.sync_runs (source, mode, status) VALUES (%s, 'import', 'running')
           RETURNING sync_run_id""", (source,)).fetchone()  # fmt: skip
    return run_id


def _record_unmapped(conn: psycopg.Connection, import_id: int, unmapped: list[tuple]) -> None:
    if not unmapped:
        return
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.history_unmapped (import_id, file, line, field, value, reason, raw)
               VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
            [(import_id, _storable(f), line, _storable(fld), _storable(v), _storable(r), Jsonb(_storable(raw)))
             for f, line, fld, v, r, raw in unmapped],
        )


def _storable(raw: Any) -> Any:
    """A CSV row as jsonb can hold it: a cell with a NUL or lone surrogate keeps its \\uXXXX escape."""
    if isinstance(raw, dict):
        return {escape_text(str(k)): _storable(v) for k, v in raw.items()}
    return escape_text(raw) if isinstance(raw, str) else raw


def _close(conn: psycopg.Connection, import_id: int, status: str, counts: dict, reason: str | None) -> None:
    conn.execute(
        """UPDATE closeout_data.history_imports
           SET status = %s, counts = %s, accepted_reason = %s, finished_at = clock_timestamp()
           WHERE import_id = %s""",
        (status, Jsonb(counts), reason, import_id),
    )
