"""Shared DAG defaults. Imported at DAG parse time: the standard library and Airflow's task SDK only."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from closeout.alerts.routing import MONEY_DAG_IDS

OWNER = "closeout"
START_DATE = datetime(2026, 1, 1)

__all__ = ["MONEY_DAG_IDS", "OWNER", "START_DATE", "TIME_ENTRIES", "default_args", "failure_callbacks", "schedule"]


def failure_callbacks() -> dict[str, list[Any]]:
    """Every task's failure notifier (platform always; finance too for ``MONEY_DAG_IDS``, decided by the
    DAG id at run time) and the success callback that resolves a cause once its task runs green."""
    from closeout.alerts.notifier import CauseResolver, FailureNotifier

    return {"on_failure_callback": [FailureNotifier()], "on_success_callback": [CauseResolver()]}


def default_args(**overrides: Any) -> dict[str, Any]:
    """Retries and failure notifiers for every task; the retry delay is an environment setting so tests can
    shorten it. A DAG that sets its own callbacks in ``overrides`` replaces these."""
    args: dict[str, Any] = {
        **failure_callbacks(),
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
