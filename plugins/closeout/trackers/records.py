"""The tracker-neutral shapes capture produces: a contract row for a time entry, or a problem.

Every tracker normaliser turns vendor JSON into ``EntryRow`` (the DESIGN.md time entry contract,
before amounts, which the warehouse computes from the currency table) or into a ``Problem`` naming
the record, the field and the reason, so bad input is quarantined instead of dropped or fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from closeout.sanitize import number_problem, plausible_instant, text_problem

MAX_HOURS_PER_ENTRY = Decimal(24)
# ISO 4217 code -> minor-unit exponent (closeout_data.currencies)
Currencies = Mapping[str, int]
# An hourly rate above this in any currency is a data error (1e9 VND is about 40,000 USD an hour).
MAX_HOURLY_RATE = Decimal(10) ** 9


class EntryRow(NamedTuple):
    """Contract keys (client_key, ...) are derived in SQL from the source ids, where identity
    mapping across trackers belongs."""

    source_id: str
    client_source_id: str
    project_source_id: str
    task_source_id: str | None
    user_source_id: str
    spent_date: date
    hours: Decimal
    rounded_hours: Decimal
    billable: bool
    approved: bool
    billed_in_source: bool
    source_invoice_ref: str | None
    is_locked: bool
    is_running: bool
    billable_rate: Decimal | None
    currency: str
    notes: str | None
    source_created_at: datetime | None
    source_updated_at: datetime | None  # None: the tracker keeps no update time (Clockify)


ENTRY_COLUMNS: tuple[str, ...] = EntryRow._fields
# Postgres types of ENTRY_COLUMNS, for binary COPY (cheaper to write and to parse than text).
ENTRY_COPY_TYPES: tuple[str, ...] = (
    "text", "text", "text", "text", "text", "date", "numeric", "numeric", "bool", "bool", "bool", "text",
    "bool", "bool", "numeric", "text", "text", "timestamptz", "timestamptz",
)  # fmt: skip
assert len(ENTRY_COPY_TYPES) == len(ENTRY_COLUMNS)


@dataclass(frozen=True)
class Problem:
    entity: str
    source_id: str | None
    field: str
    reason: str
    raw: Any

    def __str__(self) -> str:
        who = f"{self.entity} {self.source_id}" if self.source_id else f"{self.entity} (no id)"
        return f"{who}: {self.field}: {self.reason}"


class Invalid(ValueError):
    """Raised inside a normaliser; carries the field so the problem names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def require_id(value: Any, field: str) -> str:
    if isinstance(value, bool) or value is None:
        raise Invalid(field, "missing")
    if isinstance(value, int):
        if value <= 0:
            raise Invalid(field, f"not a positive id: {value}")
        return str(value)
    if isinstance(value, str) and value.strip():
        problem = text_problem(value)
        if problem is not None:  # an identity is never altered: the record waits in quarantine
            raise Invalid(field, problem)
        return value.strip()
    raise Invalid(field, f"not an id: {value!r}")


def require_date(value: Any, field: str) -> date:
    if not isinstance(value, str):
        raise Invalid(field, "missing" if value is None else f"not a date: {value!r}")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise Invalid(field, f"not a date: {value!r}") from None
    absurd = plausible_instant(parsed)
    if absurd is not None:
        raise Invalid(field, absurd)
    return parsed


def require_datetime(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise Invalid(field, "missing" if value is None else f"not a timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(field, f"not a timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise Invalid(field, f"timestamp without a time zone: {value!r}")
    absurd = plausible_instant(parsed)
    if absurd is not None:
        raise Invalid(field, absurd)
    return parsed


def optional_datetime(value: Any, field: str) -> datetime | None:
    return None if value is None else require_datetime(value, field)


def require_decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise Invalid(field, "missing" if value is None else f"not a number: {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise Invalid(field, f"not a number: {value!r}") from None
    else:  # a float can only arrive from a caller that parsed JSON carelessly
        raise Invalid(field, f"not an exact number: {value!r}")
    problem = number_problem(number)  # NaN, Infinity, 1e-100000, beyond bigint: Postgres or we cannot hold it
    if problem is not None:
        raise Invalid(field, problem)
    return number


def require_hours(value: Any, field: str) -> Decimal:
    hours = require_decimal(value, field)
    if hours < 0:
        raise Invalid(field, f"negative hours: {hours}")
    if hours > MAX_HOURS_PER_ENTRY:
        raise Invalid(field, f"{hours} hours in one entry (more than {MAX_HOURS_PER_ENTRY})")
    return hours


def optional_rate(value: Any, field: str) -> Decimal | None:
    if value is None:
        return None
    rate = require_decimal(value, field)
    if rate < 0:
        raise Invalid(field, f"negative rate: {rate}")
    if rate > MAX_HOURLY_RATE:
        raise Invalid(field, f"implausible rate: {rate} (more than {MAX_HOURLY_RATE} per hour)")
    return rate


def require_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    raise Invalid(field, "missing" if value is None else f"not true/false: {value!r}")


def require_currency(value: Any, field: str, known: Mapping[str, int] | frozenset[str]) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(field, "missing currency")
    code = value.upper()
    if code not in known:
        raise Invalid(field, f"unknown currency {value!r}")
    return code
