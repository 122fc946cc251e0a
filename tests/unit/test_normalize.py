"""Harvest time entry JSON -> EntryRow, or Invalid naming the field."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from closeout.trackers.harvest.normalize import normalize_entry, normalize_page
from closeout.trackers.records import EntryRow, Invalid

CURRENCIES = frozenset({"USD", "EUR", "JPY", "KWD"})

RAW = """{
  "id": 636709355, "spent_date": "2026-01-14", "hours": 2.11, "rounded_hours": 2.25,
  "notes": "Design review", "is_locked": true, "is_closed": true, "is_billed": true, "is_running": false,
  "billable": true, "budgeted": true, "billable_rate": 100.5, "cost_rate": 50.0,
  "created_at": "2026-01-14T09:00:00Z", "updated_at": "2026-01-15T10:30:00+02:00",
  "user": {"id": 1782959, "name": "Kim Allen"},
  "client": {"id": 5735776, "name": "123 Industries", "currency": "usd"},
  "project": {"id": 14307913, "name": "Marketing Website", "code": "MW"},
  "task": {"id": 8083365, "name": "Graphic Design"},
  "invoice": {"id": 13150403, "number": "1001"}
}"""
_DROP = object()  # entry(key=_DROP) removes the key


def entry(**changes) -> dict:
    raw = json.loads(RAW, parse_float=Decimal)
    for key, value in changes.items():
        if value is _DROP:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


EXPECTED = {
    "source_id": "636709355",
    # contract keys: on the row when the normaliser derives them, otherwise derived in SQL from the ids
    "client_key": "harvest:5735776",
    "project_key": "harvest:14307913",
    "task_key": "harvest:8083365",
    "user_key": "harvest:1782959",
    "client_source_id": "5735776",
    "project_source_id": "14307913",
    "task_source_id": "8083365",
    "user_source_id": "1782959",
    "spent_date": date(2026, 1, 14),
    "hours": Decimal("2.11"),
    "rounded_hours": Decimal("2.25"),
    "billable": True,
    "approved": True,
    "billed_in_source": True,
    "source_invoice_ref": "1001",
    "is_locked": True,
    "is_running": False,
    "billable_rate": Decimal("100.5"),
    "currency": "USD",
    "notes": "Design review",
    "source_created_at": datetime(2026, 1, 14, 9, tzinfo=UTC),
    "source_updated_at": datetime(2026, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=2))),
}


def test_valid_entry_becomes_the_exact_row():
    row = normalize_entry(entry(), CURRENCIES)

    assert isinstance(row, EntryRow)
    assert set(EntryRow._fields) <= set(EXPECTED), set(EntryRow._fields) - set(EXPECTED)
    assert row._asdict() == {name: EXPECTED[name] for name in EntryRow._fields}
    assert isinstance(row.hours, Decimal) and isinstance(row.billable_rate, Decimal)
    assert row.source_updated_at.utcoffset() == timedelta(hours=2)


def test_open_unbilled_entry_without_invoice_or_rate():
    row = normalize_entry(
        entry(is_closed=False, is_billed=False, invoice=None, billable=False, billable_rate=None, rounded_hours=_DROP),
        CURRENCIES,
    )
    assert (row.approved, row.billed_in_source, row.source_invoice_ref) == (False, False, None)
    assert (row.billable, row.billable_rate) == (False, None)
    assert row.rounded_hours == row.hours == Decimal("2.11")


def test_invoice_without_number_falls_back_to_its_id():
    assert normalize_entry(entry(invoice={"id": 77, "number": None}), CURRENCIES).source_invoice_ref == "77"


BAD_CASES = [
    pytest.param({"id": _DROP}, "id", "missing", id="missing-id"),
    pytest.param({"id": 0}, "id", "not a positive id", id="id-zero"),
    pytest.param({"id": -5}, "id", "not a positive id", id="id-negative"),
    pytest.param({"id": True}, "id", "missing", id="id-true"),
    pytest.param({"id": Decimal("1.5")}, "id", "not an id", id="id-decimal"),
    pytest.param({"client": _DROP}, "client.id", "missing", id="missing-client"),
    pytest.param({"client": {"name": "no id", "currency": "USD"}}, "client.id", "missing", id="client-no-id"),
    pytest.param({"user": None}, "user.id", "missing", id="missing-user"),
    pytest.param(
        {"client": {"id": 5735776, "currency": "XYZ"}}, "client.currency", "unknown currency", id="currency-xyz"
    ),
    pytest.param({"client": {"id": 5735776}}, "client.currency", "missing currency", id="currency-missing"),
    pytest.param({"hours": Decimal("-0.5")}, "hours", "negative hours", id="negative-hours"),
    pytest.param({"hours": Decimal("24.01")}, "hours", "more than 24", id="over-24-hours"),
    pytest.param({"hours": 2.5}, "hours", "not an exact number", id="float-hours"),
    pytest.param({"hours": "two"}, "hours", "not a number", id="string-hours"),
    pytest.param({"hours": "NaN"}, "hours", "not a finite number", id="nan-hours"),
    pytest.param({"hours": _DROP}, "hours", "missing", id="missing-hours"),
    pytest.param({"hours": True}, "hours", "not a number", id="bool-hours"),
    pytest.param({"rounded_hours": Decimal("25")}, "rounded_hours", "more than 24", id="over-24-rounded"),
    pytest.param({"spent_date": "2026-02-30"}, "spent_date", "not a date", id="bad-date"),
    pytest.param({"spent_date": None}, "spent_date", "missing", id="missing-date"),
    pytest.param({"updated_at": "2026-01-15T10:30:00"}, "updated_at", "without a time zone", id="naive-updated"),
    pytest.param({"updated_at": _DROP}, "updated_at", "missing", id="missing-updated"),
    pytest.param({"created_at": "yesterday"}, "created_at", "not a timestamp", id="bad-created"),
    pytest.param({"billable_rate": Decimal("-1")}, "billable_rate", "negative rate", id="negative-rate"),
    pytest.param({"billable_rate": 100.5}, "billable_rate", "not an exact number", id="float-rate"),
    pytest.param({"billable": "yes"}, "billable", "not true/false", id="billable-string"),
    pytest.param({"billable": 1}, "billable", "not true/false", id="billable-int"),
    pytest.param({"billable": _DROP}, "billable", "missing", id="billable-missing"),
    pytest.param({"is_closed": "true"}, "is_closed", "not true/false", id="is-closed-string"),
]


@pytest.mark.parametrize(("changes", "field", "reason"), BAD_CASES)
def test_bad_input_names_the_field(changes, field, reason):
    with pytest.raises(Invalid) as caught:
        normalize_entry(entry(**changes), CURRENCIES)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_exactly_24_and_zero_hours_are_valid():
    assert normalize_entry(entry(hours=Decimal("24"), rounded_hours=Decimal("24")), CURRENCIES).hours == 24
    assert normalize_entry(entry(hours=0, rounded_hours=0), CURRENCIES).hours == 0


def test_hours_as_integer_and_numeric_string_are_exact():
    assert normalize_entry(entry(hours=3), CURRENCIES).hours == Decimal(3)
    assert normalize_entry(entry(hours="1.10"), CURRENCIES).hours == Decimal("1.10")


def test_not_an_object():
    with pytest.raises(Invalid) as caught:
        normalize_entry(["not", "a", "dict"], CURRENCIES)
    assert caught.value.field == "(record)"


def test_normalize_page_splits_rows_problems_and_seen_ids():
    good = entry(id=1)
    bad_hours = entry(id=2, hours=Decimal("30"))
    no_id = entry(id=_DROP)
    bad_currency = entry(id=4, client={"id": 9, "currency": "XYZ"})
    original = copy.deepcopy([good, bad_hours, no_id, bad_currency, "junk"])

    rows, problems, seen = normalize_page([good, bad_hours, no_id, bad_currency, "junk"], CURRENCIES)

    assert [r.source_id for r in rows] == ["1"]
    assert seen == ["1", "2", "4"]
    assert [(p.entity, p.source_id, p.field) for p in problems] == [
        ("time_entry", "2", "hours"),
        ("time_entry", None, "id"),
        ("time_entry", "4", "client.currency"),
        ("time_entry", None, "(record)"),
    ]
    assert "more than 24" in problems[0].reason
    assert problems[0].raw == original[1]
    assert str(problems[0]).startswith("time_entry 2: hours:")
    assert str(problems[1]).startswith("time_entry (no id): id:")


def test_normalize_page_of_nothing():
    assert normalize_page([], CURRENCIES) == ([], [], [])


# -- normalize_page takes a fast path for plain entries: it must agree with normalize_entry ---------------
PLAIN = {"client": {"id": 5735776, "name": "123 Industries", "currency": "USD"}}
VALID_VARIANTS = [
    pytest.param({}, id="lower-case-currency"),
    pytest.param(PLAIN, id="plain"),
    pytest.param({**PLAIN, "hours": 3, "rounded_hours": 3}, id="integer-hours"),
    pytest.param({**PLAIN, "hours": Decimal("24"), "rounded_hours": Decimal("24")}, id="24-hours"),
    pytest.param({**PLAIN, "hours": Decimal("0"), "rounded_hours": Decimal("0")}, id="zero-hours"),
    pytest.param({**PLAIN, "rounded_hours": _DROP}, id="no-rounded-hours"),
    pytest.param({**PLAIN, "billable": False, "billable_rate": None}, id="non-billable"),
    pytest.param({**PLAIN, "billable_rate": Decimal("0")}, id="zero-rate"),
    pytest.param({**PLAIN, "billable_rate": 120}, id="integer-rate"),
    pytest.param({**PLAIN, "invoice": None, "is_billed": False}, id="no-invoice"),
    pytest.param({**PLAIN, "invoice": {"id": 77, "number": None}}, id="invoice-without-number"),
    pytest.param({**PLAIN, "notes": None}, id="no-notes"),
    pytest.param({**PLAIN, "notes": 5}, id="notes-not-text"),
    pytest.param({**PLAIN, "created_at": None}, id="no-created-at"),
    pytest.param({**PLAIN, "updated_at": "2026-01-15T08:30:00Z"}, id="z-suffix"),
    pytest.param({**PLAIN, "is_running": True, "is_locked": False}, id="running"),
    pytest.param({**PLAIN, "id": "636709355"}, id="string-id"),
    pytest.param({**PLAIN, "is_closed": _DROP, "is_billed": _DROP, "is_locked": _DROP}, id="flags-missing"),
]


@pytest.mark.parametrize("changes", VALID_VARIANTS)
def test_page_row_equals_the_careful_row(changes):
    raw = entry(**changes)
    rows, problems, seen = normalize_page([raw], CURRENCIES)
    assert problems == []
    assert rows == [normalize_entry(raw, CURRENCIES)]
    assert seen == [rows[0].source_id]


@pytest.mark.parametrize(("changes", "field", "reason"), [*BAD_CASES, *[
    pytest.param({**PLAIN, **case.values[0]}, case.values[1], case.values[2], id=f"plain-{case.id}")
    for case in BAD_CASES
    if "client" not in case.values[0]
]])  # fmt: skip
def test_page_rejects_what_the_careful_path_rejects(changes, field, reason):
    raw = entry(**changes)
    rows, problems, _seen = normalize_page([raw], CURRENCIES)
    assert rows == []
    assert [(p.field, reason in p.reason) for p in problems] == [(field, True)]


def test_page_rejects_an_infinite_rate():
    raw = entry(**PLAIN, billable_rate=Decimal("Infinity"))
    with pytest.raises(Invalid):
        normalize_entry(raw, CURRENCIES)
    rows, problems, _seen = normalize_page([raw], CURRENCIES)
    assert rows == [] and [p.field for p in problems] == ["billable_rate"]


def test_rate_the_warehouse_cannot_store_is_quarantined():
    raw = entry(**PLAIN, billable_rate=Decimal("1000000000000"))
    rows, problems, _seen = normalize_page([raw], CURRENCIES)
    assert rows == [] and [p.field for p in problems] == ["billable_rate"]
