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
