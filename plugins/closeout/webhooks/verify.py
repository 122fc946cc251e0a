"""Signature checks for each vendor, all in constant time (``hmac.compare_digest``).

Toggl signs the raw body with HMAC-SHA256 and the subscription secret (``X-Webhook-Signature-256:
sha256=<hex>``). Clockify sends the webhook's own token as issued (``Clockify-Signature``), a shared
secret compared as is. Neither carries a signed timestamp, so there is no replay window to enforce
here; replays are harmless anyway because the inbox is unique per event id.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


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
