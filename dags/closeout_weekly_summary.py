"""
### closeout_weekly_summary

The week's time and cost for finance (issue 16 item 5; docs/weekly-summary.md): per client, project and person,
approved hours, billable hours and value, non-billable hours, contractor cost (payee cost rates), expenses and
margin per currency; time not yet approved; what changed in earlier weeks since they were summarised.

1. **summarise**: reads the warehouse in one snapshot, writes `summaries/YYYY-Www/` in the artifact store
   (`summary.html`, `summary.csv`, `payroll.csv`, `summary.json`) and records the week in
   `closeout.weekly_summaries`. A rerun re-renders in place.
2. **send**: e-mails finance (connection `finance_smtp`, its `to` recipients) once per week; a rerun does not send
   again. `resend` asks for it again (recorded with this run's id).

Params: `week` (`YYYY-Www`, ISO week; default the week before the run's date), `resend` (bool). Schedule: Mondays
06:00 (env `CLOSEOUT_WEEKLY_SUMMARY_SCHEDULE`, a cron; `none` for manual).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args, schedule

WEEK_PATTERN = r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$"


@dag(
    dag_id="closeout_weekly_summary",
    schedule=schedule("CLOSEOUT_WEEKLY_SUMMARY_SCHEDULE", "0 6 * * 1"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "week": Param(None, type=["null", "string"], pattern=WEEK_PATTERN,
                      description="ISO week YYYY-Www; empty: the week before the run's date."),
        "resend": Param(False, type="boolean", description="Send the e-mail again even if this week was sent."),
    },
    tags=["closeout", "summary", "finance"],
    doc_md=__doc__,
)
def closeout_weekly_summary():
    @task
    def summarise() -> dict:
        from closeout.summary import tasks

        context = get_current_context()
        when = context.get("logical_date") or context.get("run_after")
        return tasks.summarise(context["params"].get("week"), context["run_id"], when.date() if when else None)

    @task
    def send(summary: dict) -> dict:
        from closeout.summary import tasks

        context = get_current_context()
        return tasks.send(summary["week"], context["run_id"], bool(context["params"].get("resend")))

    send(summarise())


closeout_weekly_summary()
