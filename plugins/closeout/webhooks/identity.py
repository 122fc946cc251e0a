"""What makes two webhook deliveries the same event, when the vendor gives the event no id.

Clockify's webhooks carry no event id and no change timestamp (a time entry has no ``updatedAt``), and
``Clockify-Webhook-Delivery-Id`` is not a Clockify header (our sandbox adds one; a replayer can put any
value there). So an event is identified by its content: the event type, the object it is about and the
object's state as sent. The body is canonicalised (keys sorted, no whitespace) first, so a replay that
merely re-serialises the JSON is still recognised.

The inbox treats a delivery as a replay when its content is the content of the latest event stored for
the same object: nothing has happened to the object since. Content alone would not do: an entry edited
A -> B -> A sends a third event identical to the first, and that one is news.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_key(event_type: str, object_id: str, body: dict[str, Any]) -> str:
    """A hex SHA-256 over the event type, the object id and the canonical JSON of the object."""
    canonical = json.dumps([event_type, object_id, body], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
