"""closeout.sync_requests for the trackers whose report pages are POSTs (Toggl, Clockify): a real sync by dag.test
against each sandbox records every call with the path (no host, no credential) and the entries each page brought,
so an auditor sees which request brought which number of records."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import set_conn_extra

pytestmark = pytest.mark.integration


def _report_calls(warehouse, source: str) -> list[tuple]:
    return warehouse.rows(
        """SELECT q.method, q.path, q.status, q.outcome, q.records, q.requests
           FROM closeout.sync_requests q WHERE q.system = %s AND q.method = 'POST' ORDER BY q.sync_run_id, q.seq""",
        (source,),
    )


def _entries(warehouse, source: str) -> int:
    return warehouse.scalar("SELECT count(*) FROM closeout.time_entry_versions WHERE source = %s", (source,))


def test_toggl_report_pages_record_the_entries_they_brought(warehouse, toggl, run_dag, monkeypatch) -> None:
    from sandbox.toggl import generate_dataset

    toggl.load(generate_dataset(120, seed=3, anchor=date.today(), days=30))
    set_conn_extra(monkeypatch, "toggl_default", workspace_id=toggl.workspace_id)
    assert run_dag("closeout_sync_toggl").state == "success"
    calls = _report_calls(warehouse, "toggl")
    assert calls and all(c[1].startswith("/reports/api/v3/workspace/") and "://" not in c[1] for c in calls)
    assert all(c[2] == 200 and c[3] == "ok" and c[4] is not None and c[5] == 1 for c in calls), calls
    # every entry version the sync stored was brought by some report page (running ones are not stored)
    assert sum(c[4] for c in calls) >= _entries(warehouse, "toggl") > 0
    assert toggl.token not in " ".join(c[1] for c in calls)


def test_clockify_report_pages_record_the_entries_they_brought(warehouse, clockify, run_dag, monkeypatch) -> None:
    from sandbox.clockify import generate_dataset

    clockify.load(generate_dataset(120, seed=3, anchor=date.today(), days=30))
    set_conn_extra(monkeypatch, "clockify_default", workspace_id=clockify.workspace_id)
    assert run_dag("closeout_sync_clockify").state == "success"
    calls = _report_calls(warehouse, "clockify")
    assert calls and all("/reports/detailed" in c[1] and "://" not in c[1] for c in calls), calls
    assert all(c[2] == 200 and c[3] == "ok" and c[4] is not None for c in calls), calls
    assert sum(c[4] for c in calls) >= _entries(warehouse, "clockify") > 0
