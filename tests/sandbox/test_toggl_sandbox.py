"""The Toggl sandbox: auth, reports paging/grouping/rates, /me time entries, quotas, webhooks, faults, CLI."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.toggl import TogglSandbox, generate_dataset
from sandbox.toggl.data import Dataset, dumps, entry_object, render_entry

ROOT = Path(__file__).resolve().parents[2]
ANCHOR = date(2024, 6, 28)
NOW = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)
FULL_RANGE = {"start_date": "2023-06-30", "end_date": "2024-06-28"}  # the 365 generated days
ENTRY_KEYS = {
    "id", "workspace_id", "project_id", "task_id", "user_id", "billable", "start", "stop", "duration",
    "description", "tags", "tag_ids", "at", "server_deleted_at",
}  # fmt: skip
ROW_KEYS = [
    "user_id", "username", "project_id", "task_id", "billable", "description", "tag_ids",
    "hourly_rate_in_cents", "currency", "row_number", "time_entries",
]  # fmt: skip


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate_dataset(1500, seed=11, anchor=ANCHOR)


@pytest.fixture
def sandbox(dataset: Dataset) -> Iterator[TogglSandbox]:
    sb = TogglSandbox(quota=None, me_quota=None, short_term=None, clock=FakeClock(NOW))
    sb.load(dataset)
    with sb:
        yield sb


@pytest.fixture
def api(sandbox: TogglSandbox) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = sandbox.auth
        yield session


def get(api: requests.Session, sb: TogglSandbox, path: str, **params: Any) -> requests.Response:
    return api.get(sb.url + "/api/v9" + path, params=params, timeout=5)


def search(api: requests.Session, sb: TogglSandbox, **body: Any) -> requests.Response:
    url = f"{sb.url}/reports/api/v3/workspace/{sb.workspace_id}/search/time_entries"
    return api.post(url, json=body, timeout=10)


def pull_report(api: requests.Session, sb: TogglSandbox, page_size: int = 50, **filters: Any) -> list[dict[str, Any]]:
    """Follow X-Next-ID / X-Next-Row-Number like a real extractor; checks every page on the way."""
    body: dict[str, Any] = {**FULL_RANGE, **filters, "page_size": page_size}
    rows: list[dict[str, Any]] = []
    while True:
        response = search(api, sb, **body)
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page
        if "X-Next-ID" not in response.headers:
            assert "X-Next-Row-Number" not in response.headers
            return rows
        assert len(page) == page_size
        body.update(
            first_id=int(response.headers["X-Next-ID"]), first_row_number=int(response.headers["X-Next-Row-Number"])
        )


def live_finished(sb: TogglSandbox) -> list[dict[str, Any]]:
    return [e for e in sb.entries_snapshot() if e.get("stop") is not None]


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


# ---------------------------------------------------------------------------------------------- auth and shapes


def test_auth_is_basic_token_and_api_token_else_403(sandbox: TogglSandbox) -> None:
    me = sandbox.url + "/api/v9/me"
    report = f"{sandbox.url}/reports/api/v3/workspace/{sandbox.workspace_id}/search/time_entries"
    for kwargs in (
        {},
        {"auth": ("wrong-token", "api_token")},
        {"auth": (sandbox.token, "password")},
        {"headers": {"Authorization": f"Bearer {sandbox.token}"}},
        {"headers": {"Authorization": "Basic !!!not-base64"}},
    ):
        for response in (
            requests.get(me, timeout=5, **kwargs),
            requests.post(report, json=FULL_RANGE, timeout=5, **kwargs),
        ):
            assert response.status_code == 403
            assert response.headers["Content-Type"].startswith("text/plain")
            assert response.text == "Incorrect username and/or password"
    assert requests.get(me, auth=sandbox.auth, timeout=5).status_code == 200
    assert requests.get(me, headers=sandbox.auth_headers(), timeout=5).status_code == 200


def test_me_workspace_and_catalogs(sandbox: TogglSandbox, api: requests.Session, dataset: Dataset) -> None:
    me = get(api, sandbox, "/me").json()
    assert me["id"] == dataset.owner_id == sandbox.owner_id
    assert me["default_workspace_id"] == sandbox.workspace_id and me["timezone"] and "@" in me["email"]
    wid = sandbox.workspace_id
    workspace = get(api, sandbox, f"/workspaces/{wid}").json()
    assert workspace["default_currency"] == "USD" and workspace["default_hourly_rate"] == 100
    assert {"id", "name", "rounding", "rounding_minutes"} <= workspace.keys()
    clients = get(api, sandbox, f"/workspaces/{wid}/clients").json()
    assert len(clients) == len(dataset.clients) and set(clients[0]) >= {"id", "wid", "name", "archived", "at"}
    tasks = get(api, sandbox, f"/workspaces/{wid}/tasks").json()
    assert len(tasks) == len(dataset.tasks) and set(tasks[0]) >= {"id", "name", "project_id", "workspace_id", "active"}
    users = get(api, sandbox, f"/workspaces/{wid}/users").json()
    assert sandbox.owner_id in {u["id"] for u in users} and set(users[0]) >= {"id", "email", "fullname", "at"}
    assert get(api, sandbox, "/workspaces/1/clients").status_code == 404

    projects = get(api, sandbox, f"/workspaces/{wid}/projects").json()
    assert len(projects) == len(dataset.projects) <= 200
    assert set(projects[0]) >= {"id", "workspace_id", "client_id", "name", "billable", "active", "rate", "currency"}
    assert {p["currency"] for p in projects} == {"USD", "EUR", "JPY"}
    assert any(not p["billable"] for p in projects) and any(p["rate"] is None for p in projects)
    paged: list[dict[str, Any]] = []
    page = 1
    while True:
        chunk = get(api, sandbox, f"/workspaces/{wid}/projects", page=page, per_page=7).json()
        paged += chunk
        if len(chunk) < 7:
            break
        page += 1
    assert [p["id"] for p in paged] == [p["id"] for p in projects]
    assert get(api, sandbox, f"/workspaces/{wid}/projects", per_page=0).status_code == 400


# ---------------------------------------------------------------------------------------------- reports


def test_report_paging_covers_every_entry_exactly_once(sandbox: TogglSandbox, api: requests.Session) -> None:
    rows = pull_report(api, sandbox, page_size=37)
    assert [row["row_number"] for row in rows] == list(range(1, len(rows) + 1))
    assert all(list(row) == ROW_KEYS for row in rows)
    ids = [e["id"] for row in rows for e in row["time_entries"]]
    assert len(ids) == len(set(ids))
    expected = live_finished(sandbox)
    assert sorted(ids) == sorted(e["id"] for e in expected)
    with sandbox._lock:  # the fixture data really has tombstones and running timers that must stay out
        rows_by_id = sandbox._rows
        assert any(r.deleted_at is not None for r in rows_by_id.values())
        assert any(r.stop is None for r in rows_by_id.values())
    assert len(rows) < len(ids)  # grouping happened

    # A page in the middle can be fetched again from the headers alone, and a stale row number is
    # corrected by first_id.
    second = search(api, sandbox, **FULL_RANGE, page_size=37)
    resumed = search(
        api, sandbox, **FULL_RANGE, page_size=5, first_id=int(second.headers["X-Next-ID"]), first_row_number=1
    ).json()
    assert resumed == rows[37:42]


def test_report_rows_group_identical_entries(sandbox: TogglSandbox, api: requests.Session) -> None:
    rows = pull_report(api, sandbox, page_size=500)
    entries = {e["id"]: e for e in live_finished(sandbox)}
    keys = set()
    for row in rows:
        key = (row["user_id"], row["project_id"], row["task_id"], row["billable"], row["description"])
        key += (tuple(row["tag_ids"]),)
        assert key not in keys
        keys.add(key)
        starts = []
        for item in row["time_entries"]:
            assert set(item) == {"id", "seconds", "start", "stop", "at"}
            entry = entries[item["id"]]
            assert (entry["user_id"], entry["project_id"], entry["task_id"], entry["billable"]) == key[:4]
            assert (entry["description"], tuple(entry["tag_ids"])) == key[4:]
            assert (item["seconds"], item["start"], item["stop"], item["at"]) == (
                entry["duration"], entry["start"], entry["stop"], entry["at"]
            )  # fmt: skip
            starts.append((entry["start"], entry["id"]))
        assert starts == sorted(starts)
    assert max(len(row["time_entries"]) for row in rows) >= 3
    firsts = [(row["time_entries"][0]["start"], row["time_entries"][0]["id"]) for row in rows]
    assert firsts == sorted(firsts)

    owner_rows = pull_report(api, sandbox, page_size=500, user_ids=[sandbox.owner_id], billable=False)
    assert owner_rows and all(r["user_id"] == sandbox.owner_id and r["billable"] is False for r in owner_rows)
    pid = rows[0]["project_id"]
    assert {r["project_id"] for r in pull_report(api, sandbox, page_size=500, project_ids=[pid])} == {pid}


def test_report_validation(sandbox: TogglSandbox, api: requests.Session) -> None:
    assert search(api, sandbox, end_date="2024-06-28").status_code == 400
    assert search(api, sandbox, start_date="2024-06-28").status_code == 400
    assert search(api, sandbox, start_date="2024-06-28", end_date="2024-06-01").status_code == 400
    too_long = search(api, sandbox, start_date="2023-06-28", end_date="2024-06-28")  # 367 days
    assert too_long.status_code == 400 and "366" in too_long.json()
    assert search(api, sandbox, start_date="2023-06-29", end_date="2024-06-28").status_code == 200  # 366 days
    assert search(api, sandbox, **FULL_RANGE, page_size=0).status_code == 400
    assert search(api, sandbox, **FULL_RANGE, user_ids="x").status_code == 400
    default = search(api, sandbox, **FULL_RANGE)
    assert len(default.json()) == 50 and default.headers["X-Next-Row-Number"] == "51"
    assert len(search(api, sandbox, **FULL_RANGE, page_size=100_000).json()) == 1000  # clamped to the maximum
    wrong = api.post(f"{sandbox.url}/reports/api/v3/workspace/1/search/time_entries", json=FULL_RANGE, timeout=5)
    assert wrong.status_code == 404


def test_hourly_rate_precedence_in_minor_units(sandbox: TogglSandbox, api: requests.Session, dataset: Dataset) -> None:
    owner = sandbox.owner_id
    usd = next(p for p in dataset.projects if p["currency"] == "USD" and p["rate"] is None and p["billable"])
    jpy = next(p for p in dataset.projects if p["currency"] == "JPY")
    assert jpy["rate"] is not None and jpy["rate"] >= 10_000

    def probe(project_id: int) -> tuple[int, str]:
        rows = pull_report(api, sandbox, user_ids=[owner], project_ids=[project_id])
        (row,) = [r for r in rows if r["description"] == "rate probe"]
        return row["hourly_rate_in_cents"], row["currency"]

    start = datetime(2024, 6, 20, 9, tzinfo=UTC)
    for project in (usd, jpy):
        sandbox.set_project_user_rate(project["id"], owner, None)
        sandbox.create_entry(project_id=project["id"], description="rate probe", start=start, duration=1800)

    sandbox.set_workspace_user_rate(owner, 142.5)
    assert probe(usd["id"]) == (14250, "USD")  # workspace member rate
    sandbox.set_workspace_user_rate(owner, None)
    assert probe(usd["id"]) == (10000, "USD")  # workspace default
    sandbox.set_project_rate(usd["id"], 137.5)
    assert probe(usd["id"]) == (13750, "USD")  # project rate beats the workspace
    sandbox.set_project_user_rate(usd["id"], owner, 160.0)
    assert probe(usd["id"]) == (16000, "USD")  # project member rate beats all

    assert probe(jpy["id"]) == (int(jpy["rate"]), "JPY")  # yen have no minor unit: 15000.0 -> 15000
    sandbox.set_project_user_rate(jpy["id"], owner, 18000.0)
    assert probe(jpy["id"]) == (18000, "JPY")

    rows = pull_report(api, sandbox, page_size=1000)
    assert {r["currency"] for r in rows} == {"USD", "EUR", "JPY"}
    for row in rows:
        assert (row["hourly_rate_in_cents"], row["currency"]) == sandbox.resolved_rate(
            row["user_id"], row["project_id"]
        )


# ---------------------------------------------------------------------------------------------- /me/time_entries


def test_me_time_entries_since_tombstones_and_bounds(
    sandbox: TogglSandbox, api: requests.Session, dataset: Dataset
) -> None:
    owner = sandbox.owner_id
    since = ts(NOW - timedelta(days=30))
    got = get(api, sandbox, "/me/time_entries", since=since).json()
    expected = [e for e in dataset.entries if e.user_id == owner and e.at >= since]
    assert sorted(e["id"] for e in got) == sorted(e.id for e in expected)
    assert all(set(e) == ENTRY_KEYS and e["user_id"] == owner for e in got)
    starts = [e["start"] for e in got]
    assert starts == sorted(starts, reverse=True)

    victim = next(e for e in sandbox.entries_snapshot() if e["user_id"] == owner and e["stop"])
    sandbox.delete_entry(victim["id"])
    tomb = {e["id"]: e for e in get(api, sandbox, "/me/time_entries", since=ts(NOW) - 5).json()}
    assert tomb[victim["id"]]["server_deleted_at"] is not None and tomb[victim["id"]]["at"] >= victim["at"]
    assert victim["id"] not in {e["id"] for row in pull_report(api, sandbox, 1000) for e in row["time_entries"]}
    with pytest.raises(KeyError):
        sandbox.delete_entry(victim["id"])

    day = victim["start"][:10]
    listed = get(api, sandbox, "/me/time_entries", start_date=day, end_date=day).json()
    assert listed == []  # end_date is exclusive
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    listed = get(api, sandbox, "/me/time_entries", start_date=day, end_date=next_day).json()
    assert victim["id"] not in {e["id"] for e in listed}
    assert all(e["start"].startswith(day) and e["server_deleted_at"] is None and e["user_id"] == owner for e in listed)

    ninety = get(api, sandbox, "/me/time_entries", since=ts(NOW - timedelta(days=89)))
    assert ninety.status_code == 200
    too_old = get(api, sandbox, "/me/time_entries", since=ts(NOW - timedelta(days=91)))
    assert too_old.status_code == 400 and "3 months" in too_old.json()
    assert get(api, sandbox, "/me/time_entries", since="yesterday").status_code == 400


def test_updates_bump_at_strictly_and_show_in_since(sandbox: TogglSandbox, api: requests.Session) -> None:
    created = sandbox.create_entry(description="fresh", start=NOW - timedelta(hours=2), duration=900)
    assert created["stop"] is not None and created["duration"] == 900 and created["user_id"] == sandbox.owner_id
    first = sandbox.update_entry(created["id"], description="edited once")
    second = sandbox.update_entry(created["id"], tags=["urgent", "brand-new-tag"])
    assert created["at"] < first["at"] < second["at"]  # the frozen clock cannot make stamps collide
    assert len(second["tag_ids"]) == 2
    running = sandbox.update_entry(created["id"], stop=None)
    assert running["duration"] < 0 and running["stop"] is None
    got = get(api, sandbox, "/me/time_entries", since=ts(NOW) - 1).json()
    assert [e for e in got if e["id"] == created["id"]] == [running]
    with pytest.raises(ValueError):
        sandbox.update_entry(created["id"], colour="red")


def test_raw_entries_are_served_as_given(sandbox: TogglSandbox, api: requests.Session) -> None:
    raw = {
        "workspace_id": sandbox.workspace_id, "project_id": None, "task_id": None, "user_id": sandbox.owner_id,
        "billable": True, "start": "2024-06-27T10:00:00+00:00", "stop": "2024-06-27T11:00:00+00:00",
        "duration": -3600, "description": "negative but finished, and no id", "tags": [], "tag_ids": [],
        "at": "2024-06-30T10:00:00+00:00", "server_deleted_at": None,
    }  # fmt: skip
    key = sandbox.put_raw_entry(raw)
    listed = get(api, sandbox, "/me/time_entries", since=ts(NOW - timedelta(days=5))).json()
    assert raw in listed
    assert raw in get(api, sandbox, "/me/time_entries", start_date="2024-06-27", end_date="2024-06-28").json()
    rows = [r for r in pull_report(api, sandbox, 1000) if r["description"] == raw["description"]]
    assert len(rows) == 1 and rows[0]["time_entries"] == [
        {"id": None, "seconds": -3600, "start": raw["start"], "stop": raw["stop"], "at": raw["at"]}
    ]
    sandbox.delete_entry(key)
    assert raw not in get(api, sandbox, "/me/time_entries", since=ts(NOW - timedelta(days=5))).json()


# ---------------------------------------------------------------------------------------------- limits


def test_quota_headers_402_and_reset(sandbox: TogglSandbox, api: requests.Session) -> None:
    sandbox.set_quota(5)
    path = f"/workspaces/{sandbox.workspace_id}/clients"
    remaining = []
    for _ in range(4):
        response = get(api, sandbox, path)
        assert response.status_code == 200 and response.headers["X-Toggl-Quota-Resets-In"] == "3600"
        remaining.append(response.headers["X-Toggl-Quota-Remaining"])
    report = search(api, sandbox, **FULL_RANGE)  # reports share the workspace quota
    assert report.status_code == 200 and report.headers["X-Toggl-Quota-Remaining"] == "0"
    assert remaining == ["4", "3", "2", "1"]
    sandbox.advance(1800)
    for _ in range(3):  # refusals consume nothing
        refused = get(api, sandbox, path)
        assert refused.status_code == 402 and "hourly limit" in refused.text
        assert refused.headers["X-Toggl-Quota-Remaining"] == "0"
        assert refused.headers["X-Toggl-Quota-Resets-In"] == "1800"
    bad = get(api, sandbox, "/workspaces/1/clients")
    assert bad.status_code == 402
    sandbox.advance(1800)
    fresh = get(api, sandbox, path)
    assert fresh.status_code == 200 and fresh.headers["X-Toggl-Quota-Remaining"] == "4"
    error = get(api, sandbox, "/workspaces/1/clients")  # errors count and carry the headers too
    assert error.status_code == 404 and error.headers["X-Toggl-Quota-Remaining"] == "3"
    quota = get(api, sandbox, "/me/quota").json()
    assert quota == [{"organization_id": sandbox.organization_id, "remaining": 3, "resets_in_secs": 3600, "total": 5}]


def test_me_calls_have_their_own_30_per_hour(sandbox: TogglSandbox, api: requests.Session) -> None:
    sandbox.set_quota(600)
    sandbox.set_me_quota(30)
    seen = [int(get(api, sandbox, "/me").headers["X-Toggl-Quota-Remaining"]) for _ in range(30)]
    assert seen == list(range(29, -1, -1))
    assert get(api, sandbox, "/me/time_entries").status_code == 402
    other = get(api, sandbox, f"/workspaces/{sandbox.workspace_id}")
    assert other.status_code == 200 and other.headers["X-Toggl-Quota-Remaining"] == "599"
    sandbox.advance(3600)
    assert get(api, sandbox, "/me").status_code == 200


def test_short_term_limit_429_with_retry_after(sandbox: TogglSandbox, api: requests.Session) -> None:
    sandbox.set_quota(100)
    sandbox.set_short_term((3, 1.0))
    path = f"/workspaces/{sandbox.workspace_id}"
    assert [get(api, sandbox, path).status_code for _ in range(3)] == [200, 200, 200]
    for _ in range(3):
        refused = get(api, sandbox, path)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert refused.headers["X-Toggl-Quota-Remaining"] == "97"  # a 429 costs no quota
    sandbox.advance(1)
    assert [get(api, sandbox, path).status_code for _ in range(2)] == [200, 429]
    sandbox.set_short_term((1, 5.0))
    get(api, sandbox, path)
    assert get(api, sandbox, path).headers["Retry-After"] == "5"


# ---------------------------------------------------------------------------------------------- webhooks


class Receiver:
    """A tiny webhook endpoint: checks signatures, echoes (or ignores) validation pings, can fail on demand."""

    def __init__(self, secret: str, *, echo: bool = True) -> None:
        self.secret, self.echo = secret, echo
        self.events: list[dict[str, Any]] = []
        self.pings: list[dict[str, Any]] = []
        self.fail_next = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(outer.secret.encode(), body, hashlib.sha256).hexdigest()
                assert hmac.compare_digest(self.headers["X-Webhook-Signature-256"], expected)
                message = json.loads(body)
                status, answer = 200, b"{}"
                if message.get("payload") == "ping":
                    outer.pings.append(message)
                    if outer.echo:
                        answer = json.dumps({"validation_code": message["validation_code"]}).encode()
                elif outer.fail_next > 0:
                    outer.fail_next -= 1
                    status = 500
                else:
                    outer.events.append(message)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


def test_webhook_validation_and_signed_events(sandbox: TogglSandbox, receivers: list[Receiver]) -> None:
    echo, silent = Receiver("s3cret"), Receiver("other", echo=False)
    receivers += [echo, silent]
    first = sandbox.subscribe(echo.url, "s3cret")
    second = sandbox.subscribe(silent.url, "other", events=("deleted",))
    assert {s["id"]: s["validated"] for s in sandbox.subscriptions()} == {first: True, second: False}
    assert echo.pings[0]["payload"] == "ping" and len(silent.pings) == 1

    entry = sandbox.create_entry(description="hooked")
    assert [status for _, status in sandbox.deliver()] == [200]  # the unvalidated subscription gets nothing
    assert silent.events == []

    ping = silent.pings[0]
    assert ping["validation_code_url"].startswith(sandbox.url + "/webhooks/api/v1/validate/")
    assert requests.get(ping["validation_code_url"], timeout=5).status_code == 200
    assert requests.get(ping["validation_code_url"] + "x", timeout=5).status_code == 404
    assert all(s["validated"] for s in sandbox.subscriptions())

    sandbox.update_entry(entry["id"], description="hooked again")
    sandbox.delete_entry(entry["id"])
    results = sandbox.deliver()
    assert len(results) == 3 and all(status == 200 for _, status in results)
    assert [e["metadata"]["action"] for e in echo.events] == ["created", "updated", "deleted"]
    assert [e["metadata"]["action"] for e in silent.events] == ["deleted"]
    event = echo.events[-1]
    assert set(event) == {"event_id", "created_at", "creator_id", "metadata", "payload", "subscription_id", "timestamp"}
    assert event["subscription_id"] == first and event["creator_id"] == sandbox.owner_id
    assert event["metadata"] == {
        "action": "deleted",
        "event_user_id": sandbox.owner_id,
        "model": "time_entry",
        "path": f"/api/v9/workspaces/{sandbox.workspace_id}/time_entries/{entry['id']}",
        "workspace_id": sandbox.workspace_id,
    }
    assert event["payload"]["id"] == entry["id"] and event["payload"]["server_deleted_at"] is not None
    ids = [e["event_id"] for e in echo.events + silent.events]
    assert len(set(ids)) == len(ids)
    assert len(sandbox.events_sent()) == 4 and sandbox.pending_events() == 0


def test_webhook_duplicate_shuffle_drop_and_retries(sandbox: TogglSandbox, receivers: list[Receiver]) -> None:
    receiver = Receiver("k")
    receivers.append(receiver)
    sandbox.subscribe(receiver.url, "k", events=("updated",))
    ids = [e["id"] for e in sandbox.entries_snapshot()[:12]]

    sandbox.webhook_faults(duplicate=1.0)
    sandbox.update_entry(ids[0], description="twice")
    results = sandbox.deliver()
    assert len(results) == 2 and results[0] == results[1]
    assert [e["event_id"] for e in receiver.events] == [results[0][0]] * 2

    receiver.events.clear()
    sandbox.webhook_faults(shuffle=True, seed=3)
    for entry_id in ids[:10]:
        sandbox.update_entry(entry_id, description="shuffled")
    sandbox.deliver()
    got = [e["event_id"] for e in receiver.events]
    assert len(set(got)) == 10 and got != sorted(got)  # all of them, out of order

    receiver.events.clear()
    sandbox.webhook_faults(drop=1.0)
    sandbox.update_entry(ids[0], description="lost")
    dropped = sandbox.deliver()
    assert len(dropped) == 1 and dropped[0][1] is None and receiver.events == []
    assert sandbox.pending_events() == 0  # a dropped event is gone for good

    sandbox.webhook_faults()
    receiver.fail_next = 2
    sandbox.update_entry(ids[1], description="retried")
    assert [s for _, s in sandbox.deliver()] == [500]
    assert sandbox.pending_events() == 1
    assert [s for _, s in sandbox.deliver()] == [500]
    assert [s for _, s in sandbox.deliver()] == [200]
    assert sandbox.pending_events() == 0 and len(receiver.events) == 1

    receiver.fail_next = 10
    sandbox.update_entry(ids[2], description="given up")
    statuses = [s for _ in range(5) for _, s in sandbox.deliver()]
    assert statuses == [500, 500, 500, 500]  # the first attempt plus three retries
    attempts = [e["attempt"] for e in sandbox.events_sent() if e["event"]["payload"]["description"] == "given up"]
    assert attempts == [1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------- faults and stats


@pytest.mark.parametrize(("kind", "status"), [("5xx", 503), ("429", 429), ("402", 402)])
def test_status_faults(sandbox: TogglSandbox, api: requests.Session, kind: str, status: int) -> None:
    sandbox.set_quota(50)
    sandbox.inject_fault(kind, path_prefix="/reports")
    response = search(api, sandbox, **FULL_RANGE)
    assert response.status_code == status and "X-Toggl-Quota-Remaining" in response.headers
    if kind == "429":
        assert response.headers["Retry-After"] == "1"
    if kind == "402":
        assert response.headers["X-Toggl-Quota-Remaining"] == "0"
    ok = search(api, sandbox, **FULL_RANGE)
    assert ok.status_code == 200 and ok.headers["X-Toggl-Quota-Remaining"] == "49"  # the fault cost nothing


def test_drop_slow_malformed_and_fault_matching(sandbox: TogglSandbox, api: requests.Session) -> None:
    sandbox.inject_fault("drop")
    with pytest.raises(requests.ConnectionError):
        get(api, sandbox, "/me")
    sandbox.inject_fault("slow", delay=0.3)
    started = time.perf_counter()
    assert get(api, sandbox, "/me").status_code == 200
    assert time.perf_counter() - started >= 0.3
    sandbox.inject_fault("malformed")
    broken = search(api, sandbox, **FULL_RANGE)
    assert broken.status_code == 200 and len(broken.content) == int(broken.headers["Content-Length"])
    with pytest.raises(ValueError):
        broken.json()

    sandbox.inject_fault("5xx", after=1, times=2, path_prefix="/api/v9/me")
    path = f"/workspaces/{sandbox.workspace_id}"
    codes = [get(api, sandbox, "/me").status_code if i % 2 else get(api, sandbox, path).status_code for i in range(8)]
    assert codes == [200, 200, 200, 503, 200, 503, 200, 200]
    sandbox.inject_fault("5xx", times=5)
    sandbox.clear_faults()
    assert get(api, sandbox, path).status_code == 200
    with pytest.raises(ValueError):
        sandbox.inject_fault("teapot")


def test_stats_and_keep_alive(sandbox: TogglSandbox, api: requests.Session) -> None:
    sandbox.reset_stats()
    get(api, sandbox, "/me")
    get(api, sandbox, "/me/time_entries", since=ts(NOW) - 60)
    requests.get(sandbox.url + "/api/v9/me", timeout=5)
    stats = sandbox.stats()
    assert stats["requests"] == 3 and stats["status_counts"] == {200: 2, 403: 1}
    assert stats["by_path"]["/api/v9/me"] == 2
    assert stats["log"][1] == ("GET", f"/api/v9/me/time_entries?since={ts(NOW) - 60}", 200)

    host, port = sandbox.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for headers, status in (({}, 403), (sandbox.auth_headers(), 200), (sandbox.auth_headers(), 404)):
            conn.request("GET", "/api/v9/me" if status != 404 else "/api/v9/nothing", headers=headers)
            response = conn.getresponse()  # one socket throughout: the server keeps the connection open
            assert response.status == status
            assert int(response.getheader("Content-Length")) == len(response.read())
    finally:
        conn.close()


def test_control_endpoints(sandbox: TogglSandbox, api: requests.Session) -> None:
    control = sandbox.url + "/_sandbox"
    assert requests.post(f"{control}/quota", json={"quota": 2}, timeout=5).json()["org"]["total"] == 2
    assert [get(api, sandbox, "/me/workspaces").status_code for _ in range(1)] == [200]
    path = f"/workspaces/{sandbox.workspace_id}"
    assert [get(api, sandbox, path).status_code for _ in range(3)] == [200, 200, 402]
    assert requests.post(f"{control}/advance", json={"seconds": 3600}, timeout=5).status_code == 200
    assert get(api, sandbox, path).status_code == 200
    assert requests.post(f"{control}/quota", json={"quota": None}, timeout=5).status_code == 200
    assert requests.post(f"{control}/short_term", json={"burst": 1, "per_seconds": 60}, timeout=5).status_code == 200
    assert [get(api, sandbox, path).status_code for _ in range(2)] == [200, 429]
    assert requests.post(f"{control}/short_term", json={"off": True}, timeout=5).status_code == 200
    assert requests.post(f"{control}/faults", json={"kind": "5xx", "times": 2}, timeout=5).status_code == 201
    assert requests.delete(f"{control}/faults", timeout=5).status_code == 200
    assert get(api, sandbox, path).status_code == 200

    edited = requests.post(f"{control}/edit_random", json={"count": 5, "seed": 1}, timeout=5).json()["ids"]
    assert len(edited) == 5
    since = get(api, sandbox, "/me/time_entries", since=ts(NOW) - 1).json()
    assert {e["id"] for e in since} <= set(edited)
    stats = requests.get(f"{control}/stats", timeout=5).json()
    assert stats["requests"] > 0 and "/_sandbox/stats" not in stats["by_path"]
    assert requests.post(f"{control}/reset_stats", timeout=5).status_code == 200
    assert sandbox.stats()["requests"] == 0
    assert requests.post(f"{control}/faults", json={"kind": "nope"}, timeout=5).status_code == 400
    assert requests.get(f"{control}/nothing", timeout=5).status_code == 404


# ---------------------------------------------------------------------------------------------- generator


def test_generator_is_deterministic() -> None:
    a = generate_dataset(800, seed=5, anchor=ANCHOR).to_bytes()
    assert a == generate_dataset(800, seed=5, anchor=ANCHOR).to_bytes()
    assert a != generate_dataset(800, seed=6, anchor=ANCHOR).to_bytes()
    rows = generate_dataset(200, seed=5, anchor=ANCHOR).entries
    assert all(render_entry(row) == dumps(entry_object(row)) for row in rows)  # fast renderer == the dict


def test_generator_realism(dataset: Dataset) -> None:
    entries = dataset.entries
    assert len(entries) == 1500 and [(e.start, e.id) for e in entries] == sorted((e.start, e.id) for e in entries)
    first = datetime(2023, 6, 30, tzinfo=UTC).timestamp()
    assert all(first <= e.start < datetime(2024, 6, 29, tzinfo=UTC).timestamp() for e in entries)
    share = sum(e.user_id == dataset.owner_id for e in entries) / len(entries)
    assert abs(share - 1 / len(dataset.users)) < 0.06
    finished = [e for e in entries if e.stop is not None]
    assert all(300 <= e.duration <= 28_800 and e.stop - e.start == e.duration for e in finished)
    running = [e for e in entries if e.stop is None]
    assert all(e.duration == -e.start for e in running) and len(running) <= len({e.user_id for e in running})
    assert 0.7 < sum(e.billable for e in entries) / len(entries) < 0.92
    texts = "".join(e.description or "" for e in entries)
    assert all(ch in texts for ch in (",", '"', "\n", "é", "日"))
    groups = Counter((e.user_id, e.project_id, e.task_id, e.billable, e.description, e.tag_ids) for e in entries)
    assert sum(1 for n in groups.values() if n > 1) > 50
    assert any(e.deleted_at is not None for e in entries)
    assert {p["currency"] for p in dataset.projects} == {"USD", "EUR", "JPY"}
    assert all(p["rate"] is not None for p in dataset.projects if p["currency"] != "USD")


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_prints_its_url_and_exits_cleanly() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "sandbox.toggl", "--entries", "300", "--seed", "3", "--port", "0",
        "--anchor", "2024-06-28", "--quota", "240", "--no-short-term-limit",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=20)
        assert lines and lines[0].startswith("TOGGL_SANDBOX_URL=http://127.0.0.1:"), proc.stderr
        url = lines[0].strip().split("=", 1)[1]
        auth = ("1971800d4d82861d8f2c1651fea4d212", "api_token")
        me = requests.get(f"{url}/api/v9/me", auth=auth, timeout=5).json()
        response = requests.post(
            f"{url}/reports/api/v3/workspace/{me['default_workspace_id']}/search/time_entries",
            json={**FULL_RANGE, "page_size": 1000},
            auth=auth,
            timeout=5,
        )
        assert response.headers["X-Toggl-Quota-Remaining"] == "239"
        assert 250 < sum(len(row["time_entries"]) for row in response.json()) <= 300
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
