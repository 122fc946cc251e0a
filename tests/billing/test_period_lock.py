"""The period lock on the real warehouse: strict period parsing, an idempotent lock recorded in
closeout.period_locks, and what drafting does after a lock: every later change to a locked period's
billing lands on the client's next unlocked draft as a linked adjustment or credit, with invariants 1
and 2 (DESIGN.md) checked from the contract views."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import psycopg
import pytest
from billing_support import Books, Entry
from closeout.billing.periods import Period, PeriodError, is_locked, lock_period, lock_status, parse_period
from closeout.warehouse.db import connect

OCT = date(2026, 10, 1)
NOV = date(2026, 11, 1)


@pytest.fixture
def books(warehouse) -> Iterator[Books]:
    with connect() as conn:
        yield Books(conn)
        conn.rollback()


# -- parsing -------------------------------------------------------------------------------------------
def test_parse_period_gives_the_month_and_its_last_day() -> None:
    assert parse_period("2026-10") == Period("2026-10", date(2026, 10, 1), date(2026, 10, 31))
    assert parse_period("2028-02").end == date(2028, 2, 29)
    assert parse_period("2026-02").end == date(2026, 2, 28)


@pytest.mark.parametrize(
    ("text", "message"),
    [("2026-13", "period '2026-13': month must be 01-12"),
     ("2026-00", "period '2026-00': month must be 01-12"),
     ("2026-1", "period '2026-1': expected 'YYYY-MM'"),
     ("2026/10", "period '2026/10': expected 'YYYY-MM'"),
     ("2026-10-01", "period '2026-10-01': expected 'YYYY-MM'"),
     (" 2026-10", "period ' 2026-10': expected 'YYYY-MM'"),
     ("", "period '': expected 'YYYY-MM'"),
     ("0000-05", "period '0000-05': year must be 0001 or later"),
     (202610, "period 202610: expected a string 'YYYY-MM', got int")],
)  # fmt: skip
def test_malformed_periods_are_refused_with_the_reason(text, message: str) -> None:
    with pytest.raises(PeriodError) as raised:
        parse_period(text)
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, ValueError)


# -- the lock ------------------------------------------------------------------------------------------
def test_lock_is_recorded_counted_and_idempotent(books: Books) -> None:
    books.put(Entry("1"), Entry("2", task="t2"), Entry("3", client="c2"), Entry("nov", spent_date=NOV))
    books.draft()
    books.freeze(books.invoice_for("harvest:c2", OCT))
    assert lock_status(books.conn, "2026-10") is None and not is_locked(books.conn, "2026-10")

    first = lock_period(books.conn, "2026-10", locked_by="ops@example.com", close_run_id="manual__1")
    assert first["already_locked"] is False
    assert (first["period"], first["drafts"], first["frozen"], first["entries"]) == ("2026-10", 1, 1, 3)
    assert (first["period_start"], first["period_end"]) == (OCT, date(2026, 10, 31))

    again = lock_period(books.conn, parse_period("2026-10"), locked_by="someone-else", close_run_id="manual__2")
    assert again["already_locked"] is True
    assert (again["locked_by"], again["close_run_id"], again["locked_at"]) == (
        "ops@example.com", "manual__1", first["locked_at"])  # fmt: skip
    rows = books.rows("SELECT period, locked_by, close_run_id, drafts, frozen, entries FROM closeout.period_locks")
    assert rows == [("2026-10", "ops@example.com", "manual__1", 1, 1, 3)]
    assert is_locked(books.conn, Period("2026-10", OCT, date(2026, 10, 31)))
    assert not is_locked(books.conn, "2026-11")


def test_a_lock_covers_earlier_months_too(books: Books) -> None:
    lock_period(books.conn, "2026-10", locked_by="ops")
    status = lock_status(books.conn, "2026-08")
    assert status is not None and (status["period"], status["covered_by"]) == ("2026-08", "2026-10")
    again = lock_period(books.conn, "2026-09", locked_by="ops")
    assert again["already_locked"] is True and again["covered_by"] == "2026-10"
    assert books.rows("SELECT period FROM closeout.period_locks") == [("2026-10",)]


def test_a_month_that_has_not_ended_cannot_be_locked(books: Books) -> None:
    (today,) = books.conn.execute("SELECT (clock_timestamp() AT TIME ZONE 'UTC')::date").fetchone()
    current = f"{today:%Y-%m}"
    with pytest.raises(PeriodError, match=rf"period '{current}' has not ended yet"):
        lock_period(books.conn, current, locked_by="ops")
    with pytest.raises(PeriodError, match="has not ended yet"):
        lock_period(books.conn, f"{today.year + 1}-01", locked_by="ops")
    with pytest.raises(PeriodError, match="locked_by is required"):
        lock_period(books.conn, "2026-10", locked_by="  ")
    assert books.rows("SELECT count(*) FROM closeout.period_locks") == [(0,)]


def test_locks_are_append_only(books: Books) -> None:
    lock_period(books.conn, "2026-10", locked_by="ops")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"), books.conn.transaction():
        books.conn.execute("DELETE FROM closeout_data.period_locks")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"), books.conn.transaction():
        books.conn.execute("UPDATE closeout_data.period_locks SET locked_by = 'x'")
