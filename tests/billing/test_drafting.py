"""Worked examples of drafting on the real warehouse: grouping and rounding modes, zero- and
three-decimal currencies, the life of a draft, adjustments, credits, voids, exclusions and exceptions.
Every example ends by checking invariants 1 and 2 from the contract views."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal as D

import psycopg
import pytest
from billing_support import Books, Entry
from closeout.billing import lifecycle
from closeout.warehouse.db import connect

OCT = date(2026, 10, 1)
NOV = date(2026, 11, 1)


@pytest.fixture
def books(warehouse) -> Iterator[Books]:
    with connect() as conn:
        yield Books(conn)
        conn.rollback()


def _only_invoice(books: Books, client: str = "harvest:c1", start: date = OCT, currency: str = "USD") -> str:
    invoice_id = books.invoice_for(client, start, currency)
    assert invoice_id, f"no invoice for {client} {start} {currency}"
    return invoice_id


# -- grouping ------------------------------------------------------------------------------------------
GROUPING_ENTRIES = [
    Entry("1", project="p1", task="t1", user="u1", spent_date=date(2026, 10, 5), hours=D("1.5")),
    Entry("2", project="p1", task="t1", user="u2", spent_date=date(2026, 10, 6), hours=D("2")),
    Entry("3", project="p1", task="t2", user="u1", spent_date=date(2026, 10, 5), hours=D("0.5")),
    Entry("4", project="p2", task="t1", user="u2", spent_date=date(2026, 10, 6), hours=D("1"), rate=D("120")),
]


@pytest.mark.parametrize(
    ("grouping", "expected"),
    [
        # (description, quantity, rate, amount_minor) per line
        ("project_task", [("harvest:p1 / harvest:t1", D("3.5"), D("100"), 35000),
                          ("harvest:p1 / harvest:t2", D("0.5"), D("100"), 5000),
                          ("harvest:p2 / harvest:t1", D("1"), D("120"), 12000)]),
        ("project", [("harvest:p1", D("4"), D("100"), 40000), ("harvest:p2", D("1"), D("120"), 12000)]),
        ("user", [("harvest:u1", D("2"), D("100"), 20000), ("harvest:u2", D("1"), D("120"), 12000),
                  ("harvest:u2", D("2"), D("100"), 20000)]),
        ("day", [("Time on 2026-10-05", D("2"), D("100"), 20000), ("Time on 2026-10-06", D("1"), D("120"), 12000),
                 ("Time on 2026-10-06", D("2"), D("100"), 20000)]),
    ],
)  # fmt: skip
def test_grouping_modes(books: Books, grouping: str, expected: list) -> None:
    books.configure({"defaults": {"grouping": grouping}})
    books.put(*GROUPING_ENTRIES)
    books.draft()
    lines = books.lines(_only_invoice(books))
    got = sorted((desc, qty, rate, amount) for _, kind, desc, qty, rate, amount, _, _ in lines)
    assert got == sorted(expected)
    assert {kind for _, kind, *_ in lines} == {"time"}
    books.check_invariants()


def test_grouping_per_entry_names_every_entry(books: Books) -> None:
    books.configure({"defaults": {"grouping": "entry"}})
    books.put(*GROUPING_ENTRIES)
    books.draft()
    lines = books.lines(_only_invoice(books))
    assert len(lines) == 4 and all(entries == 1 for *_, entries in lines)
    assert lines[0][2] == "2026-10-05 harvest:u1: harvest:p1 / harvest:t1"
    books.check_invariants()


def test_lines_use_tracker_names_when_known(books: Books) -> None:
    books.conn.execute(
        """INSERT INTO closeout_data.tracker_entities (source, kind, source_id, name, payload, last_sync_run_id)
           VALUES ('harvest', 'project', 'p1', 'Website relaunch', '{}', %s),
                  ('harvest', 'task', 't1', 'Design', '{}', %s)""",
        (books.sync_run_id, books.sync_run_id),
    )
    books.put(Entry("1"))
    books.draft()
    assert books.lines(_only_invoice(books))[0][2] == "Website relaunch / Design"


# -- rounding ------------------------------------------------------------------------------------------
def test_rounding_tracker_uses_rounded_hours_and_exact_uses_hours(books: Books) -> None:
    books.configure({"clients": [{"client_key": "harvest:c2", "currency": "USD", "rounding": "exact"}]})
    books.put(Entry("1", client="c1", hours=D("1.07"), rounded_hours=D("1.25")),
              Entry("2", client="c2", hours=D("1.07"), rounded_hours=D("1.25")))  # fmt: skip
    books.draft()
    assert books.lines(_only_invoice(books, "harvest:c1"))[0][3:6] == (D("1.25"), D("100.00"), 12500)
    assert books.lines(_only_invoice(books, "harvest:c2"))[0][3:6] == (D("1.07"), D("100.00"), 10700)
    books.check_invariants()


def test_line_amount_is_rounded_once_half_up_and_the_difference_is_shown(books: Books) -> None:
    # three entries of 1/3 h at 100.00: each is worth 33.33; the line, 0.999999 h, is worth 100.00
    third = D("0.333333")
    books.put(*(Entry(str(i), hours=third) for i in range(3)))
    books.draft()
    (line,) = books.lines(_only_invoice(books))
    _, _, _, qty, _rate, amount, rounding, entries = line
    assert (qty, amount, rounding, entries) == (D("0.999999"), 10000, 1, 3)
    assert [books.billed(str(i)) for i in range(3)] == [3333, 3333, 3333]
    books.check_invariants()


def test_half_up_at_exactly_half_a_minor_unit(books: Books) -> None:
    # 0.125 h x 100.00 = 12.50 exactly -> 1250; 0.005 h x 1.00 = 0.005 -> 0.01 (half-up, not to even)
    books.put(Entry("1", hours=D("0.125")), Entry("2", task="t2", hours=D("0.005"), rate=D("1.00")))
    books.draft()
    amounts = sorted(amount for *_, amount, _, _ in books.lines(_only_invoice(books)))
    assert amounts == [1, 1250]
    books.check_invariants()


# -- currencies ----------------------------------------------------------------------------------------
def test_zero_and_three_decimal_currencies(books: Books) -> None:
    books.put(
        Entry("jpy", client="cj", currency="JPY", hours=D("1.5"), rate=D("12345")),  # 18517.5 -> 18518 yen
        Entry("kwd", client="ck", currency="KWD", hours=D("1.25"), rate=D("45.123")),  # 56.40375 -> 56.404 KWD
        Entry("usd", client="cu", currency="USD", hours=D("1.25"), rate=D("45.123")),  # 56.40375 -> 56.40 USD
    )
    books.draft()
    assert books.lines(_only_invoice(books, "harvest:cj", currency="JPY"))[0][5] == 18518
    assert books.lines(_only_invoice(books, "harvest:ck", currency="KWD"))[0][5] == 56404
    assert books.lines(_only_invoice(books, "harvest:cu", currency="USD"))[0][5] == 5640
    books.check_invariants()


def test_one_invoice_per_currency_when_the_client_has_no_billing_currency(books: Books) -> None:
    books.put(Entry("1", currency="USD"), Entry("2", currency="EUR"))
    books.draft()
    assert _only_invoice(books, currency="USD") != _only_invoice(books, currency="EUR")


# -- periods -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("period", "day", "start", "end"),
    [("monthly", date(2026, 2, 17), date(2026, 2, 1), date(2026, 2, 28)),
     ("semi_monthly", date(2026, 2, 15), date(2026, 2, 1), date(2026, 2, 15)),
     ("semi_monthly", date(2026, 2, 16), date(2026, 2, 16), date(2026, 2, 28)),
     ("weekly", date(2026, 11, 22), date(2026, 11, 16), date(2026, 11, 22))],
)  # fmt: skip
def test_billing_periods(books: Books, period: str, day: date, start: date, end: date) -> None:
    books.configure({"defaults": {"billing_period": period}})
    books.put(Entry("1", spent_date=day))
    books.draft()
    assert books.rows("SELECT period_start, period_end FROM closeout.invoices") == [(start, end)]


# -- the life of a draft -------------------------------------------------------------------------------
def test_edits_before_publication_rebuild_the_draft_as_a_new_version(books: Books) -> None:
    books.put(Entry("1"), Entry("2", task="t2"))
    books.draft()
    invoice_id = _only_invoice(books)
    books.put(Entry("1", hours=D("3")))
    books.delete("2")
    summary = books.draft()
    assert summary.invoices_changed == 1
    assert books.invoices()[invoice_id][5:7] == (30000, 2)
    history = books.rows(
        "SELECT version, total_minor FROM closeout.invoice_versions WHERE invoice_id = %s ORDER BY version",
        (invoice_id,),
    )
    assert history == [(1, 20000), (2, 30000)]
    old_lines = books.rows(
        "SELECT count(*) FROM closeout.invoice_line_versions WHERE invoice_id = %s AND version = 1", (invoice_id,)
    )
    assert old_lines == [(2,)]
    assert books.draft().invoices_changed == 0, "a second run with nothing new writes nothing"
    books.check_invariants()


def test_edit_after_publication_becomes_a_linked_adjustment_on_the_next_draft(books: Books) -> None:
    books.put(Entry("1", hours=D("2")))
    books.draft()
    october = _only_invoice(books)
    books.freeze(october)
    books.put(Entry("1", hours=D("2.5")))  # edited in the tracker after publication
    books.draft()
    assert books.invoices()[october][4:7] == ("publishing", 20000, 1), "a published invoice never changes"
    november = _only_invoice(books, start=NOV)
    (line,) = books.rows(
        """SELECT kind, quantity, unit_rate, amount_minor, adjusts_invoice_id, adjusts_line_no, description
           FROM closeout.invoice_lines WHERE invoice_id = %s""",
        (november,),
    )
    assert line[:6] == ("adjustment", D("0.50"), D("100.00"), 5000, october, 1)
    assert "harvest:1" in line[6] and october in line[6]
    entries = books.rows(
        "SELECT source, source_id, version, amount_minor FROM closeout.invoice_line_entries WHERE invoice_id = %s",
        (november,),
    )
    assert entries == [("harvest", "1", 2, 5000)]
    assert books.billed("1") == 25000
    books.check_invariants()


def test_deletion_after_publication_becomes_a_credit(books: Books) -> None:
    books.put(Entry("1"), Entry("2"))
    books.draft()
    october = _only_invoice(books)
    books.freeze(october)
    books.delete("2")
    books.draft()
    (line,) = books.lines(_only_invoice(books, start=NOV))
    assert line[1:2] == ("credit",) and line[5] == -10000 and "deleted" in line[2]
    assert books.billed("2") == 0
    books.check_invariants()


def test_unapproving_after_publication_credits_and_reapproving_bills_again(books: Books) -> None:
    books.put(Entry("1"))
    books.draft()
    books.freeze(_only_invoice(books))
    books.put(Entry("1", approved=False))
    books.draft()
    november = _only_invoice(books, start=NOV)
    assert [line[1] for line in books.lines(november)] == ["credit"]
    books.put(Entry("1", approved=True))
    books.draft()
    assert books.lines(november) == [], "credit and re-bill on the same open draft cancel out"
    assert books.billed("1") == 10000
    books.check_invariants()


def test_rate_change_after_billing_reverses_the_old_rate_and_bills_the_new(books: Books) -> None:
    books.put(Entry("1", hours=D("2"), rate=D("100")))
    books.draft()
    books.freeze(_only_invoice(books))
    books.put(Entry("1", hours=D("2"), rate=D("110")))
    books.draft()
    lines = sorted(
        (qty, rate, amount) for _, _, _, qty, rate, amount, _, _ in books.lines(_only_invoice(books, start=NOV))
    )
    assert lines == [(D("-2"), D("100"), -20000), (D("2"), D("110"), 22000)]
    drift = books.rows("SELECT kind, entry_rate, reference_rate FROM closeout.rate_drift")
    assert drift == [("changed_after_billing", D("110"), D("100"))]
    books.check_invariants()


def test_late_time_for_a_published_period_is_billed_on_the_next_draft(books: Books) -> None:
    books.put(Entry("1"))
    books.draft()
    books.freeze(_only_invoice(books))
    books.put(Entry("late", spent_date=date(2026, 10, 20)))
    books.draft()
    (line,) = books.lines(_only_invoice(books, start=NOV))
    assert line[1] == "adjustment" and line[2].startswith("Late time") and line[5] == 10000
    books.check_invariants()


def test_void_releases_entries_to_be_billed_again(books: Books) -> None:
    books.put(Entry("1"))
    books.draft()
    october = _only_invoice(books)
    books.freeze(october)
    assert books.void(october) == 1
    books.draft()
    (line,) = books.lines(_only_invoice(books, start=NOV))
    assert line[2].startswith("Re-billed") and line[5] == 10000
    assert books.billed("1") == 10000
    books.check_invariants()


def test_adjustments_are_final_once_their_draft_is_published_too(books: Books) -> None:
    books.put(Entry("1", hours=D("1")))
    books.draft()
    books.freeze(_only_invoice(books))
    books.put(Entry("1", hours=D("2")))
    books.draft()
    books.freeze(_only_invoice(books, start=NOV))
    books.put(Entry("1", hours=D("1.5")))
    books.draft()
    (line,) = books.lines(_only_invoice(books, start=date(2026, 12, 1)))
    assert line[3] == D("-0.5") and line[5] == -5000
    assert books.billed("1") == 15000
    books.check_invariants()


# -- kept out of drafts --------------------------------------------------------------------------------
def test_exceptions_are_kept_out_listed_and_counted(books: Books) -> None:
    books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD"}]})
    books.put(
        Entry("ok"),
        Entry("norate", rate=None),
        Entry("eur", currency="EUR"),
        Entry("noclient", client="none", project="none"),
        Entry("long1", user="u9", hours=D("13")),
        Entry("long2", user="u9", hours=D("12"), task="t2"),
        Entry("invoiced", billed_in_source=True),
    )
    summary = books.draft()
    assert summary.exceptions_by_reason == {
        "currency_mismatch": 1,
        "missing_rate": 1,
        "no_client": 1,
        "over_24h_day": 2,
    }
    assert summary.exceptions == 5 and summary.excluded == 1
    listed = books.rows("SELECT source_id, kind, reason, field FROM closeout.billing_exceptions ORDER BY source_id")
    assert listed == [
        ("eur", "exception", "currency_mismatch", "currency"),
        ("invoiced", "excluded", "billed_in_source", "billed_in_source"),
        ("long1", "exception", "over_24h_day", "hours"),
        ("long2", "exception", "over_24h_day", "hours"),
        ("noclient", "exception", "no_client", "client"),
        ("norate", "exception", "missing_rate", "billable_rate"),
    ]
    assert [line[7] for line in books.lines(_only_invoice(books))] == [1], "only the good entry is billed"
    # fixing the day brings both entries back
    books.put(Entry("long1", user="u9", hours=D("8")))
    summary = books.draft()
    assert "over_24h_day" not in summary.exceptions_by_reason
    assert books.billed("long2") == 120000
    books.check_invariants()


def test_quarantined_time_entries_are_listed_with_exceptions(books: Books) -> None:
    from closeout.trackers.records import Problem
    from closeout.trackers.store import quarantine

    problem = Problem("time_entry", "bad", "hours", "negative hours: -2", {"id": "bad", "hours": -2})
    quarantine(books.conn, source="harvest", sync_run_id=books.sync_run_id, url=None, problems=[problem])
    assert books.draft().quarantined == 1
    assert books.rows("SELECT kind, source_id, field FROM closeout.billing_exceptions") == [
        ("quarantined", "bad", "hours")
    ]


def test_running_unbillable_and_unapproved_time_is_not_billed(books: Books) -> None:
    books.put(Entry("run", running=True), Entry("nb", billable=False), Entry("na", approved=False))
    books.draft()
    assert books.invoices() == {}
    books.configure({"defaults": {"require_approval": False}})
    books.draft()
    assert books.billed("na") == 10000 and books.billed("nb") == 0 and books.billed("run") == 0
    books.check_invariants()


# -- configuration and policy --------------------------------------------------------------------------
def test_config_change_rebuilds_open_drafts_only(books: Books) -> None:
    books.put(Entry("1", client="c1"), Entry("2", client="c2"))
    books.draft()
    books.freeze(_only_invoice(books, "harvest:c1"))
    books.configure({"defaults": {"grouping": "user"}})
    summary = books.draft()
    assert summary.invoices_changed == 1, "only the open draft of c2 is rebuilt"
    assert books.lines(_only_invoice(books, "harvest:c2"))[0][2] == "harvest:u1"
    books.check_invariants()


def test_hold_policy_needs_approval_of_the_current_version(books: Books) -> None:
    books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD", "publish_policy": "hold"}]})
    books.put(Entry("1"), Entry("2", client="c2"))
    books.draft()
    held, auto = _only_invoice(books, "harvest:c1"), _only_invoice(books, "harvest:c2")
    assert lifecycle.publishable(books.conn, date(2026, 11, 1)) == [auto]
    assert lifecycle.publishable(books.conn, date(2026, 10, 31)) == [], "not before the period ends"
    lifecycle.approve(books.conn, held, version=1, approved_by="fin@example.com")
    assert sorted(lifecycle.publishable(books.conn, date(2026, 11, 1))) == sorted([held, auto])
    books.put(Entry("3"))
    books.draft()
    assert lifecycle.publishable(books.conn, date(2026, 11, 1)) == [auto], "a rebuilt draft needs a new approval"
    with pytest.raises(lifecycle.DraftStateError, match="version 1 was approved but the draft is now version 2"):
        lifecycle.approve(books.conn, held, version=1, approved_by="fin@example.com")


def test_rate_card_drift_is_reported_with_amounts(books: Books) -> None:
    books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD", "rate_card": [
        {"rate": D("100")}, {"project_key": "harvest:p2", "rate": D("150")}]}]})  # fmt: skip
    books.put(Entry("1", project="p1", rate=D("100")), Entry("2", project="p2", rate=D("140"), hours=D("2")))
    books.draft()
    drift = books.rows(
        "SELECT kind, source_id, entry_rate, reference_rate, amount_minor, difference_minor FROM closeout.rate_drift"
    )
    assert drift == [("rate_card", "2", D("140"), D("150"), 28000, -2000)]


# -- what the database refuses -------------------------------------------------------------------------
def test_frozen_billing_and_line_history_cannot_be_rewritten(books: Books) -> None:
    books.put(Entry("1"))
    books.draft()
    october = _only_invoice(books)
    books.freeze(october)
    with pytest.raises(psycopg.errors.RaiseException, match="frozen"), books.conn.transaction():
        books.conn.execute(
            "UPDATE closeout_data.invoice_line_entries SET valid_to = 2 WHERE invoice_id = %s", (october,)
        )
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"), books.conn.transaction():
        books.conn.execute("UPDATE closeout_data.invoice_lines SET amount_minor = 1")
    with pytest.raises(psycopg.errors.RaiseException, match="history is kept"), books.conn.transaction():
        books.conn.execute("DELETE FROM closeout_data.invoice_line_entries")
    with pytest.raises(lifecycle.DraftStateError, match="already publishing"):
        lifecycle.freeze(books.conn, october)


def test_draft_rows_can_only_be_closed_once_and_never_edited(books: Books) -> None:
    """The guards check whole statements: closing open rows of a draft is the one change allowed."""
    books.put(Entry("1"), Entry("2", task="t2"))
    books.draft()
    october = _only_invoice(books)
    entries_of = "UPDATE closeout_data.invoice_line_entries SET valid_to = %s WHERE invoice_id = %s"
    with books.conn.transaction() as allowed:
        books.conn.execute(entries_of, (2, october))
        books.conn.execute("UPDATE closeout_data.invoice_lines SET valid_to = 2 WHERE invoice_id = %s", (october,))
        with pytest.raises(psycopg.errors.RaiseException, match="closed, once"), books.conn.transaction():
            books.conn.execute(entries_of, (3, october))
        raise psycopg.Rollback(allowed)
    with pytest.raises(psycopg.errors.RaiseException, match="closed, once"), books.conn.transaction():
        books.conn.execute("UPDATE closeout_data.invoice_line_entries SET amount_minor = amount_minor + 1")
    with pytest.raises(psycopg.errors.RaiseException, match="closed, once"), books.conn.transaction():
        books.conn.execute("UPDATE closeout_data.invoice_line_entries SET valid_to = 2, invoice_id = 'inv_elsewhere'")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"), books.conn.transaction():
        books.conn.execute("UPDATE closeout_data.invoice_lines SET description = 'x' WHERE invoice_id = %s", (october,))
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"), books.conn.transaction():
        books.conn.execute("DELETE FROM closeout_data.invoice_lines WHERE invoice_id = %s", (october,))
    open_rows = books.rows(
        "SELECT count(*) FROM closeout_data.invoice_line_entries WHERE valid_to IS NULL AND invoice_id = %s",
        (october,),
    )
    assert open_rows == [(2,)]
    books.check_invariants()


def test_every_version_keeps_its_full_numbered_line_set(books: Books) -> None:
    """Lines are stored as validity ranges; each version's set is complete and numbered in order."""
    books.put(Entry("1", task="t2"), Entry("2", task="t3"))
    books.draft()
    october = _only_invoice(books)
    books.put(Entry("3", task="t1"))  # a new first line: the others move down in version 2
    books.draft()
    books.delete("2")
    books.draft()
    versions = books.rows(
        """SELECT version, line_no, description, amount_minor FROM closeout.invoice_line_versions
           WHERE invoice_id = %s ORDER BY version, line_no""",
        (october,),
    )
    assert versions == [
        (1, 1, "harvest:p1 / harvest:t2", 10000), (1, 2, "harvest:p1 / harvest:t3", 10000),
        (2, 1, "harvest:p1 / harvest:t1", 10000), (2, 2, "harvest:p1 / harvest:t2", 10000),
        (2, 3, "harvest:p1 / harvest:t3", 10000),
        (3, 1, "harvest:p1 / harvest:t1", 10000), (3, 2, "harvest:p1 / harvest:t2", 10000),
    ]  # fmt: skip
    current = books.rows(
        "SELECT line_no, description FROM closeout.invoice_lines WHERE invoice_id = %s ORDER BY 1", (october,)
    )
    assert current == [(1, "harvest:p1 / harvest:t1"), (2, "harvest:p1 / harvest:t2")]
    totals = books.rows(
        "SELECT version, total_minor, line_count FROM closeout.invoice_versions WHERE invoice_id = %s ORDER BY 1",
        (october,),
    )
    assert totals == [(1, 20000, 2), (2, 30000, 3), (3, 20000, 2)]
    books.check_invariants()


def test_drafting_scripts_split_into_single_statements() -> None:
    """Each step is one statement: its timing, and the ANALYZE after a temp table is filled, rely on it."""
    from closeout.billing.drafting import SCRIPTS
    from closeout.paths import sql_statements

    for script in SCRIPTS:
        for statement in sql_statements(script):
            code = "\n".join(line.split("--")[0] for line in statement.splitlines()).strip()
            assert code.count(";") == 1 and code.endswith(";"), f"{script}: more than one statement in {code[:80]!r}"


def test_a_first_run_rebuilds_the_indexes_it_deferred(books: Books) -> None:
    """A first run fills its empty tables without their bulk indexes; they are all back when it ends."""
    query = """SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'closeout_data'
               AND tablename IN ('billing_entries', 'invoice_line_entries', 'invoice_lines') ORDER BY 1"""
    before = books.rows(query)
    books.put(Entry("1"), Entry("2", task="t2"))
    books.draft()
    assert books.rows(query) == before
    deferred = {"billing_entries_pkey", "invoice_line_entries_current_by_entry", "invoice_lines_pkey"}
    assert deferred <= {name for name, _ in before}
    books.put(Entry("1", hours=D("2")))
    assert books.draft().invoices_changed == 1
    books.check_invariants()
