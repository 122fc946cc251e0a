"""The close's ``approve_held_drafts`` task: finance approves the period's held drafts, never the close itself.

A ``FinanceGroupApprovalOperator`` (assigned at run time to the finance group less the person who triggered the
close, the answer checked again and recorded in closeout.decisions; see ``closeout.payouts.approval_operator``).
What is particular to the close: the task is recorded as the close run's ``approve_held_drafts`` step (the
approval setting, what was asked, who decided, the decision ids), it waits only when there is something to
approve (``publish_policy: auto``, not a dry run, held drafts in the period, approval not switched off by the
deployment), and a rejection does not stop the close: the rejected drafts stay held, everything else goes on.
Rules and texts: ``closeout.close.approval``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from closeout.close import approval
from closeout.payouts.approval_operator import FinanceGroupApprovalOperator

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


class HeldDraftsApprovalOperator(FinanceGroupApprovalOperator):
    """Asks the finance group to approve the close's held drafts; only approved drafts are published."""

    approval_name = "held drafts approval"
    skip_downstream_on_reject = False  # the close goes on; the rejected drafts stay held

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "closeout close: approve held drafts")
        kwargs.setdefault("body", "The held drafts, clients, periods and amounts are filled in when the close asks.")
        super().__init__(**kwargs)

    # -- what awaits approval: the drafts this close asked about, kept on the close run ---------------------------
    def pending(self, context: Any) -> list[approval.HeldDraft]:
        from closeout.close import runs
        from closeout.warehouse.db import connect

        with connect() as conn:
            run = runs.load(conn, context["run_id"])
        return approval.from_dicts((run.step(approval.STEP).get("progress") or {}).get("asking") or [])

    def describe(self, conn: psycopg.Connection, pending: list[approval.HeldDraft], context: Any) -> tuple[str, str]:
        from closeout.close import runs

        run = runs.load(conn, context["run_id"])
        return approval.request_text(pending, run.period, run.close_run_id)

    def record(self, conn: psycopg.Connection, pending: list[approval.HeldDraft], *, requested_by: str,
               decided_by: str, outcome: str, reason: str | None, ref: dict[str, Any],
               context: Any) -> None:  # fmt: skip
        from closeout.close import runs

        run = runs.load(conn, context["run_id"])
        ref = {**ref, "close_run_id": run.close_run_id, "period": run.period}
        decisions = approval.record(conn, pending, requested_by=requested_by, decided_by=decided_by, outcome=outcome,
                                    reason=reason, ref=ref)  # fmt: skip
        summary = _summary(run, pending, requested_by=requested_by, decided_by=decided_by, outcome=outcome,
                           decisions=decisions)  # fmt: skip
        if outcome == "refused":
            runs.step_failed(conn, run, approval.STEP, f"{decided_by}'s answer refused: {reason}; decisions "
                             f"{sorted(decisions.values())}; the drafts stay held")  # fmt: skip
            return
        runs.step_succeeded(conn, run, approval.STEP, summary)
        log.info("held drafts %s by %s (requested by %s): %s", outcome, decided_by, requested_by, decisions)

    # -- the task ------------------------------------------------------------------------------------------------
    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" in event:  # no answer in time (the response timeout): recorded, so the close run is not left
            from closeout.close import runs  # 'running' and blocking the next close
            from closeout.warehouse.db import connect

            with connect() as conn:
                runs.step_failed(conn, runs.load(conn, context["run_id"]), approval.STEP,
                                 f"no answer ({event.get('error_type')}): the held drafts stay held; clear "
                                 f"{approval.STEP} to ask again")  # fmt: skip
        return super().execute_complete(context=context, event=event)

    def execute(self, context: Any) -> Any:
        from closeout.close import runs
        from closeout.close.params import read_params
        from closeout.payouts.approval import requester
        from closeout.warehouse.db import connect

        with connect() as conn:
            run = runs.load(conn, context["run_id"])
            recorded = run.step(approval.STEP)
            if recorded.get("status") == "succeeded":  # decided earlier in this close: not asked again
                self.log.info("held drafts: decided earlier in close run %d: %s", run.close_run_id,
                              recorded.get("summary"))  # fmt: skip
                return recorded.get("summary")
            params = read_params(run.params)
            drafts = approval.held_drafts(conn, params)
            setting = approval.approval_setting()
            runs.step_started(conn, run, approval.STEP)
            if params.dry_run or params.publish_policy != "auto" or not drafts:
                why = _why_not_asked(params.dry_run, params.publish_policy, len(drafts))
                summary = {"asked": False, "held": len(drafts), "approval": setting,
                           "publish_policy": params.publish_policy, "dry_run": params.dry_run,
                           "held_drafts": [d.invoice_id for d in drafts], "why_not_asked": why}  # fmt: skip
                runs.step_succeeded(conn, run, approval.STEP, summary)
                self.log.info("held drafts: not asked (%s); %d held drafts stay held", summary["why_not_asked"],
                              len(drafts))  # fmt: skip
                return summary
            runs.step_progress(conn, run, approval.STEP, {"asking": [d.as_dict() for d in drafts]})
            if not approval.approval_required():  # the deployment's switch, recorded on the run and per draft
                self.record(conn, drafts, requested_by=requester(context["dag_run"]),
                            decided_by=approval.SWITCHED_OFF_BY, outcome="not_required", reason=f"approval {setting}",
                            ref=self._ref(context), context=context)  # fmt: skip
                return runs.load(conn, context["run_id"]).step(approval.STEP).get("summary")
        try:
            return super().execute(context)  # raises TaskAwaitingInput (or defers) to wait: not caught here
        except AirflowFailException as exc:  # no one may approve (configuration): the close run says so
            with connect() as conn:
                runs.step_failed(conn, runs.load(conn, context["run_id"]), approval.STEP, str(exc))
            raise


def _why_not_asked(dry_run: bool, policy: str, held: int) -> str:
    if dry_run:
        return "dry run: nothing is approved or published"
    if policy == "hold":
        return "publish_policy hold: nothing is published"
    if policy != "auto":
        return f"publish_policy {policy}: held drafts stay held"
    return "no held drafts in the period"


def _summary(run: Any, drafts: list[approval.HeldDraft], *, requested_by: str, decided_by: str, outcome: str,
             decisions: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """What the close run keeps about the decision (the report's step line shows the counts)."""
    published = outcome in ("approved", "not_required")
    totals = {c: t for c, (_, t, _) in approval.totals(drafts).items()}
    return {
        "asked": outcome != "not_required", "held": len(drafts), "approval": approval.approval_setting(),
        "publish_policy": "auto", "outcome": outcome, "requested_by": requested_by, "decided_by": decided_by,
        "approved": len(drafts) if published else 0, "rejected": 0 if published else len(drafts),
        "totals_minor": totals, "decisions": decisions, "close_run_id": run.close_run_id,
    }  # fmt: skip
