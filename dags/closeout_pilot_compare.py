"""
### closeout_pilot_compare

The pilot's daily comparison (docs/pilot.md). Per client, month and currency: the tracker's time entries against
closeout's invoice lines, both ways (entries no line bills, lines whose entry is gone, amounts that differ), and
for a month the team still invoices from the tracker, against the tracker's own billing (Harvest `is_billed` /
`invoice`, Clockify's invoiced flag). Results: `closeout.pilot_comparisons`, the differences behind them
`closeout.pilot_comparison_items`.

Then the rollback criteria of the pilot configuration (`CLOSEOUT_PILOT_CONFIG`: a hard mismatch, an amount
difference above the tolerance, N failing days in a row) are evaluated for the cohort; each breach is recorded in
`closeout.pilot_breaches` and alerted once (platform webhook, finance e-mail and webhook) naming the client, the
month and the criterion. Params: `compared_on` (YYYY-MM-DD, default today), `period` (YYYY-MM: only that month;
default this month and the previous, `compare.months`). Schedule: daily (env `CLOSEOUT_PILOT_COMPARE_SCHEDULE`).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args, schedule


@dag(
    dag_id="closeout_pilot_compare",
    schedule=schedule("CLOSEOUT_PILOT_COMPARE_SCHEDULE", "@daily"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "compared_on": Param(None, type=["null", "string"], format="date",
                             description="The comparison day (YYYY-MM-DD); empty for today."),
        "period": Param(None, type=["null", "string"], pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                        description="Compare only this month (YYYY-MM); empty for the configured months."),
    },
    tags=["closeout", "pilot"],
    doc_md=__doc__,
)  # fmt: skip
def closeout_pilot_compare():
    @task
    def compare() -> dict:
        from closeout.params import date_param, period_param
        from closeout.pilot import tasks

        context = get_current_context()
        p = context["params"]
        return tasks.compare(context["run_id"], date_param("compared_on", p.get("compared_on")),
                             period_param("period", p.get("period")))  # fmt: skip

    compare()


closeout_pilot_compare()
