"""closeout on a real multi-worker Airflow 3 (issue 14 item 4): no ``dag.test`` here.

The deployment (``airflow_cluster``): ``api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and two
``airflow celery worker``s with their own homes, working directories and temp folders, Redis as the broker, a
Postgres metadata database. Around it: the warehouse (a fresh database on the tests' Postgres), the Harvest and
Stripe sandboxes, an S3 API server on loopback (moto) as the artifact store, and finance's SMTP server and webhook.

Through the REST API only, as an operator would: sync Harvest (the drafting DAG follows on the scheduler's asset
event), publish, customers pay in Stripe, events, a green reconcile, a month-end close of last month, then a
breach (someone changes an open invoice's total in Stripe; its failed payment event carries it): the reconcile
fails, pauses ``closeout_payouts`` through the API server, opens one hold and e-mails finance; payouts, unpaused
and triggered anyway (as the UI's trigger does), are refused with no transfer made. Then, from this process, which
is neither worker: every link the alert e-mail and the close report give opens over HTTP and serves the
artifact; tasks ran on both workers; nothing was left in a worker's working directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from closeout.warehouse.embedded import ENV_VAR
from conftest import STRIPE_WEBHOOK_SECRET, Warehouse
from payments_support import last_month

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "gate"))
sys.path.insert(0, str(HERE.parent / "e2e"))
import e2e_support as e2e  # noqa: E402
from airflow_cluster import Cluster, Postgres, hosts_of, start_cluster  # noqa: E402
from gate_support import HttpReceiver, SmtpReceiver  # noqa: E402

from tests.artifacts.s3_support import KEY, REGION, SECRET, make_bucket, s3_server  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    # CI installs it (.ci/run); on a developer's machine: apt-get install redis-server
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs Redis: apt-get install redis-server"),
]

PERIOD = last_month().strftime("%Y-%m")
BUCKET = "closeout-deploy"
SMTP_LOGIN = ("alerts@closeout.test", "smtp-deploy-2f8a")
SCHEDULES = ("HARVEST", "TOGGL", "CLOCKIFY", "PUBLISH", "EVENTS", "RECONCILE", "PAYOUTS", "DRAFTS")
CHAIN = ("closeout_sync_harvest", "closeout_invoice_drafts", "closeout_stripe_publish", "closeout_stripe_events",
         "closeout_reconcile", "closeout_month_end_close")  # fmt: skip
WAIT = 240  # seconds, per DAG run: a bound, not an expectation (a run takes 10-60 s here)


class Deployment:
    """The running deployment plus everything around it, and every task instance the test saw."""

    def __init__(self, cluster: Cluster, database: str, harvest: Any, stripe: Any, smtp: SmtpReceiver,
                 finance_hook: HttpReceiver, platform_hook: HttpReceiver, endpoint: str) -> None:  # fmt: skip
        self.cluster, self.database, self.harvest, self.stripe = cluster, database, harvest, stripe
        self.smtp, self.finance_hook, self.platform_hook, self.endpoint = smtp, finance_hook, platform_hook, endpoint
        self.task_instances: list[dict[str, Any]] = []
        self.last_run: dict[str, Any] = {}

    def run(self, dag_id: str, conf: dict | None = None, expect: str = "success") -> dict[str, dict[str, Any]]:
        run, tis = self.cluster.trigger_and_wait(dag_id, conf, timeout=WAIT)
        return self._judge(dag_id, run, tis, expect)

    def _judge(self, dag_id: str, run: dict, tis: list[dict], expect: str) -> dict[str, dict[str, Any]]:
        self.task_instances.extend(tis)
        self.last_run = run
        by_task = {t["task_id"]: t for t in tis}
        assert run["state"] == expect, (dag_id, run["state"], {k: v["state"] for k, v in by_task.items()},
                                        self.cluster.logs_tail(2500))  # fmt: skip
        return by_task

    def follow_asset_run(self, dag_id: str, timeout: float = WAIT) -> dict[str, dict[str, Any]]:
        """Wait for the run the scheduler creates on an asset event (no trigger), and its end."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.cluster.check_alive()
            runs = [r for r in self.cluster.runs(dag_id) if r["run_type"] == "asset_triggered"]
            if runs:
                run = self.cluster.wait(dag_id, runs[0]["dag_run_id"], timeout=max(1.0, deadline - time.monotonic()))
                return self._judge(dag_id, run, self.cluster.task_instances(dag_id, run["dag_run_id"]), "success")
            time.sleep(1)
        raise TimeoutError(f"no asset-triggered run of {dag_id} within {timeout} s\n{self.cluster.logs_tail(2500)}")


@pytest.fixture(scope="module")
def deployment(warehouse_server, template_database, tmp_path_factory, request):
    from sandbox.harvest import HarvestSandbox, generate_dataset
    from sandbox.stripe import StripeSandbox

    root = tmp_path_factory.mktemp("deployment")
    database = f"closeout_deploy_{os.getpid()}"
    e2e.clone_database(warehouse_server, template_database, database)
    harvest = HarvestSandbox(rate_limit=None)
    harvest.load(generate_dataset(60, seed=5, anchor=date.today(), days=70, n_clients=2))
    harvest_url = harvest.start()
    stripe = StripeSandbox(webhook_secret=STRIPE_WEBHOOK_SECRET, seed=41)
    stripe.start()
    smtp = SmtpReceiver(credentials=SMTP_LOGIN).start()
    finance_hook, platform_hook = HttpReceiver().start(), HttpReceiver().start()
    billing = root / "config" / "clients.yaml"
    billing.parent.mkdir()
    billing.write_text("defaults:\n  require_approval: false\nclients: []\n")
    cluster = None
    failed_before = request.session.testsfailed
    try:
        with s3_server() as endpoint, pytest.MonkeyPatch.context() as mp:
            make_bucket(endpoint, BUCKET)
            env = {
                ENV_VAR: e2e.warehouse_conn_json(warehouse_server, database),
                "AIRFLOW_CONN_HARVEST_DEFAULT": json.dumps({
                    "conn_type": "http", "host": harvest_url, "password": harvest.token,
                    "extra": {"account_id": harvest.account_id, "max_requests": 0, "per_page": 50}}),
                "AIRFLOW_CONN_STRIPE_DEFAULT": json.dumps({
                    "conn_type": "http", "host": stripe.url, "password": stripe.secret_key,
                    "extra": {"webhook_secret": STRIPE_WEBHOOK_SECRET, "max_network_retries": 0, "timeout": 10}}),
                "AIRFLOW_CONN_FINANCE_SMTP": json.dumps({
                    "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port, "login": SMTP_LOGIN[0],
                    "password": SMTP_LOGIN[1], "extra": {"from": "closeout@company.test", "to": ["ana@finance.test"],
                                                         "starttls": False, "timeout": 10}}),
                "AIRFLOW_CONN_FINANCE_WEBHOOK": json.dumps({"conn_type": "http", "host": finance_hook.url}),
                "AIRFLOW_CONN_PLATFORM_WEBHOOK": json.dumps({"conn_type": "http", "host": platform_hook.url}),
                "AIRFLOW_CONN_CLOSEOUT_ARTIFACTS": json.dumps({
                    "conn_type": "aws", "login": KEY, "password": SECRET,
                    "extra": {"endpoint_url": endpoint, "region_name": REGION}}),
                "CLOSEOUT_ARTIFACTS_URL": f"s3://{BUCKET}/closeout",
                "CLOSEOUT_BILLING_CONFIG": str(billing),
                "CLOSEOUT_PAYOUTS_DAG_ID": "closeout_payouts",
                "CLOSEOUT_RETRY_DELAY_SECONDS": "1",
                "CLOSEOUT_TASK_RETRIES": "1",
                **{f"CLOSEOUT_{name}_SCHEDULE": "none" for name in SCHEDULES},
            }  # fmt: skip
            # this process reads the warehouse and turns recorded locations into links as the alert does
            for name in (ENV_VAR, "AIRFLOW_CONN_CLOSEOUT_ARTIFACTS", "CLOSEOUT_ARTIFACTS_URL"):
                mp.setenv(name, env[name])
            for name in ("CLOSEOUT_ARTIFACTS_PUBLIC_URL", "CLOSEOUT_REPORTS_URL", "CLOSEOUT_EXPORT_DIR",
                         "CLOSEOUT_DATA_DOCS_DIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
                mp.delenv(name, raising=False)  # fmt: skip
            cluster = start_cluster(root / "airflow", Postgres.from_conn(warehouse_server), env)
            for dag_id in CHAIN:
                cluster.set_paused(dag_id, False)
            yield Deployment(cluster, database, harvest, stripe, smtp, finance_hook, platform_hook, endpoint)
    except BaseException:
        failed_before = -1
        raise
    finally:
        if cluster is not None:
            if request.session.testsfailed != failed_before:  # every process's log, past pytest's capture
                print(f"\n===== deployment logs ({cluster.root}) =====\n{cluster.logs_tail(6000)}", file=sys.__stderr__)
            cluster.stop()
        for server in (smtp, finance_hook, platform_hook, harvest, stripe):
            server.stop()
        e2e.drop_database(warehouse_server, database)


def _task_logs(cluster: Cluster, ti: dict[str, Any]) -> dict[str, Path]:
    """Worker name -> the task instance's log file in that worker's own log folder (where it exists)."""
    rel = Path(f"dag_id={ti['dag_id']}", f"run_id={ti['dag_run_id']}", f"task_id={ti['task_id']}",
               f"attempt={ti['try_number']}.log")  # fmt: skip
    found = {name: cluster.root / name / "task-logs" / rel for name in cluster.workers}
    return {name: path for name, path in found.items() if path.is_file()}


def _get(link: str, endpoint: str) -> bytes:
    assert link.startswith(f"{endpoint}/{BUCKET}/closeout/") and "X-Amz-Signature=" in link, link
    got = requests.get(link, timeout=15)
    assert got.status_code == 200, (link, got.status_code, got.text[:300])
    return got.content


def test_the_chain_runs_on_two_celery_workers_and_every_link_opens(deployment: Deployment) -> None:
    from closeout import artifacts

    d, cluster = deployment, deployment.cluster
    warehouse = Warehouse(d.database)

    # capture; drafting follows on the asset the sync emits (the scheduler's doing, nobody triggers it)
    d.run("closeout_sync_harvest")
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries") == 60
    d.follow_asset_run("closeout_invoice_drafts")
    assert warehouse.scalar("SELECT count(*) FROM closeout.invoices") > 0

    # publish; customers pay every published invoice but one; events apply the payments and post journals
    d.run("closeout_stripe_publish")
    published = warehouse.rows("SELECT invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices "
                               "WHERE stripe_invoice_id IS NOT NULL ORDER BY invoice_id")  # fmt: skip
    assert len(published) >= 2, published
    unpaid = published[-1]
    for _, stripe_id, _ in published[:-1]:
        d.stripe.pay_invoice(stripe_id)
    d.run("closeout_stripe_events")
    assert warehouse.scalar("SELECT count(*) FROM closeout.invoices WHERE status = 'paid'") == len(published) - 1

    # a green reconcile, then the month-end close of last month (final sync, lock, ..., report)
    d.run("closeout_reconcile")
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 0
    close = d.run("closeout_month_end_close", {"period": PERIOD, "trackers": ["harvest"]})
    assert {t["state"] for t in close.values()} == {"success"}, close
    report_url = warehouse.scalar("SELECT report_url FROM closeout.period_closes WHERE period = %s "
                                  "AND status = 'succeeded'", (PERIOD,))  # fmt: skip
    assert report_url == f"s3://{BUCKET}/closeout/reports/{PERIOD}/index.html", report_url
    # the close's last task set its run's note through the API server (a worker calling the REST API)
    note = cluster.run("closeout_month_end_close", d.last_run["dag_run_id"])["note"]
    assert note.startswith("Close report: "), note
    note_link = note.removeprefix("Close report: ")

    # the breach: the open invoice's total changed in Stripe; its failed payment's event carries it
    _invoice_id, stripe_id, total = unpaid
    d.stripe.tamper_invoice_total(stripe_id, total + 4321)
    d.stripe.fail_payment(stripe_id)
    d.run("closeout_stripe_events")
    recon = d.run("closeout_reconcile", expect="failed")
    assert "failed" in {t["state"] for t in recon.values()}, recon
    assert cluster.is_paused("closeout_payouts") is True
    holds = warehouse.rows("SELECT hold_id, reason FROM closeout.payout_holds WHERE released_at IS NULL")
    assert len(holds) == 1 and "invoices_to_stripe" in holds[0][1], holds
    mails = [m for m in d.smtp.messages if "invoices_to_stripe" in str(m.message["Subject"])]
    assert len(mails) == 1, [m.message["Subject"] for m in d.smtp.messages]
    assert "The Airflow DAG closeout_payouts has been paused." in mails[0].body, mails[0].body
    hold_hooks = [r["json"] for r in d.finance_hook.requests if r["json"].get("hold_id") == holds[0][0]]
    assert len(hold_hooks) == 1, d.finance_hook.requests

    # payouts unpaused and triggered anyway (the UI's trigger unpauses): refused, no transfer
    cluster.set_paused("closeout_payouts", False)
    refused = d.run("closeout_payouts", expect="failed")
    assert refused["gate"]["state"] == "failed", refused
    assert d.stripe.count("transfer") == 0
    # the platform team heard of the refusal (the failure notifier ran where the task failed)
    assert any("closeout_payouts" in json.dumps(r["json"]) for r in d.platform_hook.requests), d.platform_hook.requests

    # from here, neither worker: the alert's evidence link opens the reconcile's Data Docs
    body = mails[0].body
    links = re.findall(r"https?://\S+", body)
    evidence = [link for link in links if "/data_docs/" in link]
    assert evidence, body
    for link in evidence:
        assert b"<html" in _get(link, d.endpoint).lower()
    assert b"<html" in _get(hold_hooks[0]["evidence"], d.endpoint).lower()  # the webhook's evidence link too
    # the close report opens from its run's note, and so does every link it gives
    page = _get(note_link, d.endpoint).decode()
    assert PERIOD in page and page == _get(artifacts.url(report_url), d.endpoint).decode()
    report_links = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', page) if "X-Amz-" in h]
    assert any("/data_docs/" in h for h in report_links), report_links
    for link in report_links:
        assert _get(link, d.endpoint)
    export = warehouse.scalar("SELECT folder FROM closeout_data.accounting_export_runs ORDER BY export_run_id DESC "
                              "LIMIT 1")  # fmt: skip
    assert export == f"s3://{BUCKET}/closeout/exports/{PERIOD}", export
    manifest = json.loads(_get(artifacts.url(f"{export}/manifest.json"), d.endpoint))
    assert manifest["files"], manifest

    # distribution: tasks ran on both workers (their reported host names and their own log folders)
    hosts = hosts_of(d.task_instances)
    assert {"worker1.closeout.test", "worker2.closeout.test"} <= hosts, hosts
    for ti in (t for t in d.task_instances if t["state"] == "success"):
        logs = _task_logs(cluster, ti)
        # each task ran on one machine: its log is in that worker's folder only, the worker its host name names
        assert list(logs) == [ti["hostname"].split(".")[0]], (ti["dag_id"], ti["task_id"], ti["hostname"], logs)
        # and a task that succeeded logged no error (GX's progress bars on stderr once did, one per check)
        errors = [line[:300] for line in logs.popitem()[1].read_text().splitlines() if '"level":"error"' in line]
        assert not errors, (ti["dag_id"], ti["task_id"], errors)
    for name in cluster.workers:
        for folder in ("work", "tmp"):  # its working directory, and its TMPDIR (exports, Data Docs are built there)
            left = [p for p in (cluster.root / name / folder).rglob("*") if p.is_file()]
            assert left == [], f"{name} left files in its {folder} folder: {left}"
