"""Helpers for the runtime-bounds tests: point ``closeout_warehouse`` at a database with chosen extras."""

from __future__ import annotations

import json
import os

import pytest

ENV_VAR = "AIRFLOW_CONN_CLOSEOUT_WAREHOUSE"


def set_warehouse_extra(monkeypatch: pytest.MonkeyPatch, **extra) -> dict:
    """Add extras to the current test's ``closeout_warehouse`` connection (JSON form) and return it."""
    conn = json.loads(os.environ[ENV_VAR])
    conn["extra"] = {**(conn.get("extra") or {}), **extra}
    monkeypatch.setenv(ENV_VAR, json.dumps(conn))
    return conn


def task_context(monkeypatch: pytest.MonkeyPatch, dag_id: str, task_id: str, run_id: str) -> None:
    """What Airflow's task runner exports to the environment before a task's ``execute``."""
    monkeypatch.delenv("CLOSEOUT_APPLICATION_NAME", raising=False)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", dag_id)
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", task_id)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", run_id)
