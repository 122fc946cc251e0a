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
3. **approval_route** -> **approve** (Airflow's `ApprovalOperator`: a person approves or rejects in the UI's
   Required Actions) -> **release**. Param `approval` (or env `CLOSEOUT_PAYOUTS_APPROVAL=off`) switches the
   approval off; a rejection skips the release (the batches wait for the next run's approval).
4. **release**: re-checks the gate, then one Stripe transfer per pending item of approved batches, with the
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
        "approval": Param(None, type=["null", "boolean"],
                          description="Require approval before release; empty: env CLOSEOUT_PAYOUTS_APPROVAL "
                                      "(default on)."),
        "batch_size": Param(None, type=["null", "integer"], minimum=1, maximum=15000,
                            description="Items per batch; empty: env CLOSEOUT_PAYOUT_BATCH_SIZE (default 500)."),
    },
)  # fmt: skip
def closeout_payouts():
    from airflow.providers.standard.operators.hitl import ApprovalOperator

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

        if planned["awaiting_approval"] and tasks.approval_required(get_current_context()["params"].get("approval")):
            return "approve"
        return "release"

    approve = ApprovalOperator(
        task_id="approve",
        subject="closeout payouts: approve {{ ti.xcom_pull(task_ids='plan')['awaiting_approval'] | length }} batches",
        body=(
            "Batches awaiting approval: {{ ti.xcom_pull(task_ids='plan')['awaiting_approval'] }}.\n\n"
            "Items and amounts: `SELECT * FROM closeout.payout_items WHERE batch_id = ANY(...)`; "
            "batches: `closeout.payout_batches`. Approve releases one Stripe transfer per item; "
            "Reject skips the release (the batches wait for the next run)."
        ),
    )

    @task(trigger_rule="none_failed_min_one_success")
    def release(planned: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException
        from closeout.payouts import tasks
        from closeout.payouts.release import TransfersRefused

        context = get_current_context()
        answer = context["ti"].xcom_pull(task_ids="approve")
        if answer:
            by = f"approval: {(answer.get('responded_by_user') or {}).get('name') or 'unknown user'}"
        else:
            by = "auto: approval switched off"
        try:
            return tasks.release_batches(context["run_id"], planned["awaiting_approval"], by)
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
