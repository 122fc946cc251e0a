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

# an Airflow DAG file: the shape is shared with the other windowed tracker (closeout.dag_builders)
from closeout.dag_builders import windowed_sync_dag

windowed_sync_dag("toggl", doc_md=__doc__, schedule_env="CLOSEOUT_TOGGL_SCHEDULE")
