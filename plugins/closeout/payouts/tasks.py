"""The tasks of ``closeout_payouts`` as plain functions: each opens its own warehouse connection, records its
run in ``closeout.payout_runs`` and is safe to retry."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import psycopg

from closeout.alerts.markers import FinanceAlerted
from closeout.payouts import approval, gate, plan, release
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)

APPROVAL_ENV = approval.APPROVAL_ENV
BATCH_SIZE_ENV = "CLOSEOUT_PAYOUT_BATCH_SIZE"


class PayoutsRefused(RuntimeError):
    """The gate is closed (an open hold, or no green reconciliation): nothing may be paid out."""


class PayoutsRefusedUnderHold(FinanceAlerted, PayoutsRefused):
    """Refused because a payout hold is open: finance already has that hold's alert (the gate sends one per
    breach), so a trigger during the hold is news for the platform team only, not a second finance alert."""


def approval_required() -> bool:
    """The deployment's setting, env CLOSEOUT_PAYOUTS_APPROVAL (default on); never a trigger parameter."""
    return approval.approval_required()


def batch_size(param: Any = None) -> int:
    return plan.bounded_size(param or int(os.environ.get(BATCH_SIZE_ENV, plan.DEFAULT_BATCH_SIZE)))


def _start(conn: psycopg.Connection, step: str, airflow_run_id: str | None) -> int:
    (run_id,) = conn.execute(
        "INSERT INTO closeout_data.payout_runs (airflow_run_id, step) VALUES (%s, %s) RETURNING payout_run_id",
        (airflow_run_id, step),
    ).fetchone()
    conn.commit()
    return run_id


def _finish(conn: psycopg.Connection, run_id: int, status: str, counts: dict, reason: str | None = None) -> None:
    conn.rollback()
    conn.execute(
        """UPDATE closeout_data.payout_runs SET finished_at = clock_timestamp(), status = %s, counts = %s,
               reason = %s WHERE payout_run_id = %s""",
        (status, json.dumps(counts, default=str), reason, run_id),
    )
    conn.commit()


def _refuse_if_closed(
    conn: psycopg.Connection, run_id: int, step: str, batch_ids: list[str] | None = None
) -> dict[str, Any]:
    verdict = gate.check(conn, batch_ids=batch_ids)
    counts = {"hold_ids": verdict.hold_ids, "recon_run_id": verdict.recon_run_id}
    if not verdict.open:
        reason = "; ".join(verdict.reasons)
        _finish(conn, run_id, "refused", counts, reason)
        refusal = PayoutsRefusedUnderHold if verdict.hold_ids else PayoutsRefused
        raise refusal(f"closeout_payouts refused at {step}: {reason}")
    return counts


def check_gate(airflow_run_id: str | None = None) -> dict[str, Any]:
    """Refuse (PayoutsRefused, recorded in closeout.payout_runs) while a hold is open or recon is not green."""
    with connect() as conn:
        run_id = _start(conn, "gate", airflow_run_id)
        counts = _refuse_if_closed(conn, run_id, "gate")
        _finish(conn, run_id, "success", counts)
    return counts


def plan_payouts(airflow_run_id: str | None = None, size: int | None = None) -> dict[str, Any]:
    from closeout.connections import get_connection
    from closeout.payments.hook import StripeSettings

    prefix = StripeSettings.from_extra(get_connection("stripe_default").extra).key_prefix
    with connect() as conn:
        run_id = _start(conn, "plan", airflow_run_id)
        try:
            summary = plan.plan(conn, key_prefix=prefix, batch_size=batch_size(size), planned_by=airflow_run_id)
        except Exception as exc:
            _finish(conn, run_id, "failed", {}, str(exc)[:2000])
            raise
        _finish(conn, run_id, "success", summary.as_dict())
    log.info("plan: %s", summary.as_dict())
    if summary.clawbacks_recorded or summary.reversals_recorded:
        log.warning("plan: %d clawbacks (%s) and %d reversals recorded in closeout.payout_adjustments",
                    summary.clawbacks_recorded, summary.clawed_back_minor, summary.reversals_recorded)  # fmt: skip
    for row in summary.outstanding_clawbacks:
        log.warning("outstanding clawback: %s balance %s (%d adjustments: %s), netted from their next payouts",
                    row["payee_key"], row["balance"], row["adjustments"], row["source_refs"])  # fmt: skip
    for row in summary.unpaid_reimbursements:  # closeout.unpaid_reimbursements: owed, but no payout setup
        log.warning("unpaid reimbursement: %s is owed %s for %d expenses (%s): %s", row["person"], row["amount"],
                    row["expense_count"], row["expenses"], row["reason"])  # fmt: skip
    return summary.as_dict()


def release_batches(
    airflow_run_id: str | None,
    batch_ids: list[str],
    approved_by: str | None = None,
    *,
    requested_by: str | None = None,
) -> dict[str, Any]:
    """Re-check the gate, then transfer what is pending in approved batches.

    With the approval on, only batches approved in Airflow's Required Actions (recorded by the ``approve`` task)
    go out. With it switched off by the deployment, the plan's batches are approved here and that is recorded on
    the run (``counts.approval``) and as a ``not_required`` decision per batch, by ``approved_by`` (default
    "auto: approval switched off").
    """
    from closeout.payments.hook import StripeHook

    hook = StripeHook()
    setting = approval.approval_setting()
    with connect() as conn:
        run_id = _start(conn, "release", airflow_run_id)
        _refuse_if_closed(conn, run_id, "release")
        try:
            approved = 0
            if not approval.approval_required() and batch_ids:
                approved = approval.record(
                    conn, batch_ids, requested_by=requested_by or approval.SCHEDULE_REQUESTER,
                    decided_by=approved_by or approval.SWITCHED_OFF_BY, outcome="not_required",
                    reason=f"approval {setting}", ref={"run_id": airflow_run_id})  # fmt: skip
            summary = release.release(conn, hook)
            summary.batches_approved = approved
        except release.ReleaseHeld as exc:
            _finish(conn, run_id, "refused", {"requests": hook.requests, "approval": setting}, str(exc)[:2000])
            raise PayoutsRefusedUnderHold(f"closeout_payouts refused at release: {exc}") from exc
        except Exception as exc:
            _finish(conn, run_id, "failed", {"requests": hook.requests, "approval": setting}, str(exc)[:2000])
            raise
        counts = {**summary.as_dict(), "requests": hook.requests, "approval": setting}
        earlier = _refused_in_earlier_tries(conn, airflow_run_id, run_id)
        if earlier:
            reason = (f"{len(earlier)} transfers refused by Stripe and stopped in an earlier try of this run (the "
                      f"rest went out); closeout.payout_exceptions: {'; '.join(earlier[:5])}")  # fmt: skip
            _finish(conn, run_id, "failed", counts, reason)
            raise release.TransfersRefused(reason)
        _finish(conn, run_id, "success", counts)
    log.info("release: %s", counts)
    return counts


def _refused_in_earlier_tries(conn: psycopg.Connection, airflow_run_id: str | None, run_id: int) -> list[str]:
    """Refusals still open that an earlier try of the same DAG run stopped: that try failed for a retryable
    error first, so its refusals would otherwise end in a green retry that nobody is alerted about."""
    if airflow_run_id is None:
        return []
    return [
        reason
        for (reason,) in conn.execute(
            """SELECT x.reason FROM closeout_data.payout_transfer_exceptions x
               WHERE x.resolved_at IS NULL
                 AND x.opened_at >= (SELECT min(r.started_at) FROM closeout_data.payout_runs r
                                     WHERE r.step = 'release' AND r.airflow_run_id = %s AND r.payout_run_id <> %s)
               ORDER BY x.exception_id""",
            (airflow_run_id, run_id),
        ).fetchall()
    ]
