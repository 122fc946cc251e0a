"""The period lock on the real warehouse: strict period parsing, an idempotent lock recorded in
closeout.period_locks, and what drafting does after a lock: every later change to a locked period's
billing lands on the client's next unlocked draft as a linked adjustment or credit, with invariants 1
and 2 (DESIGN.md) checked from the contract views."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal as D

import psycopg
import pytest
from billing_support import Books, Entry
from closeout.billing import lifecycle
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
     ("\uff12\uff10\uff12\uff16-10", "period '\uff12\uff10\uff12\uff16-10': expected 'YYYY-MM'"),
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


def test_the_lock_first_bills_what_was_captured_before_it_on_the_period_itself(books: Books) -> None:
    """The close's final sync captures the month, then locks it: what the sync captured belongs to the
    month's own drafts (no drafting run in between is needed), only what comes after is late."""
    books.put(Entry("1"))
    books.draft()
    october = _invoice(books)
    books.put(Entry("2", task="t2"), Entry("3", client="c2"))  # captured by the final sync, not drafted yet
    locked = lock_period(books.conn, "2026-10", locked_by="ops", close_run_id="manual__1")
    assert locked["draft_run"]["entries_judged"] == 2 and locked["draft_run"]["invoices_changed"] == 2
    assert (locked["drafts"], locked["entries"]) == (2, 3)
    assert books.invoices()[october][5:8] == (20000, 2, 2)
    assert books.rows("SELECT airflow_run_id FROM closeout.draft_runs ORDER BY draft_run_id DESC LIMIT 1") == [
        ("manual__1",)
    ]
    assert books.invoice_for("harvest:c2", NOV) is None and books.invoice_for("harvest:c1", NOV) is None
    assert "draft_run" not in lock_period(books.conn, "2026-10", locked_by="ops"), "locked already: no run"
    books.check_invariants()


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


# -- drafting after a lock -----------------------------------------------------------------------------
def _invoice(books: Books, client: str = "harvest:c1", start: date = OCT) -> str:
    invoice_id = books.invoice_for(client, start)
    assert invoice_id, f"no invoice for {client} {start}"
    return invoice_id


def _content(books: Books, invoice_id: str) -> tuple:
    """Everything a locked invoice must keep: totals, version, lines and the entry versions they bill."""
    entries = books.rows(
        """SELECT source_id, version, line_no, amount_minor FROM closeout.invoice_line_entries
           WHERE invoice_id = %s ORDER BY 1, 2, 3""",
        (invoice_id,),
    )
    return books.invoices()[invoice_id][5:], tuple(books.lines(invoice_id)), tuple(entries)


def _adjustments(books: Books, invoice_id: str) -> list[tuple]:
    return books.rows(
        """SELECT kind, quantity, unit_rate, amount_minor, adjusts_invoice_id, adjusts_line_no, description
           FROM closeout.invoice_lines WHERE invoice_id = %s ORDER BY line_no""",
        (invoice_id,),
    )


def test_late_edit_to_a_locked_period_becomes_a_linked_adjustment_on_the_next_draft(books: Books) -> None:
    books.put(Entry("1", hours=D("2")), Entry("2", task="t2"))
    books.draft()
    october = _invoice(books)
    lock_period(books.conn, "2026-10", locked_by="ops")
    fixed = _content(books, october)
    books.put(Entry("1", hours=D("2.5")))  # edited in the tracker after the close
    summary = books.draft()
    assert _content(books, october) == fixed, "a locked period's draft never changes"
    assert books.invoices()[october][4] == "draft"
    november = _invoice(books, start=NOV)
    (line,) = _adjustments(books, november)
    assert line[:6] == ("adjustment", D("0.50"), D("100.00"), 5000, october, 1), "linked to the line it corrects"
    assert "harvest:1" in line[6] and october in line[6]
    assert books.rows(
        "SELECT source_id, version, amount_minor FROM closeout.invoice_line_entries WHERE invoice_id = %s",
        (november,),
    ) == [("1", 2, 5000)]
    assert (summary.invoices_changed, summary.adjustment_lines) == (1, 1)
    assert books.billed("1") == 25000
    assert books.draft().invoices_changed == 0, "a second run writes nothing"
    assert dict(books.rows("SELECT invoice_id, period_locked FROM closeout.invoices")) == {
        october: True, november: False}, "the contract view says which drafts can no longer move"
    books.check_invariants()


def test_deletion_in_a_locked_period_becomes_a_credit(books: Books) -> None:
    books.put(Entry("1"), Entry("2"))
    books.draft()
    october = _invoice(books)
    lock_period(books.conn, "2026-10", locked_by="ops")
    fixed = _content(books, october)
    books.delete("2")
    books.draft()
    assert _content(books, october) == fixed
    (line,) = _adjustments(books, _invoice(books, start=NOV))
    assert line[:6] == ("credit", D("-1.00"), D("100.00"), -10000, october, 1)
    assert "deleted" in line[6]
    assert books.billed("2") == 0
    books.check_invariants()


def test_late_entries_in_a_locked_period_go_to_the_clients_next_draft(books: Books) -> None:
    books.put(Entry("1"))
    books.draft()
    october = _invoice(books)
    lock_period(books.conn, "2026-10", locked_by="ops")
    fixed = _content(books, october)
    # c1 had an invoice in October; c2 had none: both late entries are billed in November
    books.put(Entry("late1", spent_date=date(2026, 10, 20)), Entry("late2", client="c2", spent_date=date(2026, 10, 9)))
    books.draft()
    assert _content(books, october) == fixed
    assert books.invoice_for("harvest:c2", OCT) is None, "no draft is opened in a locked period"
    for client, source_id in (("harvest:c1", "late1"), ("harvest:c2", "late2")):
        (line,) = _adjustments(books, _invoice(books, client, NOV))
        assert line[:4] == ("adjustment", D("1.00"), D("100.00"), 10000)
        assert line[4] is None and line[6].startswith(f"Late time: entry harvest:{source_id} of 2026-10-")
        assert line[6].endswith("its period is locked")
    books.check_invariants()


def test_unlocked_periods_draft_exactly_as_without_a_lock(books: Books) -> None:
    """The same history drafted with and without the October lock: November and December agree."""
    books.put(
        Entry("1"), Entry("n1", spent_date=date(2026, 11, 3)), Entry("d1", client="c2", spent_date=date(2026, 12, 2))
    )
    books.draft()

    def later_changes() -> dict[str, tuple]:
        books.put(Entry("n1", spent_date=date(2026, 11, 3), hours=D("3")), Entry("n2", spent_date=date(2026, 11, 30)))
        books.delete("d1")
        books.put(Entry("d2", client="c2", spent_date=date(2026, 12, 9), hours=D("0.25")))
        books.draft()
        return {i: _content(books, i) for i, row in books.invoices().items() if row[3] >= NOV}

    with books.conn.transaction() as without_lock:
        expected = later_changes()
        raise psycopg.Rollback(without_lock)
    lock_period(books.conn, "2026-10", locked_by="ops")
    assert later_changes() == expected
    assert {row[1] for i in expected for row in books.lines(i)} == {"time"}
    books.check_invariants()


def test_a_held_draft_of_a_locked_period_keeps_its_content_and_can_be_approved_and_published(books: Books) -> None:
    books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD", "publish_policy": "hold"}]})
    books.put(Entry("1"))
    books.draft()
    october = _invoice(books)
    lock_period(books.conn, "2026-10", locked_by="ops")
    books.put(Entry("1", hours=D("2")))
    books.draft()
    assert books.invoices()[october][5:7] == (10000, 1)
    assert lifecycle.publishable(books.conn, NOV) == []
    lifecycle.approve(books.conn, october, version=1, approved_by="fin@example.com")
    assert lifecycle.publishable(books.conn, NOV) == [october]
    assert books.freeze(october) == 1
    books.put(Entry("1", hours=D("3")))
    books.draft()
    (line,) = _adjustments(books, _invoice(books, start=NOV))
    assert line[:5] == ("adjustment", D("2.00"), D("100.00"), 20000, october)
    books.check_invariants()


def test_a_week_straddling_the_month_end_stays_open(books: Books) -> None:
    """Weekly billing: the week of 19-25 October is locked with the month, the week of 26 October to
    1 November is not (it ends in November); late time of 20 October is billed on that open week."""
    books.configure({"defaults": {"billing_period": "weekly"}})
    books.put(Entry("1", spent_date=date(2026, 10, 20)), Entry("2", spent_date=date(2026, 10, 30)))
    books.draft()
    locked_week, open_week = _invoice(books, start=date(2026, 10, 19)), _invoice(books, start=date(2026, 10, 26))
    lock_period(books.conn, "2026-10", locked_by="ops")
    fixed = _content(books, locked_week)
    books.put(
        Entry("1", spent_date=date(2026, 10, 20), hours=D("2")), Entry("2", spent_date=date(2026, 10, 30), hours=D("2"))
    )
    books.draft()
    assert _content(books, locked_week) == fixed
    kinds = sorted((kind, qty, adjusts) for kind, qty, _, _, adjusts, _, _ in _adjustments(books, open_week))
    assert kinds == [("adjustment", D("1.00"), locked_week), ("time", D("2.00"), None)]
    books.check_invariants()


def test_the_database_refuses_to_change_a_locked_draft(books: Books) -> None:
    books.put(Entry("1"))
    books.draft()
    october = _invoice(books)
    lock_period(books.conn, "2026-10", locked_by="ops")
    with pytest.raises(psycopg.errors.RaiseException, match="locked period"), books.conn.transaction():
        books.conn.execute(
            "UPDATE closeout_data.invoice_line_entries SET valid_to = 2 WHERE invoice_id = %s", (october,)
        )
    with pytest.raises(psycopg.errors.RaiseException, match="locked period"), books.conn.transaction():
        books.conn.execute("UPDATE closeout_data.invoice_lines SET valid_to = 2 WHERE invoice_id = %s", (october,))


def test_a_step_that_must_not_run_on_a_locked_month_is_told_who_locked_it(books: Books) -> None:
    from closeout.billing.periods import refuse_if_locked

    refuse_if_locked(books.conn, "2026-10")
    lock_period(books.conn, "2026-10", locked_by="ops@example.com", close_run_id="42")
    locked = (r"^period '2026-10' is already locked \(by ops@example.com, at 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC, "
              r"close run 42\)$")
    with pytest.raises(PeriodError, match=locked):
        refuse_if_locked(books.conn, "2026-10")
    covered = (r"^period '2026-09' is already locked \(by ops@example.com, .*, close run 42; "
               r"covered by the lock of 2026-10\)$")
    with pytest.raises(PeriodError, match=covered):
        refuse_if_locked(books.conn, "2026-09")


def test_an_autocommit_connection_gets_the_lock_as_one_transaction(warehouse) -> None:
    with connect() as conn:
        Books(conn).put(Entry("1"))
        conn.commit()
    with connect(autocommit=True) as conn:
        locked = lock_period(conn, "2026-10", locked_by="ops")
        assert locked["draft_run"]["invoices_changed"] == 1 and locked["drafts"] == 1
    with connect() as conn:
        assert is_locked(conn, "2026-10")
        assert conn.execute("SELECT count(*) FROM closeout.invoices WHERE period_start = %s", (OCT,)).fetchone() == (1,)
