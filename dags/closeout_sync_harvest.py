"""
### closeout_sync_harvest

Pulls Harvest (API v2) into the warehouse: clients, projects, tasks, users, time entries and expenses
(`closeout.expenses`, versions in `closeout.expense_versions`; see docs/expenses.md).

* **First run**: full listing. **Then**: incremental by `updated_since` (last seen `updated_at` minus an overlap).
* **Deletions**: Harvest deletes without a trace, so a trailing window of `spent_date` (default 90 days) is
  re-listed every `sweep_interval_hours` and entries it no longer returns get a *deleted* version.
* Every changed entry becomes a new row in `closeout.time_entry_versions`; nothing is ever deleted.
* Bad records go to `closeout.quarantine` with the reason and raw payload; the run carries on.
* A run killed mid-way resumes from its last committed page (`closeout.sync_runs.checkpoint`).
* Harvest calls run in pool `harvest_api` (load `pools.json`); the hook paces itself to 100 requests / 15 s.

Params: `full_refresh` (re-list everything), `sweep` (`auto`, `always`, `never`).
Settings: Airflow Variable `closeout_sync` (see README). Schedule: env `CLOSEOUT_HARVEST_SCHEDULE`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task
from closeout.dag_defaults import START_DATE, TIME_ENTRIES, default_args, schedule

POOL = "harvest_api"


def _settings():
    from closeout.trackers.settings import load_settings

    return load_settings("harvest", dict(get_current_context()["params"]))


@dag(
    dag_id="closeout_sync_harvest",
    schedule=schedule("CLOSEOUT_HARVEST_SCHEDULE", "*/30 * * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["closeout", "capture", "harvest"],
    doc_md=__doc__,
    params={
        "full_refresh": Param(False, type="boolean", description="Ignore the cursor and list every entry."),
        "sweep": Param(
            "auto",
            type="string",
            enum=["auto", "always", "never"],
            description="Deletion sweep of the trailing window: when due, always, or never.",
        ),
    },
)
def closeout_sync_harvest():
    @task(pool=POOL)
    def begin() -> int:
        from closeout.trackers.harvest import sync

        return sync.begin_sync(get_current_context()["run_id"], _settings())["sync_run_id"]

    @task(pool=POOL)
    def reference(sync_run_id: int) -> int:
        from closeout.trackers.harvest import sync

        sync.sync_reference(sync_run_id, _settings())
        return sync_run_id

    @task(pool=POOL)
    def entries(sync_run_id: int) -> int:
        from closeout.trackers.harvest import sync

        sync.sync_entries(sync_run_id, _settings())
        return sync_run_id

    @task(pool=POOL)
    def expenses(sync_run_id: int) -> int:
        from closeout.trackers.expenses import harvest

        harvest.sync_expenses(sync_run_id, _settings())
        return sync_run_id

    @task(pool=POOL)
    def sweep(sync_run_id: int) -> int:
        from closeout.trackers.harvest import sync

        sync.sweep_deletions(sync_run_id, _settings())
        return sync_run_id

    @task(outlets=[TIME_ENTRIES])
    def finish(sync_run_id: int) -> dict:
        from closeout.trackers.harvest import sync

        return sync.finish_sync(sync_run_id, _settings())

    finish(sweep(expenses(entries(reference(begin())))))


closeout_sync_harvest()
