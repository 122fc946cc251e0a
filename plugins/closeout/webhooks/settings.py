"""The receiver's limits, read from the API server's environment once, when the app is built.

Every limit exists so that one request, or a flood of them, costs the Airflow API server a bounded
amount of memory, threads and time: the API server also serves the Airflow UI and the task SDK, so
a webhook must never be the thing that takes it down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_BODY_ENV = "CLOSEOUT_WEBHOOK_MAX_BODY_BYTES"
BODY_TIMEOUT_ENV = "CLOSEOUT_WEBHOOK_BODY_TIMEOUT_SECONDS"
DB_THREADS_ENV = "CLOSEOUT_WEBHOOK_DB_THREADS"
DB_QUEUE_ENV = "CLOSEOUT_WEBHOOK_DB_QUEUE"
CONNECT_TIMEOUT_ENV = "CLOSEOUT_WEBHOOK_CONNECT_TIMEOUT_SECONDS"
STATEMENT_TIMEOUT_ENV = "CLOSEOUT_WEBHOOK_STATEMENT_TIMEOUT_MS"
RETRY_AFTER_ENV = "CLOSEOUT_WEBHOOK_RETRY_AFTER_SECONDS"
SECRETS_TTL_ENV = "CLOSEOUT_WEBHOOK_SECRETS_TTL_SECONDS"


@dataclass(frozen=True)
class ReceiverSettings:
    """Defaults fit the vendors: Stripe caps event payloads far below 1 MiB, tracker events are a few KiB."""

    max_body_bytes: int = 1024 * 1024
    body_timeout_seconds: float = 30.0
    db_threads: int = 4
    db_queue: int = 4
    connect_timeout_seconds: int = 3
    statement_timeout_ms: int = 5000
    retry_after_seconds: int = 30
    secrets_ttl_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError(f"{MAX_BODY_ENV} must be at least 1 byte")
        if self.db_threads < 1:
            raise ValueError(f"{DB_THREADS_ENV} must be at least 1")
        if self.db_queue < 0:
            raise ValueError(f"{DB_QUEUE_ENV} must not be negative")
        if self.body_timeout_seconds <= 0:
            raise ValueError(f"{BODY_TIMEOUT_ENV} must be positive")
        if self.connect_timeout_seconds < 1:
            raise ValueError(f"{CONNECT_TIMEOUT_ENV} must be at least 1 second (libpq counts whole seconds)")
        if self.statement_timeout_ms < 1:
            raise ValueError(f"{STATEMENT_TIMEOUT_ENV} must be at least 1 ms (0 would mean no timeout)")
        if self.retry_after_seconds < 1:
            raise ValueError(f"{RETRY_AFTER_ENV} must be at least 1 second")
        if self.secrets_ttl_seconds < 0:
            raise ValueError(f"{SECRETS_TTL_ENV} must not be negative")

    @classmethod
    def from_env(cls) -> ReceiverSettings:
        """Settings from ``CLOSEOUT_WEBHOOK_*`` variables; a malformed value names its variable."""
        base = cls()
        return cls(
            max_body_bytes=_int(MAX_BODY_ENV, base.max_body_bytes),
            body_timeout_seconds=_float(BODY_TIMEOUT_ENV, base.body_timeout_seconds),
            db_threads=_int(DB_THREADS_ENV, base.db_threads),
            db_queue=_int(DB_QUEUE_ENV, base.db_queue),
            connect_timeout_seconds=_int(CONNECT_TIMEOUT_ENV, base.connect_timeout_seconds),
            statement_timeout_ms=_int(STATEMENT_TIMEOUT_ENV, base.statement_timeout_ms),
            retry_after_seconds=_int(RETRY_AFTER_ENV, base.retry_after_seconds),
            secrets_ttl_seconds=_float(SECRETS_TTL_ENV, base.secrets_ttl_seconds),
        )


def _raw(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _int(name: str, default: int) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        return int(value.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None


def _float(name: str, default: float) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return number
