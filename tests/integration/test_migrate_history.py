"""closeout_migrate_history through real DAG runs: exports written by the tracker sandboxes, reference
data from the real sync DAGs, the embedded warehouse."""

from __future__ import annotations

import csv
from datetime import date

import pytest
from conftest import set_conn_extra

from sandbox import exports
from sandbox.clockify import generate_dataset as clockify_dataset
from sandbox.harvest import generate_dataset as harvest_dataset
from sandbox.toggl import generate_dataset as toggl_dataset

pytestmark = pytest.mark.integration

DAG_ID = "closeout_migrate_history"
OLDER = 400  # days the exported history is moved back: older than anything the API sync holds


def last_import(warehouse) -> dict:
    row = warehouse.rows("SELECT import_id, status, counts, accepted_reason FROM closeout.history_imports "
                         "ORDER BY import_id DESC LIMIT 1")[0]  # fmt: skip
    return dict(zip(("id", "status", "counts", "reason"), row, strict=True))


def csv_rows(path) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.DictReader(handle))


@pytest.fixture(autouse=True)
def import_location(monkeypatch, tmp_path):
    """The import reads only inside CLOSEOUT_IMPORT_URL: these tests write their exports under tmp_path."""
    monkeypatch.setenv("CLOSEOUT_IMPORT_URL", str(tmp_path))


@pytest.fixture
def harvest_history(warehouse, harvest, run_dag, tmp_path):
    harvest.load(harvest_dataset(150, seed=8, anchor=date.today(), days=30))
    assert run_dag("closeout_sync_harvest").state == "success"  # users and projects to map against
    return exports.harvest_export(harvest, tmp_path / "harvest" / "detailed_time_2024.csv", shift_days=OLDER)


def test_an_export_that_ties_out_is_imported_once(warehouse, harvest_history, run_dag):
    synced = warehouse.scalar("SELECT count(*) FROM closeout.time_entries")
    in_export = csv_rows(harvest_history)
    result = run_dag(DAG_ID, {"tracker": "harvest", "path": str(harvest_history.parent)})
    assert result.state == "success", result
    report = last_import(warehouse)
    entries = report["counts"]["time_entries"]
    assert report["status"] == "imported"
    assert entries["in_export"] == in_export == entries["to_import"] == entries["in_warehouse"]
    assert entries["new_versions"] == in_export and entries["covered_by_sync"] == 0
    assert report["counts"]["users"]["unmapped"] == 0 and report["counts"]["projects"]["unmapped"] == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries") == synced + in_export
    # amounts and keys as the tracker's: same users and projects as the synced entries
    assert (
        warehouse.scalar("""SELECT count(*) FROM closeout.time_entries i WHERE i.source_id LIKE 'csv:%%'
                               AND NOT EXISTS (SELECT 1 FROM closeout.time_entries s
                                               WHERE s.source_id NOT LIKE 'csv:%%' AND s.user_key = i.user_key)""")
        == 0
    )

    # the same files again: nothing new
    assert run_dag(DAG_ID, {"tracker": "harvest", "path": str(harvest_history)}).state == "success"
    again = last_import(warehouse)["counts"]["time_entries"]
    assert again["new_versions"] == 0 and again["already_imported"] == in_export
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries") == synced + in_export


def test_unmappable_rows_are_listed_and_fail_the_import_unless_accepted(warehouse, harvest_history, run_dag):
    with harvest_history.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=exports.HARVEST_COLUMNS)
        base = {k: "" for k in exports.HARVEST_COLUMNS}
        writer.writerow({**base, "Date": "2024-01-05", "Client": "Nobody Inc", "Project": "Ghost", "Task": "x",
                         "Hours": "1.0", "Hours Rounded": "1.0", "Billable?": "Yes", "First Name": "Zed",
                         "Last Name": "Unknown", "Billable Rate": "100", "Currency": "USD"})  # fmt: skip
        writer.writerow({**base, "Date": "not a date", "Hours": "1.0"})
    in_export = csv_rows(harvest_history)
    before = warehouse.scalar("SELECT count(*) FROM closeout.time_entries")

    failed = run_dag(DAG_ID, {"tracker": "harvest", "path": str(harvest_history)})
    assert failed.state == "failed"
    report = last_import(warehouse)
    assert report["status"] == "rejected"
    assert report["counts"]["time_entries"]["unmapped_or_unreadable"] == 2
    assert report["counts"]["time_entries"]["in_export"] == in_export
    assert report["counts"]["users"]["unmapped"] == 1 and report["counts"]["projects"]["unmapped"] == 1
    listed = {(r[0], r[1], r[2]) for r in warehouse.rows(
        "SELECT line, field, reason FROM closeout.history_unmapped WHERE import_id = %s", (report["id"],))}  # fmt: skip
    assert (in_export, "user", "unknown user or email") in listed
    assert (in_export, "project", "unknown project") in listed
    assert any(line == in_export + 1 and field == "Date" for line, field, _ in listed)
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries") == before  # nothing imported

    accepted = run_dag(DAG_ID, {"tracker": "harvest", "path": str(harvest_history), "accept_unmapped": True,
                                "reason": "Zed's 2024 test project was never billed"})  # fmt: skip
    assert accepted.state == "success", accepted
    report = last_import(warehouse)
    assert report["status"] == "imported" and report["reason"] == "Zed's 2024 test project was never billed"
    assert report["counts"]["time_entries"]["in_warehouse"] == in_export - 2


def test_rows_the_api_sync_already_holds_are_not_imported_twice(warehouse, harvest, run_dag, tmp_path):
    harvest.load(harvest_dataset(120, seed=9, anchor=date.today(), days=30))
    assert run_dag("closeout_sync_harvest").state == "success"
    same_period = exports.harvest_export(harvest, tmp_path / "same.csv")  # not shifted: the synced period
    result = run_dag(DAG_ID, {"tracker": "harvest", "path": str(same_period)})
    assert result.state == "success", result
    entries = last_import(warehouse)["counts"]["time_entries"]
    assert entries["covered_by_sync"] == entries["in_export"] == csv_rows(same_period)
    assert entries["to_import"] == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries WHERE source_id LIKE 'csv:%%'") == 0


def test_toggl_and_clockify_exports_import_and_tie_out(warehouse, toggl, clockify, run_dag, monkeypatch, tmp_path):
    toggl.load(toggl_dataset(150, seed=4, anchor=date.today(), days=30))
    set_conn_extra(monkeypatch, "toggl_default", workspace_id=toggl.workspace_id)
    clockify.load(clockify_dataset(150, seed=4, anchor=date.today(), days=30))
    set_conn_extra(monkeypatch, "clockify_default", workspace_id=clockify.workspace_id)
    for tracker, write in (("toggl", exports.toggl_export), ("clockify", exports.clockify_export)):
        assert run_dag(f"closeout_sync_{tracker}").state == "success"
        path = write(toggl if tracker == "toggl" else clockify, tmp_path / f"{tracker}.csv", shift_days=OLDER)
        result = run_dag(DAG_ID, {"tracker": tracker, "path": str(path)})
        assert result.state == "success", (tracker, result)
        report = last_import(warehouse)
        entries = report["counts"]["time_entries"]
        assert entries["in_export"] == csv_rows(path) == entries["in_warehouse"] > 0, (tracker, report)
        assert report["counts"]["users"]["unmapped"] == 0, (tracker, report)
        hours = warehouse.scalar("SELECT sum(hours) FROM closeout.time_entries WHERE source = %s "
                                 "AND source_id LIKE 'csv:%%'", (tracker,))  # fmt: skip
        assert hours > 0
