"""Signature checks for each vendor, all in constant time (``hmac.compare_digest``).

Stripe signs ``"<t>.<body>"`` with HMAC-SHA256 and the endpoint secret (``Stripe-Signature: t=<unix>,
v1=<hex>[,v1=<hex>]``); the timestamp is inside the signature, so a captured delivery replayed later than
the tolerance (300 s, Stripe's default) is refused.

Toggl signs the raw body with HMAC-SHA256 and the subscription secret (``X-Webhook-Signature-256:
sha256=<hex>``). Clockify sends the webhook's own token as issued (``Clockify-Signature``), a shared
secret compared as is. Neither carries a signed timestamp, so there is no replay window to enforce
here; replays are harmless anyway because the inbox is unique per event id.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

STRIPE_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    pass


def verify_toggl(body: bytes, header: str | None, secrets: Iterable[str]) -> None:
    if not header or not header.startswith("sha256="):
        raise SignatureError("missing or malformed X-Webhook-Signature-256")
    given = header.removeprefix("sha256=").strip().lower()
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, given):
            return
    raise SignatureError("signature does not match")


def verify_clockify(header: str | None, tokens: Iterable[str]) -> None:
    if not header:
        raise SignatureError("missing Clockify-Signature")
    matched = False
    for token in tokens:
        # no early exit: every configured token is compared, whatever matches
        matched |= hmac.compare_digest(token.encode(), header.encode())
    if not matched:
        raise SignatureError("signature does not match")


def verify_stripe(
    body: bytes,
    header: str | None,
    secrets: Iterable[str],
    *,
    tolerance: int = STRIPE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    if not header:
        raise SignatureError("missing Stripe-Signature")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed Stripe-Signature timestamp") from None
        elif name == "v1":
            signatures.append(value.strip().lower())
    if timestamp is None or not signatures:
        raise SignatureError("Stripe-Signature lacks t= or v1=")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        off = int(current - timestamp)
        raise SignatureError(f"Stripe-Signature timestamp is {off} s off (tolerance {tolerance} s)")
    signed = str(timestamp).encode() + b"." + body
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        for given in signatures:
            matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError("signature does not match")
