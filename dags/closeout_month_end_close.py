"""
### closeout_month_end_close

Closes one month: manual only, one close at a time (also across Airflow deployments: the warehouse allows one
running close, `closeout.period_closes`).

1. **validate**: the period (`YYYY-MM`, over), no other close running, not locked by anyone but a close of it that
   failed. A period that already closed successfully ends here: "period 2026-10 was closed by run X at Y; nothing
   changed; report: URL" - every other task is skipped.
2. **final_sync_harvest** -> **final_sync_toggl** -> **final_sync_clockify** -> **final_sync**: each tracker in
   `trackers`, re-listing the whole period with a deletion sweep, in that tracker's pool (`<tracker>_api`, as
   its sync DAG); a sync run another DAG run started and has not finished is never joined: the task retries.
3. **lock_period**: later edits to the period become adjustments in the next one.
4. **drafts** -> 5. **approve_held_drafts** -> 6. **publish** (as of the first day after the period;
   `publish_policy`: `as_configured` each client's policy, held drafts stay held; `auto` also publishes the period's
   held drafts once finance approves them; `hold` publishes nothing) -> 7. **events** -> 8. **journals** ->
   9. **accounting_export** -> 10. **reconcile** (a breach pauses payouts, opens a hold, alerts finance and fails
   the close) -> 11. **evidence** (the period's evidence pack in the artifact store, `docs/evidence.md`; not in a
   dry run) -> 12. **close_report** (HTML, CSV, JSON; linked from this run's note).

**approve_held_drafts** (with `publish_policy: auto` and held drafts in the period): Airflow's `ApprovalOperator`,
assigned at run time to the finance group in env `CLOSEOUT_FINANCE_APPROVERS` less the person who triggered the
close; the request lists each held draft (client, period, amount, why held) and totals per currency. The close
never approves anything itself: Approve publishes those drafts, Reject keeps them held (the close goes on), and
every answer is one row per draft in `closeout.decisions` with `requested_by` and `decided_by`; an answer by the
requester is refused, recorded, and fails the close. Only the deployment can switch the approval off (env
`CLOSEOUT_HELD_DRAFTS_APPROVAL=off`, recorded on the close run); there is no trigger parameter for it. A close
with no held drafts does not wait.

**dry_run**: everything except Stripe mutations (publish is a preview of invoices and totals), the lock and the
payout gate (breaches are reported only); the export goes to `dry-run/`, the report is marked DRY RUN.
A failed task can be cleared and retried alone: each step records what it did in the close run.

CLI: `airflow dags trigger closeout_month_end_close -c '{"period": "2026-10"}'`
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk import chain as chain_linear
from closeout.dag_defaults import START_DATE, default_args

TRACKERS = ["harvest", "toggl", "clockify"]  # closeout.close.params.TRACKERS (not imported: parse stays light)
PUBLISH_POLICIES = ["as_configured", "auto", "hold"]


def _previous_month() -> str:
    first = datetime.now(UTC).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def _step(name: str, tracker: str | None = None) -> dict:
    """Run one recorded step (``tracker``: that tracker's part of the final sync); a refusal (a person must act)
    fails without retries."""
    from airflow.sdk.exceptions import AirflowFailException
    from closeout.close import tasks
    from closeout.close.runs import CloseRefused
    from closeout.payments.publish import PublicationsStopped

    try:
        if tracker is not None:
            return tasks.run_final_sync_tracker(tracker, get_current_context()["run_id"])
        return tasks.run_step(name, get_current_context()["run_id"])
    except (CloseRefused, PublicationsStopped) as exc:
        raise AirflowFailException(str(exc)) from exc


@dag(
    dag_id="closeout_month_end_close",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["closeout", "close"],
    doc_md=__doc__,
    params={
        "period": Param(_previous_month(), type="string", pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                        title="Period", description="The month to close, YYYY-MM (it must be over)."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Everything except Stripe mutations, the lock and the payout gate."),
        "trackers": Param(TRACKERS, type="array", items={"type": "string", "enum": TRACKERS}, minItems=1,
                          uniqueItems=True, title="Trackers", description="Trackers the final sync includes."),
        "publish_policy": Param("as_configured", type="string", enum=PUBLISH_POLICIES, title="Publish policy",
                                description="as_configured: each client's policy (held drafts stay held); auto: also "
                                            "publish the period's held drafts once someone in finance other than "
                                            "you approves them (approve_held_drafts); hold: publish nothing."),
    },
)  # fmt: skip
def closeout_month_end_close():
    from closeout.close.approval_operator import HeldDraftsApprovalOperator

    @task.short_circuit
    def validate() -> dict | bool:
        from airflow.sdk.exceptions import AirflowFailException
        from closeout.close import tasks
        from closeout.close.runs import CloseRefused

        context = get_current_context()
        try:
            result = tasks.validate(context["run_id"], dict(context["params"]))
        except CloseRefused as exc:  # malformed, not over, locked, another close running: no retry
            raise AirflowFailException(str(exc)) from exc
        return result if result["proceed"] else False

    def final_sync_of(tracker: str):
        @task(task_id=f"final_sync_{tracker}", pool=f"{tracker}_api")
        def final_sync_tracker() -> dict:
            return _step("final_sync", tracker)

        return final_sync_tracker()

    @task
    def final_sync() -> dict:
        return _step("final_sync")

    @task
    def lock_period() -> dict:
        return _step("lock_period")

    @task
    def drafts() -> dict:
        return _step("drafts")

    @task
    def publish() -> dict:
        return _step("publish")

    @task
    def events() -> dict:
        return _step("events")

    @task
    def journals() -> dict:
        return _step("journals")

    @task
    def accounting_export() -> dict:
        return _step("accounting_export")

    @task
    def reconcile() -> dict:
        return _step("reconcile")

    @task
    def evidence() -> dict:
        return _step("evidence")

    @task
    def close_report() -> dict:
        from closeout.close import tasks

        return tasks.close_report(get_current_context()["run_id"])

    approve_held_drafts = HeldDraftsApprovalOperator(task_id="approve_held_drafts")

    chain = [validate(), *[final_sync_of(tracker) for tracker in TRACKERS], final_sync(), lock_period(), drafts(),
             approve_held_drafts, publish(), events(), journals(), accounting_export(), reconcile(), evidence(),
             close_report()]  # fmt: skip
    chain_linear(*chain)


closeout_month_end_close()
