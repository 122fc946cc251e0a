"""Shared DAG defaults. Imported at DAG parse time: the standard library and Airflow's task SDK only."""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime, timedelta
from typing import Any

from closeout.alerts.routing import MONEY_DAG_IDS

OWNER = "closeout"
START_DATE = datetime(2026, 1, 1)

__all__ = ["MONEY_DAG_IDS", "OWNER", "START_DATE", "TIME_ENTRIES", "default_args", "execution_timeout",
           "failure_callbacks", "schedule"]

# Minutes a task may run before Airflow kills it, by kind of DAG: a hung socket or a lock wait must end in a
# failure (and a retry, and an alert), never in a task that runs forever. Tracker syncs pace themselves under
# API budgets, the close re-lists whole months, the history import loads years; everything else is minutes.
TIMEOUT_ENV = "CLOSEOUT_TASK_TIMEOUT_MINUTES"
DEFAULT_TIMEOUT_MINUTES = 60
TIMEOUT_MINUTES_BY_DAG: dict[str, int] = {
    "closeout_sync_harvest": 120,
    "closeout_sync_toggl": 120,
    "closeout_sync_clockify": 120,
    "closeout_month_end_close": 240,
    "closeout_migrate_history": 360,
}


def failure_callbacks() -> dict[str, list[Any]]:
    """Every task's failure notifier (platform always; finance too for ``MONEY_DAG_IDS``, decided by the
    DAG id at run time) and the success callback that resolves a cause once its task runs green."""
    from closeout.alerts.notifier import CauseResolver, FailureNotifier

    return {"on_failure_callback": [FailureNotifier()], "on_success_callback": [CauseResolver()]}


def _env_key(*parts: str) -> str:
    return "__".join([TIMEOUT_ENV, *(re.sub(r"[^A-Za-z0-9]", "_", part).upper() for part in parts)])


def _minutes(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: a number of minutes") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r}: must be more than 0 minutes (every task has a bound)")
    return value


def execution_timeout(dag_id: str | None, task_id: str | None = None) -> timedelta:
    """A task's bound: ``CLOSEOUT_TASK_TIMEOUT_MINUTES__<DAG>__<TASK>``, else ``..._MINUTES__<DAG>``, else the
    kind's default (``TIMEOUT_MINUTES_BY_DAG``), else ``CLOSEOUT_TASK_TIMEOUT_MINUTES``, else 60 minutes.
    Ids are upper-cased with every non-alphanumeric character as ``_``."""
    candidates = []
    if dag_id and task_id:
        candidates.append(_minutes(_env_key(dag_id, task_id)))
    if dag_id:
        candidates.append(_minutes(_env_key(dag_id)))
        candidates.append(TIMEOUT_MINUTES_BY_DAG.get(dag_id))
    candidates.append(_minutes(TIMEOUT_ENV))
    minutes = next((value for value in candidates if value is not None), DEFAULT_TIMEOUT_MINUTES)
    return timedelta(minutes=minutes)


def _per_task_timeout(context: Any) -> None:
    """Pre-execute hook: applies a per-task override in the worker, before Airflow starts the task's clock
    (default_args cannot know the task id at parse time)."""
    task = context["task"]
    override = _minutes(_env_key(task.dag_id, task.task_id))
    if override is not None:
        task.execution_timeout = timedelta(minutes=override)


def _calling_dag_id() -> str | None:
    """The DAG id of the DAG file calling ``default_args``: one file per DAG id, named after it (the contract)."""
    frame = sys._getframe(2)
    filename = frame.f_globals.get("__file__") or ""
    stem = os.path.splitext(os.path.basename(filename))[0]
    return stem if stem.startswith("closeout_") else None


def default_args(dag_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Retries, failure notifiers and an ``execution_timeout`` for every task; the retry delay is an environment
    setting so tests can shorten it. ``dag_id`` defaults to the calling DAG file's name. A DAG that sets its own
    callbacks or timeout in ``overrides`` replaces these."""
    dag_id = dag_id or _calling_dag_id()
    args: dict[str, Any] = {
        **failure_callbacks(),
        "execution_timeout": execution_timeout(dag_id),
        "pre_execute": _per_task_timeout,
        "owner": OWNER,
        "retries": int(os.environ.get("CLOSEOUT_TASK_RETRIES", "3")),
        "retry_delay": timedelta(seconds=float(os.environ.get("CLOSEOUT_RETRY_DELAY_SECONDS", "120"))),
        "retry_exponential_backoff": os.environ.get("CLOSEOUT_RETRY_DELAY_SECONDS") is None,
        "max_retry_delay": timedelta(minutes=30),
    }
    args.update(overrides)
    return args


def schedule(env_var: str, default: str) -> str | None:
    """A DAG's schedule, overridable per deployment by an environment variable ("none" = manual)."""
    value = os.environ.get(env_var, default).strip()
    return None if value.lower() in {"", "none", "manual"} else value


def _time_entries_asset():
    from airflow.sdk import Asset

    return Asset("closeout_time_entries", uri="closeout://warehouse/time_entries")


# Emitted by every tracker sync that finishes; the drafting DAG is scheduled on it.
TIME_ENTRIES = _time_entries_asset()
