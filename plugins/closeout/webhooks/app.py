"""The FastAPI app the Airflow API server serves (see plugins/closeout_webhooks.py).

Every endpoint does the same three things and nothing slow: verify the signature, check the body is
the JSON shape the vendor documents, store it raw in the inbox. A bad signature answers 401 and a
malformed body 400, storing nothing. A redelivered event answers 200 (so the vendor stops retrying)
and stores nothing new. The sync DAGs and closeout_stripe_events process the inbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from closeout.webhooks.verify import SignatureError, verify_clockify, verify_stripe, verify_toggl

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
CLOCKIFY_EVENTS = frozenset({"NEW_TIME_ENTRY", "TIME_ENTRY_UPDATED", "TIME_ENTRY_DELETED", "TIMER_STOPPED",
                             "TIME_ENTRY_RESTORED"})  # fmt: skip


def _secrets(conn_id: str, key: str) -> list[str]:
    """Webhook secrets from the tracker connection's extra (a string or a list, for rotation)."""
    from closeout.connections import get_connection

    value = get_connection(conn_id).extra.get(key)
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v]


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPException(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "body is not a JSON object")
    return data


def create_app(
    *,
    store: Callable[[str, str, str, dict[str, str], bytes], bool] | None = None,
    secrets: Callable[[str, str], list[str]] = _secrets,
) -> FastAPI:
    """``store`` and ``secrets`` are parameters so the app can be assembled with other backends;
    by default events go to the warehouse inbox and secrets come from the Airflow connections."""
    if store is None:
        from closeout.webhooks.inbox import store_event as store
    app = FastAPI(title="closeout webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    async def read_body(request: Request) -> bytes:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, "body too large")
        return body

    @app.post("/toggl")
    async def toggl(request: Request) -> JSONResponse:
        body = await read_body(request)
        try:
            verify_toggl(
                body, request.headers.get("x-webhook-signature-256"), secrets("toggl_default", "webhook_secret")
            )
        except SignatureError as exc:
            log.warning("Toggl webhook rejected: %s", exc)
            raise HTTPException(401, "invalid signature") from None
        event = _json_object(body)
        if "validation_code" in event:  # subscription ping: echo the code back, store nothing
            return JSONResponse({"validation_code": str(event["validation_code"])})
        metadata = event.get("metadata")
        if not (
            isinstance(event.get("event_id"), int | str)
            and isinstance(metadata, dict)
            and isinstance(metadata.get("action"), str)
            and isinstance(event.get("payload"), dict)
        ):
            raise HTTPException(400, "not a Toggl time entry event (event_id, metadata.action, payload)")
        kind = f"{metadata.get('model', 'unknown')}.{metadata['action']}"
        stored = store("toggl", str(event["event_id"]), kind, dict(request.headers), body)
        return JSONResponse({"status": "stored" if stored else "duplicate"})

    @app.post("/clockify")
    async def clockify(request: Request) -> JSONResponse:
        body = await read_body(request)
        try:
            verify_clockify(request.headers.get("clockify-signature"), secrets("clockify_default", "webhook_token"))
        except SignatureError as exc:
            log.warning("Clockify webhook rejected: %s", exc)
            raise HTTPException(401, "invalid signature") from None
        event_type = request.headers.get("clockify-webhook-event-type", "")
        if event_type not in CLOCKIFY_EVENTS:
            raise HTTPException(400, f"unknown Clockify event type {event_type!r}")
        entry = _json_object(body)
        if not isinstance(entry.get("id"), str) or not entry["id"]:
            raise HTTPException(400, "not a Clockify time entry (id)")
        # Clockify sends no event id: a delivery id when present, else the content itself identifies
        # the event, so an identical redelivery is recognised.
        event_id = request.headers.get("clockify-webhook-delivery-id") or hashlib.sha256(
            event_type.encode() + b"\n" + body).hexdigest()  # fmt: skip
        stored = store("clockify", event_id, event_type, dict(request.headers), body)
        return JSONResponse({"status": "stored" if stored else "duplicate"})

    @app.post("/stripe")
    async def stripe_event(request: Request) -> JSONResponse:
        body = await read_body(request)
        try:
            verify_stripe(body, request.headers.get("stripe-signature"), secrets("stripe_default", "webhook_secret"))
        except SignatureError as exc:
            log.warning("Stripe webhook rejected: %s", exc)
            raise HTTPException(401, "invalid signature") from None
        event = _json_object(body)
        data = event.get("data")
        if not (
            isinstance(event.get("id"), str)
            and event["id"].startswith("evt_")
            and isinstance(event.get("type"), str)
            and isinstance(event.get("created"), int)
            and isinstance(data, dict)
            and isinstance(data.get("object"), dict)
        ):
            raise HTTPException(400, "not a Stripe event (id evt_..., type, created, data.object)")
        stored = store("stripe", event["id"], event["type"], dict(request.headers), body)
        return JSONResponse({"status": "stored" if stored else "duplicate"})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
