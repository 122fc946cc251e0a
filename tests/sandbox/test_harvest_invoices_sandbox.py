"""The Harvest sandbox's invoices: POST/GET/PATCH/DELETE /v2/invoices (explicit line items and line_items_import
of uninvoiced billable time and expenses, which marks them billed with invoice{id, number}; deleting un-bills),
payments, state messages without e-mail, Harvest ID's OAuth 2.0 token endpoint, and the documented errors (422),
auth (401) and rate limit (429)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
import requests

from sandbox.harvest import HarvestSandbox, generate_dataset
from sandbox.harvest.oauth import TOKEN_PATH

DAY = date(2026, 11, 10)


@pytest.fixture
def sandbox() -> Iterator[HarvestSandbox]:
    sb = HarvestSandbox(rate_limit=None)
    sb.load(generate_dataset(0, seed=0))
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def api(sandbox: HarvestSandbox) -> requests.Session:
    session = requests.Session()
    session.headers.update(sandbox.auth_headers())
    return session


def _project(sandbox: HarvestSandbox) -> dict:
    return next(p for p in sandbox._projects.values() if p["client"]["currency"] == "USD")


def _work(sandbox: HarvestSandbox) -> dict[str, list[int]]:
    """Two billable entries and one non-billable in November, one billable in December, one billable expense and
    one non-billable expense, all on the same project."""
    project = _project(sandbox)
    billable_task = next(t for (p, t), a in sandbox._task_assignments.items() if p == project["id"] and a["billable"])
    entry = lambda day, **kw: sandbox.create_entry(project_id=project["id"], task_id=billable_task,  # noqa: E731
                                                   spent_date=day, hours=2.0, **kw)["id"]  # fmt: skip
    expense = lambda **kw: sandbox.expenses.create_expense(project_id=project["id"], spent_date=DAY,  # noqa: E731
                                                           total_cost=12.5, **kw)["id"]  # fmt: skip
    return {"in": [entry(DAY), entry(date(2026, 11, 11))], "off": [entry(DAY, billable=False)],
            "later": [entry(date(2026, 12, 2))], "expenses": [expense()], "unbillable": [expense(billable=False)]}


class _Plain(requests.Session):
    """A session without headers (what a browser redirect's back end or a script would use)."""


def _billed(sandbox: HarvestSandbox) -> dict[int, dict]:
    found = {e["id"]: e["invoice"] for e in sandbox.entries_snapshot() if e["is_billed"]}
    found.update({x["id"]: x["invoice"] for x in sandbox.expenses.snapshot() if x["is_billed"]})
    return found


def test_import_bills_exactly_the_uninvoiced_billable_time_and_expenses_in_range_and_delete_unbills(
    sandbox: HarvestSandbox, api: requests.Session
) -> None:
    work = _work(sandbox)
    project = _project(sandbox)
    body = {"client_id": project["client"]["id"], "number": "INV-1", "line_items_import": {
        "project_ids": [project["id"]], "time": {"summary_type": "detailed", "from": "2026-11-01", "to": "2026-11-30"},
        "expenses": {"summary_type": "category", "from": "2026-11-01", "to": "2026-11-30"}}}  # fmt: skip
    answer = api.post(f"{sandbox.url}/v2/invoices", json=body)
    assert answer.status_code == 201, answer.text
    invoice = answer.json()
    assert invoice["state"] == "draft" and invoice["number"] == "INV-1" and invoice["currency"] == "USD"
    assert (invoice["period_start"], invoice["period_end"]) == ("2026-11-10", "2026-11-11")
    assert len(invoice["line_items"]) == 3, "one line per entry (detailed) and one per expense category"
    billed = _billed(sandbox)
    assert set(billed) == {*work["in"], *work["expenses"]}
    assert all(ref == {"id": invoice["id"], "number": "INV-1"} for ref in billed.values())
    entry = sandbox.get_entry(work["in"][0])
    assert entry["is_locked"] and sum(Decimal(str(li["amount"])) for li in invoice["line_items"]) == Decimal(
        str(invoice["amount"]))
    listed = api.get(f"{sandbox.url}/v2/time_entries", params={"is_billed": "true"}).json()
    assert {e["id"] for e in listed["time_entries"]} == set(work["in"])

    again = api.post(f"{sandbox.url}/v2/invoices", json={**body, "number": "INV-2"}).json()
    assert again["line_items"] == [] and again["amount"] == 0, "nothing uninvoiced is left to import"
    assert api.delete(f"{sandbox.url}/v2/invoices/{invoice['id']}").status_code == 200
    assert _billed(sandbox) == {}, "deleting an invoice un-bills its items"
    assert api.get(f"{sandbox.url}/v2/invoices/{invoice['id']}").status_code == 404


def test_explicit_lines_bill_nothing_payments_messages_and_the_listing(
    sandbox: HarvestSandbox, api: requests.Session
) -> None:
    _work(sandbox)
    client = _project(sandbox)["client"]["id"]
    lines = [{"kind": "Service", "description": "Design", "quantity": "2.5", "unit_price": "150.00"},
             {"kind": "Product", "description": "Travel", "unit_price": 40}]  # fmt: skip
    invoice = api.post(f"{sandbox.url}/v2/invoices", json={"client_id": client, "line_items": lines}).json()
    assert Decimal(str(invoice["amount"])) == Decimal("415.00") and invoice["number"]
    assert _billed(sandbox) == {}, "explicit line items mark nothing billed"
    url = f"{sandbox.url}/v2/invoices/{invoice['id']}"
    assert api.post(f"{url}/payments", json={"amount": 10}).status_code == 422, "no payments on a draft"
    assert api.post(f"{url}/messages", json={"event_type": "send"}).json()["event_type"] == "send"
    assert api.get(url).json()["state"] == "open" and api.get(url).json()["sent_at"]
    first = api.post(f"{url}/payments", json={"amount": "215.00", "paid_date": "2026-12-01", "notes": "p1"}).json()
    assert api.get(url).json()["state"] == "open" and Decimal(str(api.get(url).json()["due_amount"])) == 200
    api.post(f"{url}/payments", json={"amount": "200", "paid_at": "2026-12-02T10:00:00Z"})
    paid = api.get(url).json()
    assert paid["state"] == "paid" and paid["paid_date"] == "2026-12-02" and paid["due_amount"] == 0
    payments = api.get(f"{url}/payments").json()
    assert payments["total_entries"] == 2 and payments["invoice_payments"][1]["id"] == first["id"]
    assert api.delete(f"{url}/payments/{first['id']}").status_code == 200
    assert api.get(url).json()["state"] == "open"
    for event, state in (("close", "closed"), ("re-open", "open"), ("draft", "draft")):
        assert api.post(f"{url}/messages", json={"event_type": event}).status_code == 201
        assert api.get(url).json()["state"] == state
    credit = api.patch(url, json={"line_items": [{"kind": "Service", "description": "Credit", "quantity": 1,
                                                  "unit_price": "-15"}]}).json()  # fmt: skip
    assert Decimal(str(credit["amount"])) == Decimal("400") and len(credit["line_items"]) == 3
    other = api.post(f"{sandbox.url}/v2/invoices", json={"client_id": client, "number": "X-9"}).json()
    listing = api.get(f"{sandbox.url}/v2/invoices", params={"client_id": client, "per_page": 1}).json()
    assert listing["total_entries"] == 2 and listing["invoices"][0]["id"] == other["id"]
    assert listing["links"]["next"] and listing["next_page"] == 2


def test_documented_errors_auth_and_rate_limit(sandbox: HarvestSandbox, api: requests.Session) -> None:
    client = _project(sandbox)["client"]["id"]
    url = f"{sandbox.url}/v2/invoices"
    refusals = [
        ({}, "Client can't be blank"),
        ({"client_id": client, "line_items": [{"unit_price": 1}]}, "kind can't be blank"),
        ({"client_id": client, "line_items_import": {"project_ids": []}}, "project_ids"),
        ({"client_id": client, "line_items_import": {"project_ids": [_project(sandbox)["id"]],
                                                      "time": {"summary_type": "weekly"}}}, "summary_type"),
    ]
    for body, text in refusals:
        answer = api.post(url, json=body)
        assert answer.status_code == 422 and text in answer.json()["message"], (body, answer.text)
    assert api.post(url, json={"client_id": client, "number": "A"}).status_code == 201
    taken = api.post(url, json={"client_id": client, "number": "A"})
    assert taken.status_code == 422 and taken.json()["message"] == "Number has already been taken"
    invoice = api.get(url).json()["invoices"][0]
    bad_event = api.post(f"{url}/{invoice['id']}/messages", json={"event_type": "mail"})
    assert bad_event.status_code == 422
    assert requests.Session().get(url, headers={**sandbox.auth_headers(), "Authorization": "Bearer nope"}).status_code \
        == 401
    sandbox.set_rate_limit((2, 60.0))
    statuses = [api.get(url).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_oauth_code_grant_and_rotating_refresh_tokens(sandbox: HarvestSandbox) -> None:
    harvest_id = sandbox.harvest_id
    web = _Plain()  # no auth headers: Harvest ID and API calls made by hand
    app = harvest_id.register_client()
    token_url = sandbox.url + TOKEN_PATH
    code = harvest_id.authorize(app["client_id"], sandbox.account_id)
    form = {"grant_type": "authorization_code", "code": code, "client_id": app["client_id"],
            "client_secret": app["client_secret"]}  # fmt: skip
    assert web.post(token_url, data={**form, "client_secret": "wrong"}).status_code == 401
    first = web.post(token_url, data=form).json()
    assert first["token_type"] == "bearer" and first["expires_in"] == 1_209_600
    assert web.post(token_url, data=form).json()["error"] == "invalid_grant", "a code works once"
    headers = {"Authorization": f"Bearer {first['access_token']}", "Harvest-Account-Id": sandbox.account_id,
               "User-Agent": "tests (t@example.com)"}  # fmt: skip
    assert web.get(f"{sandbox.url}/v2/users/me", headers=headers).status_code == 200
    refreshed = web.post(token_url, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                              auth=(app["client_id"], app["client_secret"])).json()  # fmt: skip
    assert refreshed["refresh_token"] != first["refresh_token"]
    reused = web.post(token_url, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                           auth=(app["client_id"], app["client_secret"]))  # fmt: skip
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant", "rotated: the old one is dead"
    harvest_id.expire_access_tokens()
    assert web.get(f"{sandbox.url}/v2/users/me", headers=headers).status_code == 401
    other_account = {**headers, "Authorization": f"Bearer {refreshed['access_token']}", "Harvest-Account-Id": "999"}
    assert web.get(f"{sandbox.url}/v2/users/me", headers=other_account).status_code == 401


def test_control_endpoints_for_harnesses_in_another_process(sandbox: HarvestSandbox, api: requests.Session) -> None:
    client = _project(sandbox)["client"]["id"]
    invoice = api.post(f"{sandbox.url}/v2/invoices", json={"client_id": client, "number": "C-1"}).json()
    web = _Plain()
    assert [i["number"] for i in web.get(f"{sandbox.url}/_sandbox/invoices").json()] == ["C-1"]
    assert web.get(f"{sandbox.url}/_sandbox/invoices/{invoice['id']}/payments").json() == []
    assert web.delete(f"{sandbox.url}/_sandbox/invoices/{invoice['id']}").json() == {"deleted": invoice["id"]}
    assert web.delete(f"{sandbox.url}/_sandbox/invoices/{invoice['id']}").status_code == 404
    assert sandbox.invoices.snapshot() == []
