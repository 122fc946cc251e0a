"""A poisoned Harvest page syncs everything but the poison (issue 15 item 2, "Done when").

Real closeout_sync_harvest (dag.test), real Postgres, the Harvest sandbox. The bad records are planted in
the sandbox's own store as the exact bytes Harvest would send (``1e-100000`` and a lone surrogate cannot
be written by Python's json), so the hook parses exactly what a hostile or broken Harvest would serve.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from sandbox.harvest import generate_dataset
from sandbox.harvest.data import dumps, index_entry

pytestmark = pytest.mark.integration

DAG_ID = "closeout_sync_harvest"


def put_raw_body(sandbox, obj: dict, body: bytes) -> int:
    """Plant one entry whose served bytes are ``body`` (indexed by ``obj``'s fields), like put_raw_entry."""
    with sandbox._lock:
        key = sandbox._next_raw_key
        sandbox._next_raw_key -= 1
        sandbox._store(key, index_entry(obj, body))
        return key


def plant(sandbox, obj: dict, placeholder: str | None = None, raw_text: str | None = None) -> int:
    body = dumps(obj)
    if placeholder is not None:
        assert raw_text is not None
        quoted = f'"{placeholder}"'.encode()
        assert quoted in body
        body = body.replace(quoted, raw_text.encode())
    return put_raw_body(sandbox, obj, body)


@pytest.fixture
def seeded(harvest):
    harvest.load(generate_dataset(120, seed=5, anchor=date.today()))
    return harvest


def test_nul_note_and_1e_minus_100000_hours_are_handled_and_the_rest_syncs(warehouse, seeded, run_dag):
    day = (date.today() - timedelta(days=2)).isoformat()
    template = {**seeded.entries_snapshot()[3], "spent_date": day}
    stamp = template["updated_at"]
    plant(seeded, {**template, "id": 910000001, "notes": "lunch\u0000 with client"})  # json writes \u0000
    plant(seeded, {**template, "id": 910000002, "hours": "HOURS"}, "HOURS", "1e-100000")
    plant(seeded, {**template, "id": 910000003, "notes": "NOTE"}, "NOTE", '"half a pair \\ud800 here"')
    plant(seeded, {**template, "id": 910000004, "billable_rate": "RATE"}, "RATE", "1e400")
    plant(seeded, {**template, "id": 910000005, "spent_date": "9999-12-31"})
    plant(seeded, {**template, "id": "9100\u00000006"})
    plant(seeded, {**template, "id": 910000007, "hours": "HOURS"}, "HOURS", "NaN")
    # the same id twice in one page: the later updated_at wins whatever the order
    plant(seeded, {**template, "id": 910000008, "notes": "newer", "updated_at": "2030-01-02T00:00:00Z"})
    plant(seeded, {**template, "id": 910000008, "notes": "older", "updated_at": stamp})

    result = run_dag(DAG_ID)
    assert result.state == "success", result

    refused = {"910000002", "910000004", "910000005", "910000007"}
    listed = {str(e["id"]) for e in seeded.entries_snapshot() if isinstance(e.get("id"), int) and e["id"] > 0}
    live = listed - refused
    stored = dict(warehouse.rows("SELECT source_id, notes FROM closeout.time_entries WHERE deleted_at IS NULL"))
    assert set(stored) == live, "every other entry of every page synced, the refused ones not"
    assert stored["910000001"] == "lunch\ufffd with client"
    assert stored["910000003"] == "half a pair \ufffd here"
    assert stored["910000008"] == "newer"

    quarantined = {(r[0], r[1]): r[2] for r in warehouse.rows(
        "SELECT source_id, field, reason FROM closeout.quarantine WHERE resolved_at IS NULL")}  # fmt: skip
    assert "1E-100000" in quarantined[("910000002", "hours")]
    assert "out of range" in quarantined[("910000004", "billable_rate")]
    assert "absurd date 9999-12-31" in quarantined[("910000005", "spent_date")]
    assert "NUL" in quarantined[(None, "id")]
    assert "not a finite number" in quarantined[("910000007", "hours")]
    raw = warehouse.scalar("SELECT raw FROM closeout.quarantine WHERE reason LIKE '%%NUL%%'")
    assert "\\u0000" in raw, "the refused record is kept, its NUL escaped"

    repairs = warehouse.rows("SELECT source_id, field, change FROM closeout.input_repairs ORDER BY source_id")
    assert ("910000001", "notes", "replaced 1 NUL character with U+FFFD") in repairs
    assert ("910000003", "notes", "replaced 1 lone surrogate with U+FFFD") in repairs

    run = warehouse.rows("SELECT status, records, quarantined, checkpoint FROM closeout_data.sync_runs "
                         "ORDER BY sync_run_id DESC LIMIT 1")[0]  # fmt: skip
    status, records, quarantined_count, checkpoint = run
    assert status == "succeeded"
    assert quarantined_count == 5
    assert checkpoint["entries"]["duplicates"] == 1
    assert records == len(live) + 5 + 1  # every record counted: stored, quarantined, the duplicate copy
    versions = warehouse.scalar("SELECT count(*) FROM closeout.time_entry_versions")
    assert versions == len(live)

    # the next run sees the same poison: no new rows, counters move, nothing fails
    assert run_dag(DAG_ID, {"full_refresh": True}).state == "success"
    assert warehouse.scalar("SELECT count(*) FROM closeout.quarantine") == 5
    assert warehouse.scalar("SELECT max(times_seen) FROM closeout.input_repairs") == 2
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entry_versions") == versions


def test_poisoned_reference_data_is_quarantined_and_the_rest_upserted(warehouse, harvest, run_dag):
    harvest.load(generate_dataset(30, seed=9, anchor=date.today()))
    client = next(iter(harvest._clients.values()))
    client["name"] = "Acme\u0000 Ltd"
    harvest._clients[999001] = {**client, "id": 999001, "updated_at": "not a time"}
    result = run_dag(DAG_ID)
    assert result.state == "success", result
    assert warehouse.scalar(
        "SELECT name FROM closeout_data.tracker_entities WHERE kind = 'client' AND source_id = %s",
        (str(client["id"]),)) == "Acme\ufffd Ltd"  # fmt: skip
    assert warehouse.rows("SELECT source_id, field FROM closeout.quarantine WHERE entity = 'client'") == [
        ("999001", "updated_at")
    ]
    assert warehouse.scalar("SELECT count(*) FROM closeout.time_entries") == 30
    assert Decimal(0) <= warehouse.scalar("SELECT min(hours) FROM closeout.time_entries")
