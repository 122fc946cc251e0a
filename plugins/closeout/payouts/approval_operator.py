"""The payouts approval as an Airflow operator: ``ApprovalOperator`` assigned at run time to the finance group.

Kept apart from ``closeout.payouts.approval`` (plain functions, no Airflow import) so the rules can be used and
tested without loading Airflow's operator machinery. See that module for the rules themselves.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

from closeout.payouts import approval


class FinanceApprovalOperator(ApprovalOperator):
    """Asks the finance group, less the run's requester, to approve the batches ``plan`` left awaiting approval;
    shows payees, amounts and totals per currency; records the answer (or a refused one) in closeout.decisions."""

    def __init__(self, *, plan_task_id: str = "plan", **kwargs: Any) -> None:
        kwargs.setdefault("subject", "closeout payouts: approve payout batches")
        kwargs.setdefault("body", "The batches, payees and amounts are filled in when the run asks.")
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def _batches(self, context: Any) -> list[str]:
        planned = context["ti"].xcom_pull(task_ids=self.plan_task_id) or {}
        return list(planned.get("awaiting_approval") or [])

    def _ref(self, context: Any, **extra: Any) -> dict[str, Any]:
        ti = context["ti"]
        return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, **extra}

    def execute(self, context: Any) -> Any:
        from closeout.warehouse.db import connect

        batch_ids = self._batches(context)
        requested_by = approval.requester(context["dag_run"])
        try:
            users = approval.assignees(requested_by)
        except approval.ApprovalRefused as exc:  # no one may approve: a configuration problem, no retry
            raise AirflowFailException(str(exc)) from exc
        with connect() as conn:
            self.subject, self.body = approval.summary(conn, batch_ids)
        self.assigned_users = [{"id": user, "name": user} for user in users]
        self.log.info("payout approval of %s requested by %s, assigned to %s", batch_ids, requested_by, users)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" in event:  # timed out or failed: nothing was decided
            return super().execute_complete(context=context, event=event)
        from closeout.warehouse.db import connect

        batch_ids = self._batches(context)
        requested_by = approval.requester(context["dag_run"])
        responded = event.get("responded_by_user") or {}
        who = str(responded.get("id") or responded.get("name") or "")
        self.validate_chosen_options(event["chosen_options"])
        chosen = event["chosen_options"][0]
        ref = self._ref(context, responded_at=event.get("responded_at"), chosen=chosen)
        with connect() as conn:
            try:
                approval.check_answer(requested_by, who)
            except approval.ApprovalRefused as exc:
                approval.record(conn, batch_ids, requested_by=requested_by, decided_by=who or "unknown user",
                                outcome="refused", reason=str(exc), ref=ref)  # fmt: skip
                raise AirflowFailException(f"payout approval refused: {exc}") from exc
            outcome = "approved" if chosen == self.APPROVE else "rejected"
            approval.record(conn, batch_ids, requested_by=requested_by, decided_by=who, outcome=outcome, ref=ref)
        return super().execute_complete(context=context, event=event)
