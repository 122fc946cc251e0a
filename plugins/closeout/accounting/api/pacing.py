"""Client-side pacing under an accounting API's documented limits, so steady state never trips a 429.

QuickBooks counts per company: 500 requests a minute, 40 batch requests a minute and 10 requests at once. Each
minute limit is a bucket of N tokens where a token spent comes back exactly one window later (a sliding window:
unlike a refilling bucket that starts full, it can never let 2N through in one window); concurrency is a
semaphore. Reservations are taken under a lock and slept outside it, so many threads share one budget fairly.

One ``Pacer`` per (API base, company) per process, shared by every hook instance there (``shared_pacer``). Several
worker processes each pace themselves: the platform team sizes the Airflow pool for the accounting tasks so their
sum stays under the vendor's limit (docs/accounting-api.md), and a 429 that still happens is waited out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class WindowBucket:
    """At most ``limit`` acquisitions in any ``window`` seconds (plus a small slack); ``limit <= 0``: unlimited."""

    def __init__(self, limit: int, window: float, *, slack: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.limit = int(limit)
        # The vendor counts when a request arrives, we when it leaves: a request delayed on the way (a new TLS
        # connection, a busy worker) arrives closer to the next one than it left. The slack absorbs that.
        self.window = float(window) + (max(0.25, 0.02 * float(window)) if slack is None else float(slack))
        self._clock = clock
        self._spent: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Reserve the next slot; returns how long the caller must sleep before sending."""
        if self.limit <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            while self._spent and now - self._spent[0] >= self.window:
                self._spent.popleft()
            # full: the slot frees when the request `limit` places back leaves the window
            at = now if len(self._spent) < self.limit else self._spent[-self.limit] + self.window
            self._spent.append(at)
            return max(0.0, at - now)

    def next_wait(self) -> float:
        """How long a reservation now would wait (nothing is reserved)."""
        if self.limit <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            live = [t for t in self._spent if now - t < self.window]
            return 0.0 if len(live) < self.limit else max(0.0, live[-self.limit] + self.window - now)

    def align(self, remaining: int) -> None:
        """The vendor says only ``remaining`` calls are left in its current window (Xero's X-*Limit-Remaining): when
        that is fewer than we think, count the difference as spent now (other tasks, workers or integrations of the
        same organisation spent them); those phantom calls leave our window one window from now."""
        if self.limit <= 0:
            return
        with self._lock:
            now = self._clock()
            while self._spent and now - self._spent[0] >= self.window:
                self._spent.popleft()
            missing = (self.limit - len(self._spent)) - max(0, int(remaining))
            if missing > 0:
                self._spent = deque(sorted([*self._spent, *[now] * missing]))

    def hold_off(self, seconds: float) -> None:
        """After a 429 the vendor's window is the truth: nothing more goes out for ``seconds``."""
        if self.limit <= 0:
            return
        with self._lock:
            until = self._clock() + seconds - self.window
            self._spent = deque(sorted([*self._spent, *[until] * self.limit])[-self.limit :])


@dataclass(frozen=True)
class Limits:
    requests_per_window: int = 500
    batch_per_window: int = 40
    max_concurrent: int = 10
    window_seconds: float = 60.0


class Pacer:
    """The documented limits of one company: a request bucket, a batch bucket and a concurrency semaphore."""

    def __init__(self, limits: Limits, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.limits = limits
        self.requests = WindowBucket(limits.requests_per_window, limits.window_seconds)
        self.batches = WindowBucket(limits.batch_per_window, limits.window_seconds)
        self._slots = threading.BoundedSemaphore(limits.max_concurrent) if limits.max_concurrent > 0 else None
        self._sleep = sleep
        self.waited = 0.0  # seconds spent waiting for the budget (run summaries)

    @contextmanager
    def turn(self, *, batch: bool = False) -> Iterator[None]:
        """Wait for a slot in every window that applies and a concurrency slot; release the latter on exit."""
        if self._slots is not None:
            self._slots.acquire()
        try:
            wait = self.requests.reserve()
            if batch:
                wait = max(wait, self.batches.reserve())
            if wait > 0:
                self.waited += wait
                self._sleep(wait)
            yield
        finally:
            if self._slots is not None:
                self._slots.release()

    def hold_off(self, seconds: float, *, batch: bool = False) -> None:
        self.requests.hold_off(seconds)
        if batch:
            self.batches.hold_off(seconds)


_shared: dict[tuple[str, str, Limits], Pacer] = {}
_shared_lock = threading.Lock()


def shared_pacer(base_url: str, company_id: str, limits: Limits) -> Pacer:
    """The process-wide pacer of one company at one API base (hooks are created per task; budgets are not)."""
    key = (base_url, company_id, limits)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Pacer(limits)
        return _shared[key]
