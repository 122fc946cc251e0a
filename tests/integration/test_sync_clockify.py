"""closeout_sync_clockify end to end: real Airflow (dag.test), real Postgres, the Clockify sandbox,
and the webhook receiver over real HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from conftest import set_conn_extra

from sandbox.clockify import generate_dataset

pytestmark = pytest.mark.integration

DAG_ID = "closeout_sync_clockify"
EXPONENT = {"JPY": 0}


@pytest.fixture
def seeded(clockify, monkeypatch):
    clockify.load(generate_dataset(400, seed=5, anchor=date.today(), days=60))
    set_conn_extra(monkeypatch, "clockify_default", workspace_id=clockify.workspace_id)
    return clockify


def finished(entry: dict) -> bool:
    return entry.get("timeInterval", {}).get("end") is not None


def seconds_of(entry: dict) -> int:
    interval = entry["timeInterval"]
    start = datetime.fromisoformat(interval["start"])
    return int((datetime.fromisoformat(interval["end"]) - start).total_seconds())


ROUND_UP_SECONDS = 15 * 60  # the sandbox workspace rounds report time up to 15 minutes (asserted below)


def expected_amount(entry: dict) -> int:
    """Billable time is the tracker's rounded time, as for Harvest's rounded_hours."""
    if not entry["billable"]:
        return 0
    rate = entry["hourlyRate"]
    rounded = -(-seconds_of(entry) // ROUND_UP_SECONDS) * ROUND_UP_SECONDS
    hours = (Decimal(rounded) / 3600).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    major = Decimal(rate["amount"]).scaleb(-EXPONENT.get(rate["currency"], 2))
    return int((hours * major * Decimal(10) ** EXPONENT.get(rate["currency"], 2)).quantize(Decimal(1), ROUND_HALF_UP))


def assert_mirrors(warehouse, sandbox, *, deleted=frozenset()) -> dict:
    got = {r[0]: r[1:] for r in warehouse.rows(
        """SELECT source_id, deleted_at IS NOT NULL, approved, billed_in_source, amount_minor, currency, hours,
                  spent_date, notes, client_key
           FROM closeout.time_entries WHERE source = 'clockify'""")}  # fmt: skip
    live = {e["id"]: e for e in sandbox.entries_snapshot() if isinstance(e, dict) and e.get("id") and finished(e)}
    assert {k for k, v in got.items() if not v[0]} == set(live)
    assert {k for k, v in got.items() if v[0]} == set(deleted)
    for entry_id, e in live.items():
        _deleted, approved, invoiced, amount, currency, hours, spent, notes, _client_key = got[entry_id]
        assert approved is (e["approvalState"] == "APPROVED"), entry_id
        assert invoiced is (e["invoicingState"] == "INVOICED"), entry_id
        assert currency == e["hourlyRate"]["currency"]
        assert hours == (Decimal(seconds_of(e)) / 3600).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        assert spent == datetime.fromisoformat(e["timeInterval"]["start"]).date()
        assert notes == e["description"]
        assert amount == expected_amount(e), (entry_id, amount, e)
    return got


def last_run(warehouse) -> dict:
    row = warehouse.rows("""SELECT status, mode, requests, records, versions_created, deletions, quarantined,
                                   sync_run_id, checkpoint
                            FROM closeout_data.sync_runs ORDER BY sync_run_id DESC LIMIT 1""")[0]  # fmt: skip
    return dict(zip(("status", "mode", "requests", "records", "versions", "deletions", "quarantined", "id",
                     "checkpoint"), row, strict=True))  # fmt: skip


def report_pages(sandbox) -> list[str]:
    return [t for m, t, s in sandbox.stats()["log"] if "/reports/detailed" in t and s == 200]


def test_first_sync_mirrors_clockify_with_approval_and_invoicing(warehouse, seeded, run_dag):
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    got = assert_mirrors(warehouse, seeded)
    assert len(got) == len([e for e in seeded.entries_snapshot() if finished(e)])
    run = last_run(warehouse)
    assert run["status"] == "succeeded" and run["mode"] == "full" and run["quarantined"] == 0
    kinds = dict(warehouse.rows("SELECT kind, count(*) FROM closeout_data.tracker_entities GROUP BY kind"))
    assert {"workspace", "user", "client", "project"} <= set(kinds)
    settings = warehouse.scalar("SELECT payload->'workspaceSettings' FROM closeout_data.tracker_entities "
                                "WHERE kind = 'workspace'")  # fmt: skip
    assert settings["timeRoundingInReports"] is True
    assert int(settings["round"]["minutes"]) * 60 == ROUND_UP_SECONDS and "up" in settings["round"]["round"].lower()
    assert warehouse.scalar("SELECT count(DISTINCT currency) FROM closeout.time_entries") >= 2


def test_edits_approvals_and_deletions_on_the_next_window(warehouse, seeded, run_dag):
    assert run_dag(DAG_ID).state == "success"
    recent = [e for e in seeded.entries_snapshot() if finished(e)][:6]
    seeded.update_entry(recent[0]["id"], description="=cmd|' /C calc'!A0")
    seeded.approve([recent[1]["id"]])
    seeded.mark_invoiced([recent[2]["id"]])
    seeded.delete_entry(recent[3]["id"])
    result = run_dag(DAG_ID, {"sweep": "always"})
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded, deleted={recent[3]["id"]})
    run = last_run(warehouse)
    assert run["mode"] == "incremental" and run["deletions"] == 1
    changed = warehouse.rows("SELECT source_id, change FROM closeout.time_entry_versions WHERE version > 1")
    expected = {(recent[0]["id"], "updated"), (recent[3]["id"], "deleted")}
    if recent[1]["approvalState"] != "APPROVED":
        expected.add((recent[1]["id"], "updated"))
    if recent[2]["invoicingState"] != "INVOICED":
        expected.add((recent[2]["id"], "updated"))
    assert set(changed) == expected
    # a run with nothing changed writes nothing
    assert run_dag(DAG_ID, {"sweep": "always"}).state == "success"
    assert last_run(warehouse)["versions"] == 0 and last_run(warehouse)["deletions"] == 0


def _webhook_round(warehouse, seeded, webhook_receiver, run_dag, monkeypatch, *, faults: dict) -> dict:
    _hook_id, token = seeded.add_webhook(f"{webhook_receiver}/clockify")
    set_conn_extra(monkeypatch, "clockify_default", webhook_token=token)
    assert run_dag(DAG_ID).state == "success"
    seeded.webhook_faults(**faults)
    recent = [e for e in seeded.entries_snapshot() if finished(e)][:3]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    created = seeded.create_entry(description="new via webhook", start=start, end=start + timedelta(minutes=90))
    seeded.update_entry(recent[0]["id"], description="first edit")
    seeded.update_entry(recent[0]["id"], description="second edit")
    seeded.delete_entry(recent[1]["id"])
    for _ in range(4):  # failed (dropped) deliveries are retried on the next round
        seeded.deliver()
    seeded.reset_stats()
    result = run_dag(DAG_ID, {"sweep": "never"})  # only the inbox: webhooks make it faster than polling
    assert result.state == "success", result
    got = assert_mirrors(warehouse, seeded, deleted={recent[1]["id"]})
    assert got[recent[0]["id"]][7] == "second edit"  # the latest state, whatever the delivery order
    assert created["id"] in got
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.webhook_inbox WHERE processed_at IS NULL") == 0
    assert 0 < len(report_pages(seeded)) <= 3  # a few day ranges, not the window
    return {"inbox": warehouse.scalar("SELECT count(*) FROM closeout_data.webhook_inbox")}


def test_webhooks_in_order_apply_through_the_inbox(warehouse, seeded, webhook_receiver, run_dag, monkeypatch):
    stats = _webhook_round(warehouse, seeded, webhook_receiver, run_dag, monkeypatch, faults={})
    assert stats["inbox"] == 4


def test_duplicated_and_shuffled_webhooks_end_in_the_same_state(warehouse, seeded, webhook_receiver, run_dag,
                                                                 monkeypatch):  # fmt: skip
    stats = _webhook_round(warehouse, seeded, webhook_receiver, run_dag, monkeypatch,
                           faults={"duplicate": 1.0, "shuffle": True, "seed": 3})  # fmt: skip
    assert stats["inbox"] == 4  # every duplicate was recognised by its delivery id


def test_dropped_webhooks_are_caught_by_the_next_window(warehouse, seeded, run_dag):
    assert run_dag(DAG_ID).state == "success"
    victim = next(e for e in seeded.entries_snapshot() if finished(e))
    seeded.delete_entry(victim["id"])  # no webhook subscription at all: every event is "dropped"
    assert run_dag(DAG_ID, {"sweep": "always"}).state == "success"
    assert_mirrors(warehouse, seeded, deleted={victim["id"]})


def test_429_is_waited_out(warehouse, seeded, run_dag):
    seeded.inject_fault("429", times=3, path_prefix="/reports")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded)
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.sync_requests WHERE outcome = 'rate_limited'") == 3


def test_free_plan_budget_pauses_the_run_and_the_next_run_continues_it(warehouse, seeded, run_dag, monkeypatch):
    set_conn_extra(monkeypatch, "clockify_default", max_requests=6, per_seconds=3600)
    first = run_dag(DAG_ID)
    assert first.state == "success", first  # a pause is not a failure
    run = last_run(warehouse)
    assert run["status"] == "paused"
    pages_read = len(report_pages(seeded))
    assert 0 < pages_read < 4
    # the hour passes (simulated by a larger budget): the next run adopts the paused one and continues
    set_conn_extra(monkeypatch, "clockify_default", max_requests=0)
    second = run_dag(DAG_ID)
    assert second.state == "success", second
    run = last_run(warehouse)
    assert run["id"] == 1 and run["status"] == "succeeded"
    # no page read twice: the report requests across both runs are exactly the pages committed
    assert len(report_pages(seeded)) == run["checkpoint"]["window"]["pages"]
    assert_mirrors(warehouse, seeded)


def test_bad_records_are_quarantined(warehouse, seeded, run_dag):
    good = next(e for e in seeded.entries_snapshot() if finished(e))
    user = good["userId"]
    day = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    base = {"userId": user, "billable": True, "rate": 5000, "currency": "USD", "approvalState": "APPROVED",
            "invoicingState": "UNINVOICED", "description": "bad"}  # fmt: skip
    interval = {"start": day.isoformat().replace("+00:00", "Z"), "end": day.isoformat().replace("+00:00", "Z")}
    seeded.put_raw_entry(user, {**base, "_id": "a" * 24, "timeInterval": {**interval, "duration": -60}})
    seeded.put_raw_entry(user, {**base, "_id": "b" * 24, "timeInterval": {**interval, "duration": 90000}})
    seeded.put_raw_entry(
        user, {**base, "_id": "c" * 24, "currency": "XYZ", "timeInterval": {**interval, "duration": 60}}
    )
    seeded.put_raw_entry(user, {**base, "timeInterval": {**interval, "duration": 60}})
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    problems = {(r[0], r[1]): r[2] for r in warehouse.rows("SELECT source_id, field, reason FROM closeout.quarantine")}
    assert "negative duration" in problems[("a" * 24, "timeInterval.duration")]
    assert "more than 24" in problems[("b" * 24, "timeInterval.duration")]
    assert "unknown currency 'XYZ'" in problems[("c" * 24, "currency")]
    assert problems[(None, "_id")] == "missing"
    assert last_run(warehouse)["quarantined"] == 4
    assert_mirrors(warehouse, seeded)


def test_task_failure_mid_window_resumes_from_the_last_committed_page(warehouse, seeded, run_dag, monkeypatch):
    set_conn_extra(
        monkeypatch, "clockify_default", retry={"max_attempts": 2, "backoff_base": 0.01, "backoff_cap": 0.05}
    )
    seeded.inject_fault("drop", times=2, after=2, path_prefix="/reports")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert result.tries["window"] == 2
    assert len(report_pages(seeded)) == last_run(warehouse)["checkpoint"]["window"]["pages"]
    assert_mirrors(warehouse, seeded)


def test_a_page_shift_mid_listing_does_not_become_a_false_deletion(warehouse, seeded, run_dag, monkeypatch):
    """Deleting an entry of page 1 while page 2 is being read shifts page 2 up by one: its first entry
    is not returned by this listing. The confirm pass re-reads that day before anything is marked
    deleted, so the skipped entry - which still exists - is not marked deleted."""
    import threading
    import time

    import requests

    set_conn_extra(monkeypatch, "clockify_default", page_size=100)
    assert run_dag(DAG_ID).state == "success"  # everything is stored: a skip could now look like a deletion
    today = datetime.now(UTC).date()
    body = {"dateRangeStart": f"{today - timedelta(days=90)}T00:00:00.000Z",
            "dateRangeEnd": f"{today + timedelta(days=1)}T23:59:59.999Z",
            "detailedFilter": {"page": 1, "pageSize": 100, "sortColumn": "DATE"}, "approvalState": "ALL",
            "invoicingState": "ALL", "rounding": False, "amountShown": "EARNED"}  # fmt: skip
    url = f"{seeded.reports_url}/workspaces/{seeded.workspace_id}/reports/detailed"
    page1 = requests.post(url, json=body, headers={"X-Api-Key": seeded.api_key}, timeout=10).json()["timeentries"]
    body["detailedFilter"]["page"] = 2
    page2 = requests.post(url, json=body, headers={"X-Api-Key": seeded.api_key}, timeout=10).json()["timeentries"]
    victim, shifted = page1[10]["_id"], page2[0]["_id"]
    seeded.reset_stats()
    seeded.inject_fault("slow", times=1, after=1, delay=1.5, path_prefix="/reports")

    def delete_during_page_two() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(report_pages(seeded)) < 1:
            time.sleep(0.02)
        time.sleep(0.3)  # page 2 is now asleep in the sandbox, before it computes its slice
        seeded.delete_entry(victim)

    worker = threading.Thread(target=delete_during_page_two)
    worker.start()
    result = run_dag(DAG_ID, {"sweep": "always"})
    worker.join(30)
    assert result.state == "success", result
    deleted = {r[0] for r in warehouse.rows("SELECT source_id FROM closeout.time_entries WHERE deleted_at IS NOT NULL")}
    assert shifted not in deleted  # still exists in Clockify: never marked deleted
    window = last_run(warehouse)["checkpoint"]["window"]
    assert window["confirm"]["ranges"], "the shift left a candidate: the confirm pass re-read its day"
    # the victim was read on page 1 before it was deleted: the next listing finds it gone
    assert run_dag(DAG_ID, {"sweep": "always"}).state == "success"
    assert_mirrors(warehouse, seeded, deleted={victim})
