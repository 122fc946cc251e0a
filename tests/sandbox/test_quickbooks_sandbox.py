"""The QuickBooks Online sandbox's own behaviour, spoken to over HTTP with plain ``requests`` (no closeout code):
token rotation and expiry, minorversion, requestid replay, duplicate names, SyncToken conflicts, batch limits,
rate limits and the timeout-after-commit fault."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from sandbox.quickbooks import QuickBooksSandbox


@pytest.fixture
def qbo() -> Iterator[QuickBooksSandbox]:
    sandbox = QuickBooksSandbox(requests_per_minute=None, batch_per_minute=None, max_concurrent=None)
    sandbox.start()
    yield sandbox
    sandbox.stop()


def refresh(sandbox: QuickBooksSandbox, token: str, secret: str | None = None) -> requests.Response:
    return requests.post(sandbox.token_url, auth=(sandbox.client_id, secret or sandbox.client_secret),
                         data={"grant_type": "refresh_token", "refresh_token": token}, timeout=10)  # fmt: skip


class Api:
    def __init__(self, sandbox: QuickBooksSandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.refresh_token = sandbox.first_refresh_token
        self.renew()

    def renew(self) -> None:
        answer = refresh(self.sandbox, self.refresh_token)
        assert answer.status_code == 200, answer.text
        self.access = answer.json()["access_token"]
        self.refresh_token = answer.json()["refresh_token"]

    def call(self, method: str, path: str, body: dict | None = None, **params) -> requests.Response:
        params.setdefault("minorversion", 75)
        return self.session.request(method, f"{self.sandbox.base_url}/v3/company/{self.sandbox.realm_id}/{path}",
                                    params=params, json=body, timeout=10,
                                    headers={"Authorization": f"Bearer {self.access}"})  # fmt: skip


def fault_code(response: requests.Response) -> str:
    return response.json()["Fault"]["Error"][0]["code"]


def test_every_refresh_rotates_the_refresh_token_and_the_old_one_is_refused_without_grace(qbo) -> None:
    first = refresh(qbo, qbo.first_refresh_token)
    assert first.status_code == 200
    body = first.json()
    assert body["expires_in"] == 3600 and body["token_type"] == "bearer"
    assert body["refresh_token"] != qbo.first_refresh_token
    second = refresh(qbo, body["refresh_token"])
    assert second.status_code == 200 and second.json()["refresh_token"] != body["refresh_token"]
    # both earlier tokens are retired (Intuit documents no grace; the sandbox default is none)
    for old in (qbo.first_refresh_token, body["refresh_token"]):
        refused = refresh(qbo, old)
        assert refused.status_code == 400 and refused.json() == {"error": "invalid_grant"}
    assert refresh(qbo, second.json()["refresh_token"], secret="wrong").status_code == 401
    assert qbo.stats()["token_refreshes"] == 2


def test_a_retired_token_within_the_grace_continues_the_chain_and_retires_its_lost_successor() -> None:
    sandbox = QuickBooksSandbox(refresh_grace_seconds=1800)
    sandbox.start()
    try:
        lost = refresh(sandbox, sandbox.first_refresh_token).json()["refresh_token"]  # answer "lost"
        again = refresh(sandbox, sandbox.first_refresh_token)  # the old one, inside the grace
        assert again.status_code == 200
        assert refresh(sandbox, lost).status_code == 400  # the lost successor no longer counts
        sandbox.advance_clock(1801)
        assert refresh(sandbox, sandbox.first_refresh_token).status_code == 400  # grace over
        assert refresh(sandbox, again.json()["refresh_token"]).status_code == 200
    finally:
        sandbox.stop()


def test_access_tokens_expire_after_an_hour_on_the_sandbox_clock(qbo) -> None:
    api = Api(qbo)
    assert api.call("GET", "query", query="select * from Customer").status_code == 200
    qbo.advance_clock(3599)
    assert api.call("GET", "query", query="select * from Customer").status_code == 200
    qbo.advance_clock(2)
    expired = api.call("GET", "query", query="select * from Customer")
    assert expired.status_code == 401 and fault_code(expired) == "3200"
    assert api.access not in expired.text
    api.renew()
    assert api.call("GET", "query", query="select * from Customer").status_code == 200


def test_minorversion_75_or_later_is_required(qbo) -> None:
    api = Api(qbo)
    for version in (None, 74, "x"):
        params = {} if version is None else {"minorversion": version}
        response = api.session.get(f"{qbo.base_url}/v3/company/{qbo.realm_id}/query", timeout=10, params={
            "query": "select * from Customer", **params}, headers={"Authorization": f"Bearer {api.access}"})
        assert response.status_code == 400 and "minorversion" in response.text
    assert api.call("GET", "query", query="select * from Customer", minorversion=75).status_code == 200


def test_a_repeated_requestid_replays_the_first_answer_and_creates_nothing(qbo) -> None:
    api = Api(qbo)
    first = api.call("POST", "customer", {"DisplayName": "Acme Ltd"}, requestid="client-acme-1")
    again = api.call("POST", "customer", {"DisplayName": "Acme Ltd"}, requestid="client-acme-1")
    assert first.status_code == again.status_code == 200
    assert first.content == again.content and again.headers["X-Sandbox-Replayed"] == "true"
    assert qbo.create_counts()["Customer"] == 1
    # a failed write is replayed too: the same refusal, not a second try
    clash = api.call("POST", "customer", {"DisplayName": "ACME LTD"}, requestid="client-acme-2")
    assert clash.status_code == 400 and fault_code(clash) == "6240"
    assert api.call("POST", "customer", {"DisplayName": "Other"}, requestid="client-acme-2").content == clash.content
    too_long = api.call("POST", "customer", {"DisplayName": "X"}, requestid="r" * 51)
    assert too_long.status_code == 400 and qbo.create_counts()["Customer"] == 1


def test_invoice_updates_need_the_current_sync_token(qbo) -> None:
    api = Api(qbo)
    customer = api.call("POST", "customer", {"DisplayName": "Beta"}).json()["Customer"]
    created = api.call("POST", "invoice", {"CustomerRef": {"value": customer["Id"]}, "DocNumber": "1001",
                                           "Line": [{"Amount": 150.25, "DetailType": "SalesItemLineDetail"},
                                                    {"Amount": 49.75, "DetailType": "SalesItemLineDetail"}]})
    invoice = created.json(parse_float=Decimal)["Invoice"]
    assert invoice["TotalAmt"] == Decimal("200.00") and invoice["SyncToken"] == "0"
    update = {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "checked"}
    assert api.call("POST", "invoice", update).json()["Invoice"]["SyncToken"] == "1"
    stale = api.call("POST", "invoice", update)
    assert stale.status_code == 400 and fault_code(stale) == "5010"
    qbo.edit("Invoice", invoice["Id"], {"PrivateNote": "edited by the accountant"})
    assert fault_code(api.call("POST", "invoice", {**update, "SyncToken": "1"})) == "5010"
    bad_ref = api.call("POST", "invoice", {"CustomerRef": {"value": "999"}, "Line": [{"Amount": 1}]})
    assert bad_ref.status_code == 400 and fault_code(bad_ref) == "2500"
    found = api.call("GET", "query", query="select * from Invoice where DocNumber = '1001'").json()
    assert [i["Id"] for i in found["QueryResponse"]["Invoice"]] == [invoice["Id"]]


def test_batch_answers_item_by_item_and_refuses_more_than_30(qbo) -> None:
    api = Api(qbo)
    items = [{"bId": str(n), "operation": "create", "Customer": {"DisplayName": f"Client {n}"}} for n in range(30)]
    items[5]["Customer"]["DisplayName"] = "Client 4"  # a duplicate inside the batch fails alone
    answer = api.call("POST", "batch", {"BatchItemRequest": items})
    assert answer.status_code == 200
    results = {r["bId"]: r for r in answer.json()["BatchItemResponse"]}
    assert results["5"]["Fault"]["Error"][0]["code"] == "6240"
    assert sum("Customer" in r for r in results.values()) == 29
    more = [{"bId": str(n), "operation": "create", "Customer": {"DisplayName": f"More {n}"}} for n in range(31)]
    refused = api.call("POST", "batch", {"BatchItemRequest": more})
    assert refused.status_code == 400 and "30" in refused.text
    assert qbo.create_counts()["Customer"] == 29
    page = api.call("GET", "query", query="select * from Customer STARTPOSITION 11 MAXRESULTS 10").json()
    names = [c["DisplayName"] for c in page["QueryResponse"]["Customer"]]
    assert len(names) == 10 and names[0] == "Client 11"  # positions count stored rows; Client 5 failed


def test_rate_limits_answer_429_per_minute_per_batch_and_per_concurrency() -> None:
    sandbox = QuickBooksSandbox(requests_per_minute=5, batch_per_minute=2, max_concurrent=2, window_seconds=60)
    sandbox.start()
    try:
        api = Api(sandbox)
        statuses = [api.call("GET", "query", query="select * from Customer").status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        throttled = api.call("GET", "query", query="select * from Customer")
        assert fault_code(throttled) == "3001" and "ThrottleExceeded" in throttled.text
    finally:
        sandbox.stop()

    sandbox = QuickBooksSandbox(requests_per_minute=100, batch_per_minute=2, max_concurrent=2)
    sandbox.start()
    try:
        api = Api(sandbox)
        batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Customer"}]}
        assert [api.call("POST", "batch", batch).status_code for _ in range(3)] == [200, 200, 429]
        assert api.call("GET", "query", query="select * from Customer").status_code == 200  # others still go
        # concurrency: three requests held in flight at once, the third refused
        sandbox.faults.add("slow", times=3, path_prefix="/v3/", after=0, delay=1.0)
        codes: list[int] = []
        threads = [threading.Thread(target=lambda: codes.append(
            api.call("GET", "query", query="select * from Customer").status_code)) for _ in range(3)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(codes) == [200, 200, 429]
    finally:
        sandbox.stop()


def test_timeout_after_commit_drops_the_answer_but_keeps_the_object_for_the_replay(qbo) -> None:
    api = Api(qbo)
    qbo.faults.add("timeout_after_commit", times=1, path_prefix="/v3/", after=0, delay=0.0)
    with pytest.raises(requests.ConnectionError):
        api.call("POST", "customer", {"DisplayName": "Gamma"}, requestid="client-gamma")
    assert qbo.create_counts()["Customer"] == 1
    replay = api.call("POST", "customer", {"DisplayName": "Gamma"}, requestid="client-gamma")
    assert replay.status_code == 200 and replay.headers["X-Sandbox-Replayed"] == "true"
    assert qbo.create_counts()["Customer"] == 1


def test_control_endpoints_drive_the_sandbox_from_another_process(qbo) -> None:
    control = f"{qbo.base_url}/_sandbox"
    api = Api(qbo)
    assert requests.post(f"{control}/clock/advance", json={"seconds": 3601}, timeout=10).status_code == 200
    assert api.call("GET", "query", query="select * from Customer").status_code == 401
    api.renew()
    assert requests.post(f"{control}/faults", json={"kind": "nonsense"}, timeout=10).status_code == 400
    assert requests.post(f"{control}/faults", json={"kind": "500", "path_prefix": "/v3/"}, timeout=10).ok
    assert api.call("GET", "query", query="select * from Customer").status_code == 500
    api.call("POST", "customer", {"DisplayName": "Zeta"})
    stats = requests.get(f"{control}/stats", timeout=10).json()
    assert stats["creates"]["Customer"] == 1 and stats["token_refreshes"] == 2
    assert [c["DisplayName"] for c in requests.get(f"{control}/objects/Customer", timeout=10).json()] == ["Zeta"]
    fresh = requests.post(f"{control}/connect", timeout=10).json()["refresh_token"]
    assert refresh(qbo, fresh).status_code == 200


def test_the_cli_serves_until_sigterm_and_prints_what_a_connection_needs() -> None:
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-m", "sandbox.quickbooks", "--window", "5"], cwd=root, text=True,
                               stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert process.stdout is not None
        printed = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
        assert set(printed) == {"QUICKBOOKS_SANDBOX_URL", "QUICKBOOKS_TOKEN_URL", "QUICKBOOKS_REALM_ID",
                                "QUICKBOOKS_REFRESH_TOKEN"}  # fmt: skip
        form = {"grant_type": "refresh_token", "refresh_token": printed["QUICKBOOKS_REFRESH_TOKEN"]}
        answer = requests.post(printed["QUICKBOOKS_TOKEN_URL"], auth=("sandbox-client-id", "sandbox-client-secret"),
                               data=form, timeout=10)  # fmt: skip
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


# -- money: payments, credit memos, journal entries, deposits, and the books' rules --------------------------------
def _customer_and_invoice(api: Api, currency: str | None = None, amount: float = 200.00) -> tuple[str, str]:
    body = {"DisplayName": f"Money {currency or 'home'}"}
    if currency:
        body["CurrencyRef"] = {"value": currency}
    customer = api.call("POST", "customer", body).json()["Customer"]["Id"]
    invoice = api.call("POST", "invoice", {"CustomerRef": {"value": customer}, "TxnDate": "2026-11-03",
                                           "ExchangeRate": 1.1 if currency else None,
                                           "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail"}]})
    assert invoice.status_code == 200, invoice.text
    return customer, invoice.json()["Invoice"]["Id"]


def test_a_payment_applies_to_its_invoice_and_never_beyond_its_balance(qbo) -> None:
    api = Api(qbo)
    customer, invoice = _customer_and_invoice(api)
    pay = {"CustomerRef": {"value": customer}, "TotalAmt": 150.00, "TxnDate": "2026-11-05",
           "Line": [{"Amount": 150.00, "LinkedTxn": [{"TxnId": invoice, "TxnType": "Invoice"}]}]}
    assert api.call("POST", "payment", pay).status_code == 200
    after = api.call("GET", f"invoice/{invoice}").json(parse_float=Decimal)["Invoice"]
    assert after["Balance"] == Decimal("50.00")
    too_much = api.call("POST", "payment", pay)
    assert too_much.status_code == 400 and "balance" in too_much.text
    unknown = api.call("POST", "payment", {**pay, "Line": [{"Amount": 1, "LinkedTxn": [{"TxnId": "999",
                                                                                         "TxnType": "Invoice"}]}]})
    assert unknown.status_code == 400 and fault_code(unknown) == "2500"
    assert qbo.create_counts()["Payment"] == 1
    memo = api.call("POST", "creditmemo", {"CustomerRef": {"value": customer},
                                           "Line": [{"Amount": 20, "DetailType": "SalesItemLineDetail"}]})
    assert memo.json(parse_float=Decimal)["CreditMemo"]["TotalAmt"] == Decimal("20")
    deposit = api.call("POST", "deposit", {"DepositToAccountRef": {"value": "1000"},
                                           "Line": [{"Amount": 130, "DetailType": "DepositLineDetail"}]})
    assert deposit.json(parse_float=Decimal)["Deposit"]["TotalAmt"] == Decimal("130")
    assert api.call("POST", "deposit", {"Line": [{"Amount": 1}]}).status_code == 400


def test_a_journal_entry_must_balance_and_is_found_by_its_doc_number_not_its_private_note(qbo) -> None:
    api = Api(qbo)

    def line(kind: str, amount: float, account: str) -> dict:
        return {"Amount": amount, "DetailType": "JournalEntryLineDetail",
                "JournalEntryLineDetail": {"PostingType": kind, "AccountRef": {"value": account}}}

    unbalanced = api.call("POST", "journalentry", {"Line": [line("Debit", 10, "6100"), line("Credit", 9.99, "1150")]})
    assert unbalanced.status_code == 400 and "not balanced" in unbalanced.text
    ok = api.call("POST", "journalentry", {"PrivateNote": "closeout journal jnl_1", "DocNumber": "CJ1",
                                           "Line": [line("Debit", 10, "6100"), line("Credit", 10, "1150")]})
    assert ok.status_code == 200
    # PrivateNote is not filterable in QuickBooks' query language: refused as Intuit refuses it (code 4001)
    refused = api.call("GET", "query",
                       query="select * from JournalEntry where PrivateNote in ('closeout journal jnl_1')")
    assert refused.status_code == 400 and fault_code(refused) == "4001" and "not queryable" in refused.text
    found = api.call("GET", "query", query="select * from JournalEntry where DocNumber in ('CJ1')")
    assert [j["Id"] for j in found.json()["QueryResponse"]["JournalEntry"]] == [ok.json()["JournalEntry"]["Id"]]


def test_the_closing_date_currencies_rates_and_tax_codes_are_the_books_own() -> None:
    qbo = QuickBooksSandbox(requests_per_minute=None, batch_per_minute=None, max_concurrent=None,
                            book_close_date="2026-10-31", currencies=("EUR",), tax_codes=("TAX", "NON"))
    qbo.start()
    try:
        api = Api(qbo)
        customer = api.call("POST", "customer", {"DisplayName": "Rules"}).json()["Customer"]["Id"]

        def invoice(**fields) -> requests.Response:
            line = {"Amount": 10, "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"TaxCodeRef": {"value": fields.pop("tax", "TAX")}}}
            return api.call("POST", "invoice", {"CustomerRef": {"value": fields.pop("customer", customer)},
                                                "TxnDate": "2026-11-02", "Line": [line], **fields})

        closed = invoice(TxnDate="2026-10-31")
        assert closed.status_code == 400 and fault_code(closed) == "6210" and "2026-10-31" in closed.text
        untaxed = invoice(tax="VAT20")
        assert untaxed.status_code == 400 and untaxed.json()["Fault"]["Error"][0]["element"] == "TaxCodeRef"
        gbp = api.call("POST", "customer", {"DisplayName": "Pounds", "CurrencyRef": {"value": "GBP"}}).json()
        refused = invoice(customer=gbp["Customer"]["Id"], ExchangeRate=1.27)
        assert refused.status_code == 400 and refused.json()["Fault"]["Error"][0]["element"] == "CurrencyRef"
        eur = api.call("POST", "customer", {"DisplayName": "Euros", "CurrencyRef": {"value": "EUR"}}).json()
        at_one = invoice(customer=eur["Customer"]["Id"], ExchangeRate=1)
        assert at_one.status_code == 400 and at_one.json()["Fault"]["Error"][0]["element"] == "ExchangeRate"
        good = invoice(customer=eur["Customer"]["Id"], ExchangeRate=1.1)
        assert good.status_code == 200 and good.json(parse_float=Decimal)["Invoice"]["ExchangeRate"] == Decimal("1.1")
        assert invoice().status_code == 200 and qbo.create_counts()["Invoice"] == 2
    finally:
        qbo.stop()


def test_a_requestid_is_forgotten_after_its_lifetime_on_the_sandbox_clock() -> None:
    qbo = QuickBooksSandbox(requests_per_minute=None, batch_per_minute=None, max_concurrent=None,
                            request_id_ttl_seconds=3600)
    qbo.start()
    try:
        api = Api(qbo)
        api.call("POST", "customer", {"DisplayName": "Once"}, requestid="k-1")
        assert api.call("POST", "customer", {"DisplayName": "Once"}, requestid="k-1").headers.get(
            "X-Sandbox-Replayed") == "true"
        qbo.advance_clock(3601)
        api.renew()  # the access token expired on the same clock
        again = api.call("POST", "customer", {"DisplayName": "Once"}, requestid="k-1")
        assert again.status_code == 400 and fault_code(again) == "6240"  # processed again: the key is gone
    finally:
        qbo.stop()
