"""Run a task's failure callbacks exactly as Airflow's dag-processor does for a task whose worker died.

Invoked as a script in a fresh interpreter whose environment holds only Airflow's home and the connections (no
task context, no worker settings): parses the DAG file, builds the ``TaskCallbackRequest`` the scheduler sends
for a task killed externally, and hands it to ``airflow.dag_processing.processor._execute_task_callbacks``.
Prints one JSON line per callback outcome read back from the warehouse by the caller.

usage: python dag_processor_callback.py DAG_FILE DAG_ID TASK_ID RUN_ID
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime


def main(dag_file: str, dag_id: str, task_id: str, run_id: str) -> None:
    import structlog
    from airflow.api_fastapi.execution_api.datamodels import taskinstance as ti_datamodel
    from airflow.callbacks.callback_requests import TaskCallbackRequest
    from airflow.dag_processing.dagbag import DagBag
    from airflow.dag_processing.processor import _execute_task_callbacks
    from airflow.utils.state import DagRunState, TaskInstanceState

    bag = DagBag(dag_folder=dag_file)
    assert not bag.import_errors, bag.import_errors
    now = datetime.now(UTC)
    request = TaskCallbackRequest(
        filepath=dag_file,
        bundle_name="dags-folder",
        bundle_version=None,
        msg="Task was killed externally: its worker stopped heartbeating",
        ti=ti_datamodel.TaskInstance(id=uuid.uuid4(), task_id=task_id, dag_id=dag_id, run_id=run_id, try_number=3,
                                     dag_version_id=uuid.uuid4(), hostname="worker-that-died"),
        task_callback_type=TaskInstanceState.FAILED,
        context_from_server=ti_datamodel.TIRunContext(
            dag_run=ti_datamodel.DagRun(dag_id=dag_id, run_id=run_id, logical_date=now, data_interval_start=now,
                                        data_interval_end=now, run_after=now, start_date=now, end_date=None,
                                        run_type="manual", state=DagRunState.RUNNING, conf={},
                                        consumed_asset_events=[], partition_key=None),
            max_tries=3,
        ),
    )  # fmt: skip
    _execute_task_callbacks(bag, request, structlog.get_logger("dag-processor"))


if __name__ == "__main__":
    main(*sys.argv[1:5])
