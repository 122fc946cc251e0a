"""Warnings about refused webhooks, at most one per kind of refusal every few seconds.

A flood of forged or oversized requests must not become a flood of log lines on the API server (disk,
log shipping, the platform team's attention). The first refusal of a kind is logged at once; the ones that
follow within the interval are counted and the count goes out with the next line of that kind. Kinds are
few and fixed (vendor x reason), so the counters never grow with the traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

INTERVAL_SECONDS = 10.0


class RefusalLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval_seconds: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        """Log ``message`` unless a refusal of the same ``kind`` was logged less than the interval ago."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval_seconds:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        skipped = self._suppressed.pop(kind, 0)
        if skipped and last is not None:  # skipped ones imply an earlier line of this kind
            message += " (and %d more like it in the last %d s, not logged)"
            args = (*args, skipped, int(now - last))
        self.logger.warning(message, *args)
