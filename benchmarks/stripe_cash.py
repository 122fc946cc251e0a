"""Benchmark: 1,000,000 Stripe balance transactions from the sandbox (limits off) into the warehouse, and an
incremental sync.

Setup (not timed): a Stripe sandbox in its own process seeded with ``--charges`` past card charges by the
sandbox's bulk history (``sandbox.stripe.bulk``: about 1.1 balance transactions per charge with refunds,
daily Stripe fees and daily automatic payouts; no events) and a fresh, migrated warehouse. Then, timed:

* ``floor`` (same run, same sandbox): the bare SDK listing every balance transaction (raw pages, as the sync
  reads them) and COPYing a row per transaction into an unindexed table: no stage, no upsert, no cursor.
* ``closeout``: ``closeout.payments.cash`` syncing the ``balance_transactions`` stream in a child process (its
  peak RSS is its own): pages streamed, COPY into the stage, forward-only upsert, cursor committed per flush.
  Budget: under 60 s (DESIGN.md). Ratio: closeout's seconds over the floor's.
* ``rest``: the rest of a first full cash sync (charges, refunds, payouts, invoices, ...; every automatic
  payout's ``?payout=`` listing, which reads the carried transactions a second time; the balance; the links),
  reported, not budgeted.
* ``cash_checks``: after the rest, the journals posted (setup), the four cash checks against Stripe
  (``closeout.recon.cash.run_cash_checks``) over the synced warehouse. Budget: under 10 s (DESIGN.md).
* ``incremental``: ``--incremental`` new transactions (Stripe fees) then the sync again: its balance
  transaction requests against ceil(K / 100) plus a constant (the overlap window's page).

``seed_cash_sandbox`` is the reusable part: a seeded sandbox process and a warehouse holding the synced
balance transactions, for other benchmarks (the cash checks) to time their own work over.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from datetime import date

from benchmarks.harvest_ingest import RESULTS, ROOT, _env, control, fresh_database, machine, start_sandbox_process

TARGET_SECONDS = 60.0
KEY = "sk_test_sandbox"


def start_seeded_sandbox(charges: int, seed: int = 5) -> tuple[subprocess.Popen, str, float]:
    """A Stripe sandbox process holding ``charges`` charges' worth of bulk history; returns it, its URL and the
    seconds seeding took (it seeds before it serves)."""
    started = time.perf_counter()
    args = ["--port", "0", "--seed", str(seed), "--bulk-charges", str(charges)]
    proc, url = start_sandbox_process("sandbox.stripe", args, "STRIPE_SANDBOX_URL")
    return proc, url, time.perf_counter() - started


def stripe_conn(url: str) -> str:
    return json.dumps({"conn_type": "http", "host": url, "password": KEY,
                       "extra": {"max_network_retries": 2, "timeout": 120, "cash_reads_per_second": 0}})  # fmt: skip


def seed_cash_sandbox(charges: int, database: str = "closeout_bench_cash") -> dict:
    """For other benchmarks: a seeded sandbox and a warehouse with its balance transactions synced by closeout.
    Sets ``AIRFLOW_CONN_CLOSEOUT_WAREHOUSE`` / ``AIRFLOW_CONN_STRIPE_DEFAULT`` in this process; the caller
    terminates ``result['process']``."""
    proc, url, seeded = start_seeded_sandbox(charges)
    conn_json = fresh_database(database)
    os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = conn_json
    os.environ["AIRFLOW_CONN_STRIPE_DEFAULT"] = stripe_conn(url)
    _migrate()
    synced = run_child_sync(conn_json, url, "full")
    return {"process": proc, "url": url, "seed_seconds": seeded, "sync": synced}


def _migrate() -> None:
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    from closeout.warehouse.db import connect
    from closeout.warehouse.migrations import apply_migrations

    with connect(autocommit=True) as admin:
        apply_migrations(admin)


def baseline_list_copy(url: str, conn_json: str) -> dict:
    """The floor: the SDK's raw listing of every balance transaction, a row each COPYed into a bare table."""
    import logging

    import psycopg
    import stripe

    logging.getLogger("stripe").setLevel(logging.WARNING)  # as the hook does: no log line per request
    conn = json.loads(conn_json)
    client = stripe.StripeClient(KEY, base_addresses={"api": url}, max_network_retries=2)
    with psycopg.connect(host=conn["host"], port=conn.get("port") or 5432, user=conn.get("login"),
                         dbname=conn["schema"], autocommit=True) as db:  # fmt: skip
        db.execute("DROP TABLE IF EXISTS baseline_balance_transactions")
        db.execute("""CREATE TABLE baseline_balance_transactions (id text, type text, reporting_category text,
                      currency text, amount bigint, fee bigint, net bigint, fee_details jsonb, exchange_rate numeric,
                      source text, status text, created bigint, available_on bigint)""")
        started = time.perf_counter()
        rows = requests = 0
        params: dict = {"limit": 100}
        while True:
            body = client.raw_request("get", "/v1/balance_transactions", **params).data
            requests += 1
            data = body["data"]
            with db.transaction(), db.cursor().copy("COPY baseline_balance_transactions FROM STDIN") as copy:
                for t in data:
                    rate = t["exchange_rate"]
                    copy.write_row((t["id"], t["type"], t["reporting_category"], t["currency"], t["amount"], t["fee"],
                                    t["net"], json.dumps(t["fee_details"]), None if rate is None else repr(rate),
                                    t["source"], t["status"], t["created"], t["available_on"]))  # fmt: skip
            rows += len(data)
            if not body["has_more"] or not data:
                break
            params["starting_after"] = data[-1]["id"]
        return {"seconds": time.perf_counter() - started, "rows": rows, "requests": requests}


def run_child_sync(conn_json: str, url: str, what: str) -> dict:
    """closeout's cash sync in a child process, so its time and peak RSS are its own. ``what``: ``txns`` (the
    balance transaction stream alone), ``rest`` (everything else of a full sync) or ``full``."""
    env = _env()
    env["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = conn_json
    env["AIRFLOW_CONN_STRIPE_DEFAULT"] = stripe_conn(url)
    if what == "txns":
        call = "CashSync(conn, hook).run(('balance_transactions',), link_payouts=False, read_balance=False)"
    elif what == "rest":
        call = "CashSync(conn, hook).run(tuple(s for s in STREAM_NAMES if s != 'balance_transactions'))"
    else:
        call = "CashSync(conn, hook).run()"
    code = (
        "import json, time, resource\n"
        "from closeout.payments.cash.sync import CashSync, STREAM_NAMES\n"
        "from closeout.payments.hook import StripeHook\n"
        "from closeout.warehouse.db import connect\n"
        "hook = StripeHook()\n"
        "t = time.perf_counter()\n"
        "with connect() as conn:\n"
        f"    result = {call}.as_dict()\n"
        "result['wall_seconds'] = time.perf_counter() - t\n"
        "result['hook_requests'] = hook.requests\n"
        "result['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print('RESULT ' + json.dumps(result))\n"
    )
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=3600)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"cash sync failed:\n{proc.stderr[-4000:]}")
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charges", type=int, default=900_000, help="bulk charges (about 1.1 txns each)")
    parser.add_argument("--incremental", type=int, default=1_000, help="new transactions for the incremental run")
    parser.add_argument("--no-rest", action="store_true", help="skip the rest of the full sync")
    parser.add_argument("--no-write", action="store_true", help="print only; write no results file")
    parser.add_argument("--no-checks", action="store_true", help="skip timing the four cash checks")
    args, _ = parser.parse_known_args(argv)
    proc, url, seeded = start_seeded_sandbox(args.charges)
    try:
        results = run(args, url, seeded)
    finally:
        proc.terminate()
        proc.wait(30)
    print_table(results)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"stripe_cash-{results['date']}-{results['machine']['host']}.json"
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results: {path.relative_to(ROOT)}")
    return results


def run(args: argparse.Namespace, url: str, seeded: float) -> dict:
    results: dict = {"benchmark": "stripe_cash", "date": date.today().isoformat(), "machine": machine(),
                     "charges": args.charges, "seed_seconds": round(seeded, 1),
                     "target_seconds": TARGET_SECONDS,
                     # 2 cores shared with other work: the 1-minute load average says how quiet the run was
                     "load_average_at_start": round(os.getloadavg()[0], 2)}  # fmt: skip
    conn_json = fresh_database("closeout_bench_cash")
    os.environ["AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"] = conn_json
    _migrate()
    floor = baseline_list_copy(url, conn_json)
    results["floor"] = {**floor, "seconds": round(floor["seconds"], 2),
                        "per_second": round(floor["rows"] / floor["seconds"])}  # fmt: skip
    sync = run_child_sync(conn_json, url, "txns")
    txns = sync["listed"]["balance_transactions"]
    results["closeout"] = {"seconds": round(sync["wall_seconds"], 2), "rows": txns, "requests": sync["hook_requests"],
                           "minimum_requests": math.ceil(txns / 100), "per_second": round(txns / sync["wall_seconds"]),
                           "peak_rss_mb": round(sync["peak_rss_mb"]), "ratio_to_floor":
                           round(sync["wall_seconds"] / floor["seconds"], 2),
                           "within_budget": sync["wall_seconds"] < TARGET_SECONDS}  # fmt: skip
    if not args.no_rest:
        rest = run_child_sync(conn_json, url, "rest")
        results["rest"] = {"seconds": round(rest["wall_seconds"], 2), "listed": rest["listed"],
                           "payouts_linked": rest["payouts_linked"], "payout_txns": rest["payout_txns"],
                           "requests": rest["hook_requests"], "peak_rss_mb": round(rest["peak_rss_mb"])}  # fmt: skip
    if not args.no_rest and not args.no_checks:
        results["cash_checks"] = time_cash_checks()
    for i in range(args.incremental):
        control(url, "POST", "fees/stripe_fee", {"amount": 100 + i, "currency": "usd", "description": f"usage {i}"})
    incremental = run_child_sync(conn_json, url, "txns")
    listed = incremental["listed"]["balance_transactions"]
    results["incremental"] = {"new": args.incremental, "listed": listed,
                              "seconds": round(incremental["wall_seconds"], 2),
                              "requests": incremental["requests"]["balance_transactions"],
                              "budget": math.ceil(args.incremental / 100),
                              "overlap_rows": listed - args.incremental}  # fmt: skip
    results["load_average_at_end"] = round(os.getloadavg()[0], 2)
    return results


CHECKS_TARGET_SECONDS = 10.0


def time_cash_checks() -> dict:
    """The four cash checks (closeout.recon.cash.run_cash_checks: stripe_objects, stripe_balance, stripe_fees,
    stripe_payouts) over the synced warehouse, once the ledger has booked what it can (posting and importing Great
    Expectations are setup, reported, not timed). Budget: under 10 s (DESIGN.md)."""
    import tempfile
    from pathlib import Path

    from closeout.ledger import tasks as ledger_tasks
    from closeout.recon.cash import run_cash_checks
    from closeout.warehouse.db import connect

    started = time.perf_counter()
    ledger_tasks.post_journals("bench-cash")
    posted = time.perf_counter() - started
    started = time.perf_counter()
    import great_expectations  # noqa: F401 - imported once per worker process; timed apart

    gx_import = time.perf_counter() - started
    with connect() as conn, tempfile.TemporaryDirectory() as docs:
        started = time.perf_counter()
        result = run_cash_checks(conn, data_docs_dir=Path(docs))
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "within_budget": seconds < CHECKS_TARGET_SECONDS,
            "target_seconds": CHECKS_TARGET_SECONDS, "posting_seconds": round(posted, 1),
            "gx_import_seconds": round(gx_import, 2),
            "checks": {c.check_name: {"status": c.status, **result.timings["checks"][c.check_name]}
                       for c in result.checks},
            "gx_setup_seconds": result.timings.get("gx_setup_seconds"),
            "data_docs_seconds": result.timings.get("data_docs_seconds")}  # fmt: skip


def print_table(r: dict) -> None:
    c, f = r["closeout"], r["floor"]
    print(f"\nStripe cash: {c['rows']:,} balance transactions from {r['charges']:,} bulk charges "
          f"(seeded in {r['seed_seconds']} s); budget {r['target_seconds']:.0f} s")  # fmt: skip
    print(f"{'step':<34}{'seconds':>9}{'rows/s':>10}{'requests':>10}{'minimum':>9}{'vs floor':>10}{'RSS MB':>8}")
    print(f"{'list + COPY floor (bare SDK)':<34}{f['seconds']:>9.2f}{f['per_second']:>10,}{f['requests']:>10,}"
          f"{'-':>9}{'1.00x':>10}{'-':>8}")  # fmt: skip
    print(f"{'closeout balance transactions':<34}{c['seconds']:>9.2f}{c['per_second']:>10,}{c['requests']:>10,}"
          f"{c['minimum_requests']:>9,}{c['ratio_to_floor']:>9.2f}x{c['peak_rss_mb']:>8}")  # fmt: skip
    if "rest" in r:
        rest = r["rest"]
        print(f"{'rest of a first full cash sync':<34}{rest['seconds']:>9.2f}{'-':>10}{rest['requests']:>10,}"
              f"{'-':>9}{'-':>10}{rest['peak_rss_mb']:>8}")  # fmt: skip
        print(f"  listed {rest['listed']}; {rest['payouts_linked']} payouts linked, "
              f"{rest['payout_txns']:,} carried transactions")  # fmt: skip
    i = r["incremental"]
    print(f"incremental: {i['new']:,} new transactions -> {i['requests']} requests (ceil(K/100) = {i['budget']}, "
          f"+{i['requests'] - i['budget']} for the overlap window's {i['overlap_rows']} rows), {i['seconds']:.2f} s")
    print(f"within budget: {c['within_budget']} (load average {r.get('load_average_at_start')} at the start, "
          f"{r.get('load_average_at_end')} at the end, on {r['machine']['cpus']} cores)")
    if "cash_checks" in r:
        k = r["cash_checks"]
        each = ", ".join(f"{n} {v['status']} {v['sql_seconds']:.2f} s SQL" for n, v in k["checks"].items())
        print(f"cash checks: {k['seconds']:.2f} s (budget {k['target_seconds']:.0f} s, within: {k['within_budget']}; "
              f"GX import {k['gx_import_seconds']} s apart, posting {k['posting_seconds']} s setup): {each}")


if __name__ == "__main__":
    main()
