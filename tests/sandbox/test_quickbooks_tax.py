"""The QuickBooks sandbox's tax and void, over HTTP with plain ``requests``: tax codes with rates, an invoice's tax
computed per line (half up) unless ``TxnTaxDetail.TotalTax`` is given, inclusive lines, and ``operation=void`` (stale
SyncToken refused with 5010, an invoice with a payment refused), seen again through change data capture."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.quickbooks.tax import tax_code_objects


@pytest.fixture
def qbo() -> Iterator[QuickBooksSandbox]:
    sandbox = QuickBooksSandbox(requests_per_minute=None, batch_per_minute=None, max_concurrent=None,
                                tax_codes={"VAT20": Decimal("20"), "RR5": Decimal("5"), "EXEMPT": Decimal("0")})
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


def line(amount: str, code: str, gross: str | None = None) -> dict:
    detail: dict = {"TaxCodeRef": {"value": code}}
    if gross is not None:
        detail["TaxInclusiveAmt"] = gross
    return {"Amount": amount, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail}


def test_tax_codes_carry_their_rates() -> None:
    sandbox = QuickBooksSandbox(tax_codes={"VAT20": Decimal("20")})
    (code,) = tax_code_objects(sandbox)
    assert code["Name"] == "VAT20" and code["TaxRate"]["RateValue"] == Decimal("20") and code["Taxable"]
    assert QuickBooksSandbox(tax_codes=("TAX", "NON")).tax_rates == {"TAX": 0, "NON": 0}  # codes alone: 0%


def test_tax_is_computed_per_line_half_up_unless_the_total_tax_is_given(qbo) -> None:
    api = Api(qbo)
    acme = api.create("Customer", {"DisplayName": "Acme"})["Id"]
    # 10.05 x 5% = 0.5025 -> 0.50 per line (twice: 1.00), where the sum 20.10 x 5% = 1.005 would round to 1.01
    computed = api.create("Invoice", {"CustomerRef": {"value": acme}, "DocNumber": "T-1",
                                      "Line": [line("10.05", "RR5"), line("10.05", "RR5"), line("100.00", "VAT20"),
                                               line("7.00", "EXEMPT")]})  # fmt: skip
    assert Decimal(str(computed["TxnTaxDetail"]["TotalTax"])) == Decimal("21.00")
    assert Decimal(str(computed["TotalAmt"])) == Decimal("127.10") + Decimal("21.00")
    given = api.create("Invoice", {"CustomerRef": {"value": acme}, "DocNumber": "T-2",
                                   "Line": [line("10.05", "RR5"), line("10.05", "RR5")],
                                   "TxnTaxDetail": {"TotalTax": "1.01"}})  # fmt: skip
    assert Decimal(str(given["TxnTaxDetail"]["TotalTax"])) == Decimal("1.01")  # it stands
    assert Decimal(str(given["TotalAmt"])) == Decimal("21.11") == Decimal(str(given["Balance"]))


def test_inclusive_lines_take_the_tax_out_of_their_gross(qbo) -> None:
    api = Api(qbo)
    acme = api.create("Customer", {"DisplayName": "Acme"})["Id"]
    inclusive = api.create("Invoice", {"CustomerRef": {"value": acme}, "GlobalTaxCalculation": "TaxInclusive",
                                       "Line": [line("100.00", "VAT20", gross="120.00"),
                                                line("8.33", "VAT20", gross="10.00")]})  # fmt: skip
    # 120 x 20/120 = 20.00; 10 x 20/120 = 1.6667 -> 1.67
    assert Decimal(str(inclusive["TxnTaxDetail"]["TotalTax"])) == Decimal("21.67")
    assert Decimal(str(inclusive["TotalAmt"])) == Decimal("108.33") + Decimal("21.67")


def test_void_zeroes_the_invoice_checks_the_sync_token_and_shows_in_cdc(qbo) -> None:
    api = Api(qbo)
    acme = api.create("Customer", {"DisplayName": "Acme"})["Id"]
    invoice = api.create("Invoice", {"CustomerRef": {"value": acme}, "DocNumber": "V-1", "PrivateNote": "closeout x",
                                     "Line": [line("50.00", "VAT20")]})  # fmt: skip
    since = qbo._stamp()
    qbo.advance_clock(5)
    stale = api.call("POST", "invoice", {"Id": invoice["Id"], "SyncToken": "7"}, operation="void")
    assert stale.status_code == 400 and stale.json()["Fault"]["Error"][0]["code"] == "5010"
    voided = api.call("POST", "invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]}, operation="void")
    assert voided.status_code == 200, voided.text
    body = voided.json()["Invoice"]
    assert body["PrivateNote"] == "Voided - closeout x" and body["TotalAmt"] == 0 and body["SyncToken"] == "1"
    assert body["TxnTaxDetail"]["TotalTax"] == 0
    changed = api.call("GET", "cdc", entities="Invoice", changedSince=since).json()
    (found,) = changed["CDCResponse"][0]["QueryResponse"][0]["Invoice"]
    assert found["Id"] == invoice["Id"] and found["PrivateNote"].startswith("Voided")


def test_an_invoice_with_a_payment_is_not_voided(qbo) -> None:
    api = Api(qbo)
    acme = api.create("Customer", {"DisplayName": "Acme"})["Id"]
    invoice = api.create("Invoice", {"CustomerRef": {"value": acme}, "Line": [line("50.00", "VAT20")]})
    linked = [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    api.create("Payment", {"CustomerRef": {"value": acme}, "TotalAmt": "10.00",
                           "Line": [{"Amount": "10.00", "LinkedTxn": linked}]})
    refused = api.call("POST", "invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]}, operation="void")
    assert refused.status_code == 400 and "payment" in refused.json()["Fault"]["Error"][0]["Detail"]
    assert qbo.objects("Invoice")[0]["TotalAmt"] == 60.0  # untouched
