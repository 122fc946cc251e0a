"""The Harvest sandbox: API shapes, paging, filters, rate limits, faults, mutations, generator and CLI."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.harvest import HarvestSandbox, generate_dataset
from sandbox.harvest.data import Dataset, dumps

ROOT = Path(__file__).resolve().parents[2]
ANCHOR = date(2024, 6, 28)  # a Friday, so the anchor day has entries (and maybe running timers)
ENTRY_KEYS = {
    "id", "spent_date", "hours", "hours_without_timer", "rounded_hours", "notes", "is_locked",
    "locked_reason", "is_closed", "is_billed", "timer_started_at", "started_time", "ended_time", "is_running",
    "billable", "budgeted", "billable_rate", "cost_rate", "created_at", "updated_at", "user", "client",
    "project", "task", "user_assignment", "task_assignment", "invoice", "external_reference",
}  # fmt: skip


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
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def sandbox(dataset: Dataset, clock: FakeClock) -> Iterator[HarvestSandbox]:
    sb = HarvestSandbox(rate_limit=None, clock=clock)
    sb.load(dataset)
    with sb:
        yield sb


@pytest.fixture
def api(sandbox: HarvestSandbox) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(sandbox.auth_headers())
        yield session


def get(api: requests.Session, sandbox: HarvestSandbox, path: str, **params: Any) -> requests.Response:
    return api.get(sandbox.url + path, params=params, timeout=5)


def pull(api: requests.Session, sandbox: HarvestSandbox, **params: Any) -> list[dict[str, Any]]:
    """Follow links.next from the first page, like a real extractor."""
    url: str | None = sandbox.url + "/v2/time_entries"
    entries: list[dict[str, Any]] = []
    first = True
    while url:
        response = api.get(url, params=params if first else None, timeout=5)
        first = False
        assert response.status_code == 200, response.text
        body = response.json()
        entries.extend(body["time_entries"])
        url = body["links"]["next"]
    return entries


# ---------------------------------------------------------------------------------------------- auth


def test_auth_errors(sandbox: HarvestSandbox) -> None:
    url = sandbox.url + "/v2/time_entries"
    good = sandbox.auth_headers()

    for headers in (
        {**good, "Authorization": "Bearer nope"},
        {k: v for k, v in good.items() if k != "Authorization"},
    ):
        response = requests.get(url, headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json() == {
            "error": "invalid_token",
            "error_description": (
                "The access token provided is expired, revoked, malformed or invalid for other reasons."
            ),
        }

    for headers in ({**good, "Harvest-Account-Id": "999"}, {**good, "Harvest-Account-Id": None}):
        response = requests.get(url, headers=headers, timeout=5)
        assert response.status_code == 401
        assert "Harvest-Account-Id" in response.json()["error_description"]

    for agent in (None, "", "  "):  # http.client sends no User-Agent unless told to (urllib3 always adds one)
        host, port = sandbox.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        headers = {k: v for k, v in good.items() if k != "User-Agent"}
        conn.request("GET", "/v2/time_entries", headers=headers if agent is None else {**headers, "User-Agent": agent})
        raw = conn.getresponse()
        assert raw.status == 400
        assert "User-Agent" in json.loads(raw.read())["error_description"]
        conn.close()

    assert requests.get(url, headers=good, timeout=5).status_code == 200


def test_me_company_and_catalogs(sandbox: HarvestSandbox, api: requests.Session, dataset: Dataset) -> None:
    me = get(api, sandbox, "/v2/users/me").json()
    assert me["id"] == dataset.users[0]["id"] and me["email"].endswith("@example.com")
    company = get(api, sandbox, "/v2/company").json()
    assert company["wants_timestamp_timers"] is False and company["base_uri"].startswith("https://")

    shapes = {
        "clients": {"id", "name", "is_active", "address", "statement_key", "currency", "created_at",
                    "updated_at"},
        "projects": {"id", "name", "code", "is_active", "is_billable", "bill_by", "hourly_rate", "budget",
                     "client", "created_at", "updated_at"},
        "tasks": {"id", "name", "billable_by_default", "default_hourly_rate", "is_default", "is_active",
                  "created_at", "updated_at"},
        "users": {"id", "first_name", "last_name", "email", "is_active", "default_hourly_rate", "cost_rate",
                  "created_at", "updated_at"},
    }  # fmt: skip
    for resource, keys in shapes.items():
        body = get(api, sandbox, f"/v2/{resource}", per_page=3).json()
        expected = getattr(dataset, resource)
        assert body["total_entries"] == len(expected)
        assert keys <= set(body[resource][0])
        assert [o["id"] for o in body[resource]] == sorted((o["id"] for o in expected), reverse=True)[:3]
        active = get(api, sandbox, f"/v2/{resource}", is_active="true").json()
        assert active["total_entries"] == sum(o["is_active"] for o in expected)
        one = expected[0]
        assert get(api, sandbox, f"/v2/{resource}/{one['id']}").json() == one
        since = sorted(o["updated_at"] for o in expected)[len(expected) // 2]
        recent = get(api, sandbox, f"/v2/{resource}", updated_since=since).json()
        assert recent["total_entries"] == sum(o["updated_at"] >= since for o in expected)
    assert {p["bill_by"] for p in dataset.projects} == {"Project", "Tasks", "People"}


# ---------------------------------------------------------------------------------------------- paging


def test_paging_via_links_covers_every_entry_once(sandbox: HarvestSandbox, api: requests.Session) -> None:
    snapshot = sandbox.entries_snapshot()
    first = get(api, sandbox, "/v2/time_entries", per_page=97).json()
    assert first["total_entries"] == len(snapshot) == 1500
    assert first["total_pages"] == 16 and first["page"] == 1 and first["next_page"] == 2
    assert first["previous_page"] is None and first["links"]["previous"] is None
    assert first["links"]["next"] == f"{sandbox.url}/v2/time_entries?page=2&per_page=97"
    assert first["links"]["last"] == f"{sandbox.url}/v2/time_entries?page=16&per_page=97"

    entries = pull(api, sandbox, per_page=97)
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)) == 1500
    assert entries == snapshot
    keys = [(e["spent_date"], e["id"]) for e in entries]
    assert keys == sorted(keys, reverse=True)  # spent_date desc, then id desc

    last = get(api, sandbox, "/v2/time_entries", per_page=97, page=16).json()
    assert last["next_page"] is None and last["links"]["next"] is None and last["previous_page"] == 15
    assert len(last["time_entries"]) == 1500 - 15 * 97
    beyond = get(api, sandbox, "/v2/time_entries", per_page=97, page=40).json()
    assert beyond["time_entries"] == [] and beyond["next_page"] is None


def test_links_carry_filters_and_per_page_bounds(sandbox: HarvestSandbox, api: requests.Session) -> None:
    body = get(api, sandbox, "/v2/time_entries", is_billed="false", per_page=50, **{"from": "2024-01-01"}).json()
    assert body["links"]["next"] == (
        f"{sandbox.url}/v2/time_entries?is_billed=false&from=2024-01-01&page=2&per_page=50"
    )
    assert get(api, sandbox, "/v2/time_entries", per_page=0).status_code == 400
    assert get(api, sandbox, "/v2/time_entries", page=0).status_code == 400
    clamped = get(api, sandbox, "/v2/time_entries", per_page=5000).json()
    assert clamped["per_page"] == 2000 and len(clamped["time_entries"]) == 1500
    assert "per_page=2000" in clamped["links"]["first"]
    assert get(api, sandbox, "/v2/time_entries").json()["per_page"] == 2000


def test_filters(sandbox: HarvestSandbox, api: requests.Session) -> None:
    snapshot = sandbox.entries_snapshot()
    stamps = sorted(e["updated_at"] for e in snapshot)
    since = stamps[len(stamps) * 3 // 4]
    sample = snapshot[100]

    def ids(**params: Any) -> list[int]:
        return [e["id"] for e in pull(api, sandbox, per_page=300, **params)]

    def expect(pred: Any) -> list[int]:
        return [e["id"] for e in snapshot if pred(e)]

    assert ids(updated_since=since) == expect(lambda e: e["updated_at"] >= since)
    as_offset = since.replace("Z", "+00:00")
    assert ids(updated_since=as_offset) == expect(lambda e: e["updated_at"] >= since)
    with_fraction = since.replace("Z", ".5Z")  # rounds up: the entry stamped exactly `since` is older
    assert ids(updated_since=with_fraction) == expect(lambda e: e["updated_at"] > since)
    assert ids(**{"from": "2024-03-01", "to": "2024-03-31"}) == expect(
        lambda e: "2024-03-01" <= e["spent_date"] <= "2024-03-31"
    )
    billed = ids(is_billed="true")
    assert billed and billed == expect(lambda e: e["is_billed"])
    assert ids(is_billed="false") == expect(lambda e: not e["is_billed"])
    assert ids(is_running="false") == expect(lambda e: not e["is_running"])
    for name in ("client", "project", "user"):
        wanted = sample[name]["id"]
        assert ids(**{f"{name}_id": wanted}) == expect(lambda e, n=name, w=wanted: e[n]["id"] == w)
    combined = ids(updated_since=since, is_billed="false", to="2024-05-31")
    assert combined == expect(
        lambda e: e["updated_at"] >= since and not e["is_billed"] and e["spent_date"] <= "2024-05-31"
    )

    for bad in (
        {"updated_since": "yesterday"},
        {"from": "2024-13-01"},
        {"is_billed": "maybe"},
        {"user_id": "x"},
    ):
        assert get(api, sandbox, "/v2/time_entries", **bad).status_code == 422


def test_single_entry_and_404(sandbox: HarvestSandbox, api: requests.Session) -> None:
    entry = sandbox.entries_snapshot()[0]
    assert get(api, sandbox, f"/v2/time_entries/{entry['id']}").json() == entry
    for path in ("/v2/time_entries/1", "/v2/time_entries/abc", "/v2/nothing", "/nowhere"):
        response = get(api, sandbox, path)
        assert response.status_code == 404
        assert response.json() == {"status": 404, "error": "Not Found"}


def test_keep_alive_and_content_length_on_errors(sandbox: HarvestSandbox) -> None:
    host, port = sandbox.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/v2/time_entries?per_page=1", headers={"User-Agent": "t"})
        first = conn.getresponse()
        assert first.status == 401 and int(first.getheader("Content-Length")) == len(first.read())
        conn.request("GET", "/v2/time_entries?per_page=1", headers=sandbox.auth_headers())
        second = conn.getresponse()  # same socket: the server kept the connection open
        assert second.status == 200 and int(second.getheader("Content-Length")) == len(second.read())
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------- limits


def test_rate_limit_bucket(dataset: Dataset) -> None:
    with HarvestSandbox(rate_limit=(2, 2.0)) as sb, requests.Session() as session:
        session.headers.update(sb.auth_headers())
        url = sb.url + "/v2/users/me"
        assert [session.get(url, timeout=5).status_code for _ in range(2)] == [200, 200]
        for _ in range(5):  # refused requests must not drain the bucket further
            refused = session.get(url, timeout=5)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "1"
            assert refused.json()["status"] == 429
        time.sleep(1.1)
        assert session.get(url, timeout=5).status_code == 200
        sb.set_rate_limit(None)
        assert all(session.get(url, timeout=5).status_code == 200 for _ in range(10))


def test_retry_after_is_ceiling_of_wait() -> None:
    with HarvestSandbox(rate_limit=(1, 30.0)) as sb:
        url = sb.url + "/v2/company"
        assert requests.get(url, headers=sb.auth_headers(), timeout=5).status_code == 200
        refused = requests.get(url, headers=sb.auth_headers(), timeout=5)
        assert refused.status_code == 429 and 29 <= int(refused.headers["Retry-After"]) <= 30


# ---------------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize(("kind", "status"), [("5xx", 503), ("500", 500), ("429", 429)])
def test_status_faults(sandbox: HarvestSandbox, api: requests.Session, kind: str, status: int) -> None:
    sandbox.inject_fault(kind)
    response = get(api, sandbox, "/v2/time_entries", per_page=5)
    assert response.status_code == status
    assert response.json()["status"] == status
    assert "Content-Length" in response.headers
    if kind == "429":
        assert response.headers["Retry-After"] == "1"
    assert get(api, sandbox, "/v2/time_entries", per_page=5).status_code == 200  # times=1 by default


def test_drop_fault_closes_socket(sandbox: HarvestSandbox, api: requests.Session) -> None:
    sandbox.inject_fault("drop")
    with pytest.raises(requests.ConnectionError):
        get(api, sandbox, "/v2/time_entries", per_page=5)
    assert get(api, sandbox, "/v2/time_entries", per_page=5).status_code == 200
    assert sandbox.stats()["status_counts"][0] == 1


def test_slow_and_malformed_faults(sandbox: HarvestSandbox, api: requests.Session) -> None:
    sandbox.inject_fault("slow", delay=0.4)
    started = time.perf_counter()
    assert get(api, sandbox, "/v2/time_entries", per_page=5).status_code == 200
    assert time.perf_counter() - started >= 0.4
    with pytest.raises(requests.Timeout):
        sandbox.inject_fault("slow", delay=0.5)
        api.get(sandbox.url + "/v2/time_entries", timeout=0.1)

    sandbox.inject_fault("malformed")
    response = get(api, sandbox, "/v2/time_entries", per_page=5)
    assert response.status_code == 200
    assert len(response.content) == int(response.headers["Content-Length"])
    with pytest.raises(ValueError):
        response.json()


def test_fault_after_times_prefix_and_clear(sandbox: HarvestSandbox, api: requests.Session) -> None:
    sandbox.inject_fault("5xx", after=2, times=2)
    codes = [get(api, sandbox, "/v2/time_entries", per_page=1).status_code for _ in range(5)]
    assert codes == [200, 200, 503, 503, 200]

    sandbox.inject_fault("500", times=3)
    assert get(api, sandbox, "/v2/users/me").status_code == 200  # prefix does not match
    assert get(api, sandbox, "/v2/time_entries/1").status_code == 500  # prefix matches the single-entry path
    sandbox.clear_faults()
    assert get(api, sandbox, "/v2/time_entries", per_page=1).status_code == 200

    sandbox.inject_fault("500", path_prefix="/v2/users")
    assert get(api, sandbox, "/v2/users/me").status_code == 500
    with pytest.raises(ValueError):
        sandbox.inject_fault("teapot")


def test_stats(sandbox: HarvestSandbox, api: requests.Session) -> None:
    sandbox.reset_stats()
    pull(api, sandbox, per_page=500)
    get(api, sandbox, "/v2/users/me")
    get(api, sandbox, "/v2/time_entries/1")
    stats = sandbox.stats()
    assert stats["requests"] == 5
    assert stats["time_entry_pages"] == 3
    assert stats["by_path"] == {"/v2/time_entries": 3, "/v2/users/me": 1, "/v2/time_entries/1": 1}
    assert stats["status_counts"] == {200: 4, 404: 1}
    assert stats["log"][0] == ("GET", "/v2/time_entries?per_page=500", 200)
    assert stats["log"][-1] == ("GET", "/v2/time_entries/1", 404)
    sandbox.reset_stats()
    assert sandbox.stats()["requests"] == 0 and sandbox.stats()["log"] == []


# ---------------------------------------------------------------------------------------------- mutations


def test_update_bumps_updated_at_strictly(sandbox: HarvestSandbox, api: requests.Session, clock: FakeClock) -> None:
    newest_before = max(e["updated_at"] for e in sandbox.entries_snapshot())
    target = sandbox.entries_snapshot()[10]
    first = sandbox.update_entry(target["id"], notes="changed", hours=1.01)
    assert first["updated_at"] == "2024-07-01T12:00:00Z" > newest_before
    assert (first["hours"], first["hours_without_timer"], first["rounded_hours"]) == (1.01, 1.01, 1.25)
    second = sandbox.update_entry(target["id"], notes="again")  # clock did not move: +1 s
    assert second["updated_at"] == "2024-07-01T12:00:01Z"
    clock.now += timedelta(hours=1)
    third = sandbox.update_entry(target["id"], billable=False)
    assert third["updated_at"] == "2024-07-01T13:00:00Z" and third["billable_rate"] is None

    fresh = pull(api, sandbox, updated_since="2024-07-01T12:00:00Z")
    assert fresh == [third] == [get(api, sandbox, f"/v2/time_entries/{target['id']}").json()]
    assert third["created_at"] == target["created_at"]


def test_spent_date_change_resorts_and_create(sandbox: HarvestSandbox, api: requests.Session) -> None:
    oldest = sandbox.entries_snapshot()[-1]
    moved = sandbox.update_entry(oldest["id"], spent_date=ANCHOR + timedelta(days=1))
    listing = pull(api, sandbox, per_page=700)
    assert listing[0] == moved and listing[-1]["id"] != oldest["id"]

    project = sandbox.entries_snapshot()[5]["project"]["id"]
    created = sandbox.create_entry(spent_date="2024-06-01", hours=2.3, notes="new", project_id=project)
    assert set(created) == ENTRY_KEYS
    assert created["project"]["id"] == project and created["rounded_hours"] == 2.5
    assert created["created_at"] == created["updated_at"]
    assert get(api, sandbox, f"/v2/time_entries/{created['id']}").json() == created
    listing = pull(api, sandbox, per_page=700)
    assert len(listing) == 1501 and created in listing
    keys = [(e["spent_date"], e["id"]) for e in listing]
    assert keys == sorted(keys, reverse=True)

    billed = sandbox.update_entry(created["id"], is_billed=True)
    assert billed["invoice"]["id"] and billed["is_locked"] is True
    with pytest.raises(KeyError):
        sandbox.update_entry(123)


def test_deletions_vanish(sandbox: HarvestSandbox, api: requests.Session) -> None:
    snapshot = sandbox.entries_snapshot()
    victim = snapshot[3]
    sandbox.delete_entry(victim["id"])
    assert get(api, sandbox, f"/v2/time_entries/{victim['id']}").status_code == 404
    listing = pull(api, sandbox, per_page=2000)
    assert victim["id"] not in {e["id"] for e in listing} and len(listing) == 1499
    with pytest.raises(KeyError):
        sandbox.delete_entry(victim["id"])

    project = snapshot[0]["project"]["id"]
    doomed = {e["id"] for e in snapshot if e["project"]["id"] == project}
    assert sandbox.delete_project(project) == len(doomed)
    remaining = pull(api, sandbox, updated_since="2000-01-01T00:00:00Z")
    assert not doomed & {e["id"] for e in remaining} and len(remaining) == 1499 - len(doomed)
    assert project not in {p["id"] for p in get(api, sandbox, "/v2/projects").json()["projects"]}


def test_raw_entries_are_served_verbatim(sandbox: HarvestSandbox, api: requests.Session) -> None:
    dated = {"id": 77, "spent_date": "2024-03-15", "hours": -2.5, "client": {"id": 1, "currency": "XYZ"}}
    undated = {"hours": "lots", "notes": None}
    dated_key = sandbox.put_raw_entry(dated)
    sandbox.put_raw_entry(undated)

    listing = pull(api, sandbox, per_page=400)
    assert listing[0] == undated  # no usable spent_date: listed first
    position = listing.index(dated)
    assert listing[position - 1]["spent_date"] >= "2024-03-15" >= listing[position + 1]["spent_date"]
    incremental = pull(api, sandbox, updated_since="2024-06-01T00:00:00Z")
    assert dated in incremental and undated in incremental  # missing fields never filter a raw record out
    assert dated not in pull(api, sandbox, **{"from": "2024-04-01"})
    assert sandbox.entries_snapshot() == listing

    sandbox.delete_entry(dated_key)
    assert dated not in pull(api, sandbox)


# ---------------------------------------------------------------------------------------------- generator


def test_generator_is_deterministic() -> None:
    a = generate_dataset(800, seed=5, anchor=ANCHOR)
    b = generate_dataset(800, seed=5, anchor=ANCHOR)
    assert a.to_bytes() == b.to_bytes()
    assert generate_dataset(800, seed=6, anchor=ANCHOR).to_bytes() != a.to_bytes()
    assert generate_dataset(800, seed=5, anchor=ANCHOR + timedelta(days=1)).to_bytes() != a.to_bytes()


def test_generator_realism() -> None:
    ds = generate_dataset(6000, seed=3, anchor=ANCHOR, days=200)
    assert len(ds.clients) == 30 and len(ds.users) == 2 and len(ds.tasks) == 10
    entries = [json.loads(row.body) for row in ds.entries]
    for row, entry in zip(ds.entries, entries, strict=True):
        assert dumps(entry) == row.body  # fast renderer == generic renderer, byte for byte
        assert set(entry) == ENTRY_KEYS
    ids = [e["id"] for e in entries]
    assert len(set(ids)) == len(ids) and min(ids) > 0 and ids == sorted(ids)
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))  # not contiguous
    first_day = (ANCHOR - timedelta(days=199)).isoformat()
    end_of_anchor = f"{ANCHOR.isoformat()}T23:59:59Z"
    for e in entries:
        assert first_day <= e["spent_date"] <= ANCHOR.isoformat()
        assert e["spent_date"] < e["created_at"] <= e["updated_at"] <= end_of_anchor
        assert 0.1 <= e["hours"] <= 8.0 and round(e["hours"], 2) == e["hours"]
        assert e["rounded_hours"] >= e["hours"] and (e["rounded_hours"] * 4).is_integer()
        assert (e["billable_rate"] is None) == (not e["billable"])
        assert (e["invoice"] is not None) == e["is_billed"]
        assert e["is_locked"] == (e["is_closed"] or e["is_billed"])

    n = len(entries)
    assert 0.7 < sum(e["billable"] for e in entries) / n < 0.9
    assert 0.8 < sum(e["is_closed"] for e in entries) / n < 0.9
    assert 0.015 < sum(e["is_billed"] for e in entries) / n < 0.05
    odd = [e["notes"] for e in entries if e["notes"] and any(c in e["notes"] for c in '\t\n",é🚀=')]
    assert 0.03 < len(odd) / n < 0.08 and any(note.startswith("=") for note in odd)
    currencies = Counter(e["client"]["currency"] for e in entries)
    assert currencies.most_common(1)[0][0] == "USD" and {"EUR", "GBP", "CHF", "JPY", "KWD"} <= set(currencies)
    jpy = {e["billable_rate"] for e in entries if e["client"]["currency"] == "JPY" and e["billable"]}
    assert jpy and all(rate >= 10000 and rate.is_integer() for rate in jpy)
    kwd = {e["billable_rate"] for e in entries if e["client"]["currency"] == "KWD" and e["billable"]}
    assert any(round(rate, 3) != round(rate, 2) for rate in kwd)
    assert generate_dataset(0, anchor=ANCHOR).entries == []


# ---------------------------------------------------------------------------------------------- control


def test_control_endpoints(sandbox: HarvestSandbox, api: requests.Session) -> None:
    control = sandbox.url + "/_sandbox"
    get(api, sandbox, "/v2/time_entries", per_page=10)
    stats = requests.get(f"{control}/stats", timeout=5).json()
    assert stats["requests"] == 1 and stats["time_entry_pages"] == 1 and stats["status_counts"] == {"200": 1}
    assert stats["log"] == [["GET", "/v2/time_entries?per_page=10", 200]]
    assert requests.post(f"{control}/reset_stats", timeout=5).status_code == 200
    assert requests.get(f"{control}/stats", timeout=5).json()["requests"] == 0

    assert requests.post(f"{control}/faults", json={"kind": "5xx", "times": 2}, timeout=5).status_code == 201
    assert get(api, sandbox, "/v2/time_entries").status_code == 503
    assert requests.delete(f"{control}/faults", timeout=5).status_code == 200
    assert get(api, sandbox, "/v2/time_entries").status_code == 200
    assert requests.post(f"{control}/faults", json={"kind": "nope"}, timeout=5).status_code == 400
    assert requests.post(f"{control}/faults", data=b"{not json", timeout=5).status_code == 400

    created = requests.post(f"{control}/time_entries", json={"hours": 3.3, "notes": "ctl"}, timeout=5)
    assert created.status_code == 201
    entry_id = created.json()["id"]
    patched = requests.patch(f"{control}/time_entries/{entry_id}", json={"notes": "patched"}, timeout=5).json()
    assert patched["notes"] == "patched" and patched["updated_at"] > created.json()["updated_at"]
    assert get(api, sandbox, f"/v2/time_entries/{entry_id}").json() == patched
    assert requests.delete(f"{control}/time_entries/{entry_id}", timeout=5).status_code == 200
    assert get(api, sandbox, f"/v2/time_entries/{entry_id}").status_code == 404
    assert requests.patch(f"{control}/time_entries/{entry_id}", json={}, timeout=5).status_code == 404
    assert requests.post(f"{control}/raw_entries", json={"id": None}, timeout=5).json()["key"] < 0

    before = {e["id"]: e for e in sandbox.entries_snapshot() if isinstance(e.get("id"), int)}
    edited = requests.post(f"{control}/edit_random", json={"count": 5, "seed": 1}, timeout=5).json()["ids"]
    assert len(set(edited)) == 5
    for entry_id in edited:
        after = sandbox.get_entry(entry_id)
        assert after["updated_at"] > before[entry_id]["updated_at"]
        assert after["hours"] != before[entry_id]["hours"] and after["notes"] != before[entry_id]["notes"]
    assert sandbox.edit_random(5, seed=1) == edited  # same seed, same picks

    limit = {"requests": 1, "seconds": 60}
    assert requests.post(f"{control}/rate_limit", json=limit, timeout=5).status_code == 200
    assert [get(api, sandbox, "/v2/company").status_code for _ in range(2)] == [200, 429]
    assert requests.post(f"{control}/rate_limit", json={"off": True}, timeout=5).status_code == 200
    assert get(api, sandbox, "/v2/company").status_code == 200
    assert requests.get(f"{control}/nothing", timeout=5).status_code == 404


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_starts_prints_url_and_exits_cleanly() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "sandbox.harvest", "--entries", "250", "--seed", "3", "--port", "0",
        "--anchor", "2024-06-28", "--no-rate-limit", "--token", "cli-token", "--account-id", "42",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=20)
        assert lines and lines[0].startswith("HARVEST_SANDBOX_URL=http://127.0.0.1:"), proc.stderr
        url = lines[0].strip().split("=", 1)[1]
        headers = {"Authorization": "Bearer cli-token", "Harvest-Account-Id": "42", "User-Agent": "cli-test"}
        body = requests.get(f"{url}/v2/time_entries", headers=headers, timeout=5).json()
        assert body["total_entries"] == 250
        assert body["time_entries"][0]["spent_date"] <= "2024-06-28"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
