"""closeout_month_end_close's tasks as plain functions: validate, one call per step, and the close report.

Each opens its own warehouse connection, reads the close run of its Airflow run (the first task opens it), and
records what it did there before returning, so a task that fails can be retried alone: the steps before it are
recorded as done, the stages themselves repeat no side effect, and a step that already succeeded in this close
is not run again.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC
from typing import Any

import psycopg

from closeout.close import runs, steps
from closeout.close.params import CloseParams, read_params
from closeout.close.runs import CloseRefused, CloseRun
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """JSON-safe (dates, Decimals as text): what goes to the warehouse also goes to XCom."""
    return json.loads(json.dumps(value, default=str))


# -- validate -------------------------------------------------------------------------------------------------
def validate(airflow_run_id: str, raw_params: dict[str, Any]) -> dict[str, Any]:
    """Check the parameters and the period, then open the close run. ``proceed`` is False when the period already
    closed successfully: nothing else runs, and the log says by which run and where its report is."""
    from closeout.warehouse.migrations import ensure_schema

    params = read_params(raw_params)
    with connect() as conn:
        ensure_schema(conn)
        done = runs.closed(conn, params.period)
        if done:
            return _already_closed(conn, airflow_run_id, params, done)
        other = runs.running_elsewhere(conn, airflow_run_id)
        if other:
            raise runs.conflict(conn, airflow_run_id)
        _check_lock(conn, params)
        run = runs.begin(conn, params.period, airflow_run_id, dry_run=params.dry_run, params=params.as_dict())
    log.info("close run %d of %s%s opened: trackers %s, publish policy %s; steps: %s", run.close_run_id,
             params.period, " (DRY RUN: no Stripe mutation, no lock, no payout gate)" if params.dry_run else "",
             ", ".join(params.trackers), params.publish_policy, " -> ".join(steps.ORDER))  # fmt: skip
    return {"proceed": True, "close_run_id": run.close_run_id, **params.as_dict()}


def _already_closed(conn: psycopg.Connection, airflow_run_id: str, params: CloseParams,
                    done: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    from closeout.close import notes

    finished = done["finished_at"]
    when = finished.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if finished else "an unknown time"
    message = (f"period {params.period} was closed by run {done['airflow_run_id']} at {when}; nothing changed; "
               f"report: {done['report_url'] or 'none recorded'}")  # fmt: skip
    runs.record_already_closed(conn, params.period, airflow_run_id, dry_run=params.dry_run, params=params.as_dict(),
                               message=message, report_url=done["report_url"])  # fmt: skip
    log.info(message)
    notes.set_run_note(airflow_run_id, f"Already closed: {message}")
    return {"proceed": False, "message": message, "closed_by": done["airflow_run_id"],
            "report_url": done["report_url"]}  # fmt: skip


def _check_lock(conn: psycopg.Connection, params: CloseParams) -> None:
    """A locked period may only be closed by the close that locked it and failed later (the new run resumes it)."""
    from closeout.billing import periods

    status = periods.lock_status(conn, periods.parse_period(params.period))
    if not status:
        return
    locker = status.get("close_run_id")
    if locker is not None:
        locking = runs.by_id(conn, int(locker))
        if locking and locking.period == params.period and locking.status == "failed":
            log.info("period %s is locked by close run %s, which failed: this close resumes it", params.period,
                     locker)  # fmt: skip
            return
    raise CloseRefused(
        f"parameter 'period' = {params.period!r}: the period is already locked by {status.get('locked_by')!r} at "
        f"{status.get('locked_at')} (close run {locker if locker is not None else 'none'}), not by a close that "
        "failed; a locked period changes only through adjustments in the next period"
    )


# -- the steps ------------------------------------------------------------------------------------------------
def _params(run: CloseRun) -> CloseParams:
    return read_params(run.params)


def run_final_sync_tracker(tracker: str, airflow_run_id: str) -> dict[str, Any]:
    """One tracker's part of the final sync, in that tracker's pool (its DAG task is ``final_sync_<tracker>``);
    recorded as progress of the ``final_sync`` step, which then finds it done. A tracker the close does not
    include is nothing to do."""
    with connect() as conn:
        run = runs.load(conn, airflow_run_id)
        recorded = run.step("final_sync")
        params = _params(run)
        if recorded.get("status") == "succeeded" or tracker not in params.trackers:
            return {"tracker": tracker, "included": tracker in params.trackers, "done_before": True}
        if recorded.get("status") != "running":
            runs.step_started(conn, run, "final_sync")
            run = runs.load(conn, airflow_run_id)
        try:
            summary = steps.final_sync(steps.Step(conn, run, params), only=tracker)
        except Exception as exc:
            _record_failure(run, "final_sync", exc)
            _with_facts(exc, run, params, "final_sync")
            raise
    return _plain(summary)


def run_step(name: str, airflow_run_id: str) -> dict[str, Any]:
    """One step of the close, recorded; a step this close already completed returns its recorded summary."""
    with connect() as conn:
        run = runs.load(conn, airflow_run_id)
        recorded = run.step(name)
        if recorded.get("status") == "succeeded":
            log.info("%s: already done by close run %d at %s; not repeated: %s", name, run.close_run_id,
                     recorded.get("finished_at"), recorded.get("summary"))  # fmt: skip
            return recorded.get("summary") or {}
        params = _params(run)
        runs.step_started(conn, run, name)
        began = time.monotonic()
        step = steps.Step(conn, run, params)
        try:
            if name == "reconcile":
                summary = steps.reconcile(step, on_breach=lambda: _report_after_breach(run, params))
            else:
                summary = steps.STEPS[name](step)
        except Exception as exc:
            _record_failure(run, name, exc)
            _with_facts(exc, run, params, name)
            raise
        summary = _plain({**summary, "seconds": round(time.monotonic() - began, 2)})
        runs.step_succeeded(conn, run, name, summary)
    log.info("%s of %s done in %.1f s: %s", name, params.period, summary["seconds"], digest(summary))
    return summary


def _with_facts(exc: BaseException, run: CloseRun, params: CloseParams, name: str) -> None:
    """What the failure alert shows: the period, the close run's record and the report the close will write."""
    from closeout.alerts.markers import with_facts
    from closeout.close.report import report_url

    with_facts(exc, period=params.period, report_url=report_url(params.period, dry_run=params.dry_run),
               evidence=f"closeout.period_closes (close run {run.close_run_id}, step {name})")  # fmt: skip


def _record_failure(run: CloseRun, name: str, exc: BaseException) -> None:
    """On a fresh connection: the step's own may be mid-transaction or broken."""
    with connect() as conn:
        runs.step_failed(conn, runs.load(conn, run.airflow_run_id), name, f"{type(exc).__name__}: {exc}"[:2000])


def _report_after_breach(run: CloseRun, params: CloseParams) -> None:
    """Write the close report before a breach fails the close: finance's alert links to it."""
    from closeout.close import notes

    try:
        with connect() as conn:
            written = write_report(conn, runs.load(conn, run.airflow_run_id), params)
    except Exception as exc:  # the breach is the news; a report that could not be written must not hide it
        log.warning("the close report could not be written after the breach: %s", exc)
        return
    notes.set_run_note(run.airflow_run_id, f"Reconciliation breached, payouts held. Close report: {written['url']}")


# -- the report and the summary -----------------------------------------------------------------------------------
def write_report(conn: psycopg.Connection, run: CloseRun, params: CloseParams) -> dict[str, Any]:
    from closeout.close import report

    built = report.build_report(conn, params.period, steps=report_steps(run), dry_run=params.dry_run,
                                close_run_id=str(run.close_run_id))  # fmt: skip
    written = report.write_report(built)
    return {"url": report.report_url(params.period, dry_run=params.dry_run), "files": written}


def close_report(airflow_run_id: str) -> dict[str, Any]:
    """The report, the run's note, the close marked succeeded, and the summary of every step in the log."""
    from closeout.close import notes

    with connect() as conn:
        run = runs.load(conn, airflow_run_id)
        params = _params(run)
        runs.step_started(conn, run, "close_report")
        try:
            written = write_report(conn, run, params)
        except BaseException as exc:
            _record_failure(run, "close_report", exc)
            raise
        runs.step_succeeded(conn, run, "close_report", _plain(written))
        label = "DRY RUN of the close" if params.dry_run else "closed"
        message = f"{params.period} {label}: report {written['url']}"
        runs.finish(conn, run, message=message, report_url=written["url"])
    lines = summary_lines(run)
    log.info("close run %d of %s%s finished:\n%s\nreport: %s", run.close_run_id, params.period,
             " (DRY RUN)" if params.dry_run else "", "\n".join(lines), written["url"])  # fmt: skip
    notes.set_run_note(airflow_run_id, f"{'DRY RUN: ' if params.dry_run else ''}Close report: {written['url']}")
    return {"close_run_id": run.close_run_id, "report_url": written["url"], "summary": lines,
            "dry_run": params.dry_run}  # fmt: skip


def report_steps(run: CloseRun) -> list[dict[str, Any]]:
    """The steps as the report shows them: status, counts (numbers only) and a one-line message."""
    out = []
    for name in steps.ORDER:
        state = run.step(name)
        if not state:
            continue
        summary = state.get("summary") or {}
        counts = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        out.append({"step": name, "status": state.get("status"), "counts": counts,
                    "message": state.get("error") or digest(summary)})  # fmt: skip
    return out


def digest(summary: dict[str, Any], limit: int = 8) -> str:
    """The counts of a step summary on one line (numbers and short words, nested one level)."""
    parts: list[str] = []
    for key, value in summary.items():
        if isinstance(value, bool) or value is None:
            if value:
                parts.append(key)
        elif isinstance(value, int | float):
            parts.append(f"{key}={value}")
        elif isinstance(value, dict):
            inner = [f"{k}={v}" for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)]
            if inner:
                parts.append(f"{key}({', '.join(inner[:4])})")
        if len(parts) >= limit:
            break
    return ", ".join(parts) or "-"


def summary_lines(run: CloseRun) -> list[str]:
    lines = []
    for name in steps.ORDER:
        state = run.step(name)
        lines.append(f"  {name:<18} {state.get('status', 'not run'):<10} {digest(state.get('summary') or {})}")
    return lines
