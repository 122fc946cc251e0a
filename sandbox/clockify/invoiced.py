"""Clockify's invoiced flag over HTTP: ``PATCH /workspaces/{ws}/time-entries/invoiced``.

Body ``{"timeEntryIds": [...], "invoiced": true|false}``. Every id must be an entry of the workspace, or nothing
changes (400, naming the first unknown id). The flag is visible where Clockify shows it: the detailed report's
``invoicingState`` (and its ``invoicingState`` filter); the REST entry shape carries no invoice reference, and
marking fires no time-entry webhook. The sandbox caps one request at ``MAX_IDS`` ids (Clockify documents no
number; a client must batch anyway), answering 400 above it. Success is ``200`` with an empty body.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.clockify.server import ClockifySandbox

__all__ = ["MAX_IDS", "patch_invoiced"]

MAX_IDS = 1000


def patch_invoiced(sandbox: ClockifySandbox, body: bytes) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Apply one ``PATCH .../time-entries/invoiced`` request to the sandbox's state."""
    from sandbox.clockify.server import _error

    try:
        args: Any = json.loads(body or b"null")
    except ValueError:
        return _error(400, "Malformed JSON request")
    ids = args.get("timeEntryIds") if isinstance(args, dict) else None
    invoiced = args.get("invoiced") if isinstance(args, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return _error(400, "timeEntryIds must be a non-empty list of time entry ids")
    if not isinstance(invoiced, bool):
        return _error(400, "invoiced must be true or false")
    if len(ids) > MAX_IDS:
        return _error(400, f"timeEntryIds: size must be between 1 and {MAX_IDS}")
    with sandbox._lock:
        unknown = next((i for i in ids if i not in sandbox._by_id), None)
        if unknown is not None:
            return _error(400, f"Time entry with id {unknown} doesn't belong to Workspace")
        sandbox.mark_invoiced(list(dict.fromkeys(ids)), invoiced)
    return 200, b"", []
