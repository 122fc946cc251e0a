"""The close's steps, in order, each a call into the stage that owns the work.

Every stage is already idempotent and safe to retry (outbox keys for Stripe, versioned drafts, journals posted
once, export files rewritten byte-identically), so a step re-run after a failure repeats no side effect. What
the close adds: the period's scope (the final sync covers the whole period and sweeps it for deletions, publish
runs "as of" the first day after it), the publish-policy override, and the dry run (no external mutation, no
lock, no payout gate). Held drafts are approved by finance in the close's approve_held_drafts task, never here.
Each step returns a summary with counts; ``closeout.close.tasks`` records it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from closeout.close import dry_run
from closeout.close.params import CloseParams
from closeout.close.runs import CloseRefused, CloseRun, step_progress
from closeout.trackers.settings import SyncSettings

log = logging.getLogger(__name__)

# approve_held_drafts is the close's human-in-the-loop task (closeout.close.approval_operator), recorded like a step
ORDER = ("final_sync", "lock_period", "drafts", "approve_held_drafts", "publish", "events", "journals",
         "accounting_export", "reconcile", "evidence", "close_report")  # fmt: skip
WINDOWED_MAX_DAYS = 366  # Toggl's and Clockify's reports span at most a year (closeout.trackers.windowed)


@dataclass
class Step:
    """What a step works with: its own warehouse connection, the close run and its parameters."""

    conn: psycopg.Connection
    run: CloseRun
    params: CloseParams

    @property
    def closed_by(self) -> str:
        return f"close run {self.run.close_run_id}"


# -- 1. final sync ------------------------------------------------------------------------------------------------
def final_sync_settings(tracker: str, params: CloseParams, today: date | None = None) -> SyncSettings:
    """The tracker's settings, widened so this sync re-lists the whole period and sweeps it for deletions."""
    from closeout.trackers.settings import load_settings

    today = today or datetime.now(UTC).date()
    days = (today - params.start).days + 1
    if tracker != "harvest" and days > WINDOWED_MAX_DAYS:
        raise CloseRefused(
            f"tracker {tracker}: period {params.period} began {days} days ago; its reports reach back at most "
            f"{WINDOWED_MAX_DAYS} days, so a final sync cannot cover it (leave {tracker} out of 'trackers')"
        )
    return load_settings(tracker).merged({"sweep": "always", "sweep_days": max(days, 1), "full_refresh": False})


def _sync_tracker(tracker: str, airflow_run_id: str, settings: SyncSettings) -> dict[str, Any]:
    if tracker == "harvest":
        from closeout.trackers.harvest import sync as harvest

        return harvest.run_all(airflow_run_id, settings)
    from closeout.trackers import windowed

    module = importlib.import_module(f"closeout.trackers.{tracker}.sync")
    return windowed.run_all(module.TRACKER, airflow_run_id, settings)


class SyncOfAnotherRun(RuntimeError):
    """Another DAG run's sync of this tracker is unfinished; retryable (the close waits for it, never joins it)."""


def refuse_other_runs_sync(conn: psycopg.Connection, tracker: str, airflow_run_id: str) -> None:
    """The final sync never continues a sync run another DAG run started: that run's window, settings and
    checkpoint are not the close's, and its own DAG run may still be working on it. Its tracker task runs in the
    tracker's pool (one tracker-calling task at a time), so no sync task of this tracker starts between this check
    and the close's own ``begin``."""
    row = conn.execute(
        """SELECT sync_run_id, status, airflow_run_ids, started_at FROM closeout_data.sync_runs
           WHERE source = %s AND status IN ('running', 'paused') AND NOT (%s = ANY(airflow_run_ids))""",
        (tracker, airflow_run_id),
    ).fetchone()
    if not conn.autocommit:
        conn.rollback()
    if row:
        started_by = ", ".join(row[2] or []) or "an unknown run"
        raise SyncOfAnotherRun(
            f"final sync of {tracker}: sync run {row[0]} ({row[1]}, started {row[3]:%Y-%m-%d %H:%M} UTC by DAG run "
            f"{started_by}) is unfinished; the close never joins another run's sync. This task fails and Airflow "
            f"retries it; closeout_sync_{tracker} finishes (or adopts) that run on its next run"
        )


def final_sync(step: Step, only: str | None = None) -> dict[str, Any]:
    """Each included tracker in turn (or ``only`` that one), whole period plus deletion sweep; a retry skips
    trackers already done."""
    done: dict[str, Any] = dict(step.run.step("final_sync").get("progress") or {})
    for tracker in step.params.trackers:
        if only is not None and tracker != only:
            continue
        if tracker in done:
            log.info("final sync: %s already synced by this close (sync run %s), not repeated", tracker,
                     done[tracker].get("sync_run_id"))  # fmt: skip
            continue
        settings = final_sync_settings(tracker, step.params)
        refuse_other_runs_sync(step.conn, tracker, step.run.airflow_run_id)
        log.info("final sync: %s, re-listing %d days back to %s with a deletion sweep", tracker, settings.sweep_days,
                 step.params.start)  # fmt: skip
        summary = _sync_tracker(tracker, step.run.airflow_run_id, settings)
        if summary.get("status") != "succeeded":
            raise RuntimeError(
                f"final sync of {tracker} ended {summary.get('status')!r} (sync run {summary.get('sync_run_id')}): "
                "the period is not completely captured; the retry continues it (see closeout.sync_runs)"
            )
        done[tracker] = summary
        step_progress(step.conn, step.run, "final_sync", done)
        log.info("final sync: %s done: %s", tracker, summary)
    return {"trackers": done}


# -- 2. lock ------------------------------------------------------------------------------------------------------
def lock_period(step: Step) -> dict[str, Any]:
    from closeout.billing import periods

    period = periods.parse_period(step.params.period)
    if step.params.dry_run:
        status = periods.lock_status(step.conn, period)
        log.info("dry run: period %s would be locked now (lock status: %s)", period.label, status or "not locked")
        return {"dry_run": True, "would_lock": status is None, "lock_status": status}
    # The lock fixes the content of the period's drafts; lock_period first brings them up to the final sync (one
    # drafting run in the lock's transaction), with the billing configuration as it is now.
    from closeout.billing import tasks

    tasks.load_config()
    result = periods.lock_period(step.conn, period, locked_by=f"closeout_month_end_close {step.closed_by}",
                                 close_run_id=str(step.run.close_run_id))  # fmt: skip
    step.conn.commit()
    log.info("period %s %s: %s", period.label, "was already locked" if result.get("already_locked") else "locked",
             result)  # fmt: skip
    return result


# -- 3. drafts ----------------------------------------------------------------------------------------------------
def drafts(step: Step) -> dict[str, Any]:
    from closeout.billing import tasks

    config = tasks.load_config()
    summary = tasks.refresh(step.run.airflow_run_id)
    return {"config": {k: config.get(k) for k in ("origin", "clients", "rate_cards")}, **summary}


# -- 4. publish ---------------------------------------------------------------------------------------------------
def publish(step: Step) -> dict[str, Any]:
    """Publishes what policy allows as of the first day after the period. Held drafts go out only once approved:
    with ``publish_policy: auto`` the approve_held_drafts task before this step asked finance (the close itself
    approves nothing); the dry run's preview lists them as ``approve_and_publish``."""
    from closeout.payments import preview

    policy = step.params.publish_policy
    as_of = step.params.next_start
    if policy == "hold":
        would = preview.preview_publish(step.conn, as_of)
        log.info("publish policy override 'hold': nothing published by this close; %d invoices wait", would["count"])
        return {"held_by_override": True, "waiting": would}
    if step.params.dry_run:
        would = preview.preview_publish(step.conn, as_of, approve_held_from=step.params.start if policy == "auto"
                                        else None)  # fmt: skip
        log.info("dry run: publish would send %d invoices to Stripe, totals %s", would["count"], would["totals_minor"])
        return {"dry_run": True, "would_publish": would}
    from closeout.payments import credit_notes, tasks

    # decreases of issued invoices leave the drafts before they are frozen, and are credited on their own
    # invoices once publishing is done (docs/corrections.md), as closeout_stripe_publish does
    taken = credit_notes.take_corrections_off_drafts(step.run.airflow_run_id, as_of)
    summary = tasks.publish_drafts(step.run.airflow_run_id, as_of)
    corrections = credit_notes.issue_corrections(step.run.airflow_run_id, as_of)
    held = step.run.step("approve_held_drafts").get("summary") or {}
    return {"as_of": as_of.isoformat(), "held_drafts_approved": held.get("approved", 0), **summary,
            "corrections": {"taken_off_drafts": taken, **corrections}}  # fmt: skip


# -- 5-6. events and journals -------------------------------------------------------------------------------------
def events(step: Step) -> dict[str, Any]:
    """Stripe's events and Stripe's own lists (reads only): the webhook inbox, the /v1/events backfill, hosted
    links, then the cash sync (balance transactions, payouts, refunds, credit notes, disputes, invoices), so the
    close's journals and cash checks see the month as Stripe lists it, not only as far as events reported it."""
    from closeout.payments import tasks
    from closeout.payments.cash import tasks as cash_tasks

    run_id = step.run.airflow_run_id
    return {"collected": tasks.collect_events(run_id), "applied": tasks.apply_events(run_id),
            "hosted_urls": tasks.refresh_hosted_urls(run_id), "cash": cash_tasks.sync_cash(run_id)}  # fmt: skip


def journals(step: Step) -> dict[str, Any]:
    from closeout.ledger import tasks

    return tasks.post_journals(step.run.airflow_run_id)


# -- 7. accounting export -----------------------------------------------------------------------------------------
def accounting_export(step: Step) -> dict[str, Any]:
    from closeout.accounting import export

    root = dry_run.export_root() if step.params.dry_run else None
    manifest = export.export_period(step.conn, step.params.period, root, airflow_run_id=step.run.airflow_run_id)
    summary = {k: manifest.get(k) for k in ("folder", "invoices", "journals", "content_sha256", "export_run_id")}
    summary["files"] = [{"name": f["name"], "rows": f["rows"]} for f in manifest.get("files", [])]
    summary["skipped"] = len(manifest.get("skipped", []))
    summary["dry_run"] = step.params.dry_run
    log.info("accounting export of %s: %d invoices, %d journals in %d files at %s", step.params.period,
             summary["invoices"] or 0, summary["journals"] or 0, len(summary["files"]), summary["folder"])  # fmt: skip
    if not step.params.dry_run:  # then the books pushed to each configured accounting system (file mode: none)
        from closeout.accounting.push import tasks as push_tasks

        summary["accounting_push"] = {
            system: {**push_tasks.sync_customers(system, step.run.airflow_run_id),
                     **push_tasks.push_books(system, step.run.airflow_run_id)}
            for system in push_tasks.SYSTEMS if push_tasks.configured(system)}  # fmt: skip
    return summary


# -- 8. reconcile -------------------------------------------------------------------------------------------------
def reconcile(step: Step, on_breach: Callable[[], None] | None = None) -> dict[str, Any]:
    """The real run goes through closeout_reconcile's task (breach -> pause, hold, alert, fail); ``on_breach``
    runs before the failure propagates (the close writes its report so the alert's link works)."""
    if step.params.dry_run:
        return dry_run.reconcile(step.conn, step.params.period, step.run.airflow_run_id)
    from closeout.close.report import report_url
    from closeout.recon import tasks

    try:  # finance's breach alert links the close report, written before the failure propagates
        return tasks.reconcile(step.run.airflow_run_id, step.params.period, report_url=report_url(step.params.period))
    except Exception:
        if on_breach is not None:
            on_breach()
        raise


# -- 9. evidence -------------------------------------------------------------------------------------------------
def evidence(step: Step) -> dict[str, Any]:
    """The period's evidence pack (closeout.evidence: entry versions, rates, lines, Stripe ids, events and keys,
    journals, the API calls behind them) written to the artifact store once the month reconciles, so an auditor
    opens the closed month without SQL. One pack covers every invoice of the period; a single invoice's pack is
    built on demand (``python -m closeout.evidence pack --invoice ID``), not thousands of them at every close.
    A dry run writes none: nothing in it is final."""
    if step.params.dry_run:
        return {"skipped": "dry run: evidence is written for the real close only"}
    from closeout.evidence.tasks import write_period_evidence

    written = write_period_evidence(step.params.period, per_invoice=False)
    log.info("evidence of %s: %s", step.params.period, written["index"])
    return {"index": written["index"], "rows": written["rows"]}


STEPS: dict[str, Callable[[Step], dict[str, Any]]] = {
    "final_sync": final_sync, "lock_period": lock_period, "drafts": drafts, "publish": publish, "events": events,
    "journals": journals, "accounting_export": accounting_export, "reconcile": reconcile, "evidence": evidence,
}  # fmt: skip
