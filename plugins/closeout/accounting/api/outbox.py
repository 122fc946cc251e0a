"""Every write to an accounting API goes through ``closeout_data.accounting_api_outbox``.

The idempotency key (QuickBooks ``requestid``, Xero ``Idempotency-Key``) is derived from business identity - the
system, the company, the operation and the caller's reference (e.g. ``invoice:INV-2026-0042:v3``) - so every
retry, in any task, worker or day, sends the same key; the vendor then replays its first answer instead of
creating a second customer or invoice. The row is committed BEFORE the call and completed after it: a worker
killed between the two leaves a ``pending`` row whose retry replays.

The key is a UUID (36 characters): QuickBooks allows 50 on a single write and 36 inside a batch; Xero 128.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from closeout.paths import load_sql
from closeout.warehouse.db import connect

_NAMESPACE = uuid.UUID("5b0c2d7e-3f6a-4c1e-9b8d-6f1a2e3c4d5e")  # closeout's accounting requests; never change


class IdempotencyConflict(RuntimeError):
    """The same business identity was sent before with a different body: the vendor would answer with the first
    body's object, so this call is refused before it leaves (a new version needs a new reference)."""


def request_id(prefix: str, system: str, company_id: str, operation: str, business_ref: str) -> str:
    """The deterministic key of one business write (a UUID5 string, 36 characters)."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join((prefix, system, company_id, operation, business_ref))))


def payload_hash(payload: Any) -> str:
    """sha256 of the body as canonical JSON (sorted keys; Decimals as their exact text)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_canonical)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass(frozen=True)
class OutboxEntry:
    outbox_id: int
    request_id: str
    attempts: int
    status: str
    external_id: str | None


class Outbox:
    """Records and completes writes of one system and company in the warehouse."""

    def __init__(self, system: str, company_id: str, *, warehouse_conn_id: str = "closeout_warehouse") -> None:
        self.system = system
        self.company_id = company_id
        self.warehouse_conn_id = warehouse_conn_id

    def record(self, key: str, operation: str, business_ref: str, payload: Any) -> OutboxEntry:
        """Commit the intent to send ``payload`` under ``key`` before sending it; refuse a changed body."""
        digest = payload_hash(payload)
        with connect(self.warehouse_conn_id, autocommit=True) as conn:
            row = conn.execute(load_sql("accounting_api/outbox_record.sql"), {
                "system": self.system, "company_id": self.company_id, "request_id": key, "operation": operation,
                "business_ref": business_ref, "payload_sha256": digest}).fetchone()  # fmt: skip
        outbox_id, first_digest, first_operation, first_ref, status, external_id, attempts = row
        if first_digest != digest or first_operation != operation or first_ref != business_ref:
            raise IdempotencyConflict(
                f"{self.system} {operation} {business_ref!r}: request {key} was first sent with a different body "
                f"({first_operation} {first_ref!r}); the vendor would replay that one. Give the changed object a "
                "new reference (e.g. its next version) instead."
            )
        return OutboxEntry(outbox_id, key, attempts, status, external_id)

    def complete(self, entry: OutboxEntry, *, status: str, http_status: int | None, external_id: str | None = None,
                 sync_token: str | None = None, replayed: bool = False, error: str | None = None) -> None:  # fmt: skip
        with connect(self.warehouse_conn_id, autocommit=True) as conn:
            conn.execute(load_sql("accounting_api/outbox_complete.sql"), {
                "outbox_id": entry.outbox_id, "status": status, "http_status": http_status,
                "external_id": external_id, "sync_token": sync_token, "replayed": replayed,
                "error": error[:2000] if error else None})  # fmt: skip
