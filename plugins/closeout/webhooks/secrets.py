"""Webhook secrets from the tracker connections, looked up off the event loop and cached briefly.

A connection lookup may go to Airflow's metadata database or a secrets backend, so a flood of forged
requests must not turn into a flood of lookups: a fetched secret list is kept ``ttl`` seconds. When a
signature does not match a cached list older than a second, the list is fetched again once, so a secret
rotated in the connection is picked up on its first use, while forged requests still cost at most one
lookup per second per vendor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

NEGATIVE_TTL_SECONDS = 1.0  # "not configured" is re-checked this often, so configuring takes effect fast
MIN_REFRESH_SECONDS = 1.0


class NotConfigured(LookupError):
    """The vendor's connection, or its webhook secret, is not configured: the endpoint does not exist."""


class SecretsUnavailable(RuntimeError):
    """The connection could not be read (secrets backend or metadata database down): try again later."""


def connection_secrets(conn_id: str, key: str) -> list[str]:
    """Webhook secrets from the connection's extra (a string or a list, for rotation). Blocking."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from closeout.connections import get_connection

    try:
        conn = get_connection(conn_id)
    except AirflowNotFoundException:
        raise NotConfigured(f"connection {conn_id!r} is not defined") from None
    except Exception as exc:
        raise SecretsUnavailable(f"connection {conn_id!r} could not be read: {type(exc).__name__}") from exc
    value = conn.extra.get(key)
    values = value if isinstance(value, list) else [value]
    secrets = [v for v in values if isinstance(v, str) and v]
    if not secrets:
        raise NotConfigured(f"connection {conn_id!r} has no {key!r} in its extra")
    return secrets


@dataclass
class _Entry:
    secrets: list[str] | None  # None: not configured
    fetched_at: float


class SecretCache:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}

    def fresh(self, conn_id: str, key: str) -> list[str] | None:
        """The cached secrets if still fresh; NotConfigured if "not configured" is still fresh; else None."""
        entry = self._entries.get((conn_id, key))
        if entry is None:
            return None
        age = self._clock() - entry.fetched_at
        if entry.secrets is None:
            if age < min(self.ttl_seconds, NEGATIVE_TTL_SECONDS):
                raise NotConfigured(f"connection {conn_id!r} has no webhook secret {key!r}")
            return None
        return entry.secrets if age < self.ttl_seconds else None

    def may_refresh(self, conn_id: str, key: str) -> bool:
        """Whether a mismatch against the cached list is worth one more lookup (a rotation may be under way)."""
        entry = self._entries.get((conn_id, key))
        return entry is not None and self._clock() - entry.fetched_at >= MIN_REFRESH_SECONDS

    def remember(self, conn_id: str, key: str, secrets: list[str] | None) -> None:
        if self.ttl_seconds > 0:
            self._entries[(conn_id, key)] = _Entry(secrets, self._clock())
