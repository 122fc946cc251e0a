"""
### closeout_sync_clockify

Pulls Clockify into the warehouse (same `closeout.time_entries` contract as Harvest and Toggl).

* **Source of completeness**: the detailed report (workspace-wide, with `approvalState`, `invoicingState`,
  the client and the resolved rate) over a trailing window of dates, re-listed every `sweep_interval_hours`;
  entries the window no longer returns get a *deleted* version. Clockify keeps no update time.
* **Webhooks** (`NEW_TIME_ENTRY`, `TIME_ENTRY_UPDATED`, `TIME_ENTRY_DELETED`), stored by the receiver
  plugin, name the days to re-list; every run applies them.
* **Budget**: 50 requests/s on paid workspaces (paced), 30/hour on new free ones (connection extra
  `limit: free`): the run is *paused* when the hour is spent and the next run continues it.
* Bad records go to `closeout.quarantine`; a run killed mid-way resumes from its last committed page.

Params: `full_refresh`, `sweep` (`auto`, `always`, `never`). Settings: Variable `closeout_sync` (`clockify` key).
Schedule: env `CLOSEOUT_CLOCKIFY_SCHEDULE`. Pool: `clockify_api`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args, schedule

POOL = "clockify_api"


def _settings():
    from closeout.trackers.settings import load_settings

    return load_settings("clockify", dict(get_current_context()["params"]))


@dag(
    dag_id="closeout_sync_clockify",
    schedule=schedule("CLOSEOUT_CLOCKIFY_SCHEDULE", "*/30 * * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["closeout", "capture", "clockify"],
    doc_md=__doc__,
    params={
        "full_refresh": Param(False, type="boolean", description="Re-list the whole history window."),
        "sweep": Param(
            "auto",
            type="string",
            enum=["auto", "always", "never"],
            description="Trailing-window re-list: when due, always, or never.",
        ),
    },
)
def closeout_sync_clockify():
    @task(pool=POOL)
    def begin() -> int:
        from closeout.trackers import windowed
        from closeout.trackers.clockify.sync import CLOCKIFY

        return windowed.begin_sync(CLOCKIFY, get_current_context()["run_id"], _settings())["sync_run_id"]

    @task(pool=POOL)
    def reference(sync_run_id: int) -> int:
        from closeout.trackers import windowed
        from closeout.trackers.clockify.sync import CLOCKIFY

        windowed.sync_reference(CLOCKIFY, sync_run_id, _settings())
        return sync_run_id

    @task(pool=POOL)
    def window(sync_run_id: int) -> int:
        from closeout.trackers import windowed
        from closeout.trackers.clockify.sync import CLOCKIFY

        windowed.sync_window(CLOCKIFY, sync_run_id, _settings())
        return sync_run_id

    @task(pool=POOL)
    def inbox(sync_run_id: int) -> int:
        from closeout.trackers import windowed
        from closeout.trackers.clockify.sync import CLOCKIFY

        windowed.apply_inbox(CLOCKIFY, sync_run_id, _settings())
        return sync_run_id

    @task
    def finish(sync_run_id: int) -> dict:
        from closeout.trackers import windowed
        from closeout.trackers.clockify.sync import CLOCKIFY

        return windowed.finish_sync(CLOCKIFY, sync_run_id, _settings())

    finish(inbox(window(reference(begin()))))


closeout_sync_clockify()
