"""closeout_sync_harvest end to end: real Airflow (dag.test), real Postgres, the Harvest sandbox.

Each test asserts the warehouse against the sandbox's own state: the current rows of
closeout.time_entries must equal the entries Harvest lists now (deleted ones kept, flagged).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from conftest import set_harvest_extra

from sandbox.harvest import generate_dataset

pytestmark = pytest.mark.integration

DAG_ID = "closeout_sync_harvest"
EXPONENT = {"JPY": 0, "KWD": 3}


def expected_amount(entry: dict) -> int:
    if not entry["billable"]:
        return 0
    rate = Decimal(str(entry["billable_rate"]))
    hours = Decimal(str(entry["rounded_hours"]))
    scale = Decimal(10) ** EXPONENT.get(entry["client"]["currency"], 2)
    return int((hours * rate * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def current_entries(warehouse) -> dict[str, tuple]:
    rows = warehouse.rows(
        """SELECT source_id, spent_date, hours, billable, approved, billable_rate, currency, amount_minor,
                  deleted_at IS NOT NULL, version, client_key, notes
           FROM closeout.time_entries WHERE source = 'harvest'"""
    )
    return {r[0]: r[1:] for r in rows}


def assert_mirrors(warehouse, harvest, *, deleted=frozenset(), bad=frozenset()) -> dict[str, tuple]:
    """The warehouse's live entries are exactly the sandbox's, field by field; `deleted` are flagged,
    `bad` (ids of quarantined records) are absent."""
    got = current_entries(warehouse)
    live = {
        str(e["id"]): e
        for e in harvest.entries_snapshot()
        if isinstance(e, dict) and isinstance(e.get("id"), int) and e["id"] > 0 and str(e["id"]) not in bad
    }
    assert {k for k, v in got.items() if not v[7]} == set(live)
    assert {k for k, v in got.items() if v[7]} == set(deleted)
    for source_id, entry in live.items():
        spent, hours, billable, approved, rate, currency, amount, _deleted, _v, client_key, notes = got[source_id]
        assert spent == date.fromisoformat(entry["spent_date"]), source_id
        assert hours == Decimal(str(entry["hours"])), source_id
        assert billable is entry["billable"] and approved is entry["is_closed"], source_id
        assert currency == entry["client"]["currency"], source_id
        assert client_key == f"harvest:{entry['client']['id']}"
        assert notes == entry["notes"]
        if entry["billable"]:
            assert rate == Decimal(str(entry["billable_rate"])), source_id
        assert amount == expected_amount(entry), (source_id, entry)
    return got


def versions_of(warehouse, source_id: str) -> list[tuple]:
    return warehouse.rows(
        """SELECT version, change, hours, deleted_at IS NOT NULL, sync_run_id
           FROM closeout.time_entry_versions WHERE source = 'harvest' AND source_id = %s ORDER BY version""",
        (source_id,),
    )


def last_run(warehouse) -> dict:
    row = warehouse.rows(
        """SELECT status, mode, requests, records, versions_created, deletions, quarantined, cursor, sync_run_id
           FROM closeout.sync_runs ORDER BY sync_run_id DESC LIMIT 1"""
    )[0]
    keys = ("status", "mode", "requests", "records", "versions", "deletions", "quarantined", "cursor", "id")
    return dict(zip(keys, row, strict=True))


@pytest.fixture
def seeded(harvest):
    harvest.load(generate_dataset(400, seed=11, anchor=date.today()))
    return harvest


def test_first_sync_is_full_and_mirrors_harvest(warehouse, seeded, run_dag):
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    got = assert_mirrors(warehouse, seeded)
    assert len(got) == 400
    run = last_run(warehouse)
    assert run["status"] == "succeeded" and run["mode"] == "full"
    assert run["records"] == 400 and run["versions"] == 400 and run["quarantined"] == 0
    assert run["cursor"]["entries_since"]
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entry_versions") == 400
    assert warehouse.scalar("SELECT count(DISTINCT currency) FROM closeout.time_entries") >= 3
    # every call was logged against the run; the sandbox saw exactly as many
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.sync_requests") == run["requests"]
    assert seeded.stats()["requests"] == run["requests"]
    # reference data landed too
    kinds = dict(warehouse.rows("SELECT kind, count(*) FROM closeout_data.tracker_entities GROUP BY kind"))
    assert set(kinds) == {"client", "project", "task", "user"}


def entry_page_requests(harvest) -> list[tuple[str, int]]:
    """(path+query, status) of every time entry listing request, in order."""
    return [
        (target, status) for method, target, status in harvest.stats()["log"] if target.startswith("/v2/time_entries")
    ]


def fast_retries(monkeypatch, **overrides) -> None:
    set_harvest_extra(monkeypatch, retry={"backoff_base": 0.01, "backoff_cap": 0.05, **overrides})


def test_edits_including_back_dated_become_new_versions(warehouse, seeded, run_dag):
    assert run_dag(DAG_ID).state == "success"
    entries = [e for e in seeded.entries_snapshot() if e["billable"]]
    edited, back_dated, rate_changed = entries[0], entries[1], entries[2]
    seeded.update_entry(edited["id"], hours=7.25, notes='=HYPERLINK("http://x")\ttab')
    old_date = (date.today() - timedelta(days=300)).isoformat()
    seeded.update_entry(back_dated["id"], spent_date=old_date)
    seeded.update_entry(rate_changed["id"], billable_rate=999.5)
    seeded.reset_stats()

    result = run_dag(DAG_ID, {"sweep": "never"})
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded)
    run = last_run(warehouse)
    assert run["mode"] == "incremental" and run["status"] == "succeeded"
    # exactly the three edited entries got a second version; nothing else changed
    assert run["versions"] == 3
    for entry in (edited, back_dated, rate_changed):
        changes = [v[1] for v in versions_of(warehouse, str(entry["id"]))]
        assert changes == ["created", "updated"]
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entry_versions") == 403
    # the old version keeps the old rate: history is a snapshot, not rewritten
    rates = warehouse.rows(
        "SELECT billable_rate FROM closeout.time_entry_versions WHERE source_id = %s ORDER BY version",
        (str(rate_changed["id"]),),
    )
    assert rates[0][0] == Decimal(str(rate_changed["billable_rate"])) and rates[1][0] == Decimal("999.5")
    # incremental cost: one entry page (per_page 50 >> 3 changed + overlap) + four reference listings
    # + one expense listing (closeout.trackers.expenses.harvest)
    assert len(entry_page_requests(seeded)) == 1
    assert seeded.stats()["requests"] == 6

    # a third run with nothing changed writes no version
    assert run_dag(DAG_ID, {"sweep": "never"}).state == "success"
    assert last_run(warehouse)["versions"] == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entry_versions") == 403


def test_deletions_in_window_are_flagged_never_removed(warehouse, seeded, run_dag, monkeypatch):
    assert run_dag(DAG_ID).state == "success"
    today = date.today()
    live = seeded.entries_snapshot()
    recent = [e for e in live if date.fromisoformat(e["spent_date"]) >= today - timedelta(days=30)]
    old = [e for e in live if date.fromisoformat(e["spent_date"]) < today - timedelta(days=120)]
    gone_recent, gone_old, edited_out = recent[0], old[0], recent[1]
    seeded.delete_entry(gone_recent["id"])
    seeded.delete_entry(gone_old["id"])
    # moved out of the window: the sweep must not mistake it for deleted
    seeded.update_entry(edited_out["id"], spent_date=(today - timedelta(days=200)).isoformat())

    result = run_dag(DAG_ID, {"sweep": "always"})
    assert result.state == "success", result
    # the recent deletion is detected; the old one is outside the 90-day window, so still live here
    got = current_entries(warehouse)
    assert got[str(gone_old["id"])][7] is False
    assert got[str(edited_out["id"])][7] is False
    assert got[str(edited_out["id"])][0] == today - timedelta(days=200)
    versions = versions_of(warehouse, str(gone_recent["id"]))
    assert [v[1] for v in versions] == ["created", "deleted"] and versions[-1][3] is True
    amount, billable_hours, deleted_at = warehouse.rows(
        "SELECT amount_minor, billable_hours, deleted_at FROM closeout.time_entries WHERE source_id = %s",
        (str(gone_recent["id"]),),
    )[0]
    assert amount in (0, None) and billable_hours == 0 and deleted_at is not None
    assert last_run(warehouse)["deletions"] == 1
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.sweep_seen") == 0  # cleaned up

    # a wider window (configured through the closeout_sync Variable) finds the old deletion too
    monkeypatch.setenv("AIRFLOW_VAR_CLOSEOUT_SYNC", '{"harvest": {"sweep_days": 400}}')
    assert run_dag(DAG_ID, {"sweep": "always"}).state == "success"
    assert last_run(warehouse)["deletions"] == 1
    assert_mirrors(warehouse, seeded, deleted={str(gone_recent["id"]), str(gone_old["id"])})
    # rows are never deleted: every entry ever seen is still there
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries") == 400

    # a deleted entry that comes back is restored as a new version
    seeded.create_entry(**{k: v for k, v in gone_recent.items() if k not in ("updated_at", "created_at")})
    assert run_dag(DAG_ID, {"sweep": "never"}).state == "success"
    assert [v[1] for v in versions_of(warehouse, str(gone_recent["id"]))] == ["created", "deleted", "restored"]


def test_sweep_runs_only_when_due(warehouse, seeded, run_dag):
    assert run_dag(DAG_ID).state == "success"  # census: counts as a sweep
    seeded.reset_stats()
    assert run_dag(DAG_ID).state == "success"  # auto: not due within 6 h
    assert not any("from=" in target for target, _ in entry_page_requests(seeded))
    checkpoint = warehouse.scalar("SELECT checkpoint FROM closeout_data.sync_runs ORDER BY sync_run_id DESC LIMIT 1")
    assert checkpoint["sweep"]["skipped"].startswith("not due")


def test_429_storm_is_waited_out(warehouse, seeded, run_dag):
    seeded.inject_fault("429", times=4, path_prefix="/v2/time_entries")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert result.tries["entries"] == 1  # honoured inside the task, no task retry
    assert_mirrors(warehouse, seeded)
    outcomes = dict(warehouse.rows("SELECT outcome, count(*) FROM closeout_data.sync_requests GROUP BY outcome"))
    assert outcomes["rate_limited"] == 4
    assert seeded.stats()["status_counts"].get(429) == 4 or seeded.stats()["status_counts"].get("429") == 4


def test_real_rate_limit_paced_without_a_single_429(warehouse, seeded, run_dag, monkeypatch):
    seeded.set_rate_limit((6, 1.0))
    set_harvest_extra(monkeypatch, max_requests=6, per_seconds=1.0)
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded)
    counts = seeded.stats()["status_counts"]
    assert not counts.get(429) and not counts.get("429"), counts


def test_rate_limit_without_pacing_recovers_through_retry_after(warehouse, seeded, run_dag):
    seeded.set_rate_limit((2, 2.0))  # the hook's pacing is off in the fixture: it will hit 429s
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded)
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.sync_requests WHERE outcome = 'rate_limited'") > 0


@pytest.mark.parametrize("kind", ["5xx", "500", "drop"])
def test_transient_failures_mid_sync_retry_the_page_not_the_sync(warehouse, seeded, run_dag, monkeypatch, kind):
    fast_retries(monkeypatch)
    seeded.inject_fault(kind, times=3, after=3, path_prefix="/v2/time_entries")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert result.tries["entries"] == 1
    assert_mirrors(warehouse, seeded)
    ok_pages = [target for target, status in entry_page_requests(seeded) if status == 200]
    assert len(ok_pages) == len(set(ok_pages)) == 8  # 400 entries / 50 per page, none fetched twice
    run = last_run(warehouse)
    assert run["records"] == 400 and run["versions"] == 400


def test_task_failure_mid_sync_resumes_from_last_committed_page(warehouse, seeded, run_dag, monkeypatch):
    """The hook gives up (as a killed worker would stop); Airflow retries the task, which continues."""
    fast_retries(monkeypatch, max_attempts=2)
    seeded.inject_fault("drop", times=2, after=3, path_prefix="/v2/time_entries")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert result.tries["entries"] == 2
    assert_mirrors(warehouse, seeded)
    ok_pages = [target for target, status in entry_page_requests(seeded) if status == 200]
    assert len(ok_pages) == len(set(ok_pages)) == 8  # pages 1-3 were not read again
    assert warehouse.scalar("SELECT count(*) FROM closeout.sync_runs") == 1
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entry_versions") == 400


def test_killed_worker_resumes_on_next_attempt(warehouse, seeded, run_dag, tmp_path):
    """SIGKILL a worker mid-page; the next run adopts the unfinished sync run and resumes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    seeded.inject_fault("slow", times=1, after=3, delay=30, path_prefix="/v2/time_entries")
    script = (
        "from closeout.trackers.harvest import sync\n"
        "from closeout.trackers.settings import SyncSettings\n"
        "s = SyncSettings()\n"
        "rid = sync.begin_sync('killed-worker', s)['sync_run_id']\n"
        "sync.sync_reference(rid, s)\n"
        "sync.sync_entries(rid, s)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pages = [t for t, s in entry_page_requests(seeded) if s == 200]
        committed = warehouse.scalar("SELECT (checkpoint->'entries'->>'pages')::int FROM closeout_data.sync_runs")
        if len(pages) == 3 and committed == 3:
            break
        time.sleep(0.05)
    else:
        worker.kill()
        pytest.fail("worker never reached page 4")
    time.sleep(0.3)  # page 4 is now in flight (the sandbox is holding it)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert warehouse.scalar("SELECT status FROM closeout.sync_runs") == "running"
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries") == 150

    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded)
    run = last_run(warehouse)
    assert run["id"] == 1 and run["status"] == "succeeded" and run["records"] == 400
    ok_pages = [t for t, s in entry_page_requests(seeded) if s == 200]
    assert len(set(ok_pages)) == 8 and len(ok_pages) <= 9  # only the in-flight page was read twice
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entry_versions") == 400


def test_bad_records_are_quarantined_and_the_run_proceeds(warehouse, seeded, run_dag):
    day = (date.today() - timedelta(days=3)).isoformat()
    template = dict(seeded.entries_snapshot()[5])
    bad = {
        "negative": {**template, "id": 900000001, "hours": -2.0, "rounded_hours": -2.0, "spent_date": day},
        "absurd": {**template, "id": 900000002, "hours": 30.0, "rounded_hours": 30.0, "spent_date": day},
        "currency": {
            **template,
            "id": 900000003,
            "spent_date": day,
            "client": {**template["client"], "currency": "XYZ"},
        },
        "no_id": {k: v for k, v in template.items() if k != "id"} | {"spent_date": day},
        "no_user": {k: v for k, v in template.items() if k != "user"} | {"id": 900000005, "spent_date": day},
    }
    keys = {name: seeded.put_raw_entry(raw) for name, raw in bad.items()}
    seeded.put_raw_entry("not an object")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert_mirrors(warehouse, seeded, bad={"900000001", "900000002", "900000003", "900000005"})
    rows = warehouse.rows("SELECT source_id, field, reason, raw FROM closeout.quarantine ORDER BY quarantine_id")
    by_field = {(r[0], r[1]): r[2] for r in rows}
    assert "negative" in by_field[("900000001", "hours")]
    assert "more than 24" in by_field[("900000002", "hours")]
    assert "unknown currency 'XYZ'" in by_field[("900000003", "client.currency")]
    assert by_field[(None, "id")] == "missing"
    assert by_field[("900000005", "user.id")] == "missing"
    assert by_field[(None, "(record)")].startswith("not an object")
    assert all(r[3] for r in rows)  # raw payload kept
    assert last_run(warehouse)["quarantined"] == 6

    # seen again next run: no duplicate rows, the counter goes up; fixing the record resolves it
    seeded.delete_entry(keys["negative"])
    seeded.create_entry(**{**bad["negative"], "hours": 2.0, "rounded_hours": 2.0})
    assert run_dag(DAG_ID, {"full_refresh": True}).state == "success"
    assert warehouse.scalar("SELECT count(*) FROM closeout.quarantine") == 6
    assert warehouse.scalar("SELECT resolved_at IS NOT NULL FROM closeout.quarantine WHERE source_id = '900000001'")
    assert warehouse.scalar("SELECT times_seen FROM closeout.quarantine WHERE source_id = '900000002'") == 2


def test_malformed_page_is_quarantined_then_reread(warehouse, seeded, run_dag, monkeypatch):
    fast_retries(monkeypatch)
    seeded.inject_fault("malformed", times=3, after=2, path_prefix="/v2/time_entries")
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    run = last_run(warehouse)
    assert run["status"] == "partial"
    page = warehouse.rows("SELECT entity, url, raw FROM closeout.quarantine")
    assert len(page) == 1 and page[0][0] == "page" and "page=3" in page[0][1] and page[0][2]
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries") == 350  # all but the bad page
    assert "entries_since" not in (run["cursor"] or {})  # incomplete census: the next run lists again

    assert run_dag(DAG_ID).state == "success"
    assert last_run(warehouse)["status"] == "succeeded"
    assert_mirrors(warehouse, seeded)


def test_malformed_body_once_is_just_retried(warehouse, seeded, run_dag, monkeypatch):
    fast_retries(monkeypatch)
    seeded.inject_fault("malformed", times=1, after=1, path_prefix="/v2/time_entries")
    assert run_dag(DAG_ID).state == "success"
    assert last_run(warehouse)["status"] == "succeeded"
    assert warehouse.scalar("SELECT count(*) FROM closeout.quarantine") == 0
    assert_mirrors(warehouse, seeded)
