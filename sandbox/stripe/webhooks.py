"""Signed webhook delivery for the Stripe sandbox, on a background thread.

Each event is POSTed as its JSON bytes with ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret,
"<t>.<payload>")>`` (``t`` from the sandbox clock, re-signed on every attempt), which
``stripe.Webhook.construct_event`` verifies. A non-2xx answer or a connection failure is retried ``retries``
times with exponential backoff from ``retry_delay`` seconds (real time; Stripe spreads retries over three days).

Misbehaviour, as real delivery has it: ``duplicate`` (probability an event is delivered a second time, later
in the same batch), ``drop`` (probability an event is silently never delivered), ``shuffle`` (each batch goes
out in random order; batches gather for ``shuffle_window`` seconds). The random choices come from a seeded RNG.
For deterministic tests: :meth:`WebhookDispatcher.hold` queues without delivering, :meth:`release` lets the
queue go as one batch (optionally shuffled), :meth:`flush` waits until nothing is queued, in flight or due
for a retry.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import heapq
import hmac
import http.client
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

__all__ = ["WebhookDispatcher", "sign"]

MAX_BACKOFF = 5.0
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class _Endpoint:
    url: str
    secret: str
    events: frozenset[str]

    def wants(self, event_type: str) -> bool:
        if "*" in self.events or event_type in self.events:
            return True
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.events if "*" in pattern)


@dataclass(frozen=True)
class _Delivery:
    event_id: str
    type: str
    raw: bytes
    endpoint: _Endpoint
    attempt: int = 0
    duplicate: bool = False


class WebhookDispatcher:
    """A queue of events for one webhook endpoint and the thread that delivers them."""

    def __init__(
        self,
        clock: Callable[[], int],
        *,
        retries: int = 3,
        retry_delay: float = 0.05,
        timeout: float = 5.0,
        log_size: int = 100_000,
    ) -> None:
        self._clock = clock
        self.retries = int(retries)
        self.retry_delay = float(retry_delay)
        self.timeout = float(timeout)
        self._cond = threading.Condition()
        self._queue: deque[_Delivery] = deque()
        self._retry: list[tuple[float, int, _Delivery]] = []
        self._seq = itertools.count()
        self._inflight = 0
        self._held = False
        self._release_shuffle = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._endpoint: _Endpoint | None = None
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._counters = dict.fromkeys(("attempts", "delivered", "failed", "dropped", "duplicated", "retried"), 0)
        self._connections: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self.faults()

    # ------------------------------------------------------------------ configuration

    @property
    def endpoint(self) -> tuple[str, str] | None:
        endpoint = self._endpoint
        return None if endpoint is None else (endpoint.url, endpoint.secret)

    def configure(self, url: str, secret: str, events: Iterable[str] | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("a webhook URL must be http(s)")
        if not secret:
            raise ValueError("a webhook endpoint needs a signing secret")
        wanted = frozenset(events) if events is not None else frozenset(("*",))
        with self._cond:
            self._endpoint = _Endpoint(url, secret, wanted)

    def clear(self) -> None:
        """Remove the endpoint: later events are not queued; queued ones are discarded."""
        with self._cond:
            self._endpoint = None
            self._queue.clear()
            self._retry.clear()
            self._cond.notify_all()

    def faults(
        self,
        *,
        duplicate: float = 0.0,
        drop: float = 0.0,
        shuffle: bool = False,
        shuffle_window: float = 0.05,
        seed: int = 0,
    ) -> None:
        if not (0.0 <= duplicate <= 1.0 and 0.0 <= drop <= 1.0):
            raise ValueError("duplicate and drop are probabilities between 0 and 1")
        if shuffle_window < 0:
            raise ValueError("shuffle_window must be >= 0")
        with self._cond:
            self._duplicate, self._drop, self._shuffle = float(duplicate), float(drop), bool(shuffle)
            self._shuffle_window = float(shuffle_window)
            self._rng = random.Random(seed)

    # ------------------------------------------------------------------ queueing

    def enqueue(self, event_id: str, event_type: str, created: int, raw: bytes) -> None:
        """Queue an event for delivery (cheap; called while the state lock is held)."""
        endpoint = self._endpoint
        if endpoint is None or not endpoint.wants(event_type):
            return
        with self._cond:
            if self._closed:
                return
            self._queue.append(_Delivery(event_id, event_type, raw, endpoint))
            self._ensure_thread()
            self._cond.notify_all()

    def resume(self) -> None:
        """Restart delivery after :meth:`close` if anything is still queued."""
        with self._cond:
            if self._queue or self._retry:
                self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="StripeSandboxWebhooks", daemon=True)
            self._thread.start()

    def hold(self) -> None:
        """Keep queueing events but deliver nothing until :meth:`release`."""
        with self._cond:
            self._held = True

    def release(self, *, shuffle: bool = False) -> None:
        """Deliver everything held, as one batch; ``shuffle`` sends that batch in random order."""
        with self._cond:
            self._held = False
            self._release_shuffle = bool(shuffle)
            self._cond.notify_all()

    def pending(self) -> int:
        """Deliveries queued, in flight or waiting for a retry."""
        with self._cond:
            return len(self._queue) + len(self._retry) + self._inflight

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued delivery is done (retries included); False on timeout, or at once if held."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._retry or self._inflight:
                if self._held and not self._inflight:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def deliveries(self) -> list[dict[str, Any]]:
        """Every attempt so far, oldest first: event id and type, attempt number, status (0 = no connection,
        None = dropped by the fault knob), whether it was an injected duplicate."""
        with self._cond:
            return [dict(entry) for entry in self._log]

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {**self._counters, "pending": len(self._queue) + len(self._retry) + self._inflight}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        with self._cond:
            self._thread = None
            self._closed = False
        for connection in self._connections.values():
            with contextlib.suppress(OSError):
                connection.close()
        self._connections.clear()

    # ------------------------------------------------------------------ the delivery thread

    def _next_batch(self) -> list[_Delivery] | None:
        with self._cond:
            while True:
                if self._closed:
                    return None
                now = time.monotonic()
                due = bool(self._retry) and self._retry[0][0] <= now
                if not self._held and (self._queue or due):
                    break
                wait = None if not self._retry or self._held else max(0.0, self._retry[0][0] - now)
                self._cond.wait(wait)
            if self._shuffle and self._shuffle_window > 0:  # let a batch gather, so there is something to shuffle
                deadline = time.monotonic() + self._shuffle_window
                while not self._closed and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            batch = list(self._queue)
            self._queue.clear()
            now = time.monotonic()
            while self._retry and self._retry[0][0] <= now:
                batch.append(heapq.heappop(self._retry)[2])
            rng = self._rng
            if self._shuffle or self._release_shuffle:
                rng.shuffle(batch)
            self._release_shuffle = False
            plan: list[_Delivery] = []
            duplicates: list[_Delivery] = []
            for delivery in batch:
                first = delivery.attempt == 0 and not delivery.duplicate
                if first and self._drop and rng.random() < self._drop:
                    self._counters["dropped"] += 1
                    self._log.append(self._entry(delivery, None, 0))
                    continue
                plan.append(delivery)
                if first and self._duplicate and rng.random() < self._duplicate:
                    self._counters["duplicated"] += 1
                    duplicates.append(replace(delivery, duplicate=True))
            plan += duplicates
            self._inflight = len(plan)
            self._cond.notify_all()
            return plan

    def _run(self) -> None:
        while True:
            plan = self._next_batch()
            if plan is None:
                return
            for delivery in plan:
                timestamp = self._clock()
                status = self._post(delivery, timestamp)
                with self._cond:
                    self._inflight -= 1
                    attempt = delivery.attempt + 1
                    self._counters["attempts"] += 1
                    self._log.append(self._entry(delivery, status, timestamp, attempt))
                    if 200 <= status < 300:
                        self._counters["delivered"] += 1
                    elif attempt <= self.retries and self._endpoint is not None:
                        self._counters["retried"] += 1
                        due = time.monotonic() + min(MAX_BACKOFF, self.retry_delay * 2 ** (attempt - 1))
                        heapq.heappush(self._retry, (due, next(self._seq), replace(delivery, attempt=attempt)))
                    else:
                        self._counters["failed"] += 1
                    self._cond.notify_all()

    @staticmethod
    def _entry(delivery: _Delivery, status: int | None, timestamp: int, attempt: int = 0) -> dict[str, Any]:
        return {
            "event_id": delivery.event_id,
            "type": delivery.type,
            "attempt": attempt,
            "status": status,
            "duplicate": delivery.duplicate,
            "timestamp": timestamp,
        }

    def _post(self, delivery: _Delivery, timestamp: int) -> int:
        """POST one signed delivery over a kept-alive connection; the status, 0 when unreachable."""
        endpoint = delivery.endpoint
        split = urlsplit(endpoint.url)
        https = split.scheme == "https"
        host = split.hostname or "localhost"
        port = split.port or (443 if https else 80)
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": sign(delivery.raw, endpoint.secret, timestamp),
        }
        key = (split.scheme, host, port)
        for _ in range(2):  # a kept-alive connection the receiver closed gets one fresh retry
            connection = self._connections.get(key)
            reused = connection is not None
            if connection is None:
                factory = http.client.HTTPSConnection if https else http.client.HTTPConnection
                connection = self._connections[key] = factory(host, port, timeout=self.timeout)
            try:
                connection.request("POST", target, body=delivery.raw, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.will_close:
                    connection.close()
                    self._connections.pop(key, None)
                return response.status
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                self._connections.pop(key, None)
                if not reused or isinstance(exc, TimeoutError):
                    return 0
        return 0
