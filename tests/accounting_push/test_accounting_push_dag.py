"""closeout_accounting_sync through dag.test against both sandboxes after a real chain, and a push worker SIGKILLed
between the vendor's answer and its record (a real ``closeout_pipeline`` login in another process): each object
exists there once, whatever happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from accounting_push_support import (
    QBO_NO_LIMITS,
    ROOT,
    XERO_NO_LIMITS,
    a_month,
    connect_quickbooks,
    connect_xero,
    created,
    expected_journals,
    links,
)
from closeout.accounting.push.run import books_for, push
from closeout.accounting.push.tasks import sync_customers
from closeout.warehouse.db import connect

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.xero import XeroSandbox

sys.path.insert(0, str(ROOT / "tests" / "controls"))
from controls_support import conn_json_as, login_in

pytestmark = pytest.mark.integration
TASKS = {f"{s}_{t}" for s in ("quickbooks", "xero") for t in ("customers", "push", "read_back")}


@pytest.fixture
def both(warehouse, monkeypatch: pytest.MonkeyPatch):
    qbo, xero = QuickBooksSandbox(**QBO_NO_LIMITS), XeroSandbox(**XERO_NO_LIMITS)
    qbo.start()
    xero.start()
    connect_quickbooks(monkeypatch, qbo)
    connect_xero(monkeypatch, xero)
    yield {"quickbooks": qbo, "xero": xero}
    qbo.stop()
    xero.stop()


def test_the_dag_pushes_a_month_to_both_systems_once(warehouse, stripe_sandbox, both, run_dag) -> None:
    a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("3")], "c": [D("1.5")]}, paid=("a", "b"))
    journals = expected_journals(warehouse)
    result = run_dag("closeout_accounting_sync")
    assert result.state == "success", result
    assert {t for t, s in result.task_states.items() if s == "success"} == TASKS, result.task_states
    for system, sandbox in both.items():
        assert created(sandbox) == {"invoice": 3, "payment": 2, "journal": journals}, system
        assert len(links(warehouse, system, "invoice")) == 3 and len(links(warehouse, system, "payment")) == 2
        assert len(links(warehouse, system, "journal")) == journals
    again = run_dag("closeout_accounting_sync")  # the next hour: nothing new, nothing sent twice
    assert again.state == "success", again
    for system, sandbox in both.items():
        assert created(sandbox) == {"invoice": 3, "payment": 2, "journal": journals}, system
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.accounting_push_batches WHERE state <> 'answered'") == 0


def test_without_connections_the_dag_skips_and_the_file_mode_stays(
    warehouse, run_dag, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_XERO_DEFAULT", raising=False)
    result = run_dag("closeout_accounting_sync")
    assert set(result.task_states.values()) == {"skipped"}, result.task_states


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]), **extra}


def _waiting_on_links(conn) -> int | None:
    row = conn.execute("SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                       "WHERE c.relname = 'accounting_links' AND NOT l.granted").fetchone()  # fmt: skip
    return row[0] if row else None


@pytest.mark.parametrize("system", ["quickbooks", "xero"])
def test_a_worker_killed_between_the_answer_and_its_record_leaves_one_object(
    warehouse, stripe_sandbox, monkeypatch: pytest.MonkeyPatch, system: str
) -> None:
    sandbox: Any = QuickBooksSandbox(**QBO_NO_LIMITS) if system == "quickbooks" else XeroSandbox(**XERO_NO_LIMITS)
    sandbox.start()
    try:
        (connect_quickbooks if system == "quickbooks" else connect_xero)(monkeypatch, sandbox)
        a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]})
        sync_customers(system)
        with login_in("closeout_pipeline") as pipeline_login, connect() as blocker:
            blocker.execute("LOCK TABLE closeout_data.accounting_links IN SHARE MODE")
            worker = subprocess.Popen(
                [sys.executable, "-m", "closeout.accounting.push", "--system", system],
                env=_env(AIRFLOW_CONN_CLOSEOUT_WAREHOUSE=conn_json_as(pipeline_login)),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 120
                while not (backend := _waiting_on_links(blocker)):
                    assert worker.poll() is None, worker.communicate()
                    assert time.monotonic() < deadline, "the worker never reached the link record"
                    time.sleep(0.1)
                assert created(sandbox)["invoice"] == 2  # there, and not recorded by closeout
                worker.send_signal(signal.SIGKILL)
                worker.wait(30)
                blocker.execute("SELECT pg_terminate_backend(%s)", (backend,))
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait(30)
        assert worker.returncode == -signal.SIGKILL
        assert links(warehouse, system, "invoice") == {}
        pending = "SELECT count(*) FROM closeout_data.accounting_push_batches WHERE state = 'pending'"
        assert warehouse.scalar(pending) == 1
        run = push(books_for(system))  # the next run sends the recorded batch again: the vendor replays it
        assert run.resent == 1 and run.pushed == {"invoice": 2}
        assert created(sandbox)["invoice"] == 2 and len(links(warehouse, system, "invoice")) == 2
        assert sandbox.stats()["replays"] >= 1
    finally:
        sandbox.stop()


def test_the_close_pushes_after_its_export_and_a_dry_run_does_not(
    warehouse, stripe_sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from closeout.close.params import CloseParams
    from closeout.close.runs import CloseRun
    from closeout.close.steps import Step, accounting_export
    from payments_support import last_month

    monkeypatch.setenv("CLOSEOUT_EXPORT_DIR", str(tmp_path))
    xero = XeroSandbox(**XERO_NO_LIMITS)
    xero.start()
    try:
        connect_xero(monkeypatch, xero)
        a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]}, paid=("a",))
        start = last_month()
        period = start.strftime("%Y-%m")
        next_start = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        with connect() as conn:
            for dry in (True, False):
                step = Step(conn, CloseRun(1, period, f"close-{dry}", dry, {}, "running"),
                            CloseParams(period, start, next_start, dry, (), "auto"))  # fmt: skip
                summary = accounting_export(step)
                if dry:
                    assert "accounting_push" not in summary and created(xero)["invoice"] == 0
        pushed = summary["accounting_push"]["xero"]
        assert summary["invoices"] == 2 and pushed["pushed"]["invoice"] == 2 and pushed["pushed"]["payment"] == 1
        assert created(xero)["invoice"] == 2 and "quickbooks" not in summary["accounting_push"]  # not configured
    finally:
        xero.stop()
