"""The tracker-neutral expense row (the DESIGN.md ``closeout.expenses`` contract before its amount, which
the warehouse computes from the currency table) and the field checks every expense normaliser shares.

Unlike a time entry's notes, an expense's texts are not repaired: a receipt link or a category that
Postgres would refuse is a record finance must look at, so the whole expense waits in quarantine.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from closeout.sanitize import text_problem
from closeout.trackers.records import Invalid, require_decimal

# One expense above this many major units of any currency is a data error, not a purchase
# (1e9 VND is about 40,000 USD; 1e9 USD is not a reimbursable taxi).
MAX_EXPENSE_TOTAL = Decimal(10) ** 9
MAX_UNITS = Decimal(10) ** 7


class ExpenseRow(NamedTuple):
    """One expense as the tracker describes it now; contract keys are derived in SQL."""

    source_id: str
    client_source_id: str | None
    project_source_id: str
    user_source_id: str
    spent_date: date
    category_source_id: str | None
    category: str | None
    unit_name: str | None
    units: Decimal | None
    unit_price: Decimal | None
    total_cost: Decimal
    billable: bool
    approved: bool
    billed_in_source: bool
    source_invoice_ref: str | None
    is_locked: bool
    locked_reason: str | None
    currency: str
    receipt_url: str | None
    receipt_file_name: str | None
    receipt_file_size: int | None
    receipt_content_type: str | None
    notes: str | None
    source_created_at: datetime | None
    source_updated_at: datetime | None  # None: the tracker keeps no update time


EXPENSE_COLUMNS: tuple[str, ...] = ExpenseRow._fields
EXPENSE_COPY_TYPES: tuple[str, ...] = (
    "text", "text", "text", "text", "date", "text", "text", "text", "numeric", "numeric", "numeric",
    "bool", "bool", "bool", "text", "bool", "text", "text", "text", "text", "int8", "text", "text",
    "timestamptz", "timestamptz",
)  # fmt: skip
assert len(EXPENSE_COPY_TYPES) == len(EXPENSE_COLUMNS)


def optional_text(value: Any, field: str) -> str | None:
    """A free text as sent, or None; text Postgres would refuse (NUL, lone surrogate) is a problem."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(field, f"not a text: {value!r}")
    problem = text_problem(value)
    if problem is not None:
        raise Invalid(field, problem)
    return value


def require_total(value: Any, field: str) -> Decimal:
    """An expense's total: exact, not negative, and not absurd."""
    total = require_decimal(value, field)
    if total < 0:
        raise Invalid(field, f"negative amount: {total}")
    if total > MAX_EXPENSE_TOTAL:
        raise Invalid(field, f"implausible amount: {total} (more than {MAX_EXPENSE_TOTAL} for one expense)")
    return total


def optional_quantity(value: Any, field: str, limit: Decimal) -> Decimal | None:
    if value is None:
        return None
    number = require_decimal(value, field)
    if number < 0:
        raise Invalid(field, f"negative: {number}")
    if number > limit:
        raise Invalid(field, f"implausible: {number} (more than {limit})")
    return number


def optional_size(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise Invalid(field, f"not a file size: {value!r}")
    return value
