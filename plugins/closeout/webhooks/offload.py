"""Blocking work (the warehouse, Airflow's connection lookup) runs off the API server's event loop.

The event loop of the Airflow API server serves the UI, the REST API and the task SDK; one blocking
``psycopg.connect`` to a warehouse that does not answer would freeze all of them. So every blocking
call of the receiver runs in a worker thread, from a pool of its own (``db_threads`` threads, never
Airflow's shared default pool), and at most ``db_queue`` more requests may wait for a thread. Beyond
that the receiver is saturated and says so at once (503 with ``Retry-After``) instead of piling up
requests, memory and sockets: every vendor retries a 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class Saturated(Exception):
    """Every worker thread is busy and the waiting line is full."""


class BlockingPool:
    def __init__(self, threads: int, queue: int) -> None:
        self.threads = threads
        self.queue = queue
        self._limiter: anyio.CapacityLimiter | None = None
        self._admitted = 0  # touched only on the event loop thread, so no lock is needed

    @property
    def admitted(self) -> int:
        """Requests holding or waiting for a worker thread right now."""
        return self._admitted

    async def run(self, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` in a worker thread; Saturated at once when the pool and its queue are full.

        The call is not abandoned when the client disconnects: the thread finishes (its statements are
        bounded by the statement timeout) before its slot is given back, so the bound holds on threads.
        """
        if self._admitted >= self.threads + self.queue:
            raise Saturated
        if self._limiter is None:  # created lazily: a limiter belongs to the event loop that uses it
            self._limiter = anyio.CapacityLimiter(self.threads)
        self._admitted += 1
        try:
            return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)
        finally:
            self._admitted -= 1
