"""
### closeout_invoice_drafts

Builds and refreshes invoice drafts for every open period from the synced entries
(`closeout.time_entries`), per client, currency and billing period.

* **Billing configuration** per client (period, currency, grouping, approval, terms, rounding, publish
  policy, rate card) comes from the file named by env `CLOSEOUT_BILLING_CONFIG`
  (default `include/billing/clients.yaml`); see `closeout.billing_clients`.
* **Rates** come from each entry version's own snapshot; amounts are quantity x rate rounded once, half-up.
* **Drafts** are rebuilt as new versions (`closeout.invoice_versions`); only changed entries are looked at.
* **Published invoices are final**: a later edit becomes an *adjustment* line and a deletion a *credit* line on
  the client's next draft, linked to the line they correct.
* **Kept out, with the reason**: `closeout.billing_exceptions` (no rate, wrong currency, over 24 h a day,
  no client, already invoiced in the tracker). Rate drift: `closeout.rate_drift`. Runs: `closeout.draft_runs`.

Schedule: after every tracker sync (the `closeout_time_entries` asset) and daily at 05:00 UTC
(env `CLOSEOUT_DRAFTS_SCHEDULE`, a cron; `none` for asset-triggered only).
"""

from __future__ import annotations

import os

from airflow.sdk import dag, get_current_context, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable
from closeout.dag_defaults import START_DATE, TIME_ENTRIES, default_args


def _schedule():
    cron = os.environ.get("CLOSEOUT_DRAFTS_SCHEDULE", "0 5 * * *").strip()
    if cron.lower() in {"", "none", "manual"}:
        return [TIME_ENTRIES]
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=[TIME_ENTRIES])


@dag(
    dag_id="closeout_invoice_drafts",
    schedule=_schedule(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["closeout", "billing"],
    doc_md=__doc__,
)
def closeout_invoice_drafts():
    @task
    def load_billing_config() -> dict:
        from closeout.billing import tasks

        return tasks.load_config()

    @task
    def refresh_drafts(config: dict) -> dict:
        from closeout.billing import tasks

        return tasks.refresh(get_current_context()["run_id"])

    refresh_drafts(load_billing_config())


closeout_invoice_drafts()
