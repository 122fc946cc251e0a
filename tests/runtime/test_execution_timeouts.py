"""Every task of every shipped DAG has an execution_timeout (a hung call ends in a failure and an alert), with
per-DAG and per-task overrides from the environment."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


def test_every_task_of_every_dag_has_an_execution_timeout() -> None:
    bag = _bag()
    dag_files = sorted(p.stem for p in (ROOT / "dags").glob("closeout_*.py"))
    assert sorted(bag.dags) == dag_files
    from airflow.providers.standard.operators.hitl import HITLOperator

    missing = [f"{dag.dag_id}.{task.task_id}" for dag in bag.dags.values() for task in dag.tasks
               if not task.execution_timeout and not isinstance(task, HITLOperator)]  # fmt: skip
    assert not missing, f"tasks without execution_timeout: {missing}"
    # A human approval defers at once and waits for a person (Airflow clears its execution_timeout by design;
    # its wait is the operator's response_timeout): the only exemptions, and they must stay the only ones.
    exempt = [f"{dag.dag_id}.{task.task_id}" for dag in bag.dags.values() for task in dag.tasks
              if not task.execution_timeout]  # fmt: skip
    assert sorted(exempt) == ["closeout_month_end_close.approve_held_drafts", "closeout_payouts.approve"]
    # ... and their wait is stated, not Airflow's deprecated fallback to the task's hour-long compute bound
    for dag_id, task_id in (("closeout_month_end_close", "approve_held_drafts"), ("closeout_payouts", "approve")):
        assert bag.dags[dag_id].get_task(task_id).response_timeout == timedelta(hours=24)
    assert bag.dags["closeout_sync_harvest"].get_task("begin").execution_timeout == timedelta(minutes=120)
    assert bag.dags["closeout_sync_toggl"].get_task("window").execution_timeout == timedelta(minutes=120)
    assert bag.dags["closeout_month_end_close"].get_task("final_sync").execution_timeout == timedelta(minutes=240)
    assert bag.dags["closeout_payouts"].get_task("plan").execution_timeout == timedelta(minutes=60)


def test_overrides_from_the_environment_per_dag_and_per_task() -> None:
    """Parsed in a fresh interpreter, as a worker or the dag-processor parses with its own environment."""
    code = f"""
import sys
sys.path[:0] = [{str(ROOT / 'plugins')!r}, {str(ROOT)!r}]
from airflow.dag_processing.dagbag import DagBag
from closeout.dag_defaults import _per_task_timeout
bag = DagBag(dag_folder={str(ROOT / 'dags')!r})
assert not bag.import_errors, bag.import_errors
close = bag.dags["closeout_month_end_close"]
publish = close.get_task("publish")
print("T", int(bag.dags["closeout_reconcile"].tasks[0].execution_timeout.total_seconds()))
print("T", int(publish.execution_timeout.total_seconds()))
_per_task_timeout({{"task": publish}})
print("T", int(publish.execution_timeout.total_seconds()))
drafts = close.get_task("drafts")
_per_task_timeout({{"task": drafts}})
print("T", int(drafts.execution_timeout.total_seconds()))
"""
    import os

    env = {**os.environ, "CLOSEOUT_TASK_TIMEOUT_MINUTES": "7",
           "CLOSEOUT_TASK_TIMEOUT_MINUTES__CLOSEOUT_MONTH_END_CLOSE": "30",
           "CLOSEOUT_TASK_TIMEOUT_MINUTES__CLOSEOUT_MONTH_END_CLOSE__PUBLISH": "2"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    values = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("T ")]
    assert values == ["420", "1800", "120", "1800"]


def test_a_timeout_that_is_not_positive_is_refused(monkeypatch) -> None:
    import pytest
    from closeout.dag_defaults import execution_timeout

    monkeypatch.setenv("CLOSEOUT_TASK_TIMEOUT_MINUTES__CLOSEOUT_PAYOUTS", "0")
    with pytest.raises(ValueError, match="CLOSEOUT_TASK_TIMEOUT_MINUTES__CLOSEOUT_PAYOUTS"):
        execution_timeout("closeout_payouts")


def test_the_approval_wait_is_read_from_the_environment_and_bounded(monkeypatch) -> None:
    import pytest
    from closeout.payouts import approval

    monkeypatch.setenv("CLOSEOUT_APPROVAL_RESPONSE_HOURS", "72")
    assert approval.response_timeout() == timedelta(hours=72)
    for bad in ("0", "-3", "never", "1000"):
        monkeypatch.setenv("CLOSEOUT_APPROVAL_RESPONSE_HOURS", bad)
        with pytest.raises(ValueError, match="CLOSEOUT_APPROVAL_RESPONSE_HOURS"):
            approval.response_timeout()
