"""One logical piece of work entered in Harvest, Toggl Track and Clockify lands in closeout.time_entries
as three rows that are identical apart from their source and source ids (with the identity map saying
which client, project and user are the same), each through its own real sync DAG."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import set_conn_extra

from sandbox.clockify import generate_dataset as clockify_dataset
from sandbox.harvest import generate_dataset as harvest_dataset
from sandbox.toggl import generate_dataset as toggl_dataset

pytestmark = pytest.mark.integration

COMPARED = ("client_key", "project_key", "user_key", "spent_date", "hours", "billable_hours", "billable", "approved",
            "billable_rate", "currency", "amount_minor", "notes", "deleted_at")  # fmt: skip


def test_the_same_work_in_three_trackers_normalises_identically(
    warehouse, harvest, toggl, clockify, run_dag, monkeypatch
):
    day = date.today() - timedelta(days=2)
    nine = datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)
    notes = "Website: checkout flow, review with Ada"

    harvest.load(harvest_dataset(30, seed=1, anchor=date.today(), days=20))
    h_entry = next(e for e in harvest.entries_snapshot() if e["client"]["currency"] == "USD" and e["billable"])
    h = harvest.create_entry(project_id=h_entry["project"]["id"], user_id=h_entry["user"]["id"],
                             task_id=h_entry["task"]["id"], spent_date=day.isoformat(), hours=1.5,
                             rounded_hours=1.5, billable=True, billable_rate=150.0, is_closed=True,
                             notes=notes)  # fmt: skip

    toggl.load(toggl_dataset(30, seed=1, anchor=date.today(), days=20))
    set_conn_extra(monkeypatch, "toggl_default", workspace_id=toggl.workspace_id)
    t_entry = next(e for e in toggl.entries_snapshot()
                   if e["project_id"] and toggl.resolved_rate(e["user_id"], e["project_id"])[1] == "USD"
                   and toggl_project(toggl, e["project_id"]).get("client_id"))  # fmt: skip
    toggl.set_project_user_rate(t_entry["project_id"], t_entry["user_id"], 150.0)
    t = toggl.create_entry(project_id=t_entry["project_id"], user_id=t_entry["user_id"], billable=True,
                           start=nine.isoformat(), duration=5400, description=notes)  # fmt: skip

    clockify.load(clockify_dataset(30, seed=1, anchor=date.today(), days=20))
    set_conn_extra(monkeypatch, "clockify_default", workspace_id=clockify.workspace_id)
    c_entry = next(
        e for e in clockify.entries_snapshot() if e.get("projectId") and e["hourlyRate"]["currency"] == "USD"
    )
    c = clockify.create_entry(userId=c_entry["userId"], projectId=c_entry["projectId"], billable=True,
                              start=nine, end=nine + timedelta(minutes=90), description=notes,
                              hourlyRate={"amount": 15000, "currency": "USD"}, approvalState="APPROVED")  # fmt: skip
    c_client = next(p["clientId"] for p in clockify_projects(clockify) if p["id"] == c_entry["projectId"])
    t_client = toggl_project(toggl, t_entry["project_id"])["client_id"]

    monkeypatch.setenv("AIRFLOW_VAR_CLOSEOUT_IDENTITY_MAP", json.dumps({
        "client": {"client:acme": {"harvest": [h_entry["client"]["id"]], "toggl": [t_client], "clockify": [c_client]}},
        "project": {"project:website": {"harvest": [h_entry["project"]["id"]], "toggl": [t_entry["project_id"]],
                                        "clockify": [c_entry["projectId"]]}},
        "user": {"user:ada": {"harvest": [h_entry["user"]["id"]], "toggl": [t_entry["user_id"]],
                              "clockify": [c_entry["userId"]]}},
    }))  # fmt: skip

    for dag_id in ("closeout_sync_harvest", "closeout_sync_toggl", "closeout_sync_clockify"):
        result = run_dag(dag_id)
        assert result.state == "success", (dag_id, result)

    rows = warehouse.rows(
        f"""SELECT source, {", ".join(COMPARED)} FROM closeout.time_entries
            WHERE (source, source_id) IN (('harvest', %s), ('toggl', %s), ('clockify', %s)) ORDER BY source""",
        (str(h["id"]), str(t["id"]), c["id"]),
    )
    assert [r[0] for r in rows] == ["clockify", "harvest", "toggl"]
    normalised = {tuple(r[1:]) for r in rows}
    assert len(normalised) == 1, rows  # identical apart from source ids
    (entry,) = normalised
    fields = dict(zip(COMPARED, entry, strict=True))
    assert fields["client_key"] == "client:acme" and fields["user_key"] == "user:ada"
    assert fields["hours"] == 1.5 and fields["amount_minor"] == 22500 and fields["currency"] == "USD"
    assert fields["spent_date"] == day and fields["approved"] is True


def clockify_projects(sandbox) -> list[dict]:
    import requests

    return requests.get(f"{sandbox.api_url}/workspaces/{sandbox.workspace_id}/projects?page-size=5000",
                        headers={"X-Api-Key": sandbox.api_key}, timeout=10).json()  # fmt: skip


def toggl_project(sandbox, project_id: int) -> dict:
    import requests

    return requests.get(f"{sandbox.url}/api/v9/workspaces/{sandbox.workspace_id}/projects/{project_id}",
                        auth=sandbox.auth, timeout=10).json()  # fmt: skip
