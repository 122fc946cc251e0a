"""Close runs in the warehouse (``closeout_data.close_runs``, public view ``closeout.period_closes``).

One row per Airflow run of ``closeout_month_end_close``. The row is the close's memory across task retries
and processes: which steps finished and what they did, so a retried step knows what is already done, and the
guard that keeps two closes from interleaving even when two Airflow deployments trigger them (a partial
unique index allows one 'running' close at a time, see migration 0013).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout.masking import mask_data, mask_secrets
from closeout.paths import load_sql


class CloseRefused(RuntimeError):
    """The close cannot run as asked (bad period, month not over, another close running, locked elsewhere).
    A person must act; retrying the task changes nothing."""


@dataclass
class CloseRun:
    close_run_id: int
    period: str
    airflow_run_id: str
    dry_run: bool
    params: dict[str, Any]
    status: str
    steps: dict[str, Any] = field(default_factory=dict)
    report_url: str | None = None
    started_at: datetime | None = None

    def step(self, name: str) -> dict[str, Any]:
        return self.steps.get(name) or {}


def _run(row: dict[str, Any]) -> CloseRun:
    return CloseRun(**row)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def running_elsewhere(conn: psycopg.Connection, airflow_run_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(load_sql("close/running.sql"), {"airflow_run_id": airflow_run_id}).fetchone()


def conflict(conn: psycopg.Connection, airflow_run_id: str) -> CloseRefused:
    other = running_elsewhere(conn, airflow_run_id)
    if other is None:
        return CloseRefused("another close started at the same moment; trigger this one again when it has finished")
    kind = "dry run" if other["dry_run"] else "close"
    return CloseRefused(
        f"another {kind} is running: close run {other['close_run_id']} of period {other['period']} "
        f"(Airflow run {other['airflow_run_id']}, since {other['started_at']:%Y-%m-%d %H:%M} UTC); closes never "
        "interleave. Wait for it to finish; if its worker died, mark its Airflow run failed and clear its failed "
        "task, or record it as abandoned: python -m closeout.close abandon --close-run-id "
        f"{other['close_run_id']} --by <you> --why <reason>."
    )


def begin(conn: psycopg.Connection, period: str, airflow_run_id: str, *, dry_run: bool,
          params: dict[str, Any]) -> CloseRun:  # fmt: skip
    """Open this Airflow run's close (idempotent for a retried first task); committed at once."""
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            values = {"period": period, "airflow_run_id": airflow_run_id, "dry_run": dry_run,
                      "params": json.dumps(params)}  # fmt: skip
            row = cur.execute(load_sql("close/begin.sql"), values).fetchone()
        conn.commit()
    except psycopg.errors.UniqueViolation:
        conn.rollback()
        raise conflict(conn, airflow_run_id) from None
    return _run(row)


def load(conn: psycopg.Connection, airflow_run_id: str) -> CloseRun:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(load_sql("close/load.sql"), {"airflow_run_id": airflow_run_id}).fetchone()
    if row is None:
        raise CloseRefused(f"Airflow run {airflow_run_id} has no close run: its first task (validate) did not open one")
    return _run(row)


def by_id(conn: psycopg.Connection, close_run_id: int) -> CloseRun | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(load_sql("close/by_id.sql"), {"close_run_id": close_run_id}).fetchone()
    return _run(row) if row else None


def closed(conn: psycopg.Connection, period: str) -> dict[str, Any] | None:
    """The successful, real close of ``period``, if there is one."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(load_sql("close/closed.sql"), {"period": period}).fetchone()


def record_already_closed(conn: psycopg.Connection, period: str, airflow_run_id: str, *, dry_run: bool,
                          params: dict[str, Any], message: str, report_url: str | None) -> None:  # fmt: skip
    conn.execute(load_sql("close/already_closed.sql"),
                 {"period": period, "airflow_run_id": airflow_run_id, "dry_run": dry_run,
                  "params": json.dumps(params), "message": message, "report_url": report_url})  # fmt: skip
    conn.commit()


def _write_step(conn: psycopg.Connection, run: CloseRun, name: str, state: dict[str, Any], status: str,
                error: str | None = None) -> None:  # fmt: skip
    state, error = mask_data(state), mask_secrets(error)  # what a failed step says is stored masked, once, here
    run.steps[name] = state
    try:
        conn.execute(load_sql("close/step.sql"), {"step": name, "state": json.dumps(state, default=str),
                                                  "status": status, "error": error,
                                                  "close_run_id": run.close_run_id})  # fmt: skip
        conn.commit()
    except psycopg.errors.UniqueViolation:
        conn.rollback()
        raise conflict(conn, run.airflow_run_id) from None
    run.status = status


def step_started(conn: psycopg.Connection, run: CloseRun, name: str) -> dict[str, Any]:
    """Mark ``name`` running (the close with it); keeps what an earlier attempt saved (``progress``)."""
    state = {**run.step(name), "status": "running", "started_at": _now()}
    state.pop("error", None)
    _write_step(conn, run, name, state, "running")
    return state


def step_progress(conn: psycopg.Connection, run: CloseRun, name: str, progress: dict[str, Any]) -> None:
    """Save part of a step's work (e.g. one tracker's final sync) so a retry skips it."""
    _write_step(conn, run, name, {**run.step(name), "progress": progress}, "running")


def step_succeeded(conn: psycopg.Connection, run: CloseRun, name: str, summary: dict[str, Any]) -> None:
    _write_step(conn, run, name, {**run.step(name), "status": "succeeded", "summary": summary,
                                  "finished_at": _now()}, "running")  # fmt: skip


def step_failed(conn: psycopg.Connection, run: CloseRun, name: str, error: str) -> None:
    _write_step(conn, run, name, {**run.step(name), "status": "failed", "error": error, "finished_at": _now()},
                "failed", error=f"{name}: {error}")  # fmt: skip


def finish(conn: psycopg.Connection, run: CloseRun, *, message: str, report_url: str | None) -> None:
    conn.execute(load_sql("close/finish.sql"), {"status": "succeeded", "message": message, "report_url": report_url,
                                                "close_run_id": run.close_run_id})  # fmt: skip
    conn.commit()
    run.status, run.report_url = "succeeded", report_url


def abandon(conn: psycopg.Connection, close_run_id: int, reason: str) -> bool:
    """Fail a close whose worker died while it was 'running', so the next close may start. Returns False when
    that close was not running."""
    cur = conn.execute(load_sql("close/abandon.sql"),
                       {"error": mask_secrets(f"abandoned: {reason}"), "close_run_id": close_run_id})
    conn.commit()
    return cur.rowcount == 1
