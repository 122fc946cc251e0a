"""The normaliser's fast path and its careful path must apply one set of rules.

The fast path only exists for speed; if it ever accepted something the careful path rejects (or
produced a different row), bad input would slip into the warehouse unquarantined.
"""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal

import pytest
from closeout.trackers.harvest import normalize
from closeout.trackers.harvest.hook import decode

from sandbox.harvest import generate_dataset

CURRENCIES = frozenset({"USD", "EUR", "GBP", "CHF", "JPY", "KWD"})


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    dataset = generate_dataset(3000, seed=21, anchor=date(2026, 11, 1))
    return [decode(row.body) for row in dataset.entries]


def test_fast_path_equals_careful_path_on_generated_data(entries):
    for raw in entries:
        assert normalize._fast(raw, CURRENCIES) == normalize.normalize_entry(raw, CURRENCIES)


MUTATIONS = {
    "negative hours": lambda e: e.update(hours=Decimal("-1")),
    "too many hours": lambda e: e.update(rounded_hours=Decimal("24.25")),
    "float hours": lambda e: e.update(hours=1.5),
    "int hours": lambda e: e.update(hours=2),
    "string id": lambda e: e.update(id="77"),
    "bool id": lambda e: e.update(id=True),
    "zero client id": lambda e: e["client"].update(id=0),
    "lower-case currency": lambda e: e["client"].update(currency="usd"),
    "unknown currency": lambda e: e["client"].update(currency="XYZ"),
    "negative rate": lambda e: e.update(billable_rate=Decimal("-5")),
    "naive timestamp": lambda e: e.update(updated_at="2026-01-01T10:00:00"),
    "notes not text": lambda e: e.update(notes=5),
    "billable not bool": lambda e: e.update(billable="yes"),
    "missing task": lambda e: e.pop("task"),
    "missing invoice key": lambda e: e.pop("invoice"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_unusual_records_get_the_careful_verdict(entries, name):
    raw = copy.deepcopy(entries[0])
    MUTATIONS[name](raw)
    try:
        expected = normalize.normalize_entry(raw, CURRENCIES)
    except normalize.Invalid as exc:
        rows, problems, _seen = normalize.normalize_page([raw], CURRENCIES)
        assert rows == [] and len(problems) == 1
        assert (problems[0].field, problems[0].reason) == (exc.field, exc.reason)
    else:
        rows, problems, _seen = normalize.normalize_page([raw], CURRENCIES)
        assert problems == [] and rows == [expected]
