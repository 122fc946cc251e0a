"""The rollback criteria on recorded comparison rows (the real criteria SQL on the real warehouse): cohort clients
only, the amount tolerance per month and currency, and N comparison days in a row judged on the latest run of
each day."""

from __future__ import annotations

from datetime import date, timedelta

from closeout.pilot import rollback
from closeout.pilot.config import RollbackCriteria
from closeout.warehouse.db import connect

DAY = date(2026, 11, 20)


def _run(conn, run_id: str, on: date, rows: list[tuple[str, bool, int, int]]) -> None:
    """A finished comparison run with rows (client, cohort, amount_difference_minor, hard_mismatches) for 2026-10."""
    conn.execute(
        """INSERT INTO closeout_data.pilot_comparison_runs (run_id, compared_on, periods, cohort_size, finished_at)
           VALUES (%s, %s, ARRAY['2026-10'], 1, clock_timestamp())""",
        (run_id, on),
    )
    for client, cohort, amount, hard in rows:
        differs = amount != 0 or hard > 0
        conn.execute(
            """INSERT INTO closeout_data.pilot_comparisons (run_id, compared_on, client_key, period, currency, cohort,
                   source_hours, source_minor, invoiced_hours, invoiced_minor, awaiting_approval, entries_not_invoiced,
                   lines_without_entry, amount_differences, amount_difference_minor, tracker_compared,
                   tracker_billed_hours, tracker_billed_minor, tracker_differences, tracker_difference_minor,
                   hard_mismatches, status)
               VALUES (%s, %s, %s, '2026-10', 'USD', %s, 1, 10000, 1, 10000 + %s, 0, %s, 0, %s, %s, false, 0, 0, 0, 0,
                       %s, %s)""",
            (run_id, on, client, cohort, amount, hard, int(amount != 0), amount, hard,
             "mismatch" if differs else "match"),
        )  # fmt: skip


def _evaluate(conn, run_id: str, on: date, criteria: RollbackCriteria) -> list[tuple[str, str, str]]:
    return [(b.client_key, b.period, b.criterion) for b in
            rollback.evaluate(conn, run_id=run_id, compared_on=on, criteria=criteria)]  # fmt: skip


def test_amount_tolerance_and_hard_mismatch_apply_to_the_cohort_only(warehouse) -> None:
    with connect() as conn:
        _run(conn, "r1", DAY, [("harvest:in", True, -250, 0), ("harvest:small", True, 90, 0),
                               ("harvest:hard", True, 0, 2), ("harvest:shadow", False, -99999, 5)])  # fmt: skip
        got = _evaluate(conn, "r1", DAY, RollbackCriteria(True, 100, 3))
        assert got == [("harvest:hard", "2026-10", "hard_mismatch"), ("harvest:in", "2026-10", "amount_tolerance")]
        (observed,) = conn.execute(
            "SELECT observed FROM closeout.pilot_breaches WHERE criterion = 'amount_tolerance'").fetchone()
        assert observed == "-250 USD minor units over 1 entry"
        conn.rollback()
        _run(conn, "r1", DAY, [("harvest:hard", True, 0, 2)])
        assert _evaluate(conn, "r1", DAY, RollbackCriteria(False, 0, 3)) == [], "hard_mismatch switched off"


def test_consecutive_failing_days_count_days_not_runs_and_a_good_day_breaks_the_run(warehouse) -> None:
    criteria = RollbackCriteria(hard_mismatch=False, amount_tolerance_minor=10**9, consecutive_failing_days=3)
    with connect() as conn:
        _run(conn, "d1", DAY, [("harvest:a", True, 5, 0)])
        _run(conn, "d2", DAY + timedelta(days=1), [("harvest:a", True, 5, 0)])
        _run(conn, "d2-again", DAY + timedelta(days=1), [("harvest:a", True, 5, 0)])  # same day: one day
        assert _evaluate(conn, "d2-again", DAY + timedelta(days=1), criteria) == []
        _run(conn, "d3", DAY + timedelta(days=2), [("harvest:a", True, 5, 0)])
        assert _evaluate(conn, "d3", DAY + timedelta(days=2), criteria) == [
            ("harvest:a", "2026-10", "consecutive_failing_days")]
        _run(conn, "d4", DAY + timedelta(days=3), [("harvest:a", True, 0, 0)])  # a good day
        _run(conn, "d5", DAY + timedelta(days=4), [("harvest:a", True, 5, 0)])
        assert _evaluate(conn, "d5", DAY + timedelta(days=4), criteria) == []
