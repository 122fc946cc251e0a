"""HTTP plumbing every tracker hook shares: retry policy, client-side pacing and the call log.

Why our own loop instead of the http provider's HttpHook: the provider turns every non-2xx answer
into an ``AirflowException`` (reference/airflow3.md), while a tracker sync must tell a 429 (wait for
``Retry-After`` and carry on), a 5xx or dropped connection (back off, retry the same page) and a
malformed body (retry, then quarantine the page) apart, without restarting the sync.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)


class TrackerAPIError(RuntimeError):
    """A call that cannot succeed by retrying (4xx other than 429, or retries exhausted)."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying one request before the task fails (and Airflow retries the task)."""

    max_attempts: int = 6  # for 5xx, dropped connections and timeouts
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_rate_limit_wait: float = 900.0  # total Retry-After sleeping allowed for one request
    malformed_attempts: int = 3
    timeout: tuple[float, float] = (5.0, 60.0)

    def with_overrides(self, overrides: dict[str, Any] | None) -> RetryPolicy:
        if not overrides:
            return self
        allowed = {f.name for f in fields(self)} - {"timeout"}
        unknown = set(overrides) - allowed
        if unknown:
            raise ValueError(f"unknown retry settings: {sorted(unknown)}")
        return replace(self, **overrides)

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: spreads retries of parallel workers apart."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


class Pacer:
    """Client-side sliding-window limiter so a steady-state sync never trips the vendor's 429.

    ``max_requests`` in any ``per_seconds`` window; ``max_requests <= 0`` turns pacing off.
    """

    def __init__(
        self,
        max_requests: int,
        per_seconds: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self._sent: deque[float] = deque()
        self._sleep = sleep
        self._clock = clock

    def wait_turn(self) -> float:
        if self.max_requests <= 0:
            return 0.0
        now = self._clock()
        while self._sent and now - self._sent[0] >= self.per_seconds:
            self._sent.popleft()
        waited = 0.0
        if len(self._sent) >= self.max_requests:
            waited = self.per_seconds - (now - self._sent[0])
            if waited > 0:
                self._sleep(waited)
            self._sent.popleft()
        self._sent.append(self._clock())
        return max(waited, 0.0)

    def seed(self, sent_ago: list[float]) -> None:
        """Start from requests already sent (seconds ago), e.g. by the previous task of the same run:
        the vendor's window spans tasks and workers, so ours must too."""
        now = self._clock()
        recent = sorted(now - ago for ago in sent_ago if 0 <= ago < self.per_seconds)
        self._sent = deque(recent[-self.max_requests :] if self.max_requests > 0 else [])

    def penalise(self, seconds: float) -> None:
        """After a 429 the server's window is the truth: make our window agree with it."""
        if self.max_requests > 0:
            until = self._clock() + seconds
            self._sent = deque([until - self.per_seconds] * self.max_requests)


@dataclass
class CallRecord:
    method: str
    url: str
    status: int | None
    outcome: str  # ok | rate_limited | server_error | connection_error | malformed | client_error
    duration_ms: int
    requested_at: datetime
    records: int | None = None


@dataclass
class CallLog:
    """Calls made since the last drain; the sync writes them in the same transaction as the page.
    Thread-safe: the prefetching thread adds while the main thread drains."""

    records: list[CallRecord] = field(default_factory=list)
    total: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self.records.append(record)
            self.total += 1

    def drain(self) -> list[CallRecord]:
        with self._lock:
            out, self.records = self.records, []
        return out


def redact_url(url: str) -> str:
    """Drop credentials that a base URL might carry; query strings of tracker APIs hold none."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[1]  # keeps [v6] brackets and the port as written
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def retry_after_seconds(value: str | None, default: float = 15.0) -> float:
    """Parse Retry-After (delta-seconds or an HTTP date)."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return default
    if when.tzinfo is None:  # asctime and "-0000" dates carry no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def server_time(response: requests.Response) -> datetime | None:
    try:
        return parsedate_to_datetime(response.headers["Date"])
    except (KeyError, TypeError, ValueError):
        return None
