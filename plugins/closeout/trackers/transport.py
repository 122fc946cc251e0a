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


class BudgetExhausted(Exception):
    """The tracker's request budget cannot pay for the next call; continue in a later run."""

    def __init__(self, message: str, *, resets_in: float | None = None) -> None:
        super().__init__(message)
        self.resets_in = resets_in


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

    def next_wait(self) -> float:
        """How long the next ``wait_turn`` would sleep (0 when a slot is free)."""
        if self.max_requests <= 0:
            return 0.0
        now = self._clock()
        live = [t for t in self._sent if now - t < self.per_seconds]
        if len(live) < self.max_requests:
            return 0.0
        return max(0.0, self.per_seconds - (now - live[-self.max_requests]))

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


class TrackerTransport:
    """One vendor's HTTP conversation: pacing, retries and the call log. Hooks own URLs and payloads.

    429 waits ``Retry-After`` (bounded in total by the policy); 5xx, timeouts and dropped connections
    back off and retry the same request; any other 4xx but 404 is a ``TrackerAPIError``. ``inspect``
    sees every response first and may raise ``BudgetExhausted`` (e.g. Toggl's 402 quota answer).
    When pacing would wait longer than ``max_pacing_wait`` (an hourly plan limit), the call is not
    made: ``BudgetExhausted`` lets the run stop cleanly and continue later.
    """

    def __init__(
        self,
        vendor: str,
        session: requests.Session,
        *,
        policy: RetryPolicy,
        pacer: Pacer,
        calls: CallLog,
        inspect: Callable[[requests.Response], None] | None = None,
        max_pacing_wait: float | None = None,
        extra_pacers: tuple[Pacer, ...] = (),
    ) -> None:
        self.vendor = vendor
        self.session = session
        self.policy = policy
        self.pacer = pacer
        self.calls = calls
        self.inspect = inspect
        self.max_pacing_wait = max_pacing_wait
        self.extra_pacers = extra_pacers  # short-term limits: always waited out, never a budget stop

    def send(self, method: str, url: str, *, json_body: Any = None) -> tuple[requests.Response, CallRecord]:
        """Returns any 2xx or 404 with its call record; raises otherwise."""
        failures = 0
        rate_limited_for = 0.0
        shown = redact_url(url)
        while True:
            if self.max_pacing_wait is not None and self.pacer.next_wait() > self.max_pacing_wait:
                raise BudgetExhausted(
                    f"{self.vendor} request budget spent for now (next slot in {self.pacer.next_wait():.0f}s)",
                    resets_in=self.pacer.next_wait(),
                )
            self.pacer.wait_turn()
            for pacer in self.extra_pacers:
                pacer.wait_turn()
            started = time.monotonic()
            at = datetime.now(UTC)
            try:
                response = self.session.request(method, url, json=json_body, timeout=self.policy.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._record(method, url, None, "connection_error", started, at)
                failures += 1
                if failures >= self.policy.max_attempts:
                    raise TrackerAPIError(f"{method} {shown}: {type(exc).__name__} after {failures} attempts",
                                          url=url) from exc  # fmt: skip
                delay = self.policy.backoff(failures)
                log.warning("%s %s %s: %s; retry %d in %.1fs", self.vendor, method, shown, type(exc).__name__,
                            failures, delay)  # fmt: skip
                time.sleep(delay)
                continue
            status = response.status_code
            if self.inspect is not None:
                try:
                    self.inspect(response)
                except BudgetExhausted:
                    self._record(method, url, status, "budget_exhausted", started, at)
                    raise
            if status == 429:
                wait = retry_after_seconds(response.headers.get("Retry-After"), default=1.0)
                self._record(method, url, status, "rate_limited", started, at)
                rate_limited_for += wait
                if rate_limited_for > self.policy.max_rate_limit_wait:
                    raise TrackerAPIError(f"{method} {shown}: rate limited for {rate_limited_for:.0f}s in total",
                                          status=429, url=url)  # fmt: skip
                if self.max_pacing_wait is not None and wait > self.max_pacing_wait:
                    raise BudgetExhausted(f"{self.vendor} rate limit: next slot in {wait:.0f}s", resets_in=wait)
                log.info("%s rate limit: waiting %.1fs (Retry-After)", self.vendor, wait)
                self.pacer.penalise(wait)
                time.sleep(wait)
                continue
            if status >= 500:
                self._record(method, url, status, "server_error", started, at)
                failures += 1
                if failures >= self.policy.max_attempts:
                    raise TrackerAPIError(f"{method} {shown}: HTTP {status} after {failures} attempts",
                                          status=status, url=url)  # fmt: skip
                delay = self.policy.backoff(failures)
                log.warning("%s %s %s: HTTP %d; retry %d in %.1fs", self.vendor, method, shown, status, failures,
                            delay)  # fmt: skip
                time.sleep(delay)
                continue
            if status == 404 or 200 <= status < 300:
                return response, self._record(method, url, status, "ok", started, at)
            self._record(method, url, status, "client_error", started, at)
            raise TrackerAPIError(f"{method} {shown}: HTTP {status}: {error_text(response)}", status=status, url=url)

    def _record(self, method: str, url: str, status: int | None, outcome: str, started: float,
                at: datetime) -> CallRecord:  # fmt: skip
        record = CallRecord(method, redact_url(url), status, outcome, int((time.monotonic() - started) * 1000), at)
        self.calls.add(record)
        return record


def error_text(response: requests.Response) -> str:
    """A short, secret-free description of an error body for messages and logs."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("error_description") or body.get("message") or body.get("error") or body)[:200]
    return str(body)[:200]
