"""Benchmark: Harvest sandbox -> warehouse, 200,000 expenses (limits off), and an incremental sync.

DESIGN.md's budget: sync 200,000 expenses in under 15 s. Measured in one run, on one machine, against a
baseline taken in the same run:
  * parse + COPY: fetch every ``/v2/expenses`` page, json-decode it and COPY a dozen fields per expense into a bare
    table (no versioning, validation, quarantine or references): the floor any client pays for HTTP, JSON and COPY;
  * closeout: the expenses phase of the real Harvest sync (``closeout.trackers.expenses.harvest.sync_expenses``,
    after the run's reference and time-entry phases, which are not timed) in a child process, whose peak RSS is read
    from the kernel after it exits.
Then 1,000 expenses are edited in the sandbox and an incremental sync runs; its expense requests are compared with
the budget ceil(1000 / page size) + one page of overlap.

The sandbox runs in its own process (``--serve``: a small time-entry dataset for the references, then the expenses
made with the sandbox's own ``create_expense``, so every one has the documented shape and varied categories,
unit-priced mileage, receipts, approval and billable flags).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

from benchmarks.harvest_ingest import (
    RESULTS,
    ROOT,
    _env,
    control,
    fresh_database,
    harvest_conn,
    machine,
    parse_copy,
    start_sandbox_process,
)

PAGE_SIZE = 2000
TARGET_SECONDS = 15.0


def serve(expenses: int, seed: int) -> int:
    """The sandbox process: references from a small dataset, then ``expenses`` expenses, then serve until stopped."""
    from sandbox.harvest.data import generate_dataset
    from sandbox.harvest.expenses import DEFAULT_CATEGORIES
    from sandbox.harvest.server import HarvestSandbox
    from sandbox.serving import serve_until, stop_on_signals

    stopping = stop_on_signals()
    rng = random.Random(seed)
    sandbox = HarvestSandbox(token="sandbox-token", account_id="123456", rate_limit=None)  # noqa: S106 (the sandbox's)
    sandbox.load(generate_dataset(2_000, seed=seed))
    projects = list(sandbox._projects)
    members: dict[int, list[int]] = {}
    for user_id, project_id in sandbox._user_assignments:
        members.setdefault(project_id, []).append(user_id)
    categories = [c[0] for c in DEFAULT_CATEGORIES]
    first = date(2026, 1, 1)
    book = sandbox.expenses
    for n in range(expenses):
        project = rng.choice(projects)
        category = rng.choice(categories)
        fields = {
            "project_id": project,
            "user_id": rng.choice(members.get(project) or list(sandbox._users)),
            "expense_category_id": category,
            "spent_date": first + timedelta(days=rng.randrange(330)),
            "billable": rng.random() < 0.8,
            "is_closed": rng.random() < 0.7,
            "notes": f"expense {n}",
        }
        if category == 4195929:  # Mileage: priced from units x the category's unit price
            fields["units"] = rng.randrange(1, 400)
        else:
            fields["total_cost"] = rng.randrange(100, 250_000) / 100
        if rng.random() < 0.3:
            fields["receipt"] = {
                "url": f"https://files.example/receipts/{n}.pdf", "file_name": f"{n}.pdf",
                "file_size": rng.randrange(10_000, 900_000), "content_type": "application/pdf",
            }  # fmt: skip
        book.create_expense(**fields)
    url = sandbox.start("127.0.0.1", 0)
    print(f"HARVEST_SANDBOX_URL={url}", flush=True)
    return serve_until(stopping, sandbox.stop)


def baseline_parse_copy(url: str, conn_json: str) -> dict:
    """Fetch, json.loads and COPY the fields closeout keeps of each expense into a plain table."""
    columns = ("id bigint, spent_date date, total_cost numeric, units numeric, currency text, category_id bigint, "
               "billable boolean, is_closed boolean, is_billed boolean, client_id bigint, project_id bigint, "
               "user_id bigint, receipt_url text, updated_at timestamptz")  # fmt: skip

    def row(e: dict) -> tuple:
        return (e["id"], e["spent_date"], e["total_cost"], e["units"], e["client"]["currency"],
                e["expense_category"]["id"], e["billable"], e["is_closed"], e["is_billed"], e["client"]["id"],
                e["project"]["id"], e["user"]["id"], (e.get("receipt") or {}).get("url"), e["updated_at"])  # fmt: skip

    return parse_copy(url, conn_json, "expenses", columns, row)


def run_child_sync(conn_json: str, url: str) -> dict:
    """One Harvest sync run in a child process; only its expenses phase is timed."""
    env = _env()
    env["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = conn_json
    env["AIRFLOW_CONN_HARVEST_DEFAULT"] = harvest_conn(url)
    code = (
        "import json, resource, time\n"
        "from closeout.trackers.harvest import sync\n"
        "from closeout.trackers.expenses import harvest as expenses\n"
        "from closeout.trackers.settings import SyncSettings\n"
        "settings = SyncSettings(sweep='never')\n"
        "run_id = sync.begin_sync('benchmark', settings)['sync_run_id']\n"
        "sync.sync_reference(run_id, settings)\n"
        "sync.sync_entries(run_id, settings)\n"
        "t = time.perf_counter()\n"
        "phase = expenses.sync_expenses(run_id, settings)\n"
        "seconds = time.perf_counter() - t\n"
        "sync.sweep_deletions(run_id, settings)\n"
        "summary = sync.finish_sync(run_id, settings)\n"
        "summary['expense_seconds'] = seconds\n"
        "summary['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print('RESULT ' + json.dumps(summary, default=str))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sync failed:\n{proc.stderr[-4000:]}")
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])


def warehouse_counts(conn_json: str) -> dict:
    import psycopg

    conn = json.loads(conn_json)
    with psycopg.connect(host=conn["host"], port=conn.get("port") or 5432, user=conn.get("login"),
                         dbname=conn["schema"]) as db:  # fmt: skip
        expenses, versions = db.execute(
            "SELECT (SELECT count(*) FROM closeout.expenses WHERE source = 'harvest'),"
            "       (SELECT count(*) FROM closeout.expense_versions WHERE source = 'harvest')"
        ).fetchone()
    return {"expenses": expenses, "versions": versions}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--expenses", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--edits", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="print only; write no results file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the sandbox process
    args = parser.parse_args(argv)
    if args.serve:
        sys.exit(serve(args.expenses, args.seed))

    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    print(f"generating {args.expenses:,} expenses in the Harvest sandbox ...", flush=True)
    sandbox, url = start_sandbox_process(
        "benchmarks.expenses", ["--serve", "--expenses", str(args.expenses), "--seed", str(args.seed)],
        "HARVEST_SANDBOX_URL",
    )
    try:
        baseline = baseline_parse_copy(url, fresh_database("closeout_bench_expenses_baseline"))
        print(f"  baseline parse + COPY: {baseline['seconds']:.1f} s ({baseline['rows']:,} expenses)", flush=True)
        conn_json = fresh_database("closeout_bench_expenses")
        full = run_child_sync(conn_json, url)
        print(f"  closeout expenses phase: {full['expense_seconds']:.1f} s", flush=True)
        counts = warehouse_counts(conn_json)
        listed = control(url, "GET", "expenses")
        rng = random.Random(args.seed + 1)
        edited = [e["id"] for e in rng.sample(listed, min(args.edits, len(listed)))]
        del listed
        for ident in edited:
            control(url, "PATCH", f"expenses/{ident}", {"notes": "edited for the incremental benchmark"})
        control(url, "POST", "reset_stats")
        incremental = run_child_sync(conn_json, url)
        stats = control(url, "GET", "stats")
        after = warehouse_counts(conn_json)
    finally:
        sandbox.terminate()
        sandbox.wait(30)

    expense_requests = stats["by_path"].get("/v2/expenses", 0)
    budget = math.ceil(len(edited) / PAGE_SIZE)
    report = {
        "benchmark": "expenses",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine slows every figure
        "expenses": args.expenses,
        "page_size": PAGE_SIZE,
        "full_sync": {
            "seconds": round(full["expense_seconds"], 2),
            "expenses_per_second": round(args.expenses / full["expense_seconds"]),
            "expenses_in_warehouse": counts["expenses"],
            "versions": counts["versions"],
            "peak_rss_mb": round(full["peak_rss_mb"], 1),
        },
        "baselines": {"parse_copy_seconds": round(baseline["seconds"], 2), "rows": baseline["rows"]},
        "ratios": {"closeout_vs_parse_copy": round(full["expense_seconds"] / baseline["seconds"], 2)},
        "incremental": {
            "edits": len(edited),
            "expense_requests": expense_requests,
            "budget_expense_requests": budget,
            "within_budget": expense_requests <= budget + 1,
            "new_versions": after["versions"] - counts["versions"],
            "seconds": round(incremental["expense_seconds"], 2),
        },
        "targets": {
            "seconds": TARGET_SECONDS,
            "met": full["expense_seconds"] < TARGET_SECONDS and counts["expenses"] == args.expenses,
        },
    }
    print_table(report)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        path = RESULTS / f"expenses-{stamp}-{platform.node()}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {path.relative_to(ROOT)}")
    return report


def print_table(r: dict) -> None:
    f, b, i = r["full_sync"], r["baselines"], r["incremental"]
    rows = [
        ("expenses", f"{r['expenses']:,}", f"{f['expenses_in_warehouse']:,} in closeout.expenses"),
        ("parse + COPY (baseline)", f"{b['parse_copy_seconds']:.1f} s", ""),
        ("closeout expenses sync", f"{f['seconds']:.1f} s", f"{f['expenses_per_second']:,} expenses/s"),
        ("  ratio to parse + COPY", f"{r['ratios']['closeout_vs_parse_copy']:.2f}x", ""),
        ("  peak RSS", f"{f['peak_rss_mb']:.0f} MB", "the whole sync process"),
        ("incremental after edits", f"{i['edits']} edits", f"{i['seconds']:.2f} s, {i['new_versions']} new versions"),
        ("  expense requests", f"{i['expense_requests']}",
         f"budget ceil({i['edits']}/{r['page_size']}) = {i['budget_expense_requests']} (+1 overlap)"),
        ("target met", str(r["targets"]["met"]), f"< {r['targets']['seconds']:.0f} s"),
    ]  # fmt: skip
    width = max(len(a) for a, _, _ in rows)
    print()
    for a, b_, c in rows:
        print(f"{a:<{width}}  {b_:>14}  {c}")


if __name__ == "__main__":
    main()
