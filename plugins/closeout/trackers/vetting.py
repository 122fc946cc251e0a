"""The last gate before a page of entry rows reaches Postgres, whichever normaliser made them.

Normalisers check what they know about their tracker; this gate checks what Postgres will refuse, for
every tracker and the history import alike, so no normaliser's fast path can let one value fail a
whole page:

* identities (entry, client, project, task and user ids, currency, invoice reference) containing a NUL
  or a lone surrogate: the record is quarantined, an id is never altered;
* hours, rounded hours and rates Postgres numeric cannot hold (``1e-100000``), or not finite: quarantined;
* dates outside 2000..2100: quarantined;
* notes (free text) with such characters: cleaned (U+FFFD) and the change recorded as a repair.

Duplicate ids within one page are resolved deterministically: the latest ``source_updated_at`` wins,
ties go to the larger content hash (so the same page always keeps the same row), and the number of
rows dropped this way is reported.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from closeout.sanitize import (
    clean_text,
    escape_text,
    number_problem,
    plausible_instant,
    printable_raw,
    text_problem,
)
from closeout.sanitize.values import first_problem, vet_json
from closeout.trackers.records import EntryRow, Problem

_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_IDENTITY_FIELDS = ("source_id", "client_source_id", "project_source_id", "task_source_id", "user_source_id",
                    "currency", "source_invoice_ref")  # fmt: skip
_NUMBER_FIELDS = ("hours", "rounded_hours", "billable_rate")
_INSTANT_FIELDS = ("spent_date", "source_created_at", "source_updated_at")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_EXPONENT = -30
_FIRST_YEAR, _LAST_YEAR = 2000, 2100  # sanitize.values.EARLIEST / LATEST, read as years for speed


@dataclass(frozen=True)
class Repair:
    """A free-text field cleaned before storing: which record, which field, what changed."""

    entity: str
    source_id: str | None
    field: str
    change: str


@dataclass
class Vetted:
    rows: list[EntryRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)
    duplicates: int = 0


def vet_rows(rows: list[EntryRow]) -> Vetted:
    """Rows Postgres will take (free text cleaned), problems for the rest, one row per id."""
    out = Vetted()
    for row in rows:
        if _plain(row):
            out.rows.append(row)
            continue
        problem, row = _careful(row, out.repairs)
        if problem is not None:
            out.problems.append(problem)
        else:
            out.rows.append(row)
    if len({row.source_id for row in out.rows}) != len(out.rows):
        kept = latest_per_id(out.rows)
        out.duplicates = len(out.rows) - len(kept)
        out.rows = kept
    return out


def _plain(row: EntryRow) -> bool:
    """The common case, decided with C-speed string tests, two Decimal reads per number and year reads
    (a million rows pass here in a full sync). Anything else goes to ``_careful``, which names the reason."""
    text = "".join([row.source_id, row.client_source_id, row.project_source_id, row.task_source_id or "",
                    row.user_source_id, row.currency, row.source_invoice_ref or "", row.notes or ""])  # fmt: skip
    if "\x00" in text or (not text.isascii() and _UNSAFE.search(text) is not None):
        return False
    for number in (row.hours, row.rounded_hours, row.billable_rate):
        if number is not None and not (number.is_finite() and _MIN_EXPONENT <= number.adjusted() < 18):
            return False
    created, updated = row.source_created_at, row.source_updated_at
    return (_FIRST_YEAR <= row.spent_date.year < _LAST_YEAR
            and (created is None or _FIRST_YEAR <= created.year < _LAST_YEAR)
            and (updated is None or _FIRST_YEAR <= updated.year < _LAST_YEAR))  # fmt: skip


def _careful(row: EntryRow, repairs: list[Repair]) -> tuple[Problem | None, EntryRow]:
    raw = {name: _jsonable(value) for name, value in row._asdict().items()}
    source_id = row.source_id if text_problem(row.source_id) is None else None
    for name in _IDENTITY_FIELDS:
        value = getattr(row, name)
        reason = text_problem(value) if isinstance(value, str) else None
        if reason is not None:
            return Problem("time_entry", source_id, name, reason, printable_raw(raw)), row
    for name in _NUMBER_FIELDS:
        reason = number_problem(getattr(row, name))
        if reason is not None:
            return Problem("time_entry", source_id, name, reason, printable_raw(raw)), row
    for name in _INSTANT_FIELDS:
        reason = plausible_instant(getattr(row, name))
        if reason is not None:
            return Problem("time_entry", source_id, name, reason, printable_raw(raw)), row
    if row.notes is not None:
        notes, change = clean_text(row.notes)
        if change is not None:
            repairs.append(Repair("time_entry", row.source_id, "notes", change))
            row = row._replace(notes=notes)
    return None, row


def _jsonable(value: Any) -> Any:
    return value if value is None or isinstance(value, str | bool | int) else str(value)


def latest_per_id(rows: list[EntryRow]) -> list[EntryRow]:
    """One row per id: the latest ``source_updated_at``, ties to the larger content hash. Deterministic
    whatever order the page listed them in (a listing that shifts while paged repeats an entry)."""
    latest: dict[str, tuple[tuple[datetime, str], EntryRow]] = {}
    for row in rows:
        key = (row.source_updated_at or _EPOCH, content_hash(row))
        kept = latest.get(row.source_id)
        if kept is None or key > kept[0]:
            latest[row.source_id] = (key, row)
    return [row for _key, row in latest.values()]


def content_hash(row: EntryRow) -> str:
    return hashlib.sha256(repr(tuple(row)).encode("utf-8", errors="backslashreplace")).hexdigest()


# -- reference data (clients, projects, tasks, users, workspace) ----------------------------------------
@dataclass
class VettedEntities:
    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)


def _entity_identity(key: str) -> bool:
    """Keys of a tracker's reference payload whose text is an identity (never altered)."""
    return key in ("id", "_id", "currency", "workspace_id") or key.endswith(("_id", "Id"))


def vet_entities(kind: str, rows: Sequence[dict[str, Any]]) -> VettedEntities:
    """Entity rows ({source_id, name, currency, is_active, updated_at, payload}) the upsert can take: the
    payload is stored as jsonb and the flags and timestamps are cast, so each is checked here first."""
    out = VettedEntities()
    for row in rows:
        source_id = row.get("source_id")
        safe_id = source_id if isinstance(source_id, str) and text_problem(source_id) is None else None
        payload = row.get("payload")
        problem = first_problem((
            ("id", text_problem(source_id) if isinstance(source_id, str) else "missing"),
            ("currency", text_problem(row["currency"]) if isinstance(row.get("currency"), str) else None),
            ("is_active", None if row.get("is_active") is None or isinstance(row.get("is_active"), bool)
             else f"not true/false: {escape_text(repr(row.get('is_active')))[:80]}"),
            ("updated_at", _timestamp_problem(row.get("updated_at"))),
        ))  # fmt: skip
        verdict = vet_json(payload, _entity_identity) if problem is None else None
        if problem is None and verdict is not None and verdict.reason is not None:
            problem = (verdict.path or "payload", verdict.reason)
        if problem is not None:
            out.problems.append(Problem(kind, safe_id, problem[0], problem[1], printable_raw(payload)))
            continue
        assert verdict is not None
        clean = {**row, "payload": verdict.value}
        out.repairs.extend(Repair(kind, source_id, f"payload.{path}", note) for path, note in verdict.repairs)
        if isinstance(row.get("name"), str):
            name, change = clean_text(row["name"])
            if change is not None:
                out.repairs.append(Repair(kind, source_id, "name", change))
                clean["name"] = name
        out.rows.append(clean)
    return out


def _timestamp_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"not a timestamp: {escape_text(repr(value))[:80]}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"not a timestamp: {escape_text(repr(value))[:80]}"
    if parsed.tzinfo is None:
        return f"timestamp without a time zone: {escape_text(repr(value))[:80]}"
    return plausible_instant(parsed)


def valid_timestamp(value: Any) -> bool:
    """A vendor timestamp string the warehouse stores as is (parseable, with a zone, plausible)."""
    return isinstance(value, str) and _timestamp_problem(value) is None
