"""The daily pilot comparison: source entries against invoice lines, per client, month and currency.

Both ways (entries no line bills, lines whose entry is gone or no longer billable, amounts that differ) and,
for a client and month the team still invoices from the tracker, against the tracker's own billing (Harvest's
``is_billed``/``invoice`` on each entry, Clockify's invoiced flag, captured as ``billed_in_source`` and
``source_invoice_ref``). Set-based SQL (``include/sql/pilot/``); results in ``closeout.pilot_comparisons``
with the differences behind them in ``closeout.pilot_comparison_items``. Then the rollback criteria are
evaluated for the cohort (``closeout.pilot.rollback``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from closeout.paths import load_sql
from closeout.pilot import config as pilot_config
from closeout.pilot import rollback


@dataclass
class ComparisonSummary:
    run_id: str
    compared_on: date
    periods: list[str]
    cohort_size: int = 0
    rows: int = 0
    mismatches: int = 0
    differences: dict[str, int] = field(default_factory=dict)
    breaches: list[dict[str, Any]] = field(default_factory=list)
    alerts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "compared_on": self.compared_on.isoformat()}


def month_start(period: str) -> date:
    year, month = period.split("-")
    return date(int(year), int(month), 1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def periods_for(compared_on: date, months: int, period: str | None = None) -> list[str]:
    """The months a run compares: ``period`` alone when given, else the ``months`` up to ``compared_on``'s."""
    if period:
        return [period]
    first = add_months(compared_on.replace(day=1), -(months - 1))
    return [add_months(first, n).strftime("%Y-%m") for n in range(months)]


def run(conn: psycopg.Connection, *, run_id: str, compared_on: date, period: str | None = None,
        senders: dict[str, Any] | None = None) -> ComparisonSummary:  # fmt: skip
    """Compare, record, evaluate the rollback criteria and alert on breaches. Commits. A rerun under the same
    ``run_id`` replaces that run's results (an Airflow retry)."""
    config = pilot_config.load_and_apply(conn)
    periods = periods_for(compared_on, config.months, period)
    start, end = month_start(periods[0]), add_months(month_start(periods[-1]), 1)
    summary = ComparisonSummary(run_id, compared_on, periods, cohort_size=len(config.cohort))
    params = {"run_id": run_id, "start": start, "end": end, "compared_on": compared_on}
    with conn.transaction():
        for table in ("pilot_breaches", "pilot_comparison_items", "pilot_comparisons", "pilot_comparison_runs"):
            conn.execute(f"DELETE FROM closeout_data.{table} WHERE run_id = %s", (run_id,))
        conn.execute(
            """INSERT INTO closeout_data.pilot_comparison_runs (run_id, compared_on, periods, cohort_size, criteria)
               VALUES (%s, %s, %s, %s, %s)""",
            (run_id, compared_on, periods, len(config.cohort), Jsonb(config.content()["rollback"])),
        )
        conn.execute(load_sql("pilot/compare_items.sql"), params)
        summary.rows = conn.execute(load_sql("pilot/compare_summary.sql"), params).rowcount
        summary.differences = dict(conn.execute(
            "SELECT kind, count(*) FROM closeout_data.pilot_comparison_items WHERE run_id = %s GROUP BY kind",
            (run_id,)).fetchall())  # fmt: skip
        (summary.mismatches,) = conn.execute(
            "SELECT count(*) FROM closeout_data.pilot_comparisons WHERE run_id = %s AND status = 'mismatch'",
            (run_id,),
        ).fetchone()
        found = rollback.evaluate(conn, run_id=run_id, compared_on=compared_on, criteria=config.rollback)
        summary.breaches = [b.as_dict() for b in found]
        conn.execute(
            """UPDATE closeout_data.pilot_comparison_runs SET finished_at = clock_timestamp(), mismatches = %s,
                   breaches = %s WHERE run_id = %s""",
            (summary.mismatches, len(found), run_id),
        )
    summary.alerts = rollback.alert(conn, found, run_id=run_id, senders=senders)
    return summary
