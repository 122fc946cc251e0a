"""The write-back's own outbox: every write to a tracker is a row in ``closeout_data.tracker_writebacks``.

planned (intent recorded) -> sent (committed just before the call) -> done | failed | gap. A row found ``sent``
means a worker died or lost the answer between the call and the record: the caller must look the object up in
the tracker before it may send again. Request and response columns hold summaries (ids, counts, amounts in
minor units), never headers or tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from closeout.paths import load_sql


@dataclass
class Row:
    """One write-back row as planned (or found)."""

    writeback_id: int
    status: str
    external_id: str | None
    attempts: int
    remirrors: int


def plan(conn: psycopg.Connection, *, source: str, object_kind: str, closeout_ref: str, invoice_id: str,
         writeback_key: str, request: dict[str, Any] | None = None) -> Row:  # fmt: skip
    """The row of this write, created as 'planned' if it is new (an existing row is returned unchanged)."""
    found = conn.execute(load_sql("writeback/plan.sql"), {
        "source": source, "object_kind": object_kind, "closeout_ref": closeout_ref, "invoice_id": invoice_id,
        "writeback_key": writeback_key, "request": Jsonb(request or {})}).fetchone()  # fmt: skip
    assert found is not None
    return Row(*found)


def mark_sent(conn: psycopg.Connection, row: Row, *, method: str, request: dict[str, Any]) -> None:
    """Committed before the call: from here on a lost answer is resolved by a lookup, never by resending."""
    conn.execute(load_sql("writeback/mark_sent.sql"),
                 {"writeback_id": row.writeback_id, "method": method, "request": Jsonb(request)})  # fmt: skip
    conn.commit()


def complete(conn: psycopg.Connection, row: Row, *, status: str, external_id: str | None = None,
             response: dict[str, Any] | None = None, reason: str | None = None, method: str | None = None) -> None:
    """The outcome; committed by the caller together with anything recorded alongside (gaps, events)."""
    conn.execute(load_sql("writeback/complete.sql"), {
        "writeback_id": row.writeback_id, "status": status, "external_id": external_id,
        "response": Jsonb(response) if response is not None else None, "reason": reason, "method": method})  # fmt: skip


def event(conn: psycopg.Connection, row: Row, name: str, detail: str) -> None:
    conn.execute(load_sql("writeback/event.sql"), {"writeback_id": row.writeback_id, "event": name, "detail": detail})


def record_gaps(conn: psycopg.Connection, *, source: str, invoice_id: str, items: list[tuple[str, str]],
                reason: str) -> int:  # fmt: skip
    """One 'gap' row per (item_kind, source_id) the tracker still shows unbilled, with the reason."""
    if not items:
        return 0
    refs = [f"{invoice_id}/{kind}:{source_id}" for kind, source_id in items]
    cur = conn.execute(load_sql("writeback/record_gaps.sql"), {
        "source": source, "invoice_id": invoice_id, "reason": reason, "refs": refs,
        "kinds": [k for k, _ in items], "ids": [i for _, i in items]})  # fmt: skip
    return cur.rowcount
