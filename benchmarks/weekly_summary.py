"""Benchmark: the weekly time and cost summary over a 1,000,000-entry warehouse.

Setup (not timed): ``--entries`` time entry versions written set-based by the drafting benchmark's generator
(``benchmarks.drafting.SEED_SQL``: ``--clients`` clients, four projects each, USD, EUR, JPY and KWD, 10%
non-billable, 2% unapproved), spread over ``--days`` from 2026-01-05 (default a year: a 1,000,000-entry
warehouse is about a year of a 400-person agency, some 19,000 entries a week; ``--days 61`` is the drafting
benchmark's two dense months, about 115,000 entries a week), one payee per user except every tenth (no cost rate) with
a cost rate in USD, and ``--expenses`` approved expenses over the same days (set-based too). The previous week is
summarised once first, then 1% of entries are edited through the capture merge (new versions, as a sync writes
them), so the timed run also finds and restates the previous week ("changes since last summarised").

Timed: what ``closeout_weekly_summary``'s summarise task does for one ISO week, end to end: the figures in one
snapshot (``build_summary``: time lines with cost, expenses, unapproved time, payroll hours, changes against the
previous week's baseline), the page, the three data files written to the artifact store (a temporary folder)
and the week's record. Budget (DESIGN.md): under 5 s. ``baseline`` is one plain GROUP BY of the week's entries
per client, project, user and currency (the least any summary must do).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date

from benchmarks.harvest_ingest import RESULTS, ROOT, fresh_database, machine

BUDGET_SECONDS = 5.0
WEEK, PREVIOUS = "2026-W38", "2026-W37"  # 14-20 September 2026, inside the generator's two months

PAYEES_SQL = """
INSERT INTO closeout_data.payout_payees (payee_key, cost_rate, currency, account_id, name, active)
SELECT 'harvest:' || u, 40 + u %% 7 * 5, 'USD', 'acct_bench' || u, 'User ' || u, true
FROM generate_series(0, %(users)s - 1) u WHERE u %% 10 <> 0
"""

EXPENSES_SQL = """
INSERT INTO closeout_data.expense_versions (
    source, source_id, version, sync_run_id, change, client_key, project_key, user_key, client_source_id,
    project_source_id, user_source_id, spent_date, category, billable, approved, currency, amount_minor, total_cost,
    billed_in_source, is_locked, source_updated_at)
SELECT 'harvest', i::text, 1, 1, 'created', 'harvest:' || c, 'harvest:' || (c * 4 + i %% 4), 'harvest:' || (i %% 50),
       c::text, (c * 4 + i %% 4)::text, (i %% 50)::text, date '2026-01-05' + (i %% %(days)s)::int, 'Travel',
       i %% 3 <> 0,
       true, 'USD', 1000 + i %% 9000, (1000 + i %% 9000) / 100.0, false, false, now()
FROM (SELECT i, i %% %(clients)s AS c FROM generate_series(1, %(expenses)s) i) g;
INSERT INTO closeout_data.expense_heads (source, source_id, version, spent_date)
SELECT source, source_id, 1, spent_date FROM closeout_data.expense_versions;
ANALYZE
"""


def seed_sql() -> str:
    """The drafting benchmark's generator (same clients, projects, users, currencies, rates, 10% non-billable,
    2% unapproved), its dates spread over ``days`` from 2026-01-05 instead of two months."""
    from benchmarks import drafting

    dense = "date '2026-09-01' + ((i * 104729) %% 61)::int"
    assert dense in drafting.SEED_SQL, "the drafting generator changed: update the date spread here"
    return drafting.SEED_SQL.replace(dense, "date '2026-01-05' + ((i * 104729) %% %(days)s)::int")


def seed(conn, entries: int, clients: int, expenses: int, days: int) -> float:
    started = time.perf_counter()
    users = max(50, entries // 400)
    conn.execute("SET maintenance_work_mem = '256MB'")
    params = {"entries": entries, "clients": clients, "users": users, "days": days, "expenses": expenses}
    for statement in [*seed_sql().split(";\n"), PAYEES_SQL, *EXPENSES_SQL.split(";\n")]:
        if statement.strip():
            conn.execute(statement, params)
    conn.commit()
    return time.perf_counter() - started


def baseline(conn) -> float:
    started = time.perf_counter()
    conn.execute(
        """SELECT client_key, project_key, user_key, currency, sum(hours), sum(amount_minor) FROM closeout.time_entries
           WHERE spent_date BETWEEN '2026-09-14' AND '2026-09-20' AND approved AND deleted_at IS NULL
           GROUP BY 1, 2, 3, 4"""
    ).fetchall()
    conn.rollback()
    return time.perf_counter() - started


def summarise(week: str) -> tuple[float, dict]:
    from closeout.summary import tasks

    started = time.perf_counter()
    result = tasks.summarise(week, f"bench-{week}")
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--expenses", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=364,
                        help="days the entries are spread over (364: a year's warehouse; 61: the drafting "
                             "benchmark's two dense months, about 115,000 entries a week)")
    parser.add_argument("--no-write", action="store_true", help="print only; write no results file")
    args, _ = parser.parse_known_args(argv)
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = fresh_database("closeout_bench_weekly_summary")
    artifacts = tempfile.mkdtemp(prefix="closeout-bench-summary-")
    os.environ["CLOSEOUT_ARTIFACTS_URL"] = artifacts
    os.environ["CLOSEOUT_PAYEES_CONFIG"] = os.path.join(artifacts, "no-payee-file.yaml")  # the seeded payees stand
    from closeout.warehouse.db import connect
    from closeout.warehouse.migrations import apply_migrations

    with connect(autocommit=True) as admin:
        apply_migrations(admin)
    results: dict = {"benchmark": "weekly_summary", "entries": args.entries, "clients": args.clients,
                     "expenses": args.expenses, "days": args.days, "week": WEEK, "date": date.today().isoformat(),
                     "machine": machine()}  # fmt: skip
    with connect() as conn:
        results["seed_seconds"] = round(seed(conn, args.entries, args.clients, args.expenses, args.days), 2)
        results["baseline_group_by_seconds"] = round(baseline(conn), 3)
        week_entries = conn.execute(
            "SELECT count(*) FROM closeout.time_entries WHERE spent_date BETWEEN '2026-09-14' AND '2026-09-20'"
        ).fetchone()[0]
    results["week_entries"] = week_entries
    seconds, _ = summarise(PREVIOUS)
    results["previous_week_seconds"] = round(seconds, 2)
    with connect() as conn:  # late edits after that summary: 1% of entries, through the capture merge
        from benchmarks import drafting

        results["edited_after_previous_summary"] = drafting.edit_one_percent(conn, args.entries, 1)
    load_before = os.getloadavg()[0]
    seconds, summary = summarise(WEEK)
    results["summary_seconds"] = round(seconds, 2)
    results["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # shared 2-core machines
    results["summary"] = {k: summary[k] for k in ("totals", "changed_weeks", "renders")}
    results["no_cost_rate_people"] = len(summary["no_cost_rate"])
    results["within_budget"] = seconds < BUDGET_SECONDS
    print_table(results)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"weekly_summary-{results['date']}-{results['machine']['host']}.json"
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results: {path.relative_to(ROOT)}")
    return results


def print_table(r: dict) -> None:
    print(f"\nWeekly summary: {r['entries']:,} entries, {r['expenses']:,} expenses, week {r['week']} "
          f"({r['week_entries']:,} entries in it)")  # fmt: skip
    print(f"{'step':<28}{'seconds':>10}{'budget':>10}  what")
    rows = [
        ("seed (not timed)", r["seed_seconds"], None, "entries, payees, expenses written set-based"),
        ("baseline GROUP BY", r["baseline_group_by_seconds"], None, "the week's entries per client/project/user"),
        ("summary, previous week", r["previous_week_seconds"], BUDGET_SECONDS, "first summary: no baseline yet"),
        ("summary (judged)", r["summary_seconds"], BUDGET_SECONDS,
         f"figures, changes vs {PREVIOUS}, page, 3 files, record; {r['no_cost_rate_people']} people uncosted"),
    ]  # fmt: skip
    for name, seconds, budget, what in rows:
        budget_text = f"{budget:.0f}" if budget else "-"
        print(f"{name:<28}{seconds:>10.2f}{budget_text:>10}  {what}")
    print(("within budget" if r["within_budget"] else f"OVER BUDGET ({BUDGET_SECONDS:.0f} s)")
          + f"; load average (1 min) before and after: {r['load_average_1m']}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
