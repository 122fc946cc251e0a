"""DAG shapes shared by several DAG ids. Imported at parse time: Airflow's task SDK only.

Each DAG file still exists, one per DAG id (the contract), and stays the place to read its doc.
"""

from __future__ import annotations

import importlib
from typing import Any

from closeout.dag_defaults import START_DATE, TIME_ENTRIES, default_args, schedule


def windowed_sync_dag(
    source: str, *, doc_md: str, schedule_env: str, default_schedule: str = "*/30 * * * *", expenses: bool = False
) -> Any:
    """The sync DAG of a windowed tracker (see ``closeout.trackers.windowed``):
    begin -> reference -> window -> inbox [-> expenses] -> finish, its tracker calls in pool ``<source>_api``."""
    from airflow.sdk import Param, dag, get_current_context, task

    pool = f"{source}_api"

    def tracker_and_settings() -> tuple[Any, Any]:
        from closeout.trackers.settings import load_settings

        module = importlib.import_module(f"closeout.trackers.{source}.sync")
        return module.TRACKER, load_settings(source, dict(get_current_context()["params"]))

    @dag(
        dag_id=f"closeout_sync_{source}",
        schedule=schedule(schedule_env, default_schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=default_args(f"closeout_sync_{source}"),
        tags=["closeout", "capture", source],
        doc_md=doc_md,
        params={
            "full_refresh": Param(False, type="boolean", description="Re-list the whole history window."),
            "sweep": Param("auto", type="string", enum=["auto", "always", "never"],
                           description="Trailing-window re-list: when due, always, or never."),
        },
    )  # fmt: skip
    def windowed_sync():
        @task(pool=pool)
        def begin() -> int:
            from closeout.trackers import windowed

            tracker, settings = tracker_and_settings()
            return windowed.begin_sync(tracker, get_current_context()["run_id"], settings)["sync_run_id"]

        @task(pool=pool)
        def reference(sync_run_id: int) -> int:
            from closeout.trackers import windowed

            windowed.sync_reference(*_with(tracker_and_settings(), sync_run_id))
            return sync_run_id

        @task(pool=pool)
        def window(sync_run_id: int) -> int:
            from closeout.trackers import windowed

            windowed.sync_window(*_with(tracker_and_settings(), sync_run_id))
            return sync_run_id

        @task(pool=pool)
        def inbox(sync_run_id: int) -> int:
            from closeout.trackers import windowed

            windowed.apply_inbox(*_with(tracker_and_settings(), sync_run_id))
            return sync_run_id

        @task(pool=pool)
        def expenses_phase(sync_run_id: int) -> int:
            tracker, settings = tracker_and_settings()
            tracker.sync_expenses(sync_run_id, settings)
            return sync_run_id

        @task(outlets=[TIME_ENTRIES])
        def finish(sync_run_id: int) -> dict:
            from closeout.trackers import windowed

            return windowed.finish_sync(*_with(tracker_and_settings(), sync_run_id))

        listed = inbox(window(reference(begin())))
        finish(expenses_phase.override(task_id="expenses")(listed) if expenses else listed)

    return windowed_sync()


def _with(tracker_settings: tuple[Any, Any], sync_run_id: int) -> tuple[Any, int, Any]:
    tracker, settings = tracker_settings
    return tracker, sync_run_id, settings
