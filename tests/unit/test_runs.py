"""Sync run bookkeeping: one open run per tracker, and the tracker lock between workers."""

from __future__ import annotations

import pytest
from closeout.trackers import runs


def test_a_second_worker_gets_syncbusy_while_the_first_holds_the_lock(warehouse, monkeypatch):
    from closeout.warehouse.db import connect

    monkeypatch.setattr(runs, "LOCK_WAIT", "200ms")
    with connect(autocommit=True) as first, connect(autocommit=True) as second:
        runs.acquire_source_lock(first, "toggl")
        with pytest.raises(runs.SyncBusy):
            runs.acquire_source_lock(second, "toggl")
        runs.acquire_source_lock(second, "clockify")  # other trackers are independent
        first.close()  # released when the first session ends: the second now waits for it and gets it
        runs.acquire_source_lock(second, "toggl")


def test_a_paused_run_is_adopted_and_runs_again(warehouse):
    from closeout.warehouse.db import connect

    with connect(autocommit=True) as conn:
        run = runs.begin(conn, "toggl", "r1", cursor_key="reference_at")
        runs.pause(conn, run, "quota spent")
        again = runs.begin(conn, "toggl", "r2", cursor_key="reference_at")
        assert again.sync_run_id == run.sync_run_id and again.resumed and again.status == "running"
        ids = conn.execute("SELECT airflow_run_ids FROM closeout_data.sync_runs").fetchone()[0]
        assert ids == ["r1", "r2"]
