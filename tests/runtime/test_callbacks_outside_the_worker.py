"""A killed worker's failure callback runs in the dag-processor: the notifier must work there with nothing but
the connections (no task context in the environment, no worker settings, none of the task's memory). Run in a
fresh interpreter through Airflow's own dag-processor entry point for task callbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gate"))
import gate_support
from gate_support import WEBHOOK_TOKEN, HttpReceiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
smtp, hook_receiver, finance_conns = gate_support.smtp, gate_support.hook_receiver, gate_support.finance_conns
PLATFORM_TOKEN = "plat-bearer-callback-31d4"


def _dag_processor_env(tmp_path: Path) -> dict[str, str]:
    """Only what a dag-processor host has: Airflow's home and DAG folder, the package, and the connections."""
    home = tmp_path / "dag-processor-home"
    home.mkdir(parents=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PYTHONPATH": str(ROOT / "plugins")}  # fmt: skip
    env.update({k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_")})
    return env


def _run_callbacks(env: dict[str, str], dag_id: str, task_id: str, run_id: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(Path(__file__).with_name("dag_processor_callback.py")),
         str(ROOT / "dags" / f"{dag_id}.py"), dag_id, task_id, run_id],
        env=env, capture_output=True, text=True, timeout=180, cwd=tmp_cwd(env),
    )  # fmt: skip


def tmp_cwd(env: dict[str, str]) -> str:
    return env["HOME"]  # not the repository: nothing is found relative to a worker's working directory


def test_a_killed_workers_callback_alerts_platform_and_finance_from_the_dag_processor(
    warehouse, smtp, hook_receiver, finance_conns, tmp_path, monkeypatch
) -> None:
    platform = HttpReceiver().start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_WEBHOOK", json.dumps(
            {"conn_type": "http", "host": platform.url.replace("/finance", "/platform"), "password": PLATFORM_TOKEN}))
        env = _dag_processor_env(tmp_path)
        assert not any(k.startswith(("AIRFLOW_CTX_", "CLOSEOUT_")) for k in env)
        done = _run_callbacks(env, "closeout_payouts", "release", "manual__killed_worker")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Error in callback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
    finally:
        platform.stop()

    [request] = platform.requests
    assert request["headers"]["Authorization"] == f"Bearer {PLATFORM_TOKEN}"
    alert = request["json"]
    assert (alert["dag_id"], alert["task_id"], alert["run_id"], alert["try_number"]) == (
        "closeout_payouts", "release", "manual__killed_worker", 3)
    assert alert["exception_type"] == "WorkerLost" and "worker was killed or lost" in alert["message"]
    [finance_hook] = hook_receiver.requests
    assert finance_hook["headers"]["Authorization"] == f"Bearer {WEBHOOK_TOKEN}"
    assert finance_hook["json"]["audience"] == "finance" and finance_hook["json"]["money"] is True
    [mail] = smtp.messages
    assert "closeout_payouts.release failed" in mail.message["Subject"]
    rows = warehouse.rows("SELECT dag_id, task_id, channel, status FROM closeout.alerts_sent ORDER BY channel")
    assert rows == [("closeout_payouts", "release", "finance_smtp", "sent"),
                    ("closeout_payouts", "release", "finance_webhook", "sent"),
                    ("closeout_payouts", "release", "platform_webhook", "sent")]  # fmt: skip

    # The same death again (another dag-processor process): de-duplicated through the warehouse, nothing new sent.
    platform = HttpReceiver().start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_PLATFORM_WEBHOOK", json.dumps(
            {"conn_type": "http", "host": platform.url.replace("/finance", "/platform"), "password": PLATFORM_TOKEN}))
        again = _run_callbacks(_dag_processor_env(tmp_path / "again"), "closeout_payouts", "release",
                               "manual__killed_worker")  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
    finally:
        platform.stop()
    assert platform.requests == [] and len(smtp.messages) == 1
    assert warehouse.scalar("SELECT max(occurrences) FROM closeout.alerts_sent") == 2
