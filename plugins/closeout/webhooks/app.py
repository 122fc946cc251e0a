"""The FastAPI app the Airflow API server serves (see plugins/closeout_webhooks.py).

Every endpoint does the same things, in an order chosen so that whatever arrives costs little:

1. the body is bounded while it streams (limits.py: 413 over the limit, before it is buffered);
2. the signature header is parsed on its own: missing, malformed, repeated, oversized or non-ASCII
   answers 401 at once, with no secret lookup and no database call;
3. the vendor's secrets are looked up (off the event loop, cached briefly; secrets.py); a vendor whose
   connection or secret is not configured answers 404 (the endpoint does not exist here);
4. the signature is checked (401 on mismatch) and the body must be the JSON shape the vendor documents
   (400 otherwise);
5. only then is the warehouse touched, in a worker thread of a bounded pool, with connect and statement
   timeouts (offload.py, inbox.py): stored answers 200, a redelivery or replay answers 200 and stores
   nothing new (so the vendor stops retrying); a saturated pool or an unavailable warehouse answers 503
   with ``Retry-After`` (so the vendor retries later and nothing is lost).

The sync DAGs and closeout_stripe_events process the inbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from closeout.webhooks.identity import content_key
from closeout.webhooks.inbox import InboxEvent, WarehouseInbox, WarehouseUnavailable
from closeout.webhooks.limits import BodyLimitMiddleware
from closeout.webhooks.offload import BlockingPool, Saturated
from closeout.webhooks.refusals import RefusalLog
from closeout.webhooks.secrets import NotConfigured, SecretCache, SecretsUnavailable, connection_secrets
from closeout.webhooks.settings import ReceiverSettings
from closeout.webhooks.verify import (
    SignatureError,
    check_clockify,
    check_stripe,
    check_toggl,
    parse_clockify,
    parse_stripe,
    parse_toggl,
)

log = logging.getLogger(__name__)
refusals = RefusalLog(log)
T = TypeVar("T")

CLOCKIFY_EVENTS = frozenset({"NEW_TIME_ENTRY", "TIME_ENTRY_UPDATED", "TIME_ENTRY_DELETED", "TIMER_STOPPED",
                             "TIME_ENTRY_RESTORED"})  # fmt: skip
MAX_ID_CHARS = 255  # event, object and delivery ids: the inbox's unique index takes no unbounded text

# vendor -> (connection id, extra key holding the secret(s), signature header)
VENDORS = {
    "toggl": ("toggl_default", "webhook_secret", "x-webhook-signature-256"),
    "clockify": ("clockify_default", "webhook_token", "clockify-signature"),
    "stripe": ("stripe_default", "webhook_secret", "stripe-signature"),
}


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else (not UTF-8, not JSON, nested too deep, ...)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise HTTPException(400, "body is not a UTF-8 JSON document") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "body is not a JSON object")
    return data


def _short_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and value.isprintable()


def _signature_header(request: Request, name: str) -> str | None:
    """The one signature header; a repeated one is refused (which copy would the vendor mean?)."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise SignatureError(f"{name} sent {len(values)} times")
    return values[0] if values else None


def create_app(
    *,
    store: Callable[[InboxEvent], bool] | None = None,
    secrets: Callable[[str, str], list[str]] = connection_secrets,
    settings: ReceiverSettings | None = None,
) -> FastAPI:
    """``store`` and ``secrets`` are parameters so the app can be assembled with other backends; by
    default events go to the warehouse inbox and secrets come from the Airflow connections. Both are
    blocking and run in the receiver's worker pool. ``settings`` default to the environment."""
    settings = settings or ReceiverSettings.from_env()
    if store is None:
        store = WarehouseInbox(
            connect_timeout_seconds=settings.connect_timeout_seconds,
            statement_timeout_ms=settings.statement_timeout_ms,
        )
    pool = BlockingPool(settings.db_threads, settings.db_queue)
    cache = SecretCache(settings.secrets_ttl_seconds)
    retry_after = {"Retry-After": str(settings.retry_after_seconds)}

    app = FastAPI(title="closeout webhooks", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes, timeout_seconds=settings.body_timeout_seconds
    )
    app.state.pool = pool  # for operators' introspection and the tests

    async def blocking(func: Callable[..., T], *args: object) -> T:
        try:
            return await pool.run(func, *args)
        except Saturated:
            refusals.warning("busy", "webhook deferred: all %d worker threads busy and %d waiting", pool.threads,
                             pool.queue)  # fmt: skip
            raise HTTPException(503, "receiver busy, retry later", headers=retry_after) from None
        except (WarehouseUnavailable, SecretsUnavailable) as exc:
            refusals.warning(type(exc).__name__, "webhook deferred: %s", exc)
            raise HTTPException(503, "storage unavailable, retry later", headers=retry_after) from None

    async def vendor_secrets(vendor: str, *, refresh: bool = False) -> list[str]:
        conn_id, key, _header = VENDORS[vendor]
        try:
            cached = None if refresh else cache.fresh(conn_id, key)
            if cached is not None:
                return cached
            found = await blocking(secrets, conn_id, key)
        except NotConfigured as exc:
            cache.remember(conn_id, key, None)
            refusals.warning(f"{vendor}:404", "%s webhook refused: %s", vendor, exc)
            raise HTTPException(404, f"{vendor} webhooks are not configured here") from None
        cache.remember(conn_id, key, found)
        return found

    async def verified(vendor: str, check: Callable[[list[str]], None]) -> None:
        """Check against the configured secrets; on a mismatch, once more with a fresh lookup (rotation)."""
        conn_id, key, _header = VENDORS[vendor]
        try:
            check(await vendor_secrets(vendor))
            return
        except SignatureError as exc:
            if not cache.may_refresh(conn_id, key):
                _refuse(vendor, exc)
        try:
            check(await vendor_secrets(vendor, refresh=True))
        except SignatureError as exc:
            _refuse(vendor, exc)

    async def stored(event: InboxEvent) -> JSONResponse:
        was_new = await blocking(store, event)
        return JSONResponse({"status": "stored" if was_new else "duplicate"})

    @app.post("/toggl")
    async def toggl(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            given = parse_toggl(_signature_header(request, "x-webhook-signature-256"))
        except SignatureError as exc:
            _refuse("toggl", exc)
        await verified("toggl", lambda secrets: check_toggl(body, given, secrets))
        event = _json_object(body)
        if "validation_code" in event:  # subscription ping: echo the code back, store nothing
            return JSONResponse({"validation_code": str(event["validation_code"])[:MAX_ID_CHARS]})
        metadata = event.get("metadata")
        event_id = event.get("event_id")
        if not (
            ((isinstance(event_id, int) and not isinstance(event_id, bool) and 0 <= event_id < 2**63)
             or _short_id(event_id))
            and isinstance(metadata, dict)
            and _short_id(metadata.get("action"))
            and isinstance(event.get("payload"), dict)
        ):
            raise HTTPException(400, "not a Toggl time entry event (event_id, metadata.action, payload)")
        model = metadata.get("model", "unknown")
        kind = f"{model if _short_id(model) else 'unknown'}.{metadata['action']}"
        return await stored(InboxEvent("toggl", str(event_id), kind, dict(request.headers), body))

    @app.post("/clockify")
    async def clockify(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            given = parse_clockify(_signature_header(request, "clockify-signature"))
        except SignatureError as exc:
            _refuse("clockify", exc)
        await verified("clockify", lambda tokens: check_clockify(given, tokens))
        event_type = request.headers.get("clockify-webhook-event-type", "")
        if event_type not in CLOCKIFY_EVENTS:
            raise HTTPException(400, f"unknown Clockify event type {event_type[:64]!r}")
        entry = _json_object(body)
        if not _short_id(entry.get("id")):
            raise HTTPException(400, "not a Clockify time entry (id)")
        delivery = request.headers.get("clockify-webhook-delivery-id")
        if delivery is not None and not _short_id(delivery):
            raise HTTPException(400, "malformed Clockify-Webhook-Delivery-Id")
        # Clockify sends no event id: the content identifies the event (identity.py), so a replay under
        # another delivery id, or none, is recognised; a delivery id, when sent, also dedupes exact retries.
        event = InboxEvent("clockify", delivery, event_type, dict(request.headers), body,
                           object_key=entry["id"], content_key=content_key(event_type, entry["id"], entry))  # fmt: skip
        return await stored(event)

    @app.post("/stripe")
    async def stripe_event(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            timestamp, signatures = parse_stripe(_signature_header(request, "stripe-signature"))
        except SignatureError as exc:
            _refuse("stripe", exc)
        await verified("stripe", lambda secrets: check_stripe(body, timestamp, signatures, secrets))
        event = _json_object(body)
        data = event.get("data")
        if not (
            _short_id(event.get("id"))
            and event["id"].startswith("evt_")
            and _short_id(event.get("type"))
            and isinstance(event.get("created"), int)
            and isinstance(data, dict)
            and isinstance(data.get("object"), dict)
        ):
            raise HTTPException(400, "not a Stripe event (id evt_..., type, created, data.object)")
        return await stored(InboxEvent("stripe", event["id"], event["type"], dict(request.headers), body))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "busy": pool.admitted}

    return app


def _refuse(vendor: str, exc: SignatureError) -> NoReturn:
    refusals.warning(f"{vendor}:401", "%s webhook rejected: %s", vendor, exc)
    raise HTTPException(401, "invalid signature") from None
