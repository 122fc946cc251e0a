"""The webhook inbox: raw events, unique per (vendor, event id); insert-or-ignore."""

from __future__ import annotations

import json
from collections.abc import Mapping

from closeout.warehouse.db import connect

# Headers worth keeping for audit; never the signature itself.
_KEPT_HEADERS = ("content-type", "user-agent", "clockify-webhook-event-type", "clockify-webhook-id",
                 "clockify-webhook-delivery-id")  # fmt: skip


def store_event(vendor: str, event_id: str, event_type: str, headers: Mapping[str, str], body: bytes) -> bool:
    """True if stored now, False if this event id was already in the inbox (a redelivery)."""
    kept = {k: v for k, v in ((k.lower(), v) for k, v in headers.items()) if k in _KEPT_HEADERS}
    with connect(autocommit=True) as conn:
        row = conn.execute(
            """INSERT INTO closeout_data.webhook_inbox (vendor, event_id, event_type, headers, body)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (vendor, event_id) DO NOTHING
               RETURNING inbox_id""",
            (vendor, event_id, event_type, json.dumps(kept), body.decode("utf-8")),
        ).fetchone()
    return row is not None
