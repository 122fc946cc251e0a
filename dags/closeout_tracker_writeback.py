"""
### closeout_tracker_writeback

Step 11 of the chain: the trackers show as billed exactly the time and expenses closeout billed.

* `harvest`: each invoice issued in Stripe (open or paid) becomes a Harvest invoice for the same client, with
  Harvest's import of uninvoiced time and expenses where that selects exactly closeout's items (else explicit
  line items and a recorded `gap` per item Harvest still shows unbilled), marked sent without e-mail; Stripe
  payments become Harvest payments; credit notes become negative line items.
* `clockify`: the billed entries are marked invoiced (`PATCH .../time-entries/invoiced`, in batches).

Every write is a row of `closeout.tracker_writebacks`, recorded before and after the call and never repeated
(a lost answer is looked up first). Pool `closeout_tracker_writeback` (load `pools.json`). Schedule: hourly (env
`CLOSEOUT_TRACKER_WRITEBACK_SCHEDULE`). Docs: docs/tracker-writeback.md.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from closeout.dag_defaults import START_DATE, default_args, schedule

POOL = "closeout_tracker_writeback"


@dag(
    dag_id="closeout_tracker_writeback",
    schedule=schedule("CLOSEOUT_TRACKER_WRITEBACK_SCHEDULE", "@hourly"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["closeout", "writeback", "harvest", "clockify"],
    doc_md=__doc__,
)
def closeout_tracker_writeback():
    @task(pool=POOL)
    def harvest() -> dict:
        from closeout.writeback import tasks

        return tasks.writeback_harvest()

    @task(pool=POOL)
    def clockify() -> dict:
        from closeout.writeback import tasks

        return tasks.writeback_clockify()

    harvest()
    clockify()


closeout_tracker_writeback()
