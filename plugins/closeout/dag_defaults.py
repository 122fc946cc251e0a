"""Shared DAG defaults. Imported at DAG parse time: the standard library and Airflow's task SDK only."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

OWNER = "closeout"
START_DATE = datetime(2026, 1, 1)


def default_args(**overrides: Any) -> dict[str, Any]:
    """Retries for every task; the delay is an environment setting so tests can shorten it."""
    args: dict[str, Any] = {
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
