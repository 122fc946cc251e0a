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
* **Expenses** (`closeout.expenses`, see docs/expenses.md): the whole expense listing is re-read with the window;
  expenses it no longer returns get a *deleted* version.

Params: `full_refresh`, `sweep` (`auto`, `always`, `never`). Settings: Variable `closeout_sync` (`clockify` key).
Schedule: env `CLOSEOUT_CLOCKIFY_SCHEDULE`. Pool: `clockify_api`.
"""

from __future__ import annotations

# an Airflow DAG file: the shape is shared with the other windowed tracker (closeout.dag_builders)
from closeout.dag_builders import windowed_sync_dag

windowed_sync_dag("clockify", doc_md=__doc__, schedule_env="CLOSEOUT_CLOCKIFY_SCHEDULE", expenses=True)
