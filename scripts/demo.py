"""The closeout demo on embedded defaults: nothing to configure, nothing external.

Starts the embedded Postgres (the warehouse) and a Harvest sandbox with generated data, migrates a
throwaway Airflow home (SQLite metadata), then runs the real ``closeout_sync_harvest`` DAG twice with
``dag.test``: a first full sync, then - after edits, a back-dated edit, deletions and a bad record
in "Harvest" - an incremental sync with a deletion sweep. Ends with a summary read from the public
``closeout.*`` views. Later stages of the chain (drafts, Stripe, journals, reconciliation, payouts,
the month-end close) will extend this script as they land.

    bash scripts/demo.sh [--entries N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".closeout"
AIRFLOW_HOME = STATE / "demo-airflow"

# Airflow reads its configuration once, at first import: set it before anything imports airflow.
os.environ.update({
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    "CLOSEOUT_RETRY_DELAY_SECONDS": "2",
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugins"), str(ROOT), os.environ.get("PYTHONPATH")])),
})  # fmt: skip
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
logging.getLogger("pgserver").setLevel(logging.WARNING)

DEMO_DATABASE = "closeout_demo"


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def prepare_warehouse() -> None:
    import psycopg
    from closeout.warehouse.embedded import ENV_VAR, ensure_warehouse
    from closeout.warehouse.migrations import migrate

    external = os.environ.get(ENV_VAR)
    warehouse = ensure_warehouse(database="postgres")
    if external:
        print("    using the Postgres of AIRFLOW_CONN_CLOSEOUT_WAREHOUSE (nothing embedded started)")
    else:
        conn = json.loads(warehouse.conn_json)
        with psycopg.connect(
            host=conn["host"], port=conn["port"], user=conn["login"], dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
        os.environ[ENV_VAR] = json.dumps({**conn, "schema": DEMO_DATABASE})
        print(f"    embedded Postgres in {warehouse.data_dir.relative_to(ROOT)}, fresh database {DEMO_DATABASE!r}")
    print(f"    migrations applied: {migrate() or 'none (up to date)'}")


def prepare_airflow() -> None:
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    airflow = [sys.executable, "-m", "airflow"]
    started = time.perf_counter()
    for args in (["db", "migrate"], ["pools", "import", str(ROOT / "pools.json")]):
        done = subprocess.run([*airflow, *args], env=dict(os.environ), capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"airflow {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    print(
        f"    Airflow home {AIRFLOW_HOME.relative_to(ROOT)} (SQLite) migrated, pools loaded "
        f"in {time.perf_counter() - started:.0f} s"
    )


def start_harvest(entries: int):
    from sandbox.harvest import HarvestSandbox, generate_dataset

    sandbox = HarvestSandbox(rate_limit=(100, 15.0))  # Harvest's documented limit, on
    sandbox.load(generate_dataset(entries, seed=2026, anchor=date.today()))
    url = sandbox.start()
    os.environ["AIRFLOW_CONN_HARVEST_DEFAULT"] = json.dumps({
        "conn_type": "http", "host": url, "password": sandbox.token,
        "extra": {"account_id": sandbox.account_id, "user_agent": "closeout demo (demo@example.com)"},
    })  # fmt: skip
    print(f"    Harvest sandbox at {url}: {entries:,} entries, rate limit 100 requests / 15 s")
    return sandbox


def run_sync(conf: dict) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "closeout_sync_harvest.py"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    started = time.perf_counter()
    dag_run = bag.dags["closeout_sync_harvest"].test(run_conf=conf)
    state = str(dag_run.state)
    print(f"    closeout_sync_harvest {conf or ''} -> {state} in {time.perf_counter() - started:.1f} s")
    if "success" not in state:
        raise SystemExit("the sync DAG failed; see the task logs above")


def make_changes(sandbox) -> dict:
    live = [e for e in sandbox.entries_snapshot() if isinstance(e, dict) and e.get("id", 0) > 0]
    recent = [e for e in live if date.fromisoformat(e["spent_date"]) >= date.today() - timedelta(days=30)]
    edited = sandbox.edit_random(25, seed=1)
    back_dated = recent[0]["id"]
    sandbox.update_entry(back_dated, spent_date=(date.today() - timedelta(days=60)).isoformat(), hours=3.5)
    deleted = [recent[1]["id"], recent[2]["id"]]
    for entry_id in deleted:
        sandbox.delete_entry(entry_id)
    bad = dict(recent[3], id=990000001, hours=-4.0, rounded_hours=-4.0)
    sandbox.put_raw_entry(bad)
    print(
        f"    in Harvest: {len(edited)} entries edited, 1 back-dated edit, {len(deleted)} deleted, "
        "1 entry with negative hours"
    )
    return {"deleted": deleted}


def summary() -> None:
    from closeout.warehouse.db import connect

    with connect() as conn:
        runs = conn.execute(
            """SELECT sync_run_id, mode, status, requests, records, versions_created, deletions, quarantined,
                      round(extract(epoch FROM finished_at - started_at)::numeric, 1)
               FROM closeout.sync_runs ORDER BY sync_run_id"""
        ).fetchall()
        money = conn.execute(
            """SELECT e.currency, c.exponent, count(*) FILTER (WHERE e.deleted_at IS NULL),
                      count(*) FILTER (WHERE e.deleted_at IS NOT NULL),
                      sum(e.billable_hours) FILTER (WHERE e.approved AND NOT e.billed_in_source),
                      sum(e.amount_minor) FILTER (WHERE e.approved AND NOT e.billed_in_source)
               FROM closeout.time_entries e JOIN closeout_data.currencies c ON c.code = e.currency
               GROUP BY e.currency, c.exponent ORDER BY e.currency"""
        ).fetchall()
        quarantine = conn.execute(
            "SELECT source_id, field, reason FROM closeout.quarantine WHERE resolved_at IS NULL"
        ).fetchall()
        versions = conn.execute("SELECT count(*) FROM closeout.time_entry_versions").fetchone()[0]

    step("Sync runs (closeout.sync_runs)")
    print(
        f"    {'run':>3}  {'mode':<11} {'status':<9} {'requests':>8} {'records':>8} {'versions':>8} "
        f"{'deleted':>7} {'quarantined':>11} {'seconds':>7}"
    )
    for r in runs:
        print(f"    {r[0]:>3}  {r[1]:<11} {r[2]:<9} {r[3]:>8} {r[4]:>8} {r[5]:>8} {r[6]:>7} {r[7]:>11} {r[8]:>7}")
    step("Approved billable time not yet invoiced, per currency (closeout.time_entries)")
    print(f"    {'currency':<8} {'live':>7} {'deleted':>7} {'hours':>10} {'amount':>18}")
    for currency, exponent, live, deleted, hours, amount in money:
        major = "-" if amount is None else f"{amount / 10**exponent:,.{exponent}f}"
        print(f"    {currency:<8} {live:>7} {deleted:>7} {hours or 0:>10} {major:>18}")
    print(f"    {versions:,} entry versions kept in closeout.time_entry_versions (nothing is ever deleted)")
    step("Quarantined input (closeout.quarantine)")
    for source_id, field, reason in quarantine:
        print(f"    time entry {source_id}: {field}: {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=20_000)
    args = parser.parse_args()
    started = time.perf_counter()
    step("Warehouse")
    prepare_warehouse()
    step("Airflow")
    prepare_airflow()
    step("Harvest")
    sandbox = start_harvest(args.entries)
    try:
        step("First sync: full")
        run_sync({})
        step("Changes in Harvest")
        make_changes(sandbox)
        step("Second sync: incremental, with the deletion sweep")
        run_sync({"sweep": "always"})
        summary()
    finally:
        sandbox.stop()
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s. To query the warehouse yourself:")
    print('    eval "$(PYTHONPATH=plugins .venv/bin/python -m closeout.warehouse.embedded)"   # starts it, keeps it up')
    print(f"    {_psql()} -h {ROOT / '.closeout' / 'pgdata'} -U postgres {DEMO_DATABASE}")
    print("    select * from closeout.sync_runs; select * from closeout.time_entries limit 10;")


def _psql() -> str:
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        return "psql"
    return str(Path(POSTGRES_BIN_PATH) / "psql")


if __name__ == "__main__":
    main()
