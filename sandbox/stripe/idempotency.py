"""Stripe's idempotency layer for API v1 POSTs.

* The first request with a key reserves it; once its endpoint has executed, its status and body are saved
  (errors included) and every later request with the same key and the same parameters gets them back,
  marked ``Idempotent-Replayed: true``.
* Nothing is saved when the request fails validation: the reservation is released and the key stays free.
* The same key with other parameters (or another endpoint) is a 400 ``idempotency_error``; a request whose
  key is still reserved by an executing request is a 409 (nothing saved for it either).
* Saved keys expire ``ttl`` seconds of sandbox time after the first request (Stripe: at least 24 hours);
  a reuse after that is a new request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["MAX_KEY_LENGTH", "TTL", "IdempotencyStore", "Saved"]

MAX_KEY_LENGTH = 255
TTL = 24 * 3600


@dataclass
class Saved:
    fingerprint: str
    created: int
    done: bool = False
    status: int = 0
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class IdempotencyStore:
    """Keys -> saved responses, insertion-ordered (so expiry prunes from the front)."""

    def __init__(self, ttl: int = TTL) -> None:
        self.ttl = ttl
        self._keys: dict[str, Saved] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def begin(self, key: str, fingerprint: str, now: int) -> tuple[str, Saved]:
        """``("new" | "replay" | "mismatch" | "in_progress", record)``; "new" reserves the key."""
        with self._lock:
            self._prune(now)
            saved = self._keys.get(key)
            if saved is not None and saved.done and saved.created + self.ttl <= now:
                del self._keys[key]
                saved = None
            if saved is None:
                saved = self._keys[key] = Saved(fingerprint, now)
                return "new", saved
            if saved.fingerprint != fingerprint:
                return "mismatch", saved
            return ("replay" if saved.done else "in_progress"), saved

    def finish(self, key: str, saved: Saved, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        with self._lock:
            saved.status, saved.body, saved.headers, saved.done = status, body, headers, True

    def release(self, key: str, saved: Saved) -> None:
        """Forget a reservation whose request saved nothing (validation failure, sandbox error)."""
        with self._lock:
            if self._keys.get(key) is saved:
                del self._keys[key]

    def expire(self, now: int | None = None) -> int:
        """Drop saved keys (all of them, or those older than the TTL at ``now``); returns how many."""
        with self._lock:
            if now is not None:
                return self._prune(now)
            stale = [k for k, s in self._keys.items() if s.done]
            for key in stale:
                del self._keys[key]
            return len(stale)

    def _prune(self, now: int) -> int:
        removed = 0
        keys = self._keys
        while keys:
            key = next(iter(keys))
            saved = keys[key]
            if not saved.done or saved.created + self.ttl > now:
                break
            del keys[key]
            removed += 1
        return removed
