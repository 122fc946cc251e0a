"""The Xero sandbox's tax and void, over HTTP with plain ``requests``: GET /TaxRates with EffectiveRate, the tax Xero
computes per line by LineAmountTypes (Exclusive, Inclusive, NoTax; half up per line) with TotalTax/SubTotal/Total,
the trial balance's tax account, and Status VOIDED (refused with a payment allocated; listed by modified-since)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from sandbox.xero import XeroSandbox
from sandbox.xero.reports import postings

NO_LIMITS = {"per_minute": None, "per_day": None, "max_concurrent": None, "app_per_minute": None}


@pytest.fixture
def xero() -> Iterator[XeroSandbox]:
    sandbox = XeroSandbox(**NO_LIMITS, tax_types={"OUTPUT2": Decimal("20"), "RR": Decimal("5"), "NONE": 0})
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

    def save(self, method: str, kind: str, *items: dict) -> list[dict]:
        answer = self.call(method, kind, {kind: list(items)}, summarizeErrors="false")
        assert answer.status_code == 200, answer.text
        return answer.json()[kind]


def invoice(contact: str, mode: str, *lines: tuple[str, str], number: str = "T-1") -> dict:
    return {"Type": "ACCREC", "Contact": {"ContactID": contact}, "InvoiceNumber": number, "Date": "2026-11-05",
            "Status": "AUTHORISED", "LineAmountTypes": mode,
            "LineItems": [{"Description": "work", "Quantity": 1, "UnitAmount": a, "LineAmount": a, "TaxType": t,
                           "AccountCode": "200"} for a, t in lines]}  # fmt: skip


def d(value) -> Decimal:
    return Decimal(str(value))


def test_tax_rates_are_listed_with_their_effective_rate(xero) -> None:
    rates = {r["TaxType"]: r for r in Api(xero).call("GET", "TaxRates").json()["TaxRates"]}
    assert d(rates["OUTPUT2"]["EffectiveRate"]) == 20 and d(rates["RR"]["EffectiveRate"]) == 5
    assert rates["NONE"]["Status"] == "ACTIVE"


def test_exclusive_inclusive_and_no_tax_are_computed_per_line_half_up(xero) -> None:
    api = Api(xero)
    (contact,) = api.save("PUT", "Contacts", {"Name": "Acme"})
    acme = contact["ContactID"]
    (excl,) = api.save("PUT", "Invoices", invoice(acme, "Exclusive", ("10.05", "RR"), ("10.05", "RR"),
                                                  ("100.00", "OUTPUT2")))  # fmt: skip
    assert (d(excl["SubTotal"]), d(excl["TotalTax"]), d(excl["Total"])) == (d("120.10"), d("21.00"), d("141.10"))
    assert [d(line["TaxAmount"]) for line in excl["LineItems"]] == [d("0.50"), d("0.50"), d("20.00")]
    (incl,) = api.save("PUT", "Invoices", invoice(acme, "Inclusive", ("120.00", "OUTPUT2"), ("10.00", "OUTPUT2"),
                                                  number="T-2"))  # fmt: skip
    assert (d(incl["SubTotal"]), d(incl["TotalTax"]), d(incl["Total"])) == (d("108.33"), d("21.67"), d("130.00"))
    assert d(incl["AmountDue"]) == d("130.00")
    (none,) = api.save("PUT", "Invoices", invoice(acme, "NoTax", ("10.00", "OUTPUT2"), number="T-3"))
    assert (d(none["TotalTax"]), d(none["Total"])) == (0, d("10.00"))
    tenant = xero._tenants[xero.tenant_id]
    by_account: dict[str, Decimal] = {}
    for code, _, amount in postings(tenant, "USD"):
        by_account[code] = by_account.get(code, Decimal(0)) + amount
    assert by_account["820"] == -(d("21.00") + d("21.67"))  # tax payable, inclusive revenue net of its tax
    assert sum(by_account.values()) == 0


def test_void_keeps_the_invoice_voided_and_refuses_one_with_a_payment(xero) -> None:
    api = Api(xero)
    (contact,) = api.save("PUT", "Contacts", {"Name": "Acme"})
    first, second = api.save("PUT", "Invoices", invoice(contact["ContactID"], "Exclusive", ("50.00", "OUTPUT2")),
                             invoice(contact["ContactID"], "Exclusive", ("20.00", "OUTPUT2"), number="T-2"))
    since = datetime.fromtimestamp(int(xero.now()), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    xero.advance_clock(5)
    (voided,) = api.save("POST", "Invoices", {"InvoiceID": first["InvoiceID"], "Status": "VOIDED"})
    assert voided["StatusAttributeString"] == "OK" and voided["Status"] == "VOIDED" and d(voided["Total"]) == 60
    api.save("PUT", "Payments", {"Invoice": {"InvoiceID": second["InvoiceID"]}, "Account": {"Code": "090"},
                                 "Amount": "5.00", "Date": "2026-11-06"})  # fmt: skip
    (refused,) = api.save("POST", "Invoices", {"InvoiceID": second["InvoiceID"], "Status": "VOIDED"})
    assert refused["StatusAttributeString"] == "ERROR"
    assert "payment" in refused["ValidationErrors"][0]["Message"]
    listed = api.call("GET", "Invoices", headers={"If-Modified-Since": since}).json()["Invoices"]
    assert [(i["InvoiceID"], i["Status"]) for i in listed if i["Status"] == "VOIDED"] == [(first["InvoiceID"],
                                                                                          "VOIDED")]
