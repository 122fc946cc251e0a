"""One masking for every text closeout stores or sends about a failure: alerts, run rows, step errors, evidence.

Two layers, always both:

* the *values* of the connections closeout uses (warehouse, Stripe, trackers, accounting, alert receivers):
  whatever shape a message gives them (a DSN, a JSON body a server echoed, an exception's repr), the exact
  value is replaced;
* anything *shaped* like a credential: Stripe keys (``sk_live_``/``sk_test_``/``rk_``/``pk_``), webhook
  signing secrets (``whsec_``), ``Bearer``/``Basic`` authorisations, ``X-Api-Key`` headers, ``user:password@`` in
  a URL, ``password=``/``token=``/``api_key=``/``access_token``/``refresh_token``/``client_secret`` in query
  strings, JSON bodies or libpq DSNs, and Harvest personal access tokens (``<id>.pt.<token>``) - so a
  secret closeout was never told about (a key pasted into a param, a vendor echoing a token) is masked too.

``mask_secrets`` is the single helper every recording point calls (``closeout.trackers.runs``,
``closeout.payments.runs``, ``closeout.close.runs``, ``closeout.alerts``, the recon evidence, the payouts and the
ledger runs). It is idempotent: masking masked text changes nothing.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

# Connections whose values must never be stored or sent, whatever a message happens to contain.
KNOWN_CONN_IDS = (
    "closeout_warehouse", "stripe_default", "harvest_default", "toggl_default", "clockify_default",
    "quickbooks_default", "xero_default", "airflow_api", "closeout_artifacts",
    "finance_smtp", "finance_webhook", "platform_webhook",
)  # fmt: skip
_SECRET_EXTRA = ("secret", "token", "password", "key")
_KEY_WORDS = (
    r"[A-Za-z_-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|signature)"
)

SECRET_SHAPES: tuple[re.Pattern[str], ...] = (
    re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+"),  # Stripe secret, restricted, publishable keys
    re.compile(r"\bwhsec_[A-Za-z0-9]+"),  # webhook signing secrets
    re.compile(r"\b\d+\.pt\.[A-Za-z0-9_-]{8,}"),  # Harvest personal access tokens
    re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,}"),  # Authorization header values
    re.compile(r"(?i)\b(x-api-key|x-auth-token|authorization)(\s*[=:]\s*['\"]?)[^\s,;&'\"]+"),
    # key=value / key: value in query strings, DSNs, headers and logs
    re.compile(rf"(?i)\b({_KEY_WORDS})(\s*[=:]\s*)[^\s,;&'\"}}]+"),
    # "key": "value" / 'key': 'value' in JSON bodies and Python reprs
    re.compile(rf"(?i)(['\"]{_KEY_WORDS})(['\"]\s*:\s*['\"]?)[^\s,;&'\"}}]+"),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in a URL
)


def mask_shapes(text: str) -> str:
    """``text`` with every credential-shaped part replaced (the key name kept, so the reader sees what it was)."""
    for pattern in SECRET_SHAPES:
        text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}" if m.re.groups == 2 else MASK, text)
    return text


def mask_values(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret value replaced, longest first (one may contain another)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


_cache: tuple[float, tuple[str | None, ...], list[str]] | None = None
_cache_lock = threading.Lock()
CACHE_SECONDS = 60.0


def _lookup_secrets() -> list[str]:
    from closeout.connections import get_connection

    found: list[str] = []
    for conn_id in KNOWN_CONN_IDS:
        try:
            conn = get_connection(conn_id)
        except Exception:  # noqa: S112 - an undefined connection has nothing to mask
            continue
        found.append(conn.password or "")
        for key, value in conn.extra.items():
            if any(word in key.lower() for word in _SECRET_EXTRA):
                found += [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]
    return [s for s in found if s and len(s) >= 4]


def known_secrets() -> list[str]:
    """Passwords and secret-looking extras of the connections closeout uses (missing ones skipped).

    Kept for at most a minute per process, and read again at once when an ``AIRFLOW_CONN_*`` variable of one of
    them changes: a close writes its steps' state many times, and each lookup may cost a round trip to the API
    server, but a connection defined or rotated a moment ago must be masked the first time it shows up."""
    global _cache
    env = tuple(os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}") for conn_id in KNOWN_CONN_IDS)
    with _cache_lock:
        if _cache is not None and _cache[1] == env and time.monotonic() - _cache[0] < CACHE_SECONDS:
            return list(_cache[2])
    found = _lookup_secrets()
    with _cache_lock:
        _cache = (time.monotonic(), env, found)
    return list(found)


def forget_known_secrets() -> None:
    """Read the connections again at the next use (after a connection changed in a secrets backend)."""
    global _cache
    with _cache_lock:
        _cache = None


def mask_secrets(text: Any, secrets: Iterable[str] | None = None) -> Any:
    """The text as it may be stored or sent: known values, then credential shapes, masked. ``None`` stays ``None``;
    an exception is masked as ``str(exc)``. ``secrets`` defaults to the known connections' values."""
    if text is None:
        return None
    text = text if isinstance(text, str) else str(text)
    values = known_secrets() if secrets is None else list(secrets)
    return mask_shapes(mask_values(text, values))


def mask_error(exc: BaseException, limit: int = 2000) -> str:
    """``Type: message`` of an exception, masked and cut to ``limit`` characters (after masking, so a cut never
    leaves half a secret behind)."""
    return mask_secrets(f"{type(exc).__name__}: {exc}")[:limit]


def mask_data(value: Any, secrets: Iterable[str] | None = None) -> Any:
    """A JSON-like value (evidence, a step's state) with every string in it masked, keys included."""
    values = known_secrets() if secrets is None else list(secrets)
    if isinstance(value, str):
        return mask_secrets(value, values)
    if isinstance(value, Mapping):
        return {mask_secrets(str(k), values): mask_data(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_data(v, values) for v in value]
    return value
