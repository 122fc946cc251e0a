"""The Harvest and Clockify sandboxes' expense endpoints speak the vendors' documented shapes, paging,
filters, auth and limits, so the sync tests exercise the real protocol."""

from __future__ import annotations

from datetime import date, timedelta

import requests

from sandbox.clockify import ClockifySandbox
from sandbox.clockify import generate_dataset as clockify_dataset
from sandbox.harvest import HarvestSandbox, generate_dataset


def _harvest() -> HarvestSandbox:
    sandbox = HarvestSandbox(rate_limit=None)
    sandbox.load(generate_dataset(10, seed=2, anchor=date.today()))
    sandbox.start()
    return sandbox


def test_harvest_expenses_listing_pages_filters_and_shape():
    harvest = _harvest()
    try:
        today = date.today()
        made = [harvest.expenses.create_expense(spent_date=today - timedelta(days=n), total_cost=10 + n)
                for n in range(5)]  # fmt: skip
        harvest.expenses.update_expense(made[4]["id"], is_billed=True)
        url = f"{harvest.url}/v2/expenses"
        assert requests.get(url, timeout=5).status_code == 401
        headers = harvest.auth_headers()
        body = requests.get(url, params={"per_page": 2}, headers=headers, timeout=5).json()
        assert set(body) >= {"expenses", "per_page", "total_pages", "total_entries", "next_page", "previous_page",
                             "page", "links"}  # fmt: skip
        assert body["total_entries"] == 5 and body["total_pages"] == 3 and len(body["expenses"]) == 2
        ids = [e["id"] for e in body["expenses"]]
        while body["links"]["next"]:
            body = requests.get(body["links"]["next"], headers=headers, timeout=5).json()
            ids += [e["id"] for e in body["expenses"]]
        assert ids == [e["id"] for e in made]  # newest spent_date first, each once
        first = body["expenses"][-1]
        assert set(first) >= {"id", "spent_date", "total_cost", "units", "expense_category", "billable", "is_closed",
                              "is_locked", "locked_reason", "is_billed", "invoice", "receipt", "notes", "user",
                              "project", "client", "created_at", "updated_at"}  # fmt: skip
        assert set(first["client"]) >= {"id", "name", "currency"}
        billed = requests.get(url, params={"is_billed": "true"}, headers=headers, timeout=5).json()["expenses"]
        assert [e["id"] for e in billed] == [made[4]["id"]] and billed[0]["invoice"]["id"]
        assert billed[0]["is_locked"] is True
        since = made[4]["updated_at"]
        changed = requests.get(url, params={"updated_since": since}, headers=headers, timeout=5).json()["expenses"]
        assert [e["id"] for e in changed] == [made[4]["id"]]
        window = requests.get(url, params={"from": (today - timedelta(days=1)).isoformat()}, headers=headers,
                              timeout=5).json()["expenses"]  # fmt: skip
        assert {e["id"] for e in window} == {made[0]["id"], made[1]["id"]}
        one = requests.get(f"{url}/{made[0]['id']}", headers=headers, timeout=5)
        assert one.status_code == 200 and one.json()["total_cost"] == 10
        assert requests.get(f"{url}/1", headers=headers, timeout=5).status_code == 404
        categories = requests.get(f"{harvest.url}/v2/expense_categories", headers=headers, timeout=5).json()
        mileage = next(c for c in categories["expense_categories"] if c["name"] == "Mileage")
        assert mileage["unit_price"] == 0.655 and mileage["unit_name"] == "mile"
    finally:
        harvest.stop()


def test_harvest_expenses_unit_prices_limits_and_control_endpoints():
    harvest = _harvest()
    try:
        mileage = harvest.expenses.create_expense(expense_category_id=4195929, units=100)
        assert mileage["total_cost"] == 65.5
        harvest.set_rate_limit((1, 60.0))
        headers = harvest.auth_headers()
        assert requests.get(f"{harvest.url}/v2/expenses", headers=headers, timeout=5).status_code == 200
        limited = requests.get(f"{harvest.url}/v2/expenses", headers=headers, timeout=5)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        harvest.set_rate_limit(None)
        made = requests.post(f"{harvest.url}/_sandbox/expenses", json={"total_cost": 5.5}, timeout=5)
        assert made.status_code == 201
        ident = made.json()["id"]
        edited = requests.patch(f"{harvest.url}/_sandbox/expenses/{ident}", json={"notes": "x"}, timeout=5).json()
        assert edited["notes"] == "x"
        assert requests.delete(f"{harvest.url}/_sandbox/expenses/{ident}", timeout=5).status_code == 200
        assert requests.delete(f"{harvest.url}/_sandbox/expenses/{ident}", timeout=5).status_code == 404
        assert [e["id"] for e in harvest.expenses.snapshot()] == [mileage["id"]]
    finally:
        harvest.stop()


def test_clockify_expenses_listing_pages_filters_and_shape():
    clockify = ClockifySandbox(limit=None)
    clockify.load(clockify_dataset(10, seed=4, anchor=date.today()))
    clockify.start()
    try:
        users = list(clockify._users)
        made = [clockify.expenses.create_expense(date=date.today() - timedelta(days=n), total=100 * (n + 1),
                                                 userId=users[n % 2]) for n in range(3)]  # fmt: skip
        url = f"{clockify.api_url}/workspaces/{clockify.workspace_id}/expenses"
        assert requests.get(url, timeout=5).status_code == 401
        headers = clockify.auth_headers()
        body = requests.get(url, params={"page": 1, "page-size": 2}, headers=headers, timeout=5).json()
        assert set(body) == {"expenses", "dailyTotals", "weeklyTotals"}
        assert body["expenses"]["count"] == 3 and len(body["expenses"]["expenses"]) == 2
        rest = requests.get(url, params={"page": 2, "page-size": 2}, headers=headers, timeout=5).json()
        ids = [e["id"] for e in body["expenses"]["expenses"] + rest["expenses"]["expenses"]]
        assert ids == [e["id"] for e in made]
        item = rest["expenses"]["expenses"][0]
        assert set(item) >= {"id", "workspaceId", "userId", "date", "billable", "locked", "notes", "quantity", "total",
                             "fileId", "fileName", "project", "category"}  # fmt: skip
        assert set(item["project"]) >= {"id", "clientId", "name"}
        mine = requests.get(url, params={"user-id": users[1]}, headers=headers, timeout=5).json()
        assert [e["id"] for e in mine["expenses"]["expenses"]] == [made[1]["id"]]
        categories = requests.get(f"{url}/categories", headers=headers, timeout=5).json()
        assert categories["count"] == len(categories["categories"]) == 3
        assert requests.get(f"{url}/{made[0]['id']}", headers=headers, timeout=5).json()["total"] == 100
    finally:
        clockify.stop()
