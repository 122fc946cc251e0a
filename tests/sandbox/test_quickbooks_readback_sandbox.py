"""The QuickBooks sandbox's read side, over HTTP with plain ``requests``: change data capture (changed since,
deletions as status Deleted, the 30-day limit, 1000 per entity), deletes with SyncToken, an accountant's edit, and
the GeneralLedger and TrialBalance reports computed from what was posted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.quickbooks.cdc import accountant_deletes, accountant_edits


@pytest.fixture
def qbo() -> Iterator[QuickBooksSandbox]:
    sandbox = QuickBooksSandbox(requests_per_minute=None, batch_per_minute=None, max_concurrent=None)
    sandbox.start()
    yield sandbox
    sandbox.stop()


class Api:
    def __init__(self, sandbox: QuickBooksSandbox) -> None:
        self.sandbox = sandbox
        answer = requests.post(sandbox.token_url, auth=(sandbox.client_id, sandbox.client_secret),
                               data={"grant_type": "refresh_token", "refresh_token": sandbox.first_refresh_token},
                               timeout=10)  # fmt: skip
        self.access = answer.json()["access_token"]

    def call(self, method: str, path: str, body: dict | None = None, **params) -> requests.Response:
        params.setdefault("minorversion", 75)
        return requests.request(method, f"{self.sandbox.base_url}/v3/company/{self.sandbox.realm_id}/{path}",
                                params=params, json=body, timeout=10,
                                headers={"Authorization": f"Bearer {self.access}"})  # fmt: skip

    def create(self, entity: str, body: dict) -> dict:
        answer = self.call("POST", entity.lower(), body)
        assert answer.status_code == 200, answer.text
        return answer.json()[entity]

    def cdc(self, entities: str, since: str) -> requests.Response:
        return self.call("GET", "cdc", entities=entities, changedSince=since)


def changed(answer: requests.Response) -> dict[str, list[dict]]:
    assert answer.status_code == 200, answer.text
    groups = answer.json()["CDCResponse"][0]["QueryResponse"]
    out: dict[str, list[dict]] = {}
    for group in groups:
        for key, value in group.items():
            if isinstance(value, list):
                out[key] = value
    return out


def stamp(sandbox: QuickBooksSandbox) -> str:
    return sandbox._stamp()


def invoice(customer: str, *amounts: str, doc: str, date: str = "2026-11-10", **extra) -> dict:
    lines = [{"Amount": a, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {}} for a in amounts]
    return {"CustomerRef": {"value": customer}, "Line": lines, "DocNumber": doc, "TxnDate": date, **extra}


def test_cdc_returns_only_what_changed_since_and_deletions_as_status_deleted(qbo) -> None:
    api = Api(qbo)
    acme = api.create("Customer", {"DisplayName": "Acme"})
    first = api.create("Invoice", invoice(acme["Id"], "100.00", doc="INV-1"))
    second = api.create("Invoice", invoice(acme["Id"], "50.00", doc="INV-2"))
    qbo.advance_clock(10)
    since = stamp(qbo)
    assert changed(api.cdc("Invoice,Customer", since)) == {}
    qbo.advance_clock(10)
    edited = accountant_edits(qbo, "Invoice", first["Id"], {"Line": [{"Amount": "120.00", "DetailType":
                                                                        "SalesItemLineDetail"}]})  # fmt: skip
    assert edited["SyncToken"] == "1" and Decimal(str(edited["TotalAmt"])) == Decimal("120.00")
    gone = api.call("POST", "invoice", {"Id": second["Id"], "SyncToken": "0"}, operation="delete")
    assert gone.status_code == 200 and gone.json()["Invoice"]["status"] == "Deleted"
    found = changed(api.cdc("invoice,customer", since))
    assert [(o["Id"], o.get("status"), o.get("SyncToken")) for o in found["Invoice"]] == [
        (first["Id"], None, "1"), (second["Id"], "Deleted", None)]  # fmt: skip
    assert "Customer" not in found  # the customer did not change
    # the deleted one is gone from reads and queries
    assert api.call("GET", f"invoice/{second['Id']}").status_code == 400
    # a stale SyncToken cannot delete
    stale = api.call("POST", "invoice", {"Id": first["Id"], "SyncToken": "0"}, operation="delete")
    assert stale.status_code == 400 and stale.json()["Fault"]["Error"][0]["code"] == "5010"
    # an accountant deletes through the UI: CDC reports that too
    qbo.advance_clock(10)
    later = stamp(qbo)
    accountant_deletes(qbo, "Invoice", first["Id"])
    assert [(o["Id"], o["status"]) for o in changed(api.cdc("Invoice", later))["Invoice"]] == [(first["Id"], "Deleted")]


def test_cdc_looks_back_at_most_30_days_and_returns_at_most_1000_objects_per_entity(qbo) -> None:
    api = Api(qbo)
    acme = api.create("Customer", {"DisplayName": "Acme"})
    since = stamp(qbo)
    long_ago = datetime.fromtimestamp(qbo.now() - 31 * 86400, UTC).isoformat()
    refused = api.cdc("Invoice", long_ago)
    assert refused.status_code == 400 and "30 days" in refused.text
    for n in range(1003):
        api.sandbox._create(api.sandbox.company(qbo.realm_id), "Invoice", invoice(acme["Id"], "1.00", doc=f"D{n}"))
    group = next(g for g in api.cdc("Invoice", since).json()["CDCResponse"][0]["QueryResponse"] if "Invoice" in g)
    assert len(group["Invoice"]) == 1000 and group["totalCount"] == 1003
    bad = api.cdc("Nothing", since)
    assert bad.status_code == 400


def test_general_ledger_and_trial_balance_are_computed_from_what_was_posted(qbo) -> None:
    api = Api(qbo)
    acme = api.create("Customer", {"DisplayName": "Acme"})
    api.create("Invoice", invoice(acme["Id"], "100.00", "25.50", doc="INV-1", date="2026-11-03"))
    api.create("Invoice", invoice(acme["Id"], "40.00", doc="INV-2", date="2026-10-20"))
    gl = api.call("GET", "reports/GeneralLedger", start_date="2026-11-01", end_date="2026-11-30")
    assert gl.status_code == 200, gl.text
    body = gl.json()
    assert body["Header"]["ReportName"] == "GeneralLedger" and body["Header"]["Currency"] == "USD"
    assert [c["ColType"] for c in body["Columns"]["Column"]][-2:] == ["subt_nat_amount", "rbal_nat_amount"]
    sections = {s["Header"]["ColData"][0]["value"]: s for s in body["Rows"]["Row"]}
    ar = sections["Accounts Receivable (A/R)"]
    rows = ar["Rows"]["Row"]
    assert rows[0]["ColData"][0]["value"] == "Beginning Balance" and rows[0]["ColData"][-1]["value"] == "40.00"
    assert [(r["ColData"][0]["value"], r["ColData"][2]["value"], r["ColData"][6]["value"], r["ColData"][7]["value"])
            for r in rows[1:]] == [("2026-11-03", "INV-1", "125.50", "165.50")]  # fmt: skip
    assert ar["Summary"]["ColData"][0]["value"] == "Total for Accounts Receivable (A/R)"
    assert ar["Summary"]["ColData"][6]["value"] == "125.50"
    services = [r["ColData"][6]["value"] for r in sections["Services"]["Rows"]["Row"][1:]]
    assert sorted(services) == ["-100.00", "-25.50"]
    tb = api.call("GET", "reports/TrialBalance", start_date="2026-11-01", end_date="2026-11-30").json()
    cells = {r["ColData"][0]["value"]: (r["ColData"][1]["value"], r["ColData"][2]["value"])
             for r in tb["Rows"]["Row"] if "ColData" in r}  # fmt: skip
    assert cells == {"Accounts Receivable (A/R)": ("165.50", ""), "Services": ("", "165.50")}
    total = tb["Rows"]["Row"][-1]
    assert total["group"] == "GrandTotal" and [c["value"] for c in total["Summary"]["ColData"]] == [
        "TOTAL", "165.50", "165.50"]  # fmt: skip
    # an accountant's edit moves the books
    accountant_edits(qbo, "Invoice", "2", {"Line": [{"Amount": "90.00", "DetailType": "SalesItemLineDetail"}]})
    tb = api.call("GET", "reports/TrialBalance", end_date="2026-11-30").json()
    assert tb["Rows"]["Row"][-1]["Summary"]["ColData"][1]["value"] == "130.00"
