"""The Xero sandbox's own behaviour, spoken to over HTTP with plain ``requests`` (no closeout code): rotation with
the 30-minute grace, tenant header, Idempotency-Key replay, unique contact names, summarizeErrors, and the
minute/day/concurrent limits with their headers and Retry-After."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from sandbox.xero import XeroSandbox


@pytest.fixture
def xero() -> Iterator[XeroSandbox]:
    sandbox = XeroSandbox(per_minute=None, per_day=None, max_concurrent=None)
    sandbox.start()
    yield sandbox
    sandbox.stop()


def refresh(sandbox: XeroSandbox, token: str) -> requests.Response:
    return requests.post(sandbox.token_url, auth=(sandbox.client_id, sandbox.client_secret), timeout=10,
                         data={"grant_type": "refresh_token", "refresh_token": token})  # fmt: skip


class Api:
    def __init__(self, sandbox: XeroSandbox) -> None:
        self.sandbox = sandbox
        answer = refresh(sandbox, sandbox.first_refresh_token).json()
        self.access = answer["access_token"]

    def call(self, method: str, path: str, body: dict | None = None, *, key: str | None = None,
             tenant: str | None = None, **params) -> requests.Response:  # fmt: skip
        headers = {"Authorization": f"Bearer {self.access}", "xero-tenant-id": tenant or self.sandbox.tenant_id,
                   "Accept": "application/json"}  # fmt: skip
        if key:
            headers["Idempotency-Key"] = key
        return requests.request(method, f"{self.sandbox.base_url}/api.xro/2.0/{path}", json=body, params=params,
                                headers=headers, timeout=10)  # fmt: skip


def test_refresh_rotates_and_the_old_token_is_accepted_only_within_30_minutes(xero) -> None:
    first = refresh(xero, xero.first_refresh_token).json()
    assert first["expires_in"] == 1800 and first["refresh_token"] != xero.first_refresh_token
    assert refresh(xero, xero.first_refresh_token).status_code == 200  # grace: the answer may have been lost
    assert refresh(xero, first["refresh_token"]).status_code == 400  # the lost successor is void
    xero.advance_clock(1801)
    assert refresh(xero, xero.first_refresh_token).json() == {"error": "invalid_grant"}


def test_the_tenant_header_is_required_and_access_tokens_expire_after_30_minutes(xero) -> None:
    api = Api(xero)
    assert api.call("GET", "Contacts").status_code == 200
    assert api.call("GET", "Contacts", tenant="someone-else").status_code == 403
    connections = requests.get(f"{xero.base_url}/connections", headers={"Authorization": f"Bearer {api.access}"},
                               timeout=10).json()  # fmt: skip
    assert [c["tenantId"] for c in connections] == [xero.tenant_id]
    xero.advance_clock(1801)
    assert api.call("GET", "Contacts").status_code == 401


def test_idempotency_key_replays_and_contact_names_are_unique(xero) -> None:
    api = Api(xero)
    body = {"Contacts": [{"Name": "Acme Ltd", "ContactNumber": "client-acme"}]}
    first = api.call("PUT", "Contacts", body, key="contacts:acme")
    again = api.call("PUT", "Contacts", body, key="contacts:acme")
    assert first.status_code == 200 and first.content == again.content
    assert again.headers["X-Sandbox-Replayed"] == "true" and xero.create_counts()["Contacts"] == 1
    clash = api.call("PUT", "Contacts", {"Contacts": [{"Name": "ACME LTD"}]})
    assert clash.status_code == 400 and clash.json()["Type"] == "ValidationException"
    assert api.call("PUT", "Contacts", body, key="k" * 129).status_code == 400


def test_summarize_errors_false_answers_each_element_and_keeps_the_good_ones(xero) -> None:
    api = Api(xero)
    contact = api.call("PUT", "Contacts", {"Contacts": [{"Name": "Beta"}]}).json()["Contacts"][0]
    invoices = {"Invoices": [
        {"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]}, "CurrencyCode": "EUR",
         "LineItems": [{"Description": "work", "Quantity": 2.5, "UnitAmount": 100.10, "AccountCode": "200"}]},
        {"Type": "ACCREC", "Contact": {"ContactID": "nobody"}, "LineItems": []}]}  # fmt: skip
    all_or_nothing = api.call("PUT", "Invoices", invoices)
    assert all_or_nothing.status_code == 400 and xero.create_counts()["Invoices"] == 0
    each = api.call("PUT", "Invoices", invoices, summarizeErrors="false")
    assert each.status_code == 200
    answers = each.json(parse_float=Decimal)["Invoices"]
    assert [a["StatusAttributeString"] for a in answers] == ["OK", "ERROR"]
    assert answers[0]["Total"] == Decimal("250.25") and answers[1]["ValidationErrors"]
    assert xero.create_counts()["Invoices"] == 1


def test_limits_answer_429_with_retry_after_and_every_answer_says_what_remains() -> None:
    sandbox = XeroSandbox(per_minute=3, per_day=5, max_concurrent=2)
    sandbox.start()
    try:
        api = Api(sandbox)
        answers = [api.call("GET", "Contacts") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-MinLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
        assert answers[0].headers["X-DayLimit-Remaining"] == "4" and "X-AppMinLimit-Remaining" in answers[0].headers
        assert answers[3].headers["X-Rate-Limit-Problem"] == "minute" and int(answers[3].headers["Retry-After"]) >= 1
    finally:
        sandbox.stop()
    sandbox = XeroSandbox(per_minute=100, per_day=5, max_concurrent=2)
    sandbox.start()
    try:
        api = Api(sandbox)
        sandbox.use_budget(5, day_only=True)
        day = api.call("GET", "Contacts")
        assert day.status_code == 429 and day.headers["X-Rate-Limit-Problem"] == "day"
    finally:
        sandbox.stop()
    sandbox = XeroSandbox(per_minute=100, per_day=100, max_concurrent=2)
    sandbox.start()
    try:
        api = Api(sandbox)
        sandbox.faults.add("slow", times=3, path_prefix="/api.xro/", after=0, delay=1.0)
        codes: list[str] = []
        threads = [threading.Thread(target=lambda: codes.append(
            api.call("GET", "Contacts").headers.get("X-Rate-Limit-Problem", "ok"))) for _ in range(3)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(codes) == ["concurrent", "ok", "ok"]
    finally:
        sandbox.stop()


def test_timeout_after_commit_keeps_the_object_for_the_replay(xero) -> None:
    api = Api(xero)
    xero.faults.add("timeout_after_commit", times=1, path_prefix="/api.xro/", after=0, delay=0.0)
    with pytest.raises(requests.ConnectionError):
        api.call("PUT", "Contacts", {"Contacts": [{"Name": "Gamma"}]}, key="contacts:gamma")
    replay = api.call("PUT", "Contacts", {"Contacts": [{"Name": "Gamma"}]}, key="contacts:gamma")
    assert replay.status_code == 200 and xero.create_counts()["Contacts"] == 1


def test_control_endpoints_drive_the_sandbox_from_another_process(xero) -> None:
    control = f"{xero.base_url}/_sandbox"
    api = Api(xero)
    assert requests.post(f"{control}/clock/advance", json={"seconds": 1801}, timeout=10).ok
    assert api.call("GET", "Contacts").status_code == 401
    fresh = requests.post(f"{control}/connect", timeout=10).json()["refresh_token"]
    api.access = refresh(xero, fresh).json()["access_token"]
    api.call("PUT", "Contacts", {"Contacts": [{"Name": "Zeta"}]})
    assert requests.get(f"{control}/stats", timeout=10).json()["creates"]["Contacts"] == 1
    assert [c["Name"] for c in requests.get(f"{control}/objects/Contacts", timeout=10).json()] == ["Zeta"]


def test_the_cli_serves_until_sigterm_and_prints_what_a_connection_needs() -> None:
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-m", "sandbox.xero"], cwd=root, text=True, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        printed = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
        answer = requests.post(printed["XERO_TOKEN_URL"], auth=("XEROSANDBOXCLIENT", "xero-sandbox-client-secret"),
                               data={"grant_type": "refresh_token", "refresh_token": printed["XERO_REFRESH_TOKEN"]},
                               timeout=10)  # fmt: skip
        assert answer.status_code == 200 and printed["XERO_TENANT_ID"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


# -- money: payments, credit notes, manual journals, bank transactions, and the organisation's rules ---------------
def _contact_and_invoice(api: Api, **invoice: object) -> tuple[str, str]:
    contact = api.call("PUT", "Contacts", {"Contacts": [{"Name": f"Money {len(invoice)}"}]}).json()["Contacts"][0]
    body = {"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]}, "Date": "2026-11-03",
            "LineItems": [{"Description": "work", "Quantity": 2, "UnitAmount": 100, "AccountCode": "200"}], **invoice}
    answer = api.call("PUT", "Invoices", {"Invoices": [body]}, summarizeErrors="false").json()["Invoices"][0]
    assert answer["StatusAttributeString"] == "OK", answer
    return contact["ContactID"], answer["InvoiceID"]


def test_payments_and_credit_note_allocations_lower_what_is_due(xero) -> None:
    api = Api(xero)
    contact, invoice = _contact_and_invoice(api)
    payment = {"Invoice": {"InvoiceID": invoice}, "Account": {"Code": "1150"}, "Date": "2026-11-04", "Amount": 150}
    answers = api.call("PUT", "Payments", {"Payments": [payment, {**payment, "Amount": 500}]},
                       summarizeErrors="false").json()["Payments"]  # fmt: skip
    assert [a["StatusAttributeString"] for a in answers] == ["OK", "ERROR"]
    note = {"Type": "ACCRECCREDIT", "Contact": {"ContactID": contact}, "Date": "2026-11-05",
            "LineItems": [{"Description": "credit", "Quantity": 1, "UnitAmount": 50, "AccountCode": "200"}],
            "Allocations": [{"Invoice": {"InvoiceID": invoice}, "Amount": 50, "Date": "2026-11-05"}]}
    assert api.call("PUT", "CreditNotes", {"CreditNotes": [note]}).status_code == 200
    paid = api.call("GET", f"Invoices/{invoice}").json(parse_float=Decimal)["Invoices"][0]
    assert paid["AmountDue"] == Decimal("0") and paid["Status"] == "PAID"
    assert xero.create_counts()["Payments"] == 1 and xero.create_counts()["CreditNotes"] == 1
    spend = {"Type": "SPEND", "Contact": {"ContactID": contact}, "BankAccount": {"Code": "1000"},
             "LineItems": [{"Description": "fee", "Quantity": 1, "UnitAmount": 3.2, "AccountCode": "6100"}]}
    assert api.call("PUT", "BankTransactions", {"BankTransactions": [spend]}).status_code == 200
    transfer = {"FromBankAccount": {"Code": "1150"}, "ToBankAccount": {"Code": "1000"}, "Amount": 146.8}
    assert api.call("PUT", "BankTransfers", {"BankTransfers": [transfer]}).status_code == 200


def test_manual_journals_sum_to_zero_and_arrays_carry_at_most_50(xero) -> None:
    api = Api(xero)
    lines = [{"LineAmount": 10, "AccountCode": "6100"}, {"LineAmount": -9.99, "AccountCode": "1150"}]
    off = api.call("PUT", "ManualJournals", {"ManualJournals": [{"Narration": "fee", "JournalLines": lines}]})
    assert off.status_code == 400 and "debits" in off.text
    lines[1]["LineAmount"] = -10
    assert api.call("PUT", "ManualJournals", {"ManualJournals": [{"Narration": "fee", "JournalLines": lines}]}
                    ).status_code == 200  # fmt: skip
    found = api.call("GET", "ManualJournals", where='Narration=="fee"').json()["ManualJournals"]
    assert len(found) == 1
    many = [{"Name": f"Contact {n}"} for n in range(51)]
    assert api.call("PUT", "Contacts", {"Contacts": many}, summarizeErrors="false").status_code == 400
    assert api.call("PUT", "Contacts", {"Contacts": many[:50]}, summarizeErrors="false").status_code == 200


def test_lock_dates_currencies_rates_and_tax_types_are_the_organisations_own() -> None:
    xero = XeroSandbox(per_minute=None, per_day=None, max_concurrent=None, period_lock_date="2026-10-31",
                       currencies=("EUR",), tax_types=("OUTPUT", "NONE"))
    xero.start()
    try:
        api = Api(xero)
        contact = api.call("PUT", "Contacts", {"Contacts": [{"Name": "Rules"}]}).json()["Contacts"][0]["ContactID"]

        def element(**fields: object) -> dict:
            line = {"Description": "w", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200",
                    "TaxType": fields.pop("TaxType", "OUTPUT")}
            return {"Type": "ACCREC", "Contact": {"ContactID": contact}, "Date": "2026-11-02", "LineItems": [line],
                    **fields}

        answers = api.call("PUT", "Invoices", {"Invoices": [
            element(), element(Date="2026-10-31"), element(TaxType="VAT20"), element(CurrencyCode="GBP"),
            element(CurrencyCode="EUR", CurrencyRate=1), element(CurrencyCode="EUR", CurrencyRate=0.91)]},
            summarizeErrors="false").json(parse_float=Decimal)["Invoices"]  # fmt: skip
        assert [a["StatusAttributeString"] for a in answers] == ["OK", "ERROR", "ERROR", "ERROR", "ERROR", "OK"]
        messages = [a["ValidationErrors"][0]["Message"] for a in answers[1:5]]
        assert "lock date" in messages[0] and "TaxType" in messages[1]
        assert "not subscribed to currency GBP" in messages[2] and "CurrencyRate 1" in messages[3]
        assert answers[5]["CurrencyRate"] == Decimal("0.91") and xero.create_counts()["Invoices"] == 2
        currencies = api.call("GET", "Currencies").json()["Currencies"]
        assert [c["Code"] for c in currencies] == ["EUR", "USD"]
        assert api.call("GET", "Organisation").json()["Organisations"][0]["PeriodLockDate"] == "2026-10-31"
    finally:
        xero.stop()
