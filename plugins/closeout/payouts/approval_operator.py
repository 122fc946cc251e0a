"""Finance approvals as Airflow operators: ``ApprovalOperator`` assigned at run time to the finance group.

``FinanceGroupApprovalOperator`` holds what every money decision shares (invariant 11): the request is assigned to
the finance group (``CLOSEOUT_FINANCE_APPROVERS``) less the person who triggered the run, the answer is checked
again when the task resumes (an auth manager may let anyone answer), and every answer, a refused one too, is
recorded in closeout.decisions. A subclass says what awaits approval, how it is shown and how a decision is
recorded: ``FinanceApprovalOperator`` for payout batches (below), ``closeout.close.approval_operator`` for the
held drafts of a month-end close.

Kept apart from ``closeout.payouts.approval`` (plain functions, no Airflow import) so the rules can be used and
tested without loading Airflow's operator machinery. See that module for the rules themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk.exceptions import AirflowFailException

from closeout.payouts import approval

if TYPE_CHECKING:
    import psycopg


class FinanceGroupApprovalOperator(ApprovalOperator):
    """Asks the finance group, less the run's requester, to approve what ``pending`` returns; records the answer.

    Subclasses implement ``pending`` (what awaits approval; read again when the answer comes, possibly in another
    process), ``describe`` (the request's subject and body) and ``record`` (one decision, committed). Nothing
    pending: no request, the task succeeds without waiting. ``skip_downstream_on_reject``: ApprovalOperator's
    behaviour (a rejection skips the tasks right after this one); False when the run goes on without what was
    rejected.
    """

    approval_name = "approval"
    skip_downstream_on_reject = True

    def __init__(self, **kwargs: Any) -> None:
        # The wait for a person is the response timeout, stated here rather than left to Airflow's deprecated
        # fallback (which takes the task's execution_timeout, an hour, as the time finance has to answer).
        # execution_timeout is cleared as Airflow does: it would cap the deferral at the task's compute bound.
        kwargs.setdefault("response_timeout", approval.response_timeout())
        super().__init__(**kwargs)
        self.execution_timeout = None

    def pending(self, context: Any) -> list[Any]:
        raise NotImplementedError

    def describe(self, conn: psycopg.Connection, pending: list[Any], context: Any) -> tuple[str, str]:
        raise NotImplementedError

    def record(self, conn: psycopg.Connection, pending: list[Any], *, requested_by: str, decided_by: str,
               outcome: str, reason: str | None, ref: dict[str, Any], context: Any) -> None:  # fmt: skip
        raise NotImplementedError

    def _ref(self, context: Any, **extra: Any) -> dict[str, Any]:
        ti = context["ti"]
        return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, **extra}

    def execute(self, context: Any) -> Any:
        from closeout.warehouse.db import connect

        pending = self.pending(context)
        if not pending:
            self.log.info("%s: nothing awaits approval; no request", self.approval_name)
            return None
        requested_by = approval.requester(context["dag_run"])
        try:
            users = approval.assignees(requested_by)
        except approval.ApprovalRefused as exc:  # no one may approve: a configuration problem, no retry
            raise AirflowFailException(f"{self.approval_name}: {exc}") from exc
        with connect() as conn:
            self.subject, self.body = self.describe(conn, pending, context)
        self.assigned_users = [{"id": user, "name": user} for user in users]
        self.log.info("%s requested by %s, assigned to %s: %s", self.approval_name, requested_by, users, self.subject)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" in event:  # timed out or failed: nothing was decided
            return super().execute_complete(context=context, event=event)
        from closeout.warehouse.db import connect

        pending = self.pending(context)
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
                self.record(conn, pending, requested_by=requested_by, decided_by=who or "unknown user",
                            outcome="refused", reason=str(exc), ref=ref, context=context)  # fmt: skip
                raise AirflowFailException(f"{self.approval_name} refused: {exc}") from exc
            outcome = "approved" if chosen == self.APPROVE else "rejected"
            self.record(conn, pending, requested_by=requested_by, decided_by=who, outcome=outcome, reason=None,
                        ref=ref, context=context)  # fmt: skip
        if chosen == self.REJECT and not self.skip_downstream_on_reject:
            return HITLOperator.execute_complete(self, context=context, event=event)
        return super().execute_complete(context=context, event=event)


class FinanceApprovalOperator(FinanceGroupApprovalOperator):
    """Payout batches: asks to approve the batches ``plan`` left awaiting approval; shows payees, amounts and
    totals per currency; one decision per batch (approved batches are marked approved); a rejection skips the
    release."""

    approval_name = "payout approval"

    def __init__(self, *, plan_task_id: str = "plan", **kwargs: Any) -> None:
        kwargs.setdefault("subject", "closeout payouts: approve payout batches")
        kwargs.setdefault("body", "The batches, payees and amounts are filled in when the run asks.")
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def pending(self, context: Any) -> list[str]:
        planned = context["ti"].xcom_pull(task_ids=self.plan_task_id) or {}
        return list(planned.get("awaiting_approval") or [])

    def describe(self, conn: psycopg.Connection, pending: list[str], context: Any) -> tuple[str, str]:
        return approval.summary(conn, pending)

    def record(self, conn: psycopg.Connection, pending: list[str], *, requested_by: str, decided_by: str,
               outcome: str, reason: str | None, ref: dict[str, Any], context: Any) -> None:  # fmt: skip
        approval.record(conn, pending, requested_by=requested_by, decided_by=decided_by, outcome=outcome,
                        reason=reason, ref=ref)  # fmt: skip
