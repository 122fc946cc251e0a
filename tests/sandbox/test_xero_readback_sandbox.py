"""The Xero sandbox's read side, over HTTP with plain ``requests``: If-Modified-Since listings with paging (voided and
deleted documents included), an accountant's edit and void, and Reports/TrialBalance computed from posted
documents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from sandbox.xero import XeroSandbox
from sandbox.xero.reports import accountant_deletes, accountant_edits

NO_LIMITS = {"per_minute": None, "per_day": None, "max_concurrent": None, "app_per_minute": None}


@pytest.fixture
def xero() -> Iterator[XeroSandbox]:
    sandbox = XeroSandbox(**NO_LIMITS)
    sandbox.start()
    yield sandbox
    sandbox.stop()


class Api:
    def __init__(self, sandbox: XeroSandbox) -> None:
        self.sandbox = sandbox
        answer = requests.post(sandbox.token_url, auth=(sandbox.client_id, sandbox.client_secret),
                               data={"grant_type": "refresh_token", "refresh_token": sandbox.first_refresh_token},
                               timeout=10)  # fmt: skip
        self.access = answer.json()["access_token"]

    def call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None,
             **params) -> requests.Response:  # fmt: skip
        return requests.request(method, f"{self.sandbox.base_url}/api.xro/2.0/{path}", params=params, json=body,
                                timeout=10, headers={"Authorization": f"Bearer {self.access}",
                                                     "xero-tenant-id": self.sandbox.tenant_id, **(headers or {})})

    def put(self, kind: str, *items: dict) -> list[dict]:
        answer = self.call("PUT", kind, {kind: list(items)})
        assert answer.status_code == 200, answer.text
        return answer.json()[kind]

    def since(self, kind: str, when: str, **params) -> list[dict]:
        answer = self.call("GET", kind, headers={"If-Modified-Since": when}, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()[kind]


def now(sandbox: XeroSandbox) -> str:
    return datetime.fromtimestamp(int(sandbox.now()), UTC).strftime("%Y-%m-%dT%H:%M:%S")


def invoice(contact: str, number: str, *amounts: str, date: str = "2026-11-05", status: str = "AUTHORISED") -> dict:
    return {"Type": "ACCREC", "Contact": {"ContactID": contact}, "InvoiceNumber": number, "Date": date,
            "Status": status, "CurrencyCode": "USD",
            "LineItems": [{"Description": "work", "Quantity": 1, "UnitAmount": a, "AccountCode": "200"}
                          for a in amounts]}  # fmt: skip


def test_if_modified_since_lists_only_changes_paged_with_voided_and_deleted_documents(xero) -> None:
    api = Api(xero)
    [acme] = api.put("Contacts", {"Name": "Acme"})
    made = [i for start in range(0, 130, 50)  # Xero takes at most 50 a request
            for i in api.put("Invoices", *(invoice(acme["ContactID"], f"INV-{n}", "10.00")
                                           for n in range(start, min(start + 50, 130))))]  # fmt: skip
    xero.advance_clock(5)
    mark = now(xero)
    assert api.since("Invoices", mark) == []
    xero.advance_clock(5)
    edited = accountant_edits(xero, "Invoices", made[3]["InvoiceID"], {"LineItems": [
        {"Description": "work", "Quantity": 1, "UnitAmount": "12.00", "AccountCode": "200"}]})  # fmt: skip
    assert edited["Total"] == 12 and edited["UpdatedDateUTC"] != made[3]["UpdatedDateUTC"]
    xero.advance_clock(1)
    voided = accountant_deletes(xero, "Invoices", made[7]["InvoiceID"])
    assert voided["Status"] == "VOIDED"
    assert [(i["InvoiceNumber"], i["Status"]) for i in api.since("Invoices", mark)] == [
        ("INV-3", "AUTHORISED"), ("INV-7", "VOIDED")]  # fmt: skip
    assert api.since("Contacts", mark) == []
    # paging: everything since the start, 100 a page (or pageSize)
    everything = api.since("Invoices", "2000-01-01T00:00:00")
    assert len(everything) == 100 and len(api.since("Invoices", "2000-01-01T00:00:00", page=2)) == 30
    assert len(api.since("Invoices", "2000-01-01T00:00:00", pageSize=500)) == 130
    # an HTTP date works too; a bad header is refused
    assert len(api.since("Invoices", "Mon, 01 Jan 2001 00:00:00 GMT", pageSize=1000)) == 130
    assert api.call("GET", "Invoices", headers={"If-Modified-Since": "yesterday"}).status_code == 400


def test_trial_balance_is_computed_from_posted_documents_only(xero) -> None:
    api = Api(xero)
    [acme] = api.put("Contacts", {"Name": "Acme"})
    posted = api.put("Invoices", invoice(acme["ContactID"], "INV-1", "100.00", "20.00"),
                     invoice(acme["ContactID"], "INV-2", "30.00", date="2026-10-02"),
                     invoice(acme["ContactID"], "INV-3", "999.00", status="DRAFT"))  # fmt: skip
    answer = api.call("GET", "Reports/TrialBalance", date="2026-11-30")
    assert answer.status_code == 200, answer.text
    report = answer.json()["Reports"][0]
    assert report["ReportID"] == "TrialBalance" and report["Rows"][0]["RowType"] == "Header"
    cells = {r["Cells"][0]["Value"]: [c["Value"] for c in r["Cells"][1:]] for r in report["Rows"][1]["Rows"]}
    assert cells == {"Sales (200)": ["", "120.00", "", "150.00"],
                     "Accounts Receivable (610)": ["120.00", "", "150.00", ""]}  # fmt: skip
    assert [c["Value"] for c in report["Rows"][2]["Rows"][0]["Cells"]] == ["Total", "120.00", "120.00", "150.00",
                                                                           "150.00"]  # fmt: skip
    accountant_deletes(xero, "Invoices", posted[0]["InvoiceID"])  # voided: no longer posts
    report = api.call("GET", "Reports/TrialBalance", date="2026-11-30").json()["Reports"][0]
    assert [c["Value"] for c in report["Rows"][2]["Rows"][0]["Cells"]] == ["Total", "", "", "30.00", "30.00"]
    assert api.call("GET", "Reports/ProfitAndLoss").status_code == 404
