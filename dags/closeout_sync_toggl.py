"""
### closeout_sync_toggl

Pulls Toggl Track into the warehouse (same `closeout.time_entries` contract as Harvest).

* **Source of completeness**: the Reports API v3 search over a trailing window of dates (the first run:
  `history_days`), re-listed every `sweep_interval_hours`; entries the window no longer returns get a
  *deleted* version. Rates are the ones Toggl resolved (`hourly_rate_in_cents`).
* **Webhooks**: events stored by the receiver plugin name the days to re-list; every run applies them.
* **Budget**: planned in requests per hour (the plan's quota in connection extra `requests_per_hour`).
  When the quota is spent the run is *paused* where it is and the next run continues it.
* Bad records go to `closeout.quarantine`; a run killed mid-way resumes from its last committed page.

Params: `full_refresh`, `sweep` (`auto`, `always`, `never`). Settings: Variable `closeout_sync` (`toggl` key).
Schedule: env `CLOSEOUT_TOGGL_SCHEDULE`. Pool: `toggl_api`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args, schedule

POOL = "toggl_api"


def _settings():
    from closeout.trackers.settings import load_settings

    return load_settings("toggl", dict(get_current_context()["params"]))


@dag(
    dag_id="closeout_sync_toggl",
    schedule=schedule("CLOSEOUT_TOGGL_SCHEDULE", "*/30 * * * *"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    tags=["closeout", "capture", "toggl"],
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
def closeout_sync_toggl():
    @task(pool=POOL)
    def begin() -> int:
        from closeout.trackers import windowed
        from closeout.trackers.toggl.sync import TOGGL

        return windowed.begin_sync(TOGGL, get_current_context()["run_id"], _settings())["sync_run_id"]

    @task(pool=POOL)
    def reference(sync_run_id: int) -> int:
        from closeout.trackers import windowed
        from closeout.trackers.toggl.sync import TOGGL

        windowed.sync_reference(TOGGL, sync_run_id, _settings())
        return sync_run_id

    @task(pool=POOL)
    def window(sync_run_id: int) -> int:
        from closeout.trackers import windowed
        from closeout.trackers.toggl.sync import TOGGL

        windowed.sync_window(TOGGL, sync_run_id, _settings())
        return sync_run_id

    @task(pool=POOL)
    def inbox(sync_run_id: int) -> int:
        from closeout.trackers import windowed
        from closeout.trackers.toggl.sync import TOGGL

        windowed.apply_inbox(TOGGL, sync_run_id, _settings())
        return sync_run_id

    @task
    def finish(sync_run_id: int) -> dict:
        from closeout.trackers import windowed
        from closeout.trackers.toggl.sync import TOGGL

        return windowed.finish_sync(TOGGL, sync_run_id, _settings())

    finish(inbox(window(reference(begin()))))


closeout_sync_toggl()
