"""The Harvest expense fast path accepts exactly what the careful path accepts, with the same row, and
declines (to the careful path, which names the field) everything else."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from closeout.trackers.expenses import harvest as expenses
from closeout.trackers.harvest.hook import decode

from sandbox.harvest import HarvestSandbox, generate_dataset
from sandbox.harvest.data import dumps

CURRENCIES = {"USD": 2, "EUR": 2, "JPY": 0, "GBP": 2, "KWD": 3, "CHF": 2}


@pytest.fixture(scope="module")
def served() -> list[dict]:
    """Expenses as Harvest serves them, decoded the way the hook decodes them (numbers as Decimal)."""
    sandbox = HarvestSandbox(rate_limit=None)
    sandbox.load(generate_dataset(20, seed=9, anchor=date.today(), n_clients=8))
    book = sandbox.expenses
    today = date.today()
    book.create_expense(spent_date=today, total_cost=33.35, notes="Lunch",
                        receipt={"url": "https://x/r", "file_name": "r.gif", "file_size": 10,
                                 "content_type": "image/gif"})  # fmt: skip
    book.create_expense(spent_date=today - timedelta(days=1), expense_category_id=4195929, units=7.5)
    book.create_expense(spent_date=today - timedelta(days=2), total_cost=12000, billable=False, is_closed=True)
    book.create_expense(spent_date=today - timedelta(days=3), total_cost=0)
    return [decode(dumps(e)) for e in book.snapshot()]


def test_fast_path_agrees_with_the_careful_path(served):
    for raw in served:
        assert expenses._fast(raw, CURRENCIES) == expenses.normalize_expense(raw, CURRENCIES), raw


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total_cost": Decimal("-1")}, "total_cost"),
        ({"total_cost": Decimal("1e12")}, "total_cost"),
        ({"total_cost": Decimal("NaN")}, "total_cost"),
        ({"notes": "a\x00b"}, "notes"),
        ({"id": -4}, "id"),
        ({"spent_date": "0001-01-01"}, "spent_date"),
        ({"updated_at": "2026-01-01T00:00:00"}, "updated_at"),
    ],
)
def test_fast_path_declines_what_the_careful_path_refuses(served, change, field):
    raw = {**served[0], **change}
    with pytest.raises(Exception):  # noqa: B017 - any refusal: the careful path decides
        expenses._fast(raw, CURRENCIES)
    rows, problems, _seen = expenses.normalize_page([raw], CURRENCIES)
    assert rows == [] and [p.field for p in problems] == [field]
