"""Benchmark: invoice drafting over N entries across C clients, and refreshing it after changes.

Setup (not timed): N entry versions written straight into a fresh warehouse with one set-based INSERT
(two months of time across C clients, 4 projects each, a few currencies including zero- and
three-decimal ones), plus the names of projects, tasks and users. Then, timed:

* ``draft``: the first drafting run over every entry (judge, lines, versions of every draft);
* ``refresh``: 1% of entries edited through the capture merge (new versions), then a drafting run;
* ``refresh_after_publish``: every draft of the first month frozen, 1% edited again (now partly
  adjustments and credits on the next drafts), then a drafting run;
* ``noop``: a drafting run with nothing changed.

Baselines measured in the same run on the same data: ``group_by`` is one plain GROUP BY of every
current entry into per-client, project, task and rate sums written to a table (the least any drafting
must do); the refresh ratios are against the full draft. Budgets (DESIGN.md): the first draft under
20 s, a refresh after 1% changed under 3 s. A second table shows where each run's time goes, per SQL
step (``DraftSummary.step_seconds``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal

from benchmarks.harvest_ingest import RESULTS, ROOT, fresh_database, machine

SEED_SQL = """
INSERT INTO closeout_data.sync_runs (source, mode, status) VALUES ('harvest', 'import', 'succeeded');
INSERT INTO closeout_data.tracker_entities (source, kind, source_id, name, payload, last_sync_run_id)
SELECT 'harvest', 'project', p::text, 'Project ' || p, '{}'::jsonb, 1 FROM generate_series(0, %(clients)s * 4 - 1) p
UNION ALL SELECT 'harvest', 'task', t::text, 'Task ' || t, '{}'::jsonb, 1 FROM generate_series(0, 6) t
UNION ALL SELECT 'harvest', 'user', u::text, 'User ' || u, '{}'::jsonb, 1 FROM generate_series(0, %(users)s - 1) u;
INSERT INTO closeout_data.time_entry_versions (
    source, source_id, version, sync_run_id, change, client_key, project_key, task_key, user_key,
    client_source_id, project_source_id, task_source_id, user_source_id, spent_date, hours, rounded_hours,
    billable_hours, billable, approved, billed_in_source, is_locked, is_running, billable_rate, currency,
    amount_minor, source_updated_at)
SELECT 'harvest', i::text, 1, 1, 'created', 'harvest:' || c, 'harvest:' || p, 'harvest:' || t, 'harvest:' || u,
       c::text, p::text, t::text, u::text, d, h, h, CASE WHEN billable THEN h ELSE 0 END, billable, approved,
       false, false, false, rate, cur,
       CASE WHEN billable THEN round(h * rate * 10::numeric ^ x.exponent)::bigint ELSE 0 END, now()
FROM (
    SELECT i, i %% %(clients)s AS c, (i %% %(clients)s) * 4 + (i / %(clients)s) %% 4 AS p, i %% 7 AS t,
           (i * 7919) %% %(users)s AS u, date '2026-09-01' + ((i * 104729) %% 61)::int AS d,
           (1 + (i * 31) %% 8) * 0.25 AS h, i %% 10 <> 0 AS billable, i %% 50 <> 0 AS approved,
           CASE WHEN i %% %(clients)s %% 20 = 1 THEN 'EUR' WHEN i %% %(clients)s %% 100 = 2 THEN 'JPY'
                WHEN i %% %(clients)s %% 100 = 3 THEN 'KWD' ELSE 'USD' END AS cur,
           CASE WHEN i %% %(clients)s %% 100 = 2
                THEN 12000 + ((i %% %(clients)s) * 4 + (i / %(clients)s) %% 4) %% 7 * 500
                ELSE 80 + ((i %% %(clients)s) * 4 + (i / %(clients)s) %% 4) %% 50 * 2.5 END AS rate
    FROM generate_series(1::bigint, %(entries)s) i
) g
JOIN closeout_data.currencies x ON x.code = g.cur;
INSERT INTO closeout_data.time_entry_heads (source, source_id, version, spent_date)
SELECT source, source_id, 1, spent_date FROM closeout_data.time_entry_versions;
ANALYZE
"""


def seed(conn, entries: int, clients: int) -> float:
    started = time.perf_counter()
    users = max(50, entries // 400)
    conn.execute("SET maintenance_work_mem = '256MB'")
    for statement in SEED_SQL.split(";\n"):
        if statement.strip():
            conn.execute(statement, {"entries": entries, "clients": clients, "users": users})
    conn.commit()
    return time.perf_counter() - started


def edit_one_percent(conn, entries: int, salt: int) -> int:
    """1% of entries get new hours through the capture merge: new versions, as a sync would write."""
    from closeout.trackers import store
    from closeout.trackers.records import EntryRow

    rows = conn.execute(
        """SELECT v.source_id, v.client_source_id, v.project_source_id, v.task_source_id, v.user_source_id,
                  v.spent_date, v.hours, v.billable, v.approved, v.billable_rate, v.currency
           FROM closeout_data.time_entry_heads h
           JOIN closeout_data.time_entry_versions v USING (source, source_id, version)
           WHERE h.source = 'harvest' AND (hashtext(h.source_id || %s) & 1023) < 10""",
        (str(salt),),
    ).fetchall()
    now = datetime.now(UTC)
    items = [
        EntryRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6] + Decimal("0.25"), r[6] + Decimal("0.25"), r[7], r[8],
                 False, None, False, False, r[9], r[10], "edited", None, now)
        for r in rows
    ]  # fmt: skip
    store.prepare_session(conn)
    (run_id,) = conn.execute(
        "INSERT INTO closeout_data.sync_runs (source, mode, status) VALUES ('harvest', 'incremental', 'succeeded')"
        " RETURNING sync_run_id"
    ).fetchone()
    currencies = store.known_currencies(conn)
    for start in range(0, len(items), 5000):
        store.apply_entries(
            conn, source="harvest", sync_run_id=run_id, items=items[start : start + 5000],
            currencies=currencies, normalize=lambda it, cur: (list(it), [], []), url="bench://edit",
        )  # fmt: skip
    conn.commit()
    return len(items)


def timed_draft(conn) -> tuple[float, dict]:
    from closeout.billing.drafting import refresh_drafts

    started = time.perf_counter()
    summary = refresh_drafts(conn, airflow_run_id="benchmark")
    conn.commit()
    return time.perf_counter() - started, summary.as_dict()


def baseline_group_by(conn) -> float:
    started = time.perf_counter()
    conn.execute(
        """CREATE TABLE bench_group_by AS
           SELECT v.client_key, v.currency, v.project_key, v.task_key, v.billable_rate,
                  sum(v.rounded_hours) AS quantity, sum(v.amount_minor) AS amount_minor, count(*) AS entries
           FROM closeout_data.time_entry_heads h
           JOIN closeout_data.time_entry_versions v USING (source, source_id, version)
           WHERE v.billable AND v.approved
           GROUP BY 1, 2, 3, 4, 5"""
    )
    conn.commit()
    seconds = time.perf_counter() - started
    conn.execute("DROP TABLE bench_group_by")
    conn.commit()
    return seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--no-write", action="store_true", help="print only; write no results file")
    args, _ = parser.parse_known_args(argv)
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = fresh_database("closeout_bench_drafting")
    from closeout.warehouse.db import connect
    from closeout.warehouse.migrations import apply_migrations

    with connect(autocommit=True) as admin:
        apply_migrations(admin)
    results: dict = {"benchmark": "drafting", "entries": args.entries, "clients": args.clients,
                     "date": date.today().isoformat(), "machine": machine()}  # fmt: skip
    with connect() as conn:
        results["seed_seconds"] = round(seed(conn, args.entries, args.clients), 2)
        results["baseline_group_by_seconds"] = round(baseline_group_by(conn), 2)
        seconds, summary = timed_draft(conn)
        results["draft"] = {"seconds": round(seconds, 2), "summary": summary}
        edited = edit_one_percent(conn, args.entries, 1)
        seconds, summary = timed_draft(conn)
        results["refresh"] = {"seconds": round(seconds, 2), "edited": edited, "summary": summary}
        from closeout.billing import lifecycle

        query = "SELECT invoice_id FROM closeout_data.invoices WHERE period_end < '2026-10-01' AND line_count > 0"
        september = [row[0] for row in conn.execute(query)]
        for invoice_id in september:
            lifecycle.freeze(conn, invoice_id)
        conn.commit()
        edited = edit_one_percent(conn, args.entries, 2)
        seconds, summary = timed_draft(conn)
        results["refresh_after_publish"] = {"seconds": round(seconds, 2), "edited": edited, "frozen": len(september),
                                            "summary": summary}  # fmt: skip
        seconds, summary = timed_draft(conn)
        results["noop"] = {"seconds": round(seconds, 2), "summary": summary}
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM closeout_data.invoices), (SELECT count(*) FROM closeout.invoice_lines),
                      (SELECT count(*) FROM closeout_data.invoice_line_entries)"""
        ).fetchone()
        results["invoices"], results["current_lines"], results["line_entry_rows"] = counts
    print_table(results)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"drafting-{results['date']}-{results['machine']['host']}.json"
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results: {path.relative_to(ROOT)}")
    return results


def print_table(r: dict) -> None:
    base = r["baseline_group_by_seconds"]
    full = r["draft"]["seconds"]
    print(f"\nDrafting: {r['entries']:,} entries, {r['clients']:,} clients "
          f"({r['invoices']:,} invoices, {r['current_lines']:,} lines)")  # fmt: skip
    print(f"{'step':<24}{'seconds':>10}{'budget':>10}{'vs baseline':>14}  what")
    rows = [
        ("baseline GROUP BY", base, None, 1.0, "one aggregate of every entry into a table"),
        ("draft (first run)", full, 20.0, full / base if base else 0, "judge, lines, versions of every draft"),
        ("refresh 1% edited", r["refresh"]["seconds"], 3.0, r["refresh"]["seconds"] / full,
         f"{r['refresh']['edited']:,} entries edited; ratio vs full draft"),
        ("refresh after publish", r["refresh_after_publish"]["seconds"], 3.0,
         r["refresh_after_publish"]["seconds"] / full,
         f"{r['refresh_after_publish']['frozen']:,} drafts frozen, "
         f"{r['refresh_after_publish']['summary']['adjustment_lines']:,} adjustment and "
         f"{r['refresh_after_publish']['summary']['credit_lines']:,} credit lines"),
        ("no-op refresh", r["noop"]["seconds"], None, r["noop"]["seconds"] / full, "nothing changed"),
    ]  # fmt: skip
    for name, seconds, budget, ratio, what in rows:
        budget_text = f"{budget:.0f}" if budget else "-"
        print(f"{name:<24}{seconds:>10.2f}{budget_text:>10}{ratio:>13.2f}x  {what}")
    print_steps(r)


def print_steps(r: dict, at_least: float = 0.05) -> None:
    """Where each run's time goes: the SQL steps (include/sql/billing/) that took at least 50 ms."""
    runs = ("draft", "refresh", "refresh_after_publish")
    steps = {run: r[run]["summary"]["step_seconds"] for run in runs}
    names = [name for name in steps["draft"] if any(steps[run].get(name, 0) >= at_least for run in runs)]
    print(f"\n{'step (seconds)':<48}{'draft':>10}{'refresh':>10}{'after pub.':>12}")
    for name in names:
        draft, refresh, after = (steps[run].get(name, 0) for run in runs)
        print(f"{name:<48}{draft:>10.2f}{refresh:>10.2f}{after:>12.2f}")
    draft, refresh, after = (sum(steps[run].values()) for run in runs)
    print(f"{'(all steps)':<48}{draft:>10.2f}{refresh:>10.2f}{after:>12.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
