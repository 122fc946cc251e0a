"""The webhook inbox: raw events, unique per (vendor, event id); insert-or-count-the-redelivery.

Everything here blocks (libpq), so the receiver only ever calls it from its worker pool (offload.py),
and every connection it opens is bounded in time: ``connect_timeout`` for a warehouse that does not
answer, ``statement_timeout`` for one that answers but is stuck (a lock, a full disk). Both failures,
and a warehouse that refuses connections, raise WarehouseUnavailable, which the receiver answers 503
with ``Retry-After``: the vendor keeps the event and delivers it again later.

Events without a vendor event id (Clockify) carry ``object_key`` and ``content_key`` (identity.py):
a delivery whose content equals the latest event stored for the same object is a replay, counted on
that event and not stored again, under whatever delivery id it comes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from closeout.paths import load_sql

# Headers worth keeping for audit; never the signature itself.
_KEPT_HEADERS = ("content-type", "user-agent", "clockify-webhook-event-type", "clockify-webhook-id",
                 "clockify-webhook-delivery-id")  # fmt: skip
_MAX_KEPT_HEADER_CHARS = 512


class WarehouseUnavailable(RuntimeError):
    """The warehouse did not take the event in time (down, unreachable, locked, or its lookup failed)."""


@dataclass(frozen=True)
class InboxEvent:
    """One verified, well-formed delivery. ``event_id`` None: derive it from the content (Clockify)."""

    vendor: str
    event_id: str | None
    event_type: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    object_key: str | None = None
    content_key: str | None = None

    def __post_init__(self) -> None:
        if self.event_id is None and not (self.object_key and self.content_key):
            raise ValueError("an event without an id needs object_key and content_key to be identified")


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The audit headers, printable and bounded: a header is text the sender chose, not ours to trust."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _KEPT_HEADERS:
            clean = "".join(c for c in value if c.isprintable())
            kept[lowered] = clean[:_MAX_KEPT_HEADER_CHARS]
    return kept


class WarehouseInbox:
    """Stores events in ``closeout_data.webhook_inbox`` through the ``closeout_warehouse`` connection."""

    def __init__(self, *, connect_timeout_seconds: int, statement_timeout_ms: int) -> None:
        self.connect_timeout_seconds = connect_timeout_seconds
        self.statement_timeout_ms = statement_timeout_ms

    def connect(self) -> psycopg.Connection:
        from closeout.connections import get_connection
        from closeout.warehouse.db import WAREHOUSE_CONN_ID, conninfo_kwargs

        try:
            kwargs: dict[str, Any] = conninfo_kwargs(get_connection(WAREHOUSE_CONN_ID))
        except Exception as exc:
            raise WarehouseUnavailable(f"connection {WAREHOUSE_CONN_ID!r} could not be read: {exc}") from exc
        # The receiver's own bounds win over the connection's: it must answer the vendor in seconds.
        kwargs["connect_timeout"] = self.connect_timeout_seconds
        timeout = f"-c statement_timeout={self.statement_timeout_ms}"
        kwargs["options"] = f"{kwargs['options']} {timeout}" if kwargs.get("options") else timeout
        kwargs["application_name"] = "closeout webhooks"
        try:
            return psycopg.connect(**kwargs, autocommit=True)
        except psycopg.OperationalError as exc:
            raise WarehouseUnavailable(f"warehouse unreachable: {exc}") from exc

    def __call__(self, event: InboxEvent) -> bool:
        """True if stored now, False if recognised as a redelivery or replay of a stored event."""
        try:
            with self.connect() as conn:
                if event.object_key is None:
                    return _insert(conn, event, event.event_id)
                with conn.transaction():
                    return _store_object_event(conn, event)
        except psycopg.OperationalError as exc:  # includes statement timeouts (QueryCanceled)
            raise WarehouseUnavailable(f"warehouse did not store the event: {exc}") from exc


def _insert(conn: psycopg.Connection, event: InboxEvent, event_id: str | None) -> bool:
    row = conn.execute(
        load_sql("webhooks/store_event.sql"),
        {
            "vendor": event.vendor,
            "event_id": event_id,
            "event_type": event.event_type,
            "headers": json.dumps(kept_headers(event.headers)),
            "body": event.body.decode("utf-8"),
            "object_key": event.object_key,
            "content_key": event.content_key,
        },
    ).fetchone()
    return bool(row and row[1])


def _store_object_event(conn: psycopg.Connection, event: InboxEvent) -> bool:
    keys = {"vendor": event.vendor, "object_key": event.object_key}
    conn.execute(load_sql("webhooks/lock_object.sql"), keys)
    latest = conn.execute(load_sql("webhooks/latest_for_object.sql"), keys).fetchone()
    if latest is not None and latest[1] == event.content_key:
        conn.execute(load_sql("webhooks/count_replay.sql"), {"inbox_id": latest[0]})
        return False
    # Without a delivery id, the event is "this content, following that event": unique, deterministic,
    # and A -> B -> A on one entry stores the second A (it follows B), where a bare hash would clash.
    event_id = event.event_id or f"{event.content_key}@{latest[0] if latest else 0}"
    return _insert(conn, event, event_id)
