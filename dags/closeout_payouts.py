"""
### closeout_payouts

Pays contractors their cost for work on paid, reconciled invoices: bounded batches of Stripe transfers,
each exactly once. Paused at creation; one run at a time.

1. **gate**: refuses (the run fails, the refusal is recorded in `closeout.payout_runs` with the hold ids and
   reasons) while a payout hold is open (`closeout.payout_holds`) or the latest reconciliation in
   `closeout.recon_checks` is not all green ("no reconciliation has run" when there is none), whatever the
   DAG's paused state: a trigger from the UI unpauses a DAG, so the pause is no lock.
2. **plan**: payees from `include/payouts/payees.yaml` (env `CLOSEOUT_PAYEES_CONFIG`); one item per payee,
   paid invoice and currency (hours of the invoice's entries x cost rate, rounded once), in batches of at most
   `batch_size` (default 500, env `CLOSEOUT_PAYOUT_BATCH_SIZE`, hard cap 15,000) with deterministic ids.
   Work of users without a payee is reported in `closeout.payout_exceptions`, not paid.
3. **approval_route** -> **approve** (Airflow's `ApprovalOperator`, assigned at run time to the finance group in
   env `CLOSEOUT_FINANCE_APPROVERS` less the person who triggered the run: one of them approves or rejects in
   the UI's Required Actions; the request lists payees, amounts and totals per currency) -> **release**. Every
   answer is recorded in `closeout.decisions`; an answer by the requester is refused and recorded, and nothing is
   released. Only the deployment can switch the approval off (env `CLOSEOUT_PAYOUTS_APPROVAL=off`, recorded on
   every run it affects); there is no trigger parameter for it. A rejection skips the release (the batches wait
   for the next run's approval).
4. **release**: re-checks the gate (and the open holds again before each transfer), then one Stripe transfer per
   pending item of approved batches, with the
   item's own idempotency key recorded before the call; a transfer that failed for a reason that may pass (5xx,
   timeout, 429) stays pending and the task fails so Airflow retries it; one Stripe refuses for good (a 4xx
   such as `balance_insufficient`) stops that item with a row in `closeout.payout_exceptions` naming the
   item, payee, amount and Stripe's code, and the rest of the batch goes out. A transferred item is never sent
   again. Resolving a refusal (send again, or abandon) is recorded: `python -m closeout.payouts.exceptions`.
5. **post_journals**: posts the payouts' journals (the accrual of every planned item, the transfer of every
   transferred one) with the rest of the ledger (`closeout.ledger_lines`); also after a rejected approval, so
   the accruals are in the books; the events DAG's posting picks up anything a failed run left.

Items: `closeout.payout_items`; batches: `closeout.payout_batches`. Schedule: daily (env
`CLOSEOUT_PAYOUTS_SCHEDULE`, a cron; `none` for manual).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args, schedule


@dag(
    dag_id="closeout_payouts",
    schedule=schedule("CLOSEOUT_PAYOUTS_SCHEDULE", "0 6 * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    default_args=default_args(),
    tags=["closeout", "payouts", "stripe"],
    doc_md=__doc__,
    params={
        "batch_size": Param(None, type=["null", "integer"], minimum=1, maximum=15000,
                            description="Items per batch; empty: env CLOSEOUT_PAYOUT_BATCH_SIZE (default 500)."),
    },
)  # fmt: skip
def closeout_payouts():
    from closeout.payouts.approval_operator import FinanceApprovalOperator

    @task
    def gate() -> dict:
        from airflow.sdk.exceptions import AirflowFailException
        from closeout.payouts import tasks

        try:
            return tasks.check_gate(get_current_context()["run_id"])
        except tasks.PayoutsRefused as exc:  # a person must act (release the hold, reconcile): no retry
            raise AirflowFailException(str(exc)) from exc

    @task
    def plan(gate_result: dict) -> dict:
        from closeout.payouts import tasks

        context = get_current_context()
        return tasks.plan_payouts(context["run_id"], context["params"].get("batch_size"))

    @task.branch
    def approval_route(planned: dict) -> str:
        from closeout.payouts import tasks

        if planned["awaiting_approval"] and tasks.approval_required():
            return "approve"
        return "release"

    approve = FinanceApprovalOperator(task_id="approve", plan_task_id="plan")

    @task(trigger_rule="none_failed_min_one_success")
    def release(planned: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException
        from closeout.payouts import tasks
        from closeout.payouts.approval import requester
        from closeout.payouts.release import TransfersRefused

        context = get_current_context()
        try:
            return tasks.release_batches(context["run_id"], planned["awaiting_approval"],
                                         requested_by=requester(context["dag_run"]))  # fmt: skip
        except (tasks.PayoutsRefused, TransfersRefused) as exc:  # a person must act: no retry
            raise AirflowFailException(str(exc)) from exc

    @task(trigger_rule="none_failed_min_one_success")
    def post_journals() -> dict:
        from closeout.ledger import tasks

        return tasks.post_journals(get_current_context()["run_id"])

    planned = plan(gate())
    route = approval_route(planned)
    done = release(planned)
    route >> [approve, done]
    approve >> done
    [planned, done] >> post_journals()


closeout_payouts()
