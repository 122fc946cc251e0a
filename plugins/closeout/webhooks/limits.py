"""A pure ASGI middleware that bounds what one request body may cost, before the app sees it.

The receiver runs inside the Airflow API server, so a body is never trusted to be small:

* a declared ``Content-Length`` above the limit is answered 413 before a single body byte is read
  (a client sending ``Expect: 100-continue`` then never sends the body at all);
* a chunked (or under-declared) body is read message by message with a running count and cut with a
  413 the moment the count passes the limit, so at most the limit plus one server read buffer (64 KiB
  in uvicorn) is ever held;
* a body that trickles in slower than the read timeout is answered 408, so a slow client cannot hold
  a connection and its buffer forever.

Rejections carry ``Connection: close``: the server stops reading the rest of an oversized upload
instead of draining it. A body within the limit is handed to the app as one message, exactly as read.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from closeout.webhooks.refusals import RefusalLog

log = logging.getLogger(__name__)
refusals = RefusalLog(log)


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared == -1:
            await _refuse(send, 400, "Content-Length is not one non-negative number")
            return
        if declared is not None and declared > self.max_body_bytes:
            refusals.warning("413", "webhook refused: Content-Length %d over the %d byte limit", declared,
                             self.max_body_bytes)  # fmt: skip
            await _refuse(send, 413, f"body larger than {self.max_body_bytes} bytes")
            return
        try:
            with anyio.fail_after(self.timeout_seconds):
                body, tail = await self._read(receive)
        except BodyTooLarge:
            refusals.warning("413", "webhook refused: body passed the %d byte limit while streaming",
                             self.max_body_bytes)  # fmt: skip
            await _refuse(send, 413, f"body larger than {self.max_body_bytes} bytes")
            return
        except TimeoutError:
            refusals.warning("408", "webhook refused: body not complete within %s s", self.timeout_seconds)
            await _refuse(send, 408, f"body not received within {self.timeout_seconds:g} s")
            return
        if tail is not None:  # the client went away mid-body: nobody is left to answer
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> tuple[bytes, Message | None]:
        """The whole body, or BodyTooLarge as soon as it passes the limit; a disconnect is returned."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", message
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                chunks.clear()
                raise BodyTooLarge
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _declared_length(scope: Scope) -> int | None:
    """The declared body length; None when absent (chunked), -1 when unusable (repeated, not digits)."""
    values = [value for name, value in scope.get("headers", ()) if name.lower() == b"content-length"]
    if not values:
        return None
    distinct = {value.strip() for value in values}
    if len(distinct) != 1:
        return -1
    (value,) = distinct
    if not value or len(value) > 19 or not value.isdigit():
        return -1
    return int(value)


async def _refuse(send: Send, status: int, detail: str) -> None:
    payload: dict[str, Any] = {"detail": detail}
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
