"""The detailed time exports of Harvest, Toggl Track and Clockify, read into one row shape.

Layouts as the trackers write them (header names are matched case-insensitively):
- Harvest "Detailed Time" report: Date, Client, Project, Task, Notes, Hours, Hours Rounded, Billable?,
  Invoiced?, Approved?, First Name, Last Name, Billable Rate, Currency ("US Dollar - USD" or "USD").
- Toggl Track "Detailed report": User, Email, Client, Project, Task, Description, Billable, Start date,
  Start time, Duration (HH:MM:SS), Amount (CUR) - no rate column: it is derived from the amount when
  that is exact, else left empty.
- Clockify "Detailed report": Project, Client, Description, Task, User, Email, Billable, Start Date
  (MM/DD/YYYY), Start Time, Duration (h) (HH:MM:SS), Billable Rate (CUR).
None of them carries an entry id; ``importer`` gives each row a deterministic one.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from closeout.sanitize import number_problem
from closeout.trackers.durations import hours_from_seconds
from closeout.trackers.records import MAX_HOURS_PER_ENTRY, Invalid

TRACKERS = ("harvest", "toggl", "clockify")
_CURRENCY_IN_HEADER = re.compile(r"\(([A-Z]{3})\)\s*$")


@dataclass(frozen=True)
class HistoryRow:
    file: str
    line: int
    raw: dict[str, str]
    spent_date: date
    user_name: str | None
    user_email: str | None
    client: str | None
    project: str | None
    task: str | None
    notes: str | None
    hours: Decimal
    rounded_hours: Decimal
    billable: bool
    approved: bool
    invoiced: bool
    rate: Decimal | None
    currency: str | None


def _get(raw: dict[str, str], *names: str) -> str | None:
    for name in names:
        value = raw.get(name.lower())
        if value is not None:
            value = value.strip()
            return value or None
    return None


def _yes(value: str | None) -> bool:
    return (value or "").strip().lower() in {"yes", "true", "1", "y"}


def _decimal(value: str | None, field: str) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(value.replace(",", ""))
    except InvalidOperation:
        raise Invalid(field, f"not a number: {value!r}") from None
    problem = number_problem(number)  # NaN, 1e-100000, 1e400: the row is unreadable, named with its line
    if problem is not None:
        raise Invalid(field, problem)
    return number


def _hours(value: Decimal | None, field: str) -> Decimal:
    if value is None:
        raise Invalid(field, "missing")
    if value < 0:
        raise Invalid(field, f"negative hours: {value}")
    if value > MAX_HOURS_PER_ENTRY:
        raise Invalid(field, f"{value} hours in one entry (more than {MAX_HOURS_PER_ENTRY})")
    return value


def _clock(value: str | None, field: str) -> int:
    """HH:MM:SS (hours may exceed 24 in exports) -> seconds."""
    if not value or not re.fullmatch(r"\d+:\d{2}:\d{2}", value):
        raise Invalid(field, "missing" if not value else f"not HH:MM:SS: {value!r}")
    h, m, s = (int(part) for part in value.split(":"))
    return h * 3600 + m * 60 + s


def _currency_from_headers(headers: list[str], prefix: str) -> str | None:
    for header in headers:
        if header.startswith(prefix):
            match = _CURRENCY_IN_HEADER.search(header.upper())
            if match:
                return match.group(1)
    return None


def _harvest(raw: dict[str, str], headers: list[str]) -> dict:
    try:
        spent = date.fromisoformat(_get(raw, "Date") or "")
    except ValueError:
        raise Invalid("Date", f"not a date: {_get(raw, 'Date')!r}") from None
    hours = _hours(_decimal(_get(raw, "Hours"), "Hours"), "Hours")
    rounded = _hours(_decimal(_get(raw, "Hours Rounded"), "Hours Rounded") or hours, "Hours Rounded")
    currency = _get(raw, "Currency")
    if currency and " - " in currency:
        currency = currency.rsplit(" - ", 1)[1]
    first, last = _get(raw, "First Name"), _get(raw, "Last Name")
    return {
        "spent_date": spent, "user_name": " ".join(p for p in (first, last) if p) or None, "user_email": None,
        "client": _get(raw, "Client"), "project": _get(raw, "Project"), "task": _get(raw, "Task"),
        "notes": _get(raw, "Notes"), "hours": hours, "rounded_hours": rounded, "billable": _yes(_get(raw, "Billable?")),
        "approved": _yes(_get(raw, "Approved?")), "invoiced": _yes(_get(raw, "Invoiced?")),
        "rate": _decimal(_get(raw, "Billable Rate"), "Billable Rate"), "currency": currency,
    }  # fmt: skip


def _toggl(raw: dict[str, str], headers: list[str]) -> dict:
    try:
        spent = date.fromisoformat(_get(raw, "Start date") or "")
    except ValueError:
        raise Invalid("Start date", f"not a date: {_get(raw, 'Start date')!r}") from None
    seconds = _clock(_get(raw, "Duration"), "Duration")
    hours = _hours(hours_from_seconds(seconds), "Duration")
    currency = _currency_from_headers(headers, "amount")
    amount_column = next((h for h in headers if h.startswith("amount")), None)
    amount = _decimal(raw.get(amount_column) or None, "Amount") if amount_column else None
    rate = None
    if amount is not None and seconds > 0:
        candidate = (amount * 3600 / Decimal(seconds)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if (hours * candidate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) == amount:
            rate = candidate  # only when it reproduces the exported amount exactly
    return {
        "spent_date": spent, "user_name": _get(raw, "User"), "user_email": _get(raw, "Email"),
        "client": _get(raw, "Client"), "project": _get(raw, "Project"), "task": _get(raw, "Task"),
        "notes": _get(raw, "Description"), "hours": hours, "rounded_hours": hours,
        "billable": _yes(_get(raw, "Billable")), "approved": True, "invoiced": False, "rate": rate,
        "currency": currency,
    }  # fmt: skip


def _clockify(raw: dict[str, str], headers: list[str]) -> dict:
    text = _get(raw, "Start Date") or ""
    try:
        spent = datetime.strptime(text, "%m/%d/%Y").date()
    except ValueError:
        raise Invalid("Start Date", f"not a MM/DD/YYYY date: {text!r}") from None
    seconds = _clock(_get(raw, "Duration (h)"), "Duration (h)")
    hours = _hours(hours_from_seconds(seconds), "Duration (h)")
    rate_column = next((h for h in headers if h.startswith("billable rate")), None)
    return {
        "spent_date": spent, "user_name": _get(raw, "User"), "user_email": _get(raw, "Email"),
        "client": _get(raw, "Client"), "project": _get(raw, "Project"), "task": _get(raw, "Task"),
        "notes": _get(raw, "Description"), "hours": hours, "rounded_hours": hours,
        "billable": _yes(_get(raw, "Billable")), "approved": True, "invoiced": False,
        "rate": _decimal(raw.get(rate_column) or None, "Billable Rate") if rate_column else None,
        "currency": _currency_from_headers(headers, "billable rate"),
    }  # fmt: skip


_PARSERS = {"harvest": _harvest, "toggl": _toggl, "clockify": _clockify}


class ExportUnreadable(ValueError):
    """An export file that is not UTF-8 text: named with its file, line and byte offset, so it can be re-saved."""


def decoded_lines(handle: Iterable[bytes], name: str) -> Iterator[str]:
    """The file's lines as text, strictly UTF-8 (a leading BOM is dropped, as Excel writes one).

    Decoded line by line, so the error names the physical line and the byte offset in the file of the first byte
    that is not UTF-8 (a Latin-1 or Windows-1252 export is the usual cause)."""
    offset = 0
    for number, raw in enumerate(handle, start=1):
        skip = len(codecs.BOM_UTF8) if number == 1 and raw.startswith(codecs.BOM_UTF8) else 0
        try:
            yield raw[skip:].decode("utf-8")
        except UnicodeDecodeError as exc:
            at = offset + skip + exc.start
            bad = raw[skip + exc.start : skip + exc.end].hex(" ")
            raise ExportUnreadable(
                f"{name}: line {number}, byte offset {at}: not UTF-8 (bytes {bad}); save the export as UTF-8 "
                "(CSV UTF-8) and run the import again"
            ) from None
        offset += len(raw)


def read_export(tracker: str, path: Any) -> Iterator[HistoryRow | tuple[int, dict[str, str], Invalid]]:
    """Rows of one export file (a ``Path`` or an ``ObjectStoragePath``); a row that cannot be read comes back as
    (line, raw, Invalid); a file that is not UTF-8 raises ExportUnreadable naming the file, line and byte."""
    parse = _PARSERS[tracker]
    with path.open("rb") as handle:
        reader = csv.DictReader(decoded_lines(handle, path.name))
        headers = [h.strip().lower() for h in reader.fieldnames or []]
        for line, row in enumerate(reader, start=2):
            raw = {k.strip().lower(): (v or "") for k, v in row.items() if k is not None}
            try:
                yield HistoryRow(file=path.name, line=line, raw=raw, **parse(raw, headers))
            except Invalid as exc:
                yield line, raw, exc
