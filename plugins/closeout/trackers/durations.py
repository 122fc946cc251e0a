"""Durations in seconds -> contract hours, and the trackers' rounding rules, in exact decimals.

Hours are kept to the microhour (6 decimals, 0.0036 s): a second is not a finite decimal fraction of
an hour, and 6 decimals keep any amount equal to the tracker's own to the minor unit for every rate
below a million minor units an hour.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MICROHOUR = Decimal("0.000001")
SECONDS_PER_HOUR = Decimal(3600)


def hours_from_seconds(seconds: int) -> Decimal:
    return (Decimal(seconds) / SECONDS_PER_HOUR).quantize(MICROHOUR, rounding=ROUND_HALF_UP)


def rounded_seconds(seconds: int, minutes: int, direction: int) -> int:
    """Round a duration to a multiple of ``minutes``: direction -1 down, 0 nearest (half up), 1 up."""
    if minutes <= 0:
        return seconds
    step = minutes * 60
    whole, rest = divmod(seconds, step)
    if rest == 0 or direction < 0:
        return whole * step
    if direction > 0 or rest * 2 >= step:
        return (whole + 1) * step
    return whole * step
