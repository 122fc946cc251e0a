"""Benchmark: what distribution costs. The chain's DAGs run in-process (``dag.test``) and under a real scheduler
with the CeleryExecutor and two workers (``tests/deployment/airflow_cluster.py``, the deployment test's harness),
in the same run, on the same data (issue 14 item 9).

    PYTHONPATH=plugins:. .venv/bin/python -m benchmarks.distribution [--entries N] [--no-write]

Setup (not timed): the embedded warehouse server, two fresh migrated databases, and for each phase its own Harvest
sandbox (``--entries`` entries over 70 days, two clients, the same seed) and Stripe sandbox (same seed), so both
phases do the same work. The artifact store is a local folder per phase (the in-process run has no S3 and the
comparison is about scheduling, not storage).

Timed, per DAG of the chain, in order: ``closeout_sync_harvest``, ``closeout_invoice_drafts``,
``closeout_stripe_publish``, (every invoice but one paid in the Stripe sandbox, untimed),
``closeout_stripe_events``, ``closeout_reconcile``, ``closeout_month_end_close`` (last month, Harvest only).

* **in-process**: wall time of ``dag.test`` (tasks run in this process, one after another, SQLite metadata).
  Phase 1; no cluster is running.
* **distributed**: phase 2, the cluster up (its start-up is reported, not counted). Wall time from the REST
  trigger until the API reports the run ended (polled every 0.2 s), and the run's own duration (its
  ``start_date`` to ``end_date``). ``closeout_invoice_drafts`` is not triggered: the scheduler starts it on the
  asset the sync emits, so its wall time runs from the sync's end to the drafting run's end.
* **scheduler latency**, from the task instances: ``queued - scheduled`` (the scheduler handing a ready task to
  Celery) and ``start - queued`` (Redis, a worker picking it up, the task process starting), summed per DAG
  (tasks of a chain wait for each other, so the sum is what the run paid) and the largest single one.

Both phases run on this machine, one after the other; the load average is recorded with each. The sandboxes serve
from threads of this process in both phases (in phase 1 they share its interpreter with the tasks).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.harvest_ingest import RESULTS, ROOT, fresh_database, machine

CHAIN = ["closeout_sync_harvest", "closeout_invoice_drafts", "closeout_stripe_publish", "closeout_stripe_events",
         "closeout_reconcile", "closeout_month_end_close"]  # fmt: skip
SCHEDULES = ("HARVEST", "TOGGL", "CLOCKIFY", "PUBLISH", "EVENTS", "RECONCILE", "PAYOUTS", "DRAFTS")
WEBHOOK_SECRET = "whsec_closeout_bench"  # noqa: S105 - the sandbox's, not a secret
WAIT = 600.0


def _period() -> str:
    first = datetime.now(UTC).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def _migrated(name: str) -> str:
    """A fresh warehouse database with closeout's migrations; its connection JSON."""
    import psycopg
    from closeout.warehouse.migrations import apply_migrations

    conn_json = fresh_database(name)
    fields = json.loads(conn_json)
    with psycopg.connect(host=fields["host"], port=fields.get("port") or 5432, user=fields.get("login"),
                         password=fields.get("password") or None, dbname=name) as conn:  # fmt: skip
        apply_migrations(conn)
    return conn_json


class Services:
    """One phase's sandboxes, warehouse and settings (as environment)."""

    def __init__(self, label: str, entries: int, workdir: Path) -> None:
        from closeout.warehouse.embedded import ENV_VAR

        from sandbox.harvest import HarvestSandbox, generate_dataset
        from sandbox.stripe import StripeSandbox

        self.harvest = HarvestSandbox(rate_limit=None)
        self.harvest.load(generate_dataset(entries, seed=5, anchor=date.today(), days=70, n_clients=2))
        harvest_url = self.harvest.start()
        self.stripe = StripeSandbox(webhook_secret=WEBHOOK_SECRET, seed=41)
        self.stripe.start()
        self.database = f"closeout_bench_distribution_{label}"
        config = workdir / "clients.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text("defaults:\n  require_approval: false\nclients: []\n")
        self.env = {
            ENV_VAR: _migrated(self.database),
            "AIRFLOW_CONN_HARVEST_DEFAULT": json.dumps({
                "conn_type": "http", "host": harvest_url, "password": self.harvest.token,
                "extra": {"account_id": self.harvest.account_id, "max_requests": 0, "per_page": 100}}),
            "AIRFLOW_CONN_STRIPE_DEFAULT": json.dumps({
                "conn_type": "http", "host": self.stripe.url, "password": self.stripe.secret_key,
                "extra": {"webhook_secret": WEBHOOK_SECRET, "max_network_retries": 0, "timeout": 20}}),
            "CLOSEOUT_ARTIFACTS_URL": str(workdir / "artifacts"),
            "CLOSEOUT_BILLING_CONFIG": str(config),
            "CLOSEOUT_PAYOUTS_DAG_ID": "closeout_payouts",
            "CLOSEOUT_RETRY_DELAY_SECONDS": "1",
            "CLOSEOUT_TASK_RETRIES": "0",
            **{f"CLOSEOUT_{name}_SCHEDULE": "none" for name in SCHEDULES},
        }  # fmt: skip

    def pay_all_but_one(self) -> int:
        from closeout.warehouse.db import connect

        with connect() as conn:
            rows = conn.execute("SELECT stripe_invoice_id FROM closeout.invoices WHERE stripe_invoice_id IS NOT NULL "
                                "ORDER BY invoice_id").fetchall()  # fmt: skip
        ids = [r[0] for r in rows]
        for stripe_id in ids[:-1]:
            self.stripe.pay_invoice(stripe_id)
        return len(ids[:-1])

    def stop(self) -> None:
        self.harvest.stop()
        self.stripe.stop()


def _conf(dag_id: str) -> dict[str, Any]:
    return {"period": _period(), "trackers": ["harvest"]} if dag_id == "closeout_month_end_close" else {}


def _load(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py"))
    if bag.import_errors:
        raise RuntimeError(bag.import_errors)
    return bag.dags[dag_id]


def in_process(services: Services) -> dict[str, dict[str, Any]]:
    """Phase 1: each DAG with ``dag.test`` in this process."""
    os.environ.update(services.env)
    out: dict[str, dict[str, Any]] = {}
    for dag_id in CHAIN:
        dag = _load(dag_id)
        began = time.perf_counter()
        run = dag.test(run_conf=_conf(dag_id))
        seconds = time.perf_counter() - began
        state = str(getattr(run.state, "value", run.state))
        out[dag_id] = {"wall": seconds, "state": state}
        print(f"  in-process  {dag_id:<28} {seconds:6.2f} s  {state}", flush=True)
        if state != "success":
            raise RuntimeError(f"{dag_id} in-process ended {state}")
        if dag_id == "closeout_stripe_publish":
            services.pay_all_but_one()
    return out


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _latency(tis: list[dict[str, Any]]) -> dict[str, float]:
    handed, picked = [], []
    for t in tis:
        scheduled, queued, started = _ts(t.get("scheduled_when")), _ts(t.get("queued_when")), _ts(t.get("start_date"))
        if scheduled and queued:
            handed.append((queued - scheduled).total_seconds())
        if queued and started:
            picked.append((started - queued).total_seconds())
    return {"tasks": len(tis), "queued_minus_scheduled": sum(handed), "start_minus_queued": sum(picked),
            "task_seconds": sum(t.get("duration") or 0.0 for t in tis),
            "max_single": max(handed + picked, default=0.0),
            "median_start_minus_queued": statistics.median(picked) if picked else 0.0}  # fmt: skip


def _wait(cluster, dag_id: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        run = cluster.run(dag_id, run_id)
        if run["state"] in ("success", "failed"):
            return run
        cluster.check_alive()
        time.sleep(0.2)
    raise TimeoutError(f"{dag_id} {run_id} did not end within {WAIT} s")


def distributed(services: Services, root: Path) -> tuple[dict[str, dict[str, Any]], float]:
    """Phase 2: the same chain through the REST API on the Celery deployment."""
    sys.path.insert(0, str(ROOT / "tests" / "deployment"))
    from airflow_cluster import Postgres, start_cluster
    from closeout.warehouse.embedded import ENV_VAR

    os.environ.update(services.env)
    server = {k: v for k, v in json.loads(services.env[ENV_VAR]).items() if k != "schema"}
    began = time.perf_counter()
    cluster = start_cluster(root, Postgres.from_conn(server), services.env)
    startup = time.perf_counter() - began
    print(f"  cluster up in {startup:.1f} s", flush=True)
    out: dict[str, dict[str, Any]] = {}
    try:
        for dag_id in CHAIN:
            cluster.set_paused(dag_id, False)
        sync_end = 0.0
        for dag_id in CHAIN:
            began = time.perf_counter()
            if dag_id == "closeout_invoice_drafts":  # the scheduler starts it on the sync's asset event
                began = sync_end
                run_id = None
                while run_id is None and time.perf_counter() - began < WAIT:
                    runs = [r for r in cluster.runs(dag_id) if r["run_type"] == "asset_triggered"]
                    run_id = runs[0]["dag_run_id"] if runs else None
                    time.sleep(0.2)
                if run_id is None:
                    raise TimeoutError("no asset-triggered drafting run")
            else:
                run_id = cluster.trigger(dag_id, _conf(dag_id))
            run = _wait(cluster, dag_id, run_id)
            seconds = time.perf_counter() - began
            if dag_id == "closeout_sync_harvest":
                sync_end = time.perf_counter()
            tis = cluster.task_instances(dag_id, run_id)
            own = (_ts(run["end_date"]) - _ts(run["start_date"])).total_seconds()
            hosts = sorted({t.get("hostname") or "?" for t in tis if t.get("state") == "success"})
            out[dag_id] = {"wall": seconds, "run_duration": own, "state": run["state"], "hosts": hosts,
                           **_latency(tis)}  # fmt: skip
            print(f"  distributed {dag_id:<28} {seconds:6.2f} s  {run['state']}  hosts={hosts}", flush=True)
            if run["state"] != "success":
                raise RuntimeError(f"{dag_id} distributed ended {run['state']}\n{cluster.logs_tail(3000)}")
            if dag_id == "closeout_stripe_publish":
                services.pay_all_but_one()
    except BaseException:
        print(cluster.logs_tail(3000), file=sys.stderr)
        raise
    finally:
        cluster.stop()
    return out, startup


def _airflow_home() -> Path:
    """An in-process Airflow like the tests' (SQLite metadata, LocalExecutor), set before Airflow is imported."""
    home = Path(tempfile.mkdtemp(prefix="closeout-bench-airflow-"))
    os.environ.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    })  # fmt: skip
    for args in (["db", "migrate"], ["pools", "import", str(ROOT / "pools.json")]):
        subprocess.run([sys.executable, "-m", "airflow", *args], check=True, capture_output=True, timeout=300)
    return home


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print only; write no results file")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
    work = Path(tempfile.mkdtemp(prefix="closeout-bench-distribution-"))
    _airflow_home()

    print(f"phase 1: in-process (dag.test), {args.entries} entries", flush=True)
    load_1 = os.getloadavg()
    first = Services("inproc", args.entries, work / "inproc")
    try:
        inproc = in_process(first)
    finally:
        first.stop()
    print("phase 2: scheduler + CeleryExecutor, two workers", flush=True)
    load_2 = os.getloadavg()
    second = Services("celery", args.entries, work / "celery")
    try:
        dist, startup = distributed(second, work / "cluster")
    finally:
        second.stop()
    results = {"date": date.today().isoformat(), "machine": machine(), "entries": args.entries,
               "load_before": {"in_process": load_1, "distributed": load_2}, "cluster_startup": startup,
               "in_process": inproc, "distributed": dist}  # fmt: skip
    table = render(results)
    print(table)
    if not args.no_write:
        path = RESULTS / f"distribution-{results['date']}.md"
        path.write_text(table)
        print(f"results: {path.relative_to(ROOT)}")
    return results


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"# Distribution overhead: in-process vs scheduler + Celery ({r['date']})",
        "",
        f"Machine: {m['host']}, {m['cpus']} CPUs, {m['memory_gb']} GB, Python {m['python']}, {m['platform']}.",
        f"Data: {r['entries']} Harvest entries (70 days, 2 clients), one run of each DAG per phase, same seeds.",
        "Load average (1, 5, 15 min) before each phase: in-process "
        f"{', '.join(f'{x:.2f}' for x in r['load_before']['in_process'])}; distributed "
        f"{', '.join(f'{x:.2f}' for x in r['load_before']['distributed'])}.",
        f"Cluster start-up (not counted below): {r['cluster_startup']:.1f} s (Redis, db migrate, reserialize, "
        "api-server, scheduler, dag-processor, triggerer, two Celery workers).",
        "",
        "| DAG | tasks | in-process s | distributed s | run duration s | overhead s | ratio | task time s "
        "| queued-scheduled s | start-queued s | max single s | workers |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    total_in = total_out = 0.0
    for dag_id in CHAIN:
        a, b = r["in_process"][dag_id], r["distributed"][dag_id]
        total_in, total_out = total_in + a["wall"], total_out + b["wall"]
        workers = ", ".join(h.split(".")[0] for h in b["hosts"])
        lines.append(f"| {dag_id}{' (asset-triggered)' if dag_id == 'closeout_invoice_drafts' else ''} | "
                     f"{b['tasks']} | {a['wall']:.2f} | {b['wall']:.2f} | {b['run_duration']:.2f} | "
                     f"{b['wall'] - a['wall']:.2f} | {b['wall'] / a['wall']:.1f}x | {b['task_seconds']:.2f} | "
                     f"{b['queued_minus_scheduled']:.2f} | {b['start_minus_queued']:.2f} | {b['max_single']:.2f} | "
                     f"{workers} |")  # fmt: skip
    lines += [
        f"| **chain** | | **{total_in:.2f}** | **{total_out:.2f}** | | **{total_out - total_in:.2f}** | "
        f"**{total_out / total_in:.1f}x** | | | | | |",
        "",
        "in-process: `dag.test` wall time. distributed: REST trigger to the API reporting the run ended (polled every "
        "0.2 s; the drafting run from the sync's end, as the scheduler starts it on the sync's asset). run duration: "
        "the run's own start to end. task time: the task instances' own durations, summed (what the workers spent "
        "inside tasks, process start-up included). Latency columns are sums over the run's task instances.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
