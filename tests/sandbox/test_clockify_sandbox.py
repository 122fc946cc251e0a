"""The Clockify sandbox: API shapes, paging, rates, the detailed report, limits, webhooks, faults, generator, CLI."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.clockify import ClockifySandbox, generate_dataset
from sandbox.clockify.data import Dataset, iso_duration

ROOT = Path(__file__).resolve().parents[2]
ANCHOR = date(2024, 6, 28)
HEX24 = re.compile(r"^[0-9a-f]{24}$")
DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")
ENTRY_KEYS = {
    "id", "description", "tagIds", "userId", "billable", "taskId", "projectId", "workspaceId", "timeInterval",
    "customFieldValues", "type", "kioskId", "hourlyRate", "costRate", "isLocked",
}  # fmt: skip
REPORT_KEYS = {
    "_id", "description", "userId", "userName", "userEmail", "projectId", "projectName", "projectColor", "clientId",
    "clientName", "taskId", "taskName", "billable", "timeInterval", "rate", "amount", "currency", "approvalState",
    "invoicingState", "isLocked", "tagIds", "tags", "type",
}  # fmt: skip


class FakeClock:
    """Epoch seconds the test moves by hand (the sandbox adds advance() on top)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate_dataset(3000, seed=11, anchor=ANCHOR)


@pytest.fixture
def sandbox(dataset: Dataset) -> Iterator[ClockifySandbox]:
    clock = FakeClock(datetime(2024, 7, 1, 12, tzinfo=UTC).timestamp())
    with ClockifySandbox(dataset, limit=None, clock=clock) as sb:
        yield sb


@pytest.fixture
def api(sandbox: ClockifySandbox) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(sandbox.auth_headers())
        yield session


def ws_url(sb: ClockifySandbox, path: str = "") -> str:
    return f"{sb.api_url}/workspaces/{sb.workspace_id}{path}"


def user_entries(api: requests.Session, sb: ClockifySandbox, user_id: str, size: int = 50, **params: Any) -> list:
    """Page until a page is shorter than page-size, like a real extractor."""
    entries: list[dict[str, Any]] = []
    page = 1
    while True:
        response = api.get(
            ws_url(sb, f"/user/{user_id}/time-entries"), params={**params, "page": page, "page-size": size}, timeout=5
        )
        assert response.status_code == 200, response.text
        batch = response.json()
        assert isinstance(batch, list) and len(batch) <= size
        entries.extend(batch)
        if len(batch) < size:
            return entries
        page += 1


def report(api: requests.Session, sb: ClockifySandbox, **spec: Any) -> requests.Response:
    body = {"dateRangeStart": "2000-01-01T00:00:00Z", "dateRangeEnd": "2030-01-01T00:00:00Z", **spec}
    return api.post(f"{sb.reports_url}/workspaces/{sb.workspace_id}/reports/detailed", json=body, timeout=10)


def report_all(api: requests.Session, sb: ClockifySandbox, size: int = 1000, **spec: Any) -> tuple[list, list]:
    """Every report item across pages, plus the totals of the first page."""
    items: list[dict[str, Any]] = []
    page, totals = 1, None
    while True:
        body = report(api, sb, detailedFilter={"page": page, "pageSize": size, "sortColumn": "DATE"}, **spec).json()
        totals = body["totals"] if totals is None else totals
        items.extend(body["timeentries"])
        if len(body["timeentries"]) < size:
            return items, totals
        page += 1


def seconds(duration: str) -> int:
    match = DURATION.match(duration)
    assert match and duration != "PT", duration
    h, m, s = (int(g or 0) for g in match.groups())
    return h * 3600 + m * 60 + s


def epoch(stamp: str) -> int:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp), stamp
    return int(datetime.fromisoformat(stamp).timestamp())


# ---------------------------------------------------------------------------------------------- auth, shapes


def test_auth(sandbox: ClockifySandbox) -> None:
    for headers in ({}, {"X-Api-Key": "wrong"}, {"Authorization": f"Bearer {sandbox.api_key}"}):
        for method, url in (
            ("GET", sandbox.api_url + "/user"),
            ("POST", ws_url(sandbox).replace("/api/v1", "/reports/v1") + "/reports/detailed"),
        ):
            response = requests.request(method, url, headers=headers, json={}, timeout=5)
            assert response.status_code == 401
            assert response.json()["code"] == 401 and response.json()["message"]
    good = {"X-Api-Key": sandbox.api_key}
    assert requests.get(sandbox.api_url + "/user", headers=good, timeout=5).status_code == 200
    other = requests.get(f"{sandbox.api_url}/workspaces/{'0' * 24}/clients", headers=good, timeout=5)
    assert other.status_code == 403 and other.json()["code"] == 403
    assert requests.get(sandbox.url + "/nowhere", headers=good, timeout=5).status_code == 404
    assert requests.get(sandbox.url + "/_sandbox/stats", timeout=5).status_code == 200  # control: no auth


def test_catalogs(sandbox: ClockifySandbox, api: requests.Session, dataset: Dataset) -> None:
    me = api.get(sandbox.api_url + "/user", timeout=5).json()
    assert me["id"] == dataset.users[0]["id"] and me["activeWorkspace"] == sandbox.workspace_id
    (workspace,) = api.get(sandbox.api_url + "/workspaces", timeout=5).json()
    assert workspace["hourlyRate"] == {"amount": 10000, "currency": "USD"}
    assert workspace["workspaceSettings"]["timeRoundingInReports"] is True
    assert workspace["workspaceSettings"]["round"] == {"round": "Round up to", "minutes": "15"}

    def all_pages(path: str, size: int) -> list[dict[str, Any]]:
        out, page = [], 1
        while True:
            batch = api.get(ws_url(sandbox, path), params={"page": page, "page-size": size}, timeout=5).json()
            out += batch
            if len(batch) < size:
                return out
            page += 1

    clients = all_pages("/clients", 2)
    assert clients == dataset.clients and {"id", "name", "workspaceId", "archived"} <= set(clients[0])
    users = all_pages("/users", 2)
    assert users == dataset.users and users[0]["memberships"][0]["targetId"] == sandbox.workspace_id
    projects = all_pages("/projects", 7)
    assert projects == dataset.projects
    keys = {"id", "name", "clientId", "clientName", "billable", "hourlyRate", "memberships", "archived"}
    assert keys <= set(projects[0])
    assert api.get(ws_url(sandbox, "/projects"), timeout=5).json() == dataset.projects[:50]  # default page-size
    assert {p["hourlyRate"]["currency"] for p in projects if p["hourlyRate"]} == {"USD", "EUR", "JPY"}
    assert any(not p["billable"] for p in projects)
    for project in projects[:5]:
        tasks = all_pages(f"/projects/{project['id']}/tasks", 3)
        assert tasks == [t for t in dataset.tasks if t["projectId"] == project["id"]]
        assert {"id", "name", "projectId", "billable", "hourlyRate", "status"} <= set(tasks[0])
    for obj in (*clients, *users, *projects, *dataset.tasks):
        assert HEX24.match(obj["id"])
    assert api.get(ws_url(sandbox, "/clients"), params={"page": 0}, timeout=5).status_code == 400
    assert len(api.get(ws_url(sandbox, "/clients"), params={"archived": "true"}, timeout=5).json()) == sum(
        c["archived"] for c in dataset.clients
    )


# ---------------------------------------------------------------------------------------------- entries


def test_per_user_paging_covers_every_entry_once(sandbox: ClockifySandbox, api: requests.Session) -> None:
    snapshot = sandbox.entries_snapshot()
    seen: list[str] = []
    for user in [u["id"] for u in api.get(ws_url(sandbox, "/users"), timeout=5).json()]:
        entries = user_entries(api, sandbox, user, size=37)
        assert all(e["userId"] == user for e in entries)
        keys = [(e["timeInterval"]["start"], e["id"]) for e in entries]
        assert keys == sorted(keys, reverse=True)  # newest first
        seen += [e["id"] for e in entries]
    assert len(seen) == len(set(seen)) == len(snapshot) == 3000
    by_id = {e["id"]: e for e in snapshot}
    first_page = ws_url(sandbox, f"/user/{snapshot[0]['userId']}/time-entries")
    (entry,) = api.get(first_page, params={"page-size": 1}, timeout=5).json()
    assert set(entry) == ENTRY_KEYS and entry == {k: v for k, v in by_id[entry["id"]].items() if k in ENTRY_KEYS}
    assert entry["workspaceId"] == sandbox.workspace_id and HEX24.match(entry["id"]) and entry["type"] == "REGULAR"

    user = snapshot[0]["userId"]
    mine = [e for e in snapshot if e["userId"] == user]
    lo, hi = mine[len(mine) * 3 // 4]["timeInterval"]["start"], mine[len(mine) // 4]["timeInterval"]["start"]
    ranged = user_entries(api, sandbox, user, size=100, start=lo, end=hi)
    assert [e["id"] for e in ranged] == [e["id"] for e in mine if lo <= e["timeInterval"]["start"] <= hi]
    assert ranged[0]["timeInterval"]["start"] == hi and ranged[-1]["timeInterval"]["start"] == lo  # inclusive
    capped = api.get(ws_url(sandbox, f"/user/{user}/time-entries"), params={"page-size": 99999}, timeout=5).json()
    assert len(capped) == len(mine)  # page-size is capped at 5000, not refused
    rest_shape = [{k: v for k, v in e.items() if k in ENTRY_KEYS} for e in mine[:50]]
    assert api.get(ws_url(sandbox, f"/user/{user}/time-entries"), timeout=5).json() == rest_shape
    bad = api.get(ws_url(sandbox, f"/user/{user}/time-entries"), params={"start": "yesterday"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["code"] == 400

    hydrated = api.get(ws_url(sandbox, f"/user/{user}/time-entries"), params={"hydrated": "true"}, timeout=5).json()
    with_project = next(e for e in hydrated if e["projectId"])
    assert with_project["project"]["id"] == with_project["projectId"] and with_project["tags"] == []


def test_iso_8601_durations(sandbox: ClockifySandbox) -> None:
    assert [iso_duration(s) for s in (5400, 2700, 7205, 3600, 59, 0, 28800)] == [
        "PT1H30M", "PT45M", "PT2H0M5S", "PT1H", "PT59S", "PT0S", "PT8H",
    ]  # fmt: skip
    snapshot = sandbox.entries_snapshot()
    for entry in snapshot:
        interval = entry["timeInterval"]
        if interval["end"] is None:
            assert interval["duration"] is None
            continue
        assert seconds(interval["duration"]) == epoch(interval["end"]) - epoch(interval["start"])
        assert 300 <= seconds(interval["duration"]) <= 28800
    running = sandbox.create_entry(start="2024-07-01T11:00:00Z", end=None)
    assert running["timeInterval"] == {"start": "2024-07-01T11:00:00Z", "end": None, "duration": None}


def expected_rate(workspace: dict, users: dict, projects: dict, tasks: dict, entry: dict) -> tuple[str, dict]:
    """Clockify's precedence, written out independently: task > project member > project > member > workspace."""
    task, project, user = tasks.get(entry["taskId"]), projects.get(entry["projectId"]), users[entry["userId"]]
    if task and task["hourlyRate"]:
        return "task", task["hourlyRate"]
    if project:
        member = next((m for m in project["memberships"] if m["userId"] == user["id"]), None)
        if member and member["hourlyRate"]:
            return "project-member", member["hourlyRate"]
        if project["hourlyRate"]:
            return "project", project["hourlyRate"]
    if user["memberships"][0]["hourlyRate"]:
        return "member", user["memberships"][0]["hourlyRate"]
    return "workspace", workspace["hourlyRate"]


def test_resolved_hourly_rate_precedence(sandbox: ClockifySandbox, api: requests.Session) -> None:
    workspace = api.get(sandbox.api_url + "/workspaces", timeout=5).json()[0]
    users = {u["id"]: u for u in api.get(ws_url(sandbox, "/users"), timeout=5).json()}
    projects = {p["id"]: p for p in api.get(ws_url(sandbox, "/projects"), params={"page-size": 5000}, timeout=5).json()}
    tasks = {
        t["id"]: t
        for pid in projects
        for t in api.get(ws_url(sandbox, f"/projects/{pid}/tasks"), params={"page-size": 5000}, timeout=5).json()
    }
    levels = Counter()
    for entry in sandbox.entries_snapshot():
        level, rate = expected_rate(workspace, users, projects, tasks, entry)
        assert entry["hourlyRate"] == rate, (level, entry)
        assert isinstance(rate["amount"], int)
        levels[level] += 1
    assert set(levels) == {"task", "project-member", "project", "member", "workspace"}

    # And for entries made on purpose: pick a project member with their own rate, then peel layers off.
    project = next(
        p
        for p in projects.values()
        if p["hourlyRate"] and any(m["hourlyRate"] for m in p["memberships"]) and len(p["memberships"]) < len(users)
    )
    member = next(m for m in project["memberships"] if m["hourlyRate"])
    own = next((t for t in tasks.values() if t["projectId"] == project["id"] and t["hourlyRate"]), None)
    plain = next(t for t in tasks.values() if t["projectId"] == project["id"] and not t["hourlyRate"])
    if own is not None:
        made = sandbox.create_entry(userId=member["userId"], projectId=project["id"], taskId=own["id"])
        assert made["hourlyRate"] == own["hourlyRate"]
    made = sandbox.create_entry(userId=member["userId"], projectId=project["id"], taskId=plain["id"])
    assert made["hourlyRate"] == member["hourlyRate"]
    outsider = next(u for u in users if u not in {m["userId"] for m in project["memberships"]})
    moved = sandbox.update_entry(made["id"], userId=outsider)  # not a member: the project rate applies
    assert moved["hourlyRate"] == project["hourlyRate"]
    none = sandbox.update_entry(made["id"], projectId=None)
    assert none["taskId"] is None and none["hourlyRate"] == expected_rate(workspace, users, projects, tasks, none)[1]
    fixed = sandbox.update_entry(made["id"], hourlyRate={"amount": 1234, "currency": "EUR"})
    assert fixed["hourlyRate"] == {"amount": 1234, "currency": "EUR"}


# ---------------------------------------------------------------------------------------------- report


def test_detailed_report(sandbox: ClockifySandbox, api: requests.Session) -> None:
    snapshot = {e["id"]: e for e in sandbox.entries_snapshot() if e["timeInterval"]["end"]}
    items, totals = report_all(api, sandbox)
    assert [i["_id"] for i in items] == list(snapshot)  # newest first, running timers left out
    assert set(items[0]) == REPORT_KEYS
    for item in items:
        entry = snapshot[item["_id"]]
        interval = item["timeInterval"]
        assert isinstance(interval["duration"], int)
        assert interval["duration"] == seconds(entry["timeInterval"]["duration"])
        assert (item["approvalState"], item["invoicingState"]) == (entry["approvalState"], entry["invoicingState"])
        assert item["rate"] == entry["hourlyRate"]["amount"] and item["currency"] == entry["hourlyRate"]["currency"]
        expected = (item["rate"] * interval["duration"] + 1800) // 3600 if entry["billable"] else 0
        assert item["amount"] == expected
        assert (
            item["isLocked"]
            == entry["isLocked"]
            == (item["approvalState"] == "APPROVED" or item["invoicingState"] == "INVOICED")
        )
    assert totals[0]["entriesCount"] == len(items)
    assert totals[0]["totalTime"] == sum(i["timeInterval"]["duration"] for i in items)
    assert totals[0]["totalAmount"] == sum(i["amount"] for i in items)
    states = Counter(i["approvalState"] for i in items)
    assert set(states) == {"APPROVED", "PENDING", "UNSUBMITTED"}
    assert 0.6 < states["APPROVED"] / len(items) < 0.8 and 0.05 < states["PENDING"] / len(items) < 0.15
    assert 0.01 < sum(i["invoicingState"] == "INVOICED" for i in items) / len(items) < 0.06

    def ids(**spec: Any) -> list[str]:
        return [i["_id"] for i in report_all(api, sandbox, size=400, **spec)[0]]

    assert ids(approvalState="APPROVED") == [i["_id"] for i in items if i["approvalState"] == "APPROVED"]
    assert ids(approvalState="UNAPPROVED") == [i["_id"] for i in items if i["approvalState"] != "APPROVED"]
    assert ids(invoicingState="INVOICED") == [i["_id"] for i in items if i["invoicingState"] == "INVOICED"]
    assert ids(invoicingState="UNINVOICED", approvalState="APPROVED") == [
        i["_id"] for i in items if i["invoicingState"] == "UNINVOICED" and i["approvalState"] == "APPROVED"
    ]
    user, project = items[0]["userId"], items[0]["projectId"]
    assert ids(users={"ids": [user], "contains": "CONTAINS"}) == [i["_id"] for i in items if i["userId"] == user]
    assert ids(projects={"ids": [project], "contains": "DOES_NOT_CONTAIN"}) == [
        i["_id"] for i in items if i["projectId"] != project
    ]
    lo, hi = items[300]["timeInterval"]["start"], items[100]["timeInterval"]["start"]
    assert ids(dateRangeStart=lo, dateRangeEnd=hi) == [i["_id"] for i in items[100:301]]
    assert ids(sortOrder="ASCENDING") == [i["_id"] for i in reversed(items)]

    rounded, rounded_totals = report_all(api, sandbox, rounding=True, amountShown="EARNED")
    for plain, item in zip(items, rounded, strict=True):
        duration = item["timeInterval"]["duration"]
        assert (
            duration % 900 == 0
            and plain["timeInterval"]["duration"] <= duration < plain["timeInterval"]["duration"] + 900
        )
        assert item["amount"] == ((item["rate"] * duration + 1800) // 3600 if plain["billable"] else 0)
    assert rounded_totals[0]["totalTime"] > totals[0]["totalTime"]

    first = report(api, sandbox, detailedFilter={"page": 1, "pageSize": 5000}).json()
    assert len(first["timeentries"]) == 1000  # pageSize is capped at 1000
    empty = report(api, sandbox, dateRangeStart="1999-01-01T00:00:00Z", dateRangeEnd="1999-01-02T00:00:00Z").json()
    assert empty == {"totals": [], "timeentries": []}
    for bad in ({"dateRangeStart": None}, {"approvalState": "MAYBE"}, {"detailedFilter": {"page": 0}}):
        response = report(api, sandbox, **bad)
        assert response.status_code == 400 and response.json()["code"] == 400
    assert (
        api.get(f"{sandbox.reports_url}/workspaces/{sandbox.workspace_id}/reports/detailed", timeout=5).status_code
        == 405
    )


def test_report_sees_approval_invoicing_and_deletes(sandbox: ClockifySandbox, api: requests.Session) -> None:
    entries = [
        e for e in sandbox.entries_snapshot() if e["approvalState"] == "UNSUBMITTED" and e["timeInterval"]["end"]
    ]
    a, b, c = entries[:3]
    sandbox.approve([a["id"], b["id"]])
    sandbox.mark_invoiced([b["id"]])
    sandbox.delete_entry(c["id"])
    items = {i["_id"]: i for i in report_all(api, sandbox)[0]}
    assert items[a["id"]]["approvalState"] == "APPROVED" and items[a["id"]]["invoicingState"] == "UNINVOICED"
    assert items[b["id"]]["invoicingState"] == "INVOICED" and items[b["id"]]["isLocked"] is True
    assert c["id"] not in items
    assert sandbox.get_entry(a["id"])["isLocked"] is True  # the REST shape shows the lock, not the reason
    assert "approvalState" not in user_entries(api, sandbox, a["userId"], size=5000)[0]
    with pytest.raises(KeyError):
        sandbox.approve(["f" * 24])


# ---------------------------------------------------------------------------------------------- limits


def test_paid_limit_50_per_second(dataset: Dataset) -> None:
    clock = FakeClock(1_700_000_000.0)
    with ClockifySandbox(dataset, limit="paid", clock=clock) as sb, requests.Session() as session:
        session.headers.update(sb.auth_headers())
        codes = [session.get(sb.api_url + "/user", timeout=5).status_code for _ in range(53)]
        assert codes == [200] * 50 + [429] * 3
        refused = session.get(ws_url(sb, "/clients"), timeout=5)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert refused.json()["code"] == 429
        sb.advance(0.1)  # five tokens back
        assert [session.get(sb.api_url + "/user", timeout=5).status_code for _ in range(6)] == [200] * 5 + [429]
        sb.advance(1)
        assert session.get(sb.api_url + "/user", timeout=5).status_code == 200
        sb.set_limit(None)
        assert all(session.get(sb.api_url + "/user", timeout=5).status_code == 200 for _ in range(80))


def test_free_limit_30_per_hour(dataset: Dataset) -> None:
    clock = FakeClock(1_700_000_000.0)
    with ClockifySandbox(dataset, limit="free", clock=clock) as sb, requests.Session() as session:
        session.headers.update(sb.auth_headers())
        for i in range(30):
            assert session.get(sb.api_url + "/user", timeout=5).status_code == 200
            sb.advance(60 if i == 0 else 1)
        refused = session.get(sb.api_url + "/user", timeout=5)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) == 3600 - 60 - 29  # the first request leaves the window then
        sb.advance(3600 - 60 - 30)
        assert session.get(sb.api_url + "/user", timeout=5).status_code == 429
        sb.advance(1)
        assert session.get(sb.api_url + "/user", timeout=5).status_code == 200  # one slot freed
        assert session.get(sb.api_url + "/user", timeout=5).status_code == 429
        sb.advance(3600)
        assert all(session.get(sb.api_url + "/user", timeout=5).status_code == 200 for _ in range(30))


# ---------------------------------------------------------------------------------------------- webhooks


class Receiver:
    """A webhook endpoint that records what it gets and answers with scripted statuses (default 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.script: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.received.append((dict(self.headers), body))
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_webhook_events_and_signature(sandbox: ClockifySandbox, receiver: Receiver) -> None:
    webhook_id, token = sandbox.add_webhook(receiver.url)
    only_deletes, _ = sandbox.add_webhook(receiver.url, events=("TIME_ENTRY_DELETED",))
    created = sandbox.create_entry(description="new", start="2024-07-01T09:00:00Z", end="2024-07-01T10:30:00Z")
    updated = sandbox.update_entry(created["id"], description="changed")
    sandbox.approve([created["id"]])  # approval fires no time-entry webhook
    last = sandbox.get_entry(created["id"])
    sandbox.delete_entry(created["id"])
    assert receiver.received == []  # nothing leaves before deliver()
    results = sandbox.deliver()
    assert [status for _, status in results] == [200] * 4
    assert len({d for d, _ in results}) == 4  # one delivery id per event and webhook
    events = [(h["Clockify-Webhook-Id"], h["Clockify-Webhook-Event-Type"]) for h, _ in receiver.received]
    assert events == [
        (webhook_id, "NEW_TIME_ENTRY"),
        (webhook_id, "TIME_ENTRY_UPDATED"),
        (webhook_id, "TIME_ENTRY_DELETED"),
        (only_deletes, "TIME_ENTRY_DELETED"),
    ]
    headers, body = receiver.received[0]
    assert headers["Clockify-Signature"] == token  # the token itself, not an HMAC
    assert headers["Clockify-Webhook-Delivery-Id"] == results[0][0]
    assert body == created and body["timeInterval"]["duration"] == "PT1H30M"
    assert receiver.received[1][1] == updated
    assert receiver.received[2][1] == {k: v for k, v in last.items() if k in ENTRY_KEYS} and last["isLocked"]
    assert [e["event"] for e in sandbox.events_sent()] == [e for _, e in events]
    assert sandbox.deliver() == []


def test_webhook_retries_and_fault_knobs(sandbox: ClockifySandbox, receiver: Receiver) -> None:
    sandbox.add_webhook(receiver.url, events=("TIME_ENTRY_UPDATED",))
    target = sandbox.entries_snapshot()[0]["id"]
    sandbox.update_entry(target, description="retry me")
    receiver.script = [500, 503, 500, 500]
    first = sandbox.deliver()
    assert [s for _, s in first] == [500]
    assert [s for _, s in sandbox.deliver()] == [503] and [s for _, s in sandbox.deliver()] == [500]
    assert [s for _, s in sandbox.deliver()] == [500]  # the third retry fails too: given up
    assert sandbox.deliver() == [] and sandbox.pending_deliveries() == 0
    assert {h["Clockify-Webhook-Delivery-Id"] for h, _ in receiver.received} == {first[0][0]}  # same id each time
    receiver.script = [500]
    sandbox.update_entry(target, description="second")
    sandbox.deliver()
    assert [s for _, s in sandbox.deliver()] == [200]

    receiver.received.clear()
    sandbox.webhook_faults(duplicate=0.5, shuffle=True, seed=3)
    ids = [sandbox.update_entry(target, description=f"#{n}")["description"] for n in range(40)]
    results = sandbox.deliver()
    delivery_ids = [d for d, _ in results]
    assert 45 < len(results) < 75 and len(set(delivery_ids)) == 40  # duplicates keep their delivery id
    got = [b["description"] for _, b in receiver.received]
    assert set(got) == set(ids) and list(dict.fromkeys(got)) != ids  # all there, out of order

    receiver.received.clear()
    sandbox.webhook_faults(drop=0.5, seed=1)
    for n in range(40):
        sandbox.update_entry(target, description=f"drop #{n}")
    sent = sandbox.deliver()
    assert 10 < len(sent) < 30 and len(sent) + len(sandbox.events_dropped()) == 40
    assert len(receiver.received) == len(sent)
    assert sandbox.deliver() == []  # dropped means lost for good


# ---------------------------------------------------------------------------------------------- faults, stats


def test_faults(sandbox: ClockifySandbox, api: requests.Session) -> None:
    url = sandbox.api_url + "/user"
    for kind, status in (("5xx", 503), ("500", 500), ("429", 429)):
        sandbox.inject_fault(kind)
        response = api.get(url, timeout=5)
        assert response.status_code == status and response.json()["code"] == status
        if kind == "429":
            assert response.headers["Retry-After"] == "1"
        assert api.get(url, timeout=5).status_code == 200
    sandbox.inject_fault("drop")
    with pytest.raises(requests.ConnectionError):
        api.get(url, timeout=5)
    sandbox.inject_fault("slow", delay=0.3)
    started = time.perf_counter()
    assert api.get(url, timeout=5).status_code == 200 and time.perf_counter() - started >= 0.3
    sandbox.inject_fault("malformed", path_prefix="/reports/")
    assert api.get(url, timeout=5).status_code == 200
    broken = report(api, sandbox)
    assert broken.status_code == 200 and len(broken.content) == int(broken.headers["Content-Length"])
    with pytest.raises(ValueError):
        broken.json()
    sandbox.inject_fault("5xx", after=2, times=2, path_prefix="/api/v1/workspaces")
    codes = [api.get(ws_url(sandbox, "/clients"), timeout=5).status_code for _ in range(5)]
    assert codes == [200, 200, 503, 503, 200]
    sandbox.inject_fault("5xx", times=5)
    sandbox.clear_faults()
    assert api.get(url, timeout=5).status_code == 200
    with pytest.raises(ValueError):
        sandbox.inject_fault("teapot")


def test_stats_and_keep_alive(sandbox: ClockifySandbox, api: requests.Session) -> None:
    sandbox.reset_stats()
    api.get(ws_url(sandbox, "/clients"), params={"page-size": 2}, timeout=5)
    api.get(sandbox.api_url + "/nope", timeout=5)
    stats = sandbox.stats()
    path = f"/api/v1/workspaces/{sandbox.workspace_id}/clients"
    assert stats["requests"] == 2 and stats["by_path"][path] == 1 and stats["status_counts"] == {200: 1, 404: 1}
    assert stats["log"][0] == ("GET", f"{path}?page-size=2", 200)
    sandbox.reset_stats()
    assert sandbox.stats()["requests"] == 0

    host, port = sandbox.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/api/v1/user")
        first = conn.getresponse()
        assert first.status == 401 and int(first.getheader("Content-Length")) == len(first.read())
        conn.request("GET", "/api/v1/user", headers={"X-Api-Key": sandbox.api_key})
        second = conn.getresponse()  # same socket: the server kept the connection open
        assert second.status == 200 and int(second.getheader("Content-Length")) == len(second.read())
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------- mutations


def test_mutations_and_raw_entries(sandbox: ClockifySandbox, api: requests.Session) -> None:
    created = sandbox.create_entry(description='Ünïcode, "quoted"\nline', start=datetime(2024, 7, 1, 8, tzinfo=UTC))
    assert set(created) == ENTRY_KEYS and created["timeInterval"]["end"] == "2024-07-01T09:00:00Z"
    listing = user_entries(api, sandbox, created["userId"], size=5000)
    assert listing[0] == created
    moved = sandbox.update_entry(created["id"], start="2020-01-01T00:00:00Z", end="2020-01-01T00:00:05Z")
    listing = user_entries(api, sandbox, created["userId"], size=5000)
    assert listing[-1] == moved and moved["timeInterval"]["duration"] == "PT5S"
    with pytest.raises(ValueError):
        sandbox.update_entry(created["id"], end="2019-01-01T00:00:00Z")
    with pytest.raises(ValueError):
        sandbox.create_entry(colour="red")
    with pytest.raises(KeyError):
        sandbox.update_entry("0" * 24, description="x")
    sandbox.delete_entry(created["id"])
    assert api.get(ws_url(sandbox, f"/time-entries/{created['id']}"), timeout=5).status_code == 404
    assert created["id"] not in {e["id"] for e in user_entries(api, sandbox, created["userId"], size=5000)}

    user = created["userId"]
    garbled = {"id": None, "timeInterval": {"start": "2024-03-15T10:00:00Z", "duration": "PT-nonsense"}}
    undated = {"description": "no interval at all"}
    key = sandbox.put_raw_entry(user, garbled)
    sandbox.put_raw_entry(user, undated)
    listing = user_entries(api, sandbox, user, size=5000)
    assert listing[0] == undated  # no usable start: listed first
    i = listing.index(garbled)
    assert listing[i - 1]["timeInterval"]["start"] >= "2024-03-15T10:00:00Z" >= listing[i + 1]["timeInterval"]["start"]
    assert garbled not in user_entries(api, sandbox, user, size=5000, start="2024-04-01T00:00:00Z")
    assert undated in user_entries(api, sandbox, user, size=5000, start="2024-04-01T00:00:00Z")
    items = report_all(api, sandbox, approvalState="APPROVED")[0]
    assert garbled in items and undated in items
    assert garbled in sandbox.entries_snapshot()
    sandbox.delete_entry(key)
    assert garbled not in user_entries(api, sandbox, user, size=5000)


def test_control_endpoints(sandbox: ClockifySandbox, api: requests.Session, receiver: Receiver) -> None:
    control = sandbox.url + "/_sandbox"
    api.get(sandbox.api_url + "/user", timeout=5)
    stats = requests.get(f"{control}/stats", timeout=5).json()
    assert stats["requests"] == 1 and stats["status_counts"] == {"200": 1}
    assert stats["log"] == [["GET", "/api/v1/user", 200]]
    assert requests.post(f"{control}/reset_stats", timeout=5).json() == {"ok": True}
    assert requests.get(f"{control}/stats", timeout=5).json()["requests"] == 0

    assert requests.post(f"{control}/faults", json={"kind": "5xx", "times": 2}, timeout=5).status_code == 201
    assert api.get(sandbox.api_url + "/user", timeout=5).status_code == 503
    assert requests.delete(f"{control}/faults", timeout=5).status_code == 200
    assert api.get(sandbox.api_url + "/user", timeout=5).status_code == 200
    assert requests.post(f"{control}/faults", json={"kind": "nope"}, timeout=5).status_code == 400
    assert requests.post(f"{control}/faults", data=b"{not json", timeout=5).status_code == 400

    hook = requests.post(f"{control}/webhooks", json={"url": receiver.url}, timeout=5).json()
    before = {e["id"]: e for e in sandbox.entries_snapshot()}
    edited = requests.post(f"{control}/edit_random", json={"count": 5, "seed": 1}, timeout=5).json()["ids"]
    assert len(set(edited)) == 5
    for entry_id in edited:
        after = sandbox.get_entry(entry_id)
        assert after["description"] != before[entry_id]["description"]
        assert after["timeInterval"]["end"] != before[entry_id]["timeInterval"]["end"]
    deliveries = requests.post(f"{control}/deliver", timeout=5).json()["deliveries"]
    assert len(deliveries) == 5 and all(status == 200 for _, status in deliveries)
    assert receiver.received[0][0]["Clockify-Signature"] == hook["authToken"]
    assert [e["body"]["id"] for e in requests.get(f"{control}/events_sent", timeout=5).json()] == edited

    assert requests.post(f"{control}/limit", json={"limit": "free"}, timeout=5).status_code == 200
    codes = [api.get(sandbox.api_url + "/user", timeout=5).status_code for _ in range(31)]
    assert codes[-2:] == [200, 429]
    assert requests.post(f"{control}/advance", json={"seconds": 3600}, timeout=5).status_code == 200
    assert api.get(sandbox.api_url + "/user", timeout=5).status_code == 200
    assert requests.post(f"{control}/limit", json={"limit": None}, timeout=5).status_code == 200
    assert requests.post(f"{control}/limit", json={"limit": "gold"}, timeout=5).status_code == 400

    made = requests.post(f"{control}/time_entries", json={"description": "ctl"}, timeout=5).json()
    assert requests.post(f"{control}/approve", json={"ids": [made["id"]]}, timeout=5).status_code == 200
    assert sandbox.get_entry(made["id"])["approvalState"] == "APPROVED"
    assert requests.delete(f"{control}/time_entries/{made['id']}", timeout=5).status_code == 200
    assert requests.delete(f"{control}/time_entries/{made['id']}", timeout=5).status_code == 404
    assert requests.get(f"{control}/nothing", timeout=5).status_code == 404


# ---------------------------------------------------------------------------------------------- generator


def test_generator_is_deterministic() -> None:
    a = generate_dataset(800, seed=5, anchor=ANCHOR)
    assert a.to_bytes() == generate_dataset(800, seed=5, anchor=ANCHOR).to_bytes()
    assert generate_dataset(800, seed=6, anchor=ANCHOR).to_bytes() != a.to_bytes()
    assert generate_dataset(800, seed=5, anchor=date(2024, 6, 29)).to_bytes() != a.to_bytes()
    assert generate_dataset(0, anchor=ANCHOR).entries == []


def test_generator_realism(dataset: Dataset) -> None:
    entries = [json.loads(row.body) for row in dataset.entries]
    ids = [e["id"] for e in entries]
    assert len(set(ids)) == len(ids) and all(HEX24.match(i) for i in ids)
    first = datetime(2023, 6, 30, tzinfo=UTC).timestamp()  # 365 days ending with the anchor
    for e, row in zip(entries, dataset.entries, strict=True):
        assert first <= epoch(e["timeInterval"]["start"]) < datetime(2024, 6, 29, tzinfo=UTC).timestamp()
        assert row.approval in ("APPROVED", "PENDING", "UNSUBMITTED") and not (row.invoiced and not e["billable"])
    n = len(entries)
    assert 0.75 < sum(e["billable"] for e in entries) / n < 0.85
    odd = [e["description"] for e in entries if any(c in e["description"] for c in '\n",é🚀=')]
    assert 0.02 < len(odd) / n < 0.08 and any(d.startswith("=") for d in odd)
    jpy = {e["hourlyRate"]["amount"] for e in entries if e["hourlyRate"]["currency"] == "JPY"}
    assert jpy and all(rate >= 10000 for rate in jpy)
    assert {e["hourlyRate"]["currency"] for e in entries} == {"USD", "EUR", "JPY"}
    assert any(e["projectId"] is None for e in entries) and any(e["taskId"] is None and e["projectId"] for e in entries)
    assert any(re.search(r"H0M\d+S$", e["timeInterval"]["duration"] or "") for e in entries)


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_prints_url_and_serves() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "sandbox.clockify", "--entries", "250", "--seed", "3", "--port", "0",
        "--anchor", "2024-06-28", "--limit", "none", "--api-key", "cli-key",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=20)
        assert lines and lines[0].startswith("CLOCKIFY_SANDBOX_URL=http://127.0.0.1:"), proc.stderr
        url = lines[0].strip().split("=", 1)[1]
        headers = {"X-Api-Key": "cli-key"}
        (workspace,) = requests.get(f"{url}/api/v1/workspaces", headers=headers, timeout=5).json()
        body = {"dateRangeStart": "2024-01-01T00:00:00Z", "dateRangeEnd": "2024-12-31T23:59:59Z"}
        reported = requests.post(
            f"{url}/reports/v1/workspaces/{workspace['id']}/reports/detailed", json=body, headers=headers, timeout=5
        ).json()
        assert 0 < reported["totals"][0]["entriesCount"] <= 250
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
        proc.stderr.close()
