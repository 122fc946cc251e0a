"""Signature checks for each vendor, all in constant time (``hmac.compare_digest`` on bytes).

Stripe signs ``"<t>.<body>"`` with HMAC-SHA256 and the endpoint secret (``Stripe-Signature: t=<unix>,
v1=<hex>[,v1=<hex>]``); the timestamp is inside the signature, so a captured delivery replayed later than
the tolerance (300 s, Stripe's default) is refused.

Toggl signs the raw body with HMAC-SHA256 and the subscription secret (``X-Webhook-Signature-256:
sha256=<hex>``). Clockify sends the webhook's own token as issued (``Clockify-Signature``), a shared
secret compared as is. Neither carries a signed timestamp, so there is no replay window to enforce
here; the inbox recognises replays instead (unique event ids, and Clockify's content identity).

Each check is split in two: ``parse_*`` reads the header alone, so a missing, malformed, oversized or
non-ASCII header is refused before any secret is looked up (it costs no connection lookup and no database
call), and ``check_*`` compares it with the configured secrets. Every refusal is a SignatureError: whatever
bytes a header carries, the receiver answers 401, never 500.
"""

from __future__ import annotations

import hashlib
import hmac
import string
import time
from collections.abc import Iterable

STRIPE_TOLERANCE_SECONDS = 300
MAX_STRIPE_HEADER_CHARS = 4096  # t=, and a v1= per live secret: a few hundred characters in practice
MAX_STRIPE_SIGNATURES = 16
MAX_CLOCKIFY_TOKEN_CHARS = 1024
_HEX = frozenset(string.hexdigits)
_PRINTABLE_ASCII = frozenset(chr(c) for c in range(0x21, 0x7F))


class SignatureError(ValueError):
    pass


def _is_hex_digest(value: str) -> bool:
    return len(value) == 64 and all(c in _HEX for c in value)


# ----------------------------------------------------------------------------------------------- Toggl
def parse_toggl(header: str | None) -> bytes:
    """The hex digest a ``X-Webhook-Signature-256`` header claims, lower case, as ASCII bytes."""
    if not header:
        raise SignatureError("missing X-Webhook-Signature-256")
    value = header.strip()
    if not value.startswith("sha256="):
        raise SignatureError("malformed X-Webhook-Signature-256 (no sha256= prefix)")
    given = value.removeprefix("sha256=").strip()
    if not _is_hex_digest(given):
        raise SignatureError("malformed X-Webhook-Signature-256 (not a 64-digit hex digest)")
    return given.lower().encode("ascii")


def check_toggl(body: bytes, given: bytes, secrets: Iterable[str]) -> None:
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode("ascii")
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError("signature does not match")


def verify_toggl(body: bytes, header: str | None, secrets: Iterable[str]) -> None:
    check_toggl(body, parse_toggl(header), secrets)


# -------------------------------------------------------------------------------------------- Clockify
def parse_clockify(header: str | None) -> bytes:
    """The token a ``Clockify-Signature`` header carries, as bytes (tokens are printable ASCII)."""
    if not header:
        raise SignatureError("missing Clockify-Signature")
    value = header.strip()
    if not value or len(value) > MAX_CLOCKIFY_TOKEN_CHARS or not all(c in _PRINTABLE_ASCII for c in value):
        raise SignatureError("malformed Clockify-Signature (empty, oversized or not printable ASCII)")
    return value.encode("ascii")


def check_clockify(given: bytes, tokens: Iterable[str]) -> None:
    matched = False
    for token in tokens:
        # no early exit: every configured token is compared, whatever matches
        matched |= hmac.compare_digest(token.encode("utf-8", "surrogatepass"), given)
    if not matched:
        raise SignatureError("signature does not match")


def verify_clockify(header: str | None, tokens: Iterable[str]) -> None:
    check_clockify(parse_clockify(header), tokens)


# ---------------------------------------------------------------------------------------------- Stripe
def parse_stripe(
    header: str | None, *, tolerance: int = STRIPE_TOLERANCE_SECONDS, now: float | None = None
) -> tuple[int, list[bytes]]:
    """``(timestamp, [v1 digests])`` of a ``Stripe-Signature`` header whose timestamp is within tolerance."""
    if not header:
        raise SignatureError("missing Stripe-Signature")
    if len(header) > MAX_STRIPE_HEADER_CHARS:
        raise SignatureError(f"malformed Stripe-Signature (over {MAX_STRIPE_HEADER_CHARS} characters)")
    timestamp: int | None = None
    signatures: list[bytes] = []
    items = header.split(",")
    if len(items) > MAX_STRIPE_SIGNATURES + 2:
        raise SignatureError("malformed Stripe-Signature (too many elements)")
    for item in items:
        name, _, value = item.strip().partition("=")
        value = value.strip()
        if name == "t":
            # ASCII digits only: int() would also take "١٢٣", "1_0" or a 5000-digit number
            if timestamp is not None or not value or len(value) > 12 or not value.isascii() or not value.isdigit():
                raise SignatureError("malformed Stripe-Signature timestamp")
            timestamp = int(value)
        elif name == "v1" and _is_hex_digest(value):  # a malformed v1 cannot match: skipped, like v0
            signatures.append(value.lower().encode("ascii"))
    if timestamp is None or not signatures:
        raise SignatureError("Stripe-Signature lacks t= or a well-formed v1=")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        off = int(current - timestamp)
        raise SignatureError(f"Stripe-Signature timestamp is {off} s off (tolerance {tolerance} s)")
    return timestamp, signatures


def check_stripe(body: bytes, timestamp: int, signatures: list[bytes], secrets: Iterable[str]) -> None:
    signed = str(timestamp).encode() + b"." + body
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode("ascii")
        for given in signatures:
            matched |= hmac.compare_digest(expected, given)
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
    timestamp, signatures = parse_stripe(header, tolerance=tolerance, now=now)
    check_stripe(body, timestamp, signatures, secrets)
