"""closeout_sync_toggl end to end: real Airflow (dag.test), real Postgres, the Toggl sandbox, and the
webhook receiver over real HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from conftest import set_conn_extra

from sandbox.toggl import generate_dataset

pytestmark = pytest.mark.integration

DAG_ID = "closeout_sync_toggl"
EXPONENT = {"JPY": 0}
SECRET = "toggl-webhook-secret"


@pytest.fixture
def seeded(toggl, monkeypatch):
    toggl.load(generate_dataset(400, seed=5, anchor=date.today(), days=60))
    set_conn_extra(monkeypatch, "toggl_default", workspace_id=toggl.workspace_id)
    return toggl


def expected(sandbox, entry: dict) -> tuple[Decimal, int, str]:
    """(hours, amount_minor, currency) the way Toggl resolves them (no workspace rounding here)."""
    hours = (Decimal(entry["duration"]) / 3600).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    minor, currency = sandbox.resolved_rate(entry["user_id"], entry["project_id"])
    if not entry["billable"] or minor is None:
        return hours, 0 if entry["billable"] is False else None, currency
    major = Decimal(minor).scaleb(-EXPONENT.get(currency, 2))
    amount = (hours * major * Decimal(10) ** EXPONENT.get(currency, 2)).quantize(Decimal(1), ROUND_HALF_UP)
    return hours, int(amount), currency


def assert_mirrors(warehouse, sandbox, *, deleted=frozenset()) -> dict:
    got = {r[0]: r[1:] for r in warehouse.rows(
        """SELECT source_id, deleted_at IS NOT NULL, hours, amount_minor, currency, spent_date, notes, project_key
           FROM closeout.time_entries WHERE source = 'toggl'""")}  # fmt: skip
    live = {str(e["id"]): e for e in sandbox.entries_snapshot() if e.get("stop") and e["duration"] >= 0}
    assert {k for k, v in got.items() if not v[0]} == set(live)
    assert {k for k, v in got.items() if v[0]} == set(deleted)
    for entry_id, e in live.items():
        _deleted, hours, amount, currency, spent, notes, project_key = got[entry_id]
        want_hours, want_amount, want_currency = expected(sandbox, e)
        assert (hours, amount, currency) == (want_hours, want_amount, want_currency), (entry_id, e)
        assert spent == datetime.fromisoformat(e["start"]).date()
        assert notes == e["description"]
        assert project_key == (f"toggl:{e['project_id']}" if e["project_id"] else "toggl:none")
    return got


def last_run(warehouse) -> dict:
    row = warehouse.rows("""SELECT status, mode, requests, records, versions_created, deletions, quarantined,
                                   sync_run_id, checkpoint
                            FROM closeout_data.sync_runs ORDER BY sync_run_id DESC LIMIT 1""")[0]  # fmt: skip
    return dict(zip(("status", "mode", "requests", "records", "versions", "deletions", "quarantined", "id",
                     "checkpoint"), row, strict=True))  # fmt: skip


def report_requests(sandbox) -> int:
    return sum(1 for _m, t, s in sandbox.stats()["log"] if "/search/time_entries" in t and s == 200)


def test_first_sync_mirrors_toggl(warehouse, seeded, run_dag):
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded)
    run = last_run(warehouse)
    assert run["status"] == "succeeded" and run["mode"] == "full" and run["quarantined"] == 0
    assert warehouse.scalar("SELECT rounding FROM (SELECT payload->>'rounding_minutes' AS rounding "
                            "FROM closeout_data.tracker_entities WHERE kind = 'workspace') w") == "0"  # fmt: skip


def test_edits_and_deletions_on_the_next_window(warehouse, seeded, run_dag):
    assert run_dag(DAG_ID).state == "success"
    live = [e for e in seeded.entries_snapshot() if e.get("stop")][:3]
    seeded.update_entry(live[0]["id"], duration=5400, description="re-described")
    seeded.delete_entry(live[1]["id"])
    result = run_dag(DAG_ID, {"sweep": "always"})
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded, deleted={str(live[1]["id"])})
    run = last_run(warehouse)
    assert (run["mode"], run["versions"], run["deletions"]) == ("incremental", 1, 1)


@pytest.mark.parametrize(
    "faults", [{}, {"duplicate": 1.0, "shuffle": True, "seed": 9}], ids=["in-order", "dup-shuffled"]
)
def test_webhooks_apply_through_the_inbox(warehouse, seeded, webhook_receiver, run_dag, monkeypatch, faults):
    set_conn_extra(monkeypatch, "toggl_default", webhook_secret=SECRET)
    seeded.subscribe(f"{webhook_receiver}/toggl", SECRET)
    assert seeded.subscriptions()[0]["validated"] is True  # the receiver answered the validation ping
    assert run_dag(DAG_ID).state == "success"
    seeded.webhook_faults(**faults)
    live = [e for e in seeded.entries_snapshot() if e.get("stop")][:3]
    seeded.update_entry(live[0]["id"], description="first")
    seeded.update_entry(live[0]["id"], description="second")
    seeded.delete_entry(live[1]["id"])
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    created = seeded.create_entry(project_id=live[2]["project_id"], user_id=live[2]["user_id"], billable=True,
                                  start=start.isoformat(), duration=1800, description="new")  # fmt: skip
    seeded.deliver()
    seeded.reset_stats()
    result = run_dag(DAG_ID, {"sweep": "never"})
    assert result.state == "success", result
    got = assert_mirrors(warehouse, seeded, deleted={str(live[1]["id"])})
    assert got[str(live[0]["id"])][5] == "second" and str(created["id"]) in got
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.webhook_inbox") == 4  # duplicates recognised
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.webhook_inbox WHERE processed_at IS NULL") == 0
    assert 0 < report_requests(seeded) <= 3


def test_quota_402_pauses_and_the_next_hour_continues(warehouse, seeded, run_dag, monkeypatch):
    set_conn_extra(monkeypatch, "toggl_default", requests_per_hour=600)
    seeded.set_quota(7)
    assert run_dag(DAG_ID).state == "success"  # a spent quota is a pause, not a failure
    run = last_run(warehouse)
    assert run["status"] == "paused"
    # the hook read X-Toggl-Quota-Remaining and stopped before asking for what the quota cannot pay
    assert not seeded.stats()["status_counts"].get(402)
    assert "quota spent" in warehouse.scalar("SELECT error FROM closeout_data.sync_runs")
    seeded.set_quota(600)
    seeded.advance(3600)
    assert run_dag(DAG_ID).state == "success"
    run = last_run(warehouse)
    assert run["id"] == 1 and run["status"] == "succeeded"
    assert report_requests(seeded) == run["checkpoint"]["window"]["pages"]  # nothing read twice
    assert_mirrors(warehouse, seeded)


def test_an_unexpected_402_pauses_too(warehouse, seeded, run_dag):
    """Another client of the same quota can spend it: a 402 is a pause, never a failure."""
    seeded.inject_fault("402", times=1, after=1, path_prefix="/reports")
    assert run_dag(DAG_ID).state == "success"
    assert last_run(warehouse)["status"] == "paused"
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.sync_requests WHERE outcome = 'budget_exhausted'") == 1
    assert run_dag(DAG_ID).state == "success"
    assert last_run(warehouse)["status"] == "succeeded"
    assert_mirrors(warehouse, seeded)


def test_plan_quota_is_planned_not_hit(warehouse, seeded, run_dag, monkeypatch):
    """With the plan's quota configured, the hook stops before the vendor would say 402."""
    set_conn_extra(monkeypatch, "toggl_default", requests_per_hour=6)
    seeded.set_quota(6)
    assert run_dag(DAG_ID).state == "success"
    assert last_run(warehouse)["status"] == "paused"
    assert not seeded.stats()["status_counts"].get(402)


def test_short_term_429_is_waited_out(warehouse, seeded, run_dag):
    seeded.set_short_term((2, 1.0))
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded)
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.sync_requests WHERE outcome = 'rate_limited'") > 0


def test_bad_records_are_quarantined(warehouse, seeded, run_dag):
    e = next(x for x in seeded.entries_snapshot() if x.get("stop") and x["project_id"])
    day = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat()
    base = {"workspace_id": seeded.workspace_id, "project_id": e["project_id"], "user_id": e["user_id"],
            "billable": True, "start": day, "stop": day, "at": day}  # fmt: skip
    seeded.put_raw_entry({**base, "id": 990001, "duration": -5, "description": "negative"})
    seeded.put_raw_entry({**base, "id": 990002, "duration": 90000, "description": "25 hours"})
    seeded.put_raw_entry({**base, "id": 990003, "project_id": 4242, "duration": 60, "description": "unknown project"})
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    problems = {(r[0], r[1]): r[2] for r in warehouse.rows("SELECT source_id, field, reason FROM closeout.quarantine")}
    assert "negative duration" in problems[("990001", "seconds")]
    assert "more than 24" in problems[("990002", "seconds")]
    assert "unknown project 4242" in problems[("990003", "project_id")]
    assert last_run(warehouse)["quarantined"] == 3


def test_task_failure_resumes_from_the_last_committed_page(warehouse, seeded, run_dag, monkeypatch):
    set_conn_extra(monkeypatch, "toggl_default", retry={"max_attempts": 2, "backoff_base": 0.01, "backoff_cap": 0.05})
    seeded.inject_fault("drop", times=2, after=1, path_prefix="/reports")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert result.tries["window"] == 2
    assert report_requests(seeded) == last_run(warehouse)["checkpoint"]["window"]["pages"]
    assert_mirrors(warehouse, seeded)
