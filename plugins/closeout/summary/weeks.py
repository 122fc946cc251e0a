"""ISO weeks, the weekly summary's period: ``YYYY-Www`` (Monday to Sunday, ISO 8601), as finance and the DAG's
``week`` parameter name them. Week 53 exists only in years that have one, so a well-formed label can still be
refused (``2025-W53``): checked here, not by the parameter's pattern alone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

WEEK_PATTERN = r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$"
_WEEK = re.compile(WEEK_PATTERN)


class WeekError(ValueError):
    """A week label that does not name an ISO week."""


@dataclass(frozen=True, order=True)
class IsoWeek:
    """One ISO week: ``start`` is its Monday, ``end`` its Sunday."""

    start: date

    @property
    def end(self) -> date:
        return self.start + timedelta(days=6)

    @property
    def label(self) -> str:
        year, week, _ = self.start.isocalendar()
        return f"{year:04d}-W{week:02d}"

    def previous(self, weeks: int = 1) -> IsoWeek:
        return IsoWeek(self.start - timedelta(weeks=weeks))

    def __str__(self) -> str:
        return self.label


def parse_week(label: str) -> IsoWeek:
    """``2026-W48`` -> that week. Refuses other shapes and weeks a year does not have."""
    text = str(label or "").strip()
    if not _WEEK.match(text):
        raise WeekError(f"week {label!r}: expected YYYY-Www, for example 2026-W48")
    year, week = int(text[:4]), int(text[6:])
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise WeekError(f"week {label!r}: {year} has no ISO week {week}") from exc
    return IsoWeek(monday)


def week_of(day: date) -> IsoWeek:
    """The ISO week ``day`` falls in."""
    return IsoWeek(day - timedelta(days=day.weekday()))


def last_week(today: date) -> IsoWeek:
    """The week before the one ``today`` is in: what a Monday run summarises."""
    return week_of(today).previous()
