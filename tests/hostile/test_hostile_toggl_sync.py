"""Poisoned Toggl entries and webhook events: quarantined one by one while the rest syncs (issue 15 item 2).

Real closeout_sync_toggl (dag.test), real Postgres, the Toggl sandbox, and the real receiver over HTTP
with real signatures for the webhook events.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from conftest import set_conn_extra

from sandbox.toggl import generate_dataset

pytestmark = pytest.mark.integration

DAG_ID = "closeout_sync_toggl"
SECRET = "toggl-hostile-secret"


@pytest.fixture
def seeded(toggl, monkeypatch):
    toggl.load(generate_dataset(60, seed=3, anchor=date.today(), days=20))
    set_conn_extra(monkeypatch, "toggl_default", workspace_id=toggl.workspace_id, webhook_secret=SECRET)
    return toggl


def post_toggl(url: str, event: dict) -> int:
    body = json.dumps(event).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Webhook-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}
    return requests.post(f"{url}/toggl", data=body, headers=headers, timeout=10).status_code


def test_poisoned_entries_and_events_are_quarantined_and_the_rest_syncs(warehouse, seeded, webhook_receiver,
                                                                        run_dag):  # fmt: skip
    e = next(x for x in seeded.entries_snapshot() if x.get("stop") and x["project_id"])
    day = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat()
    base = {"workspace_id": seeded.workspace_id, "project_id": e["project_id"], "user_id": e["user_id"],
            "billable": True, "start": day, "stop": day, "at": day, "duration": 1800}  # fmt: skip
    seeded.put_raw_entry({**base, "id": 980001, "description": "night\u0000shift"})
    seeded.put_raw_entry({**base, "id": 980002, "description": "ok", "at": "9999-12-31T23:59:59+00:00"})
    assert run_dag(DAG_ID).state == "success"

    notes = dict(warehouse.rows("SELECT source_id, notes FROM closeout.time_entries WHERE source = 'toggl'"))
    assert notes["980001"] == "night\ufffdshift"
    assert "980002" not in notes
    live = {str(x["id"]) for x in seeded.entries_snapshot() if x.get("stop") and x["duration"] >= 0}
    assert set(notes) == live - {"980002"}, "every other entry synced"
    problems = {(r[0], r[1]): r[2] for r in warehouse.rows("SELECT source_id, field, reason FROM closeout.quarantine")}
    assert "absurd date 9999-12-31" in problems[("980002", "at")]
    assert warehouse.rows("SELECT source_id, field FROM closeout.input_repairs") == [("980001", "notes")]

    # webhook events: one dated year 9999, one with no start, one fine (with a NUL in its description)
    payload = {"id": int(e["id"]), "workspace_id": seeded.workspace_id, "description": "x"}
    events = [
        {"event_id": 7001, "metadata": {"action": "updated", "model": "time_entry"},
         "payload": {**payload, "start": "9999-12-31T10:00:00+00:00"}},
        {"event_id": 7002, "metadata": {"action": "updated", "model": "time_entry"}, "payload": payload},
        {"event_id": 7003, "metadata": {"action": "updated", "model": "time_entry"},
         "payload": {**payload, "start": e["start"], "description": "a\u0000b"}},
    ]  # fmt: skip
    assert [post_toggl(webhook_receiver, event) for event in events] == [200, 200, 200]
    result = run_dag(DAG_ID, {"sweep": "never"})
    assert result.state == "success", result
    quarantined = {r[0]: r[1] for r in warehouse.rows(
        "SELECT event_id, reason FROM closeout.event_quarantine WHERE vendor = 'toggl'")}  # fmt: skip
    assert set(quarantined) == {"7001", "7002"}
    assert all("names no day to re-list" in reason for reason in quarantined.values())
    outcomes = dict(warehouse.rows("SELECT event_id, outcome FROM closeout_data.webhook_inbox"))
    assert outcomes["7001"].startswith("quarantined: ") and outcomes["7003"].startswith("applied by sync run")
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.webhook_inbox WHERE processed_at IS NULL") == 0
