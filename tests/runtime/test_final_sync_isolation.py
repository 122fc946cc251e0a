"""The close's final sync runs in the trackers' pools and never joins a sync run another DAG run started: it
fails (retryably) naming that run, and once that run has finished it syncs the period in a run of its own."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from payments_support import last_month

from sandbox.harvest import generate_dataset

ROOT = Path(__file__).resolve().parents[2]
PERIOD = last_month().strftime("%Y-%m")
CLOSE_RUN = "manual__close_isolation"
OTHER_RUN = "scheduled__2026-12-01T00:30:00+00:00"


def test_each_trackers_final_sync_is_a_task_in_that_trackers_pool_before_the_step() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "closeout_month_end_close.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["closeout_month_end_close"]
    pools = json.loads((ROOT / "pools.json").read_text())
    for tracker in ("harvest", "toggl", "clockify"):
        task = dag.get_task(f"final_sync_{tracker}")
        assert task.pool == f"{tracker}_api" and task.pool in pools
        assert "final_sync" in {t.task_id for t in task.get_flat_relatives(upstream=False)}
    sync = DagBag(dag_folder=str(ROOT / "dags" / "closeout_sync_toggl.py")).dags["closeout_sync_toggl"]
    assert sync.get_task("window").pool == dag.get_task("final_sync_toggl").pool


def _sync_runs(warehouse) -> list[tuple]:
    return warehouse.rows("SELECT sync_run_id, status, airflow_run_ids FROM closeout_data.sync_runs "
                          "WHERE source = 'harvest' ORDER BY sync_run_id")  # fmt: skip


def test_final_sync_refuses_another_runs_unfinished_sync_then_runs_its_own(warehouse, harvest, monkeypatch) -> None:
    from closeout.close import steps, tasks
    from closeout.trackers import runs
    from closeout.warehouse.db import connect

    harvest.load(generate_dataset(40, seed=5, anchor=date.today(), days=60, n_clients=1))
    with connect(autocommit=True) as conn:  # closeout_sync_harvest began a run and has not finished it
        other = runs.begin(conn, "harvest", OTHER_RUN)
    assert tasks.validate(CLOSE_RUN, {"period": PERIOD, "trackers": ["harvest"]})["proceed"] is True
    requests_before = harvest.stats()["requests"]

    with pytest.raises(steps.SyncOfAnotherRun) as refused:
        tasks.run_final_sync_tracker("harvest", CLOSE_RUN)
    message = str(refused.value)
    assert f"sync run {other.sync_run_id}" in message and OTHER_RUN in message and "never joins" in message
    assert _sync_runs(warehouse) == [(other.sync_run_id, "running", [OTHER_RUN])], "not joined"
    assert harvest.stats()["requests"] == requests_before, "the tracker was not called"

    with connect(autocommit=True) as conn:  # its own DAG run finishes it
        runs.finish(conn, runs.load(conn, other.sync_run_id), status="succeeded", cursor=None,
                    sweep_completed=False)  # fmt: skip
    done = tasks.run_final_sync_tracker("harvest", CLOSE_RUN)
    assert done["trackers"]["harvest"]["status"] == "succeeded"
    rows = _sync_runs(warehouse)
    assert rows[0] == (other.sync_run_id, "succeeded", [OTHER_RUN])
    assert rows[1][1:] == ("succeeded", [CLOSE_RUN]) and len(rows) == 2

    skipped = tasks.run_final_sync_tracker("toggl", CLOSE_RUN)  # not in this close's trackers
    assert skipped["included"] is False
    calls = harvest.stats()["requests"]
    step = tasks.run_step("final_sync", CLOSE_RUN)  # the step finds its trackers done by their pool tasks
    assert step["trackers"]["harvest"]["sync_run_id"] == rows[1][0]
    assert harvest.stats()["requests"] == calls
