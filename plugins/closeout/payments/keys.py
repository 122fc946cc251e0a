"""Deterministic idempotency keys: one per operation on one business object, the same on every retry.

A key names the deployment (prefix), the object (a client, or an invoice at its frozen version), the
operation and, for multi-request operations, the part. Nothing random, nothing time-based: a task
killed after Stripe acted and retried later sends the very same key, so Stripe replays instead of acting
twice. Keys never exceed Stripe's 255 characters: an over-long business identity is hashed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_KEY_LENGTH = 255


def _bounded(key: str) -> str:
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: MAX_KEY_LENGTH - 65]}~{digest}"


def customer_key(prefix: str, client_key: str) -> str:
    return _bounded(f"{prefix}/customer/{client_key}/create")


def invoice_key(prefix: str, invoice_id: str, version: int, operation: str, part: int = 0) -> str:
    """``operation``: create, add_lines (with ``part``), finalize."""
    suffix = f"/{part}" if operation == "add_lines" else ""
    return _bounded(f"{prefix}/invoice/{invoice_id}/v{version}/{operation}{suffix}")


def tax_rate_key(prefix: str, tax_rate: str) -> str:
    """``tax_rate``: the rate's business identity (closeout.payments.tax_rates.tax_rate_key)."""
    return _bounded(f"{prefix}/tax_rate/{tax_rate}/create")


def request_hash(params: dict[str, Any]) -> str:
    """Fingerprint of a request's parameters: a key must never be reused for a different request."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
