"""Walking Stripe's list endpoints: newest first, by ``created`` range, resumable, paced.

Stripe lists newest first and pages with ``starting_after`` (the last id of the previous page). A listing of
``created`` in ``[gte, lt)`` with a fixed upper bound is therefore a stable walk: objects created while it runs
fall above ``lt`` and are left for the next pass, and a walk killed half way resumes from the last id it
stored. Objects Stripe creates with a ``created`` a little in the past (a late write on Stripe's side) are
caught by the next pass starting ``overlap`` seconds before the newest object this pass saw.

Pacing: at most ``reads_per_second`` requests (the connection extra ``cash_reads_per_second``; 0 = no pacing),
and a 429 waits (``Retry-After`` when Stripe gives it, else a growing back-off) and tries again: a rate limit
is never a failure. Other errors are the hook's ``StripeCallError``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from closeout.payments.hook import LIST_PAGE, StripeCallError, StripeHook

log = logging.getLogger(__name__)

MAX_RATE_LIMIT_WAIT = 60.0
PREFETCH_PAGES = 30  # a flush (COPY + upsert of up to 2,000 rows) takes as long as several pages


@dataclass
class Pacer:
    """Spaces requests evenly at ``reads_per_second`` (thread safe; one per sync)."""

    reads_per_second: float = 0.0
    rate_limited: int = 0
    waited_seconds: float = 0.0
    _next: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self) -> None:
        if self.reads_per_second <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + 1.0 / self.reads_per_second
        if start > now:
            time.sleep(start - now)

    def call(self, hook: StripeHook, path: str, params: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """One GET, paced; a 429 waits and retries for as long as Stripe keeps saying so."""
        attempt = 0
        while True:
            self.wait()
            try:
                return hook.list_page(path, params)
            except StripeCallError as exc:
                if exc.status != 429:
                    raise
                attempt += 1
                delay = _retry_after(exc) or min(0.5 * 2 ** (attempt - 1), MAX_RATE_LIMIT_WAIT)
                self.rate_limited += 1
                self.waited_seconds += delay
                log.info("Stripe rate limit on %s: waiting %.1f s (attempt %d)", path, delay, attempt)
                time.sleep(delay)


def _retry_after(exc: StripeCallError) -> float | None:
    headers = getattr(exc.__cause__, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return min(max(float(value), 0.05), MAX_RATE_LIMIT_WAIT) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Page:
    """One page: its objects, the id to resume after (the last object's), and Stripe's time when it served the
    page (``Date``; ``None`` if it did not say)."""

    objects: list[dict[str, Any]]
    last_id: str | None
    has_more: bool
    served_at: int | None = None


def pages(hook: StripeHook, pacer: Pacer, path: str, params: dict[str, Any],
          starting_after: str | None = None) -> Iterator[Page]:  # fmt: skip
    """Every page of ``path`` with ``params``, from ``starting_after``, newest first. The next page is fetched
    on a helper thread while the caller stores this one (HTTP and JSON decoding overlap Postgres work);
    at most ``PREFETCH_PAGES`` pages are held, never the whole listing."""
    out: queue.Queue[Page | BaseException | None] = queue.Queue(maxsize=PREFETCH_PAGES)
    stop = threading.Event()

    def produce() -> None:
        after = starting_after
        try:
            while not stop.is_set():
                query = {**params, "limit": LIST_PAGE, **({"starting_after": after} if after else {})}
                body, served_at = pacer.call(hook, path, query)
                objects = body.get("data") or []
                has_more = bool(body.get("has_more")) and bool(objects)
                page = Page(objects, objects[-1]["id"] if objects else after, has_more, served_at)
                _put(out, page, stop)
                if not has_more:
                    break
                after = page.last_id
        except BaseException as exc:  # handed to the consumer, raised there
            _put(out, exc, stop)
            return
        _put(out, None, stop)

    worker = threading.Thread(target=produce, name=f"stripe-list{path.replace('/', '-')}", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue, then let it finish
            try:
                out.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def _put(out: queue.Queue, item: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
