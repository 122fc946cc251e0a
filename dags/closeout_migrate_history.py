"""
### closeout_migrate_history

One-time import of a tracker's historical **detailed time export** (CSV), for the history the API sync
does not reach. Manual only.

* Maps every row to the tracker's users (by email, or by name) and projects (client + project name)
  from the reference data its sync captured: run `closeout_sync_<tracker>` first.
* Reports per entity the count in the export and the count imported (`closeout.history_imports`), and
  lists every row it could not map or read (`closeout.history_unmapped`) - it never skips silently.
* **Fails** when the counts do not tie out, unless `accept_unmapped` is set **with a reason** (recorded).
* Rows dated on or after `cutoff` (default `auto`: the first day the API sync holds) are counted as covered
  by the sync and not imported, so nothing is billed twice. Re-running the same import creates nothing new.

* Reads **only inside the import location** `CLOSEOUT_IMPORT_URL` (a folder or an object-storage prefix such as
  `s3://bucket/imports`, read with the `closeout_artifacts` connection's credentials; default `imports/` under the
  artifacts location `CLOSEOUT_ARTIFACTS_URL`, see docs/artifacts.md). A `path` outside it
  (`/etc/passwd`, `../x`, a link leading out, another bucket or scheme) is refused, naming the param.
* A file that is not UTF-8 fails the import, naming the file, the line and the byte offset (a BOM is fine).

Params: `tracker` (`harvest`, `toggl`, `clockify`), `path` (a CSV file or a folder of them, relative to the import
location, or a full path/URL inside it), `accept_unmapped`, `reason`, `cutoff` (`auto`, `none` or `YYYY-MM-DD`).
Bad params fail the run at once, without retries. See docs/security.md.
CLI: `airflow dags trigger closeout_migrate_history -c '{"tracker": "harvest", "path": "harvest/2024.csv"}'`
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task
from closeout.dag_defaults import START_DATE, default_args


@dag(
    dag_id="closeout_migrate_history",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(retries=1),
    tags=["closeout", "capture", "migration"],
    doc_md=__doc__,
    params={
        "tracker": Param("harvest", type="string", enum=["harvest", "toggl", "clockify"]),
        "path": Param("", type="string", minLength=1,
                      description="CSV file or folder of exports inside the import location (CLOSEOUT_IMPORT_URL)"),
        "accept_unmapped": Param(False, type="boolean", description="Import although rows could not be mapped"),
        "reason": Param("", type="string", description="Why unmapped rows are accepted (required with it)"),
        "cutoff": Param(
            "auto",
            type="string",
            pattern=r"^(auto|none|\d{4}-\d{2}-\d{2})$",
            description="Import only rows before this date; auto = the first day the sync holds",
        ),
    },
)
def closeout_migrate_history():
    @task
    def import_history() -> dict:
        from airflow.sdk.exceptions import AirflowFailException
        from closeout.params import ParamError
        from closeout.trackers.history.exports import ExportUnreadable
        from closeout.trackers.history.importer import run_import

        context = get_current_context()
        params = context["params"]
        try:
            return run_import(params["tracker"], params["path"], accept_unmapped=params["accept_unmapped"],
                              reason=params["reason"] or None, cutoff=params["cutoff"],
                              airflow_run_id=context["run_id"])  # fmt: skip
        except (ParamError, ExportUnreadable) as exc:  # the same input fails the same way: no retry
            raise AirflowFailException(str(exc)) from exc

    import_history()


closeout_migrate_history()
