"""QuickBooks sandbox: change data capture, deletes, and an accountant's hand in the books.

* ``GET /v3/company/{realm}/cdc?entities=Invoice,Payment&changedSince=<ISO 8601>``: every object of the named
  entities changed at or after ``changedSince`` (by ``MetaData.LastUpdatedTime``), grouped by entity, oldest first,
  deleted objects after the active ones as ``{"status": "Deleted", "domain": "QBO", "Id", "MetaData"}``; at most
  ``MAX_PER_ENTITY`` (1000) objects per entity (``totalCount`` says how many there were); ``changedSince`` older than
  30 days is refused, as Intuit does. The answer is Intuit's ``{"CDCResponse": [{"QueryResponse": [...]}], "time"}``.
* ``POST /v3/company/{realm}/<entity>?operation=delete`` with ``{"Id", "SyncToken"}``: deletes the object (a stale
  SyncToken is refused with 5010), leaving a tombstone CDC reports.
* ``GET /v3/company/{realm}/reports/<name>``: handed to ``sandbox.quickbooks.reports``.

Harness helpers (in process, what a person does in the QuickBooks UI): ``accountant_edits`` changes fields and moves
the SyncToken and LastUpdatedTime on; ``accountant_deletes`` deletes an object (a pushed invoice, a payment).
Whatever entities the company holds are covered: new ones the server learns appear here without a change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.serving import Response

__all__ = ["MAX_LOOKBACK_DAYS", "MAX_PER_ENTITY", "accountant_deletes", "accountant_edits", "changes", "route"]

MAX_LOOKBACK_DAYS = 30
MAX_PER_ENTITY = 1000


def route(sandbox: Any, company: Any, method: str, parts: list[str], params: dict[str, str],
          body: bytes) -> Response:  # fmt: skip
    """The requests the server hands over (``_route``): cdc, reports and ``operation=delete``."""
    from sandbox.quickbooks.server import _ENTITIES, Fault, _body, _ok

    if method == "GET" and parts == ["cdc"]:
        return _ok(changes(sandbox, company, params))
    if method == "GET" and parts[0] == "reports" and len(parts) == 2:
        from sandbox.quickbooks import reports

        return _ok(reports.report(sandbox, company, parts[1], params))
    if method == "POST" and len(parts) == 1 and parts[0] in _ENTITIES:
        entity = _ENTITIES[parts[0]]
        data = _body(body)
        return _ok({entity: _delete(sandbox, company, entity, str(data.get("Id", "")), data.get("SyncToken")),
                    "time": sandbox._stamp()})  # fmt: skip
    raise Fault(404, "610", "Object Not Found", f"unsupported {method} {'/'.join(parts)}")


def tombstones(company: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """entity -> id -> what CDC reports for a deleted object (kept on the company)."""
    store = getattr(company, "tombstones", None)
    if store is None:
        store = {}
        company.tombstones = store
    return store


def parse_time(value: str) -> datetime:
    """Intuit's timestamps (``2026-12-06T12:00:00-08:00``, ``...Z``, a plain date) as aware UTC datetimes."""
    text = value.strip().replace(" ", "+")  # a '+' sent unencoded in a query string arrives as a space
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def changes(sandbox: Any, company: Any, params: dict[str, str]) -> dict[str, Any]:
    """The CDC answer for ``entities`` changed since ``changedSince``."""
    from sandbox.quickbooks.server import Fault

    names = [n.strip() for n in params.get("entities", "").split(",") if n.strip()]
    if not names:
        raise Fault(400, "2010", "Request has invalid or unsupported property", "entities is required",
                    element="entities")  # fmt: skip
    try:
        since = parse_time(params.get("changedSince", ""))
    except ValueError as exc:
        raise Fault(400, "2010", "Request has invalid or unsupported property",
                    f"changedSince {params.get('changedSince')!r} is not a date-time", element="changedSince") from exc
    now = datetime.fromtimestamp(sandbox.now(), UTC)
    if since < now - timedelta(days=MAX_LOOKBACK_DAYS):
        raise Fault(400, "2010", "Request has invalid or unsupported property",
                    f"changedSince may look back at most {MAX_LOOKBACK_DAYS} days", element="changedSince")
    answers = []
    with sandbox._lock:
        by_lower = {e.lower(): e for e in company.objects}
        for name in names:
            entity = by_lower.get(name.lower())
            if entity is None:
                raise Fault(400, "2010", "Request has invalid or unsupported property",
                            f"entity {name} is not supported by change data capture", element="entities")
            active = [o for o in company.objects[entity].values() if _updated(o) >= since]
            active.sort(key=lambda o: (_updated(o), int(o["Id"]) if str(o["Id"]).isdigit() else 0))
            gone = [t for t in tombstones(company).get(entity, {}).values() if _updated(t) >= since]
            gone.sort(key=_updated)
            found = active + gone
            page = json.loads(_dumps(found[:MAX_PER_ENTITY]))
            answer: dict[str, Any] = {"startPosition": 1, "maxResults": len(page), "totalCount": len(found)}
            if page:
                answer[entity] = page
            answers.append(answer)
    return {"CDCResponse": [{"QueryResponse": answers}], "time": sandbox._stamp()}


def _updated(obj: dict[str, Any]) -> datetime:
    return parse_time(str(obj["MetaData"]["LastUpdatedTime"]))


def _dumps(obj: Any) -> bytes:
    from sandbox.quickbooks.server import _dumps as server_dumps

    return server_dumps(obj)


def _delete(sandbox: Any, company: Any, entity: str, object_id: str, sync_token: Any) -> dict[str, Any]:
    from sandbox.quickbooks.server import Fault

    with sandbox._lock:
        current = company.objects[entity].get(object_id)
        if current is None:
            raise Fault(400, "610", "Object Not Found", f"{entity} {object_id} does not exist")
        if sync_token is not None and str(sync_token) != current["SyncToken"]:
            raise Fault(400, "5010", "Stale Object Error", f"SyncToken {sync_token} is stale; the current one is "
                        f"{current['SyncToken']}.", element="SyncToken")  # fmt: skip
        del company.objects[entity][object_id]
        stone = {"status": "Deleted", "domain": "QBO", "Id": object_id,
                 "MetaData": {"LastUpdatedTime": sandbox._stamp()}}  # fmt: skip
        tombstones(company).setdefault(entity, {})[object_id] = stone
        return dict(stone)


def accountant_edits(sandbox: Any, entity: str, object_id: str, changes: dict[str, Any],
                     realm: str | None = None) -> dict[str, Any]:  # fmt: skip
    """An accountant edits a (pushed) object in the QuickBooks UI: new SyncToken, new LastUpdatedTime, repriced."""
    return sandbox.edit(entity, object_id, changes, realm)


def accountant_deletes(sandbox: Any, entity: str, object_id: str, realm: str | None = None) -> dict[str, Any]:
    """An accountant deletes an object (a pushed invoice, a payment) in the QuickBooks UI."""
    return _delete(sandbox, sandbox.company(realm or sandbox.realm_id), entity, object_id, None)
