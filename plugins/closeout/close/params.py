"""The close's run parameters, checked again inside the task.

The trigger form validates them with JSON schema already (see ``dags/closeout_month_end_close.py``); this
second check is for runs that bypass the form's rules (an old serialized DAG, a conf typed by hand), and it is
where "the month is not over yet" is decided: a schema cannot know today's date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from closeout.close.runs import CloseRefused

TRACKERS = ("harvest", "toggl", "clockify")
PUBLISH_POLICIES = ("as_configured", "auto", "hold")


@dataclass(frozen=True)
class CloseParams:
    period: str
    start: date  # first day of the period
    next_start: date  # first day after it: the day the close publishes "as of"
    dry_run: bool
    trackers: tuple[str, ...]
    publish_policy: str

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period, "dry_run": self.dry_run, "trackers": list(self.trackers),
                "publish_policy": self.publish_policy}  # fmt: skip


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def read_params(raw: dict[str, Any], *, today: date | None = None) -> CloseParams:
    """Validated parameters, or CloseRefused naming the parameter and what is wrong with it."""
    from closeout.billing.periods import PeriodError, parse_period

    text = raw.get("period")
    try:
        period = parse_period(str(text) if text is not None else "")
    except PeriodError as exc:
        raise CloseRefused(f"parameter 'period' = {text!r}: {exc}") from None
    start = period.start
    after = next_month(start)
    today = today or datetime.now(UTC).date()
    if after > today:
        raise CloseRefused(
            f"parameter 'period' = {period.label!r}: the month is not over yet (it ends {after - timedelta(days=1)}); "
            f"close it from {after} UTC"
        )
    trackers = raw.get("trackers", list(TRACKERS))
    if isinstance(trackers, str):
        trackers = [trackers]
    unknown = [t for t in trackers or [] if t not in TRACKERS]
    if not trackers or unknown:
        raise CloseRefused(f"parameter 'trackers' = {trackers!r}: choose one or more of {', '.join(TRACKERS)}")
    policy = raw.get("publish_policy") or "as_configured"
    if policy not in PUBLISH_POLICIES:
        raise CloseRefused(f"parameter 'publish_policy' = {policy!r}: one of {', '.join(PUBLISH_POLICIES)}")
    dry_run = raw.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise CloseRefused(f"parameter 'dry_run' = {dry_run!r}: true or false")
    ordered = tuple(t for t in TRACKERS if t in trackers)
    return CloseParams(period.label, start, after, dry_run, ordered, policy)
