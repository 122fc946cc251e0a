"""XeroHook against the Xero sandbox and the real warehouse: rotating tokens through the shared token store (and a
lost token answer recovered within Xero's grace), Idempotency-Key replays, per-element errors, the remaining-limit
headers read and paced, Retry-After waited out, the day budget stopping a task instead of sleeping, no secret
leaked."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from accounting_api_support import tables_holding
from closeout.accounting.api.oauth import OAuthError
from closeout.accounting.api.xero import XeroError, XeroHook
from closeout.masking import forget_known_secrets

from sandbox.xero import XeroSandbox

NO_LIMITS = {"per_minute": None, "per_day": None, "max_concurrent": None, "app_per_minute": None}


def connect_xero(monkeypatch: pytest.MonkeyPatch, sandbox: XeroSandbox, **extra: object) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_XERO_DEFAULT", json.dumps({
        "conn_type": "http", "host": sandbox.base_url, "login": sandbox.client_id, "password": sandbox.client_secret,
        "extra": {"tenant_id": sandbox.tenant_id, "refresh_token": sandbox.first_refresh_token,
                  "token_url": sandbox.token_url, **extra}}))  # fmt: skip
    forget_known_secrets()


@pytest.fixture
def xero(warehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[XeroSandbox]:
    sandbox = XeroSandbox(**NO_LIMITS)
    sandbox.start()
    connect_xero(monkeypatch, sandbox)
    yield sandbox
    sandbox.stop()


def token_row(warehouse) -> tuple:
    return warehouse.rows("SELECT system, company_id, refresh_token, refreshes FROM closeout_data.accounting_oauth "
                          "WHERE conn_id = 'xero_default'")[0]  # fmt: skip


def test_tokens_rotate_through_the_shared_store_and_a_lost_answer_is_recovered_in_the_grace(
    warehouse, xero, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = XeroHook()
    assert [c["tenantId"] for c in hook.connections()] == [xero.tenant_id]
    system, tenant, first, refreshes = token_row(warehouse)
    assert (system, tenant, refreshes) == ("xero", xero.tenant_id, 1) and first != xero.first_refresh_token
    xero.advance_clock(1801)  # access tokens last 30 minutes
    # Xero rotates, but its answer is lost on the way: nothing is stored, the task fails retryably
    xero.faults.add("timeout_after_commit", times=1, path_prefix="/connect/token", after=0, delay=0.0)
    with pytest.raises(OAuthError) as lost:
        XeroHook().get_contacts()
    assert lost.value.retryable and token_row(warehouse)[2] == first
    # the next run refreshes from the stored (now retired) token inside Xero's 30-minute grace
    assert XeroHook().get_contacts() == []
    assert token_row(warehouse)[2] not in (first, None) and token_row(warehouse)[3] == 2
    secrets = [*xero.issued_tokens(), xero.client_secret]
    assert [s[:8] for s in secrets if s in caplog.text] == []
    assert tables_holding(warehouse, secrets) == []


def test_idempotency_keys_replay_writes_and_elements_fail_one_by_one(warehouse, xero) -> None:
    hook = XeroHook()
    contacts = [{"Name": "Acme Ltd", "ContactNumber": "client-acme"}, {"Name": "Beta", "ContactNumber": "client-beta"}]
    first = hook.create_contacts(contacts, "contacts:2026-11:1")
    xero.faults.add("timeout_after_commit", times=1, path_prefix="/api.xro/", after=0, delay=0.0)
    again = XeroHook().create_contacts(contacts, "contacts:2026-11:1")  # lost answer, retried with the same key
    assert [c["ContactID"] for c in again.elements] == [c["ContactID"] for c in first.elements]
    assert again.replayed and xero.create_counts()["Contacts"] == 2
    acme = first.elements[0]["ContactID"]
    invoices = [{"Type": "ACCREC", "Contact": {"ContactID": acme}, "CurrencyCode": "EUR", "Reference": "INV-1",
                 "LineItems": [{"Description": "work", "Quantity": Decimal("2.5"), "UnitAmount": Decimal("100.10"),
                                "AccountCode": "200"}]},
                {"Type": "ACCREC", "Contact": {"ContactID": "nobody"}, "LineItems": []}]  # fmt: skip
    result = hook.create_invoices(invoices, "invoices:2026-11:1")
    assert [e["StatusAttributeString"] for e in result.elements] == ["OK", "ERROR"] and len(result.failed) == 1
    assert result.elements[0]["Total"] == Decimal("250.25")
    assert warehouse.rows("SELECT operation, status, attempts, error FROM closeout_data.accounting_api_outbox "
                          "ORDER BY outbox_id") == [
        ("contacts.create", "succeeded", 2, None),
        ("invoices.create", "succeeded", 1, "1 of 2 elements refused")]  # fmt: skip
    with pytest.raises(ValueError, match="1 to 50"):
        hook.create_contacts([{"Name": f"C{n}"} for n in range(51)], "too-many")


def test_remaining_limit_headers_pace_the_hook_so_other_integrations_spending_cause_no_429(
    warehouse, monkeypatch
) -> None:
    sandbox = XeroSandbox(per_minute=5, per_day=None, max_concurrent=5, minute_seconds=1.0)
    sandbox.start()
    try:
        connect_xero(monkeypatch, sandbox, calls_per_minute=5, minute_seconds=1.0)
        hook = XeroHook()
        hook.get_contacts()
        sandbox.use_budget(3)  # another integration of the organisation spends 3 of the 5 this minute
        started = time.monotonic()
        for _ in range(6):
            hook.get_contacts()  # the first answer says 0 remain: the hook waits for the window instead of a 429
        assert sandbox.stats()["throttled"] == 0
        assert time.monotonic() - started >= 0.9
    finally:
        sandbox.stop()


def test_a_429_waits_its_retry_after_and_the_day_budget_stops_the_task_instead_of_sleeping(
    warehouse, monkeypatch
) -> None:
    sandbox = XeroSandbox(per_minute=3, per_day=6, max_concurrent=5, minute_seconds=1.0)
    sandbox.start()
    try:
        connect_xero(monkeypatch, sandbox, calls_per_minute=100, minute_seconds=1.0)
        hook = XeroHook()
        hook.get_contacts()
        sandbox.use_budget(2)  # spent behind the hook's back: it still believes 1 remains
        started = time.monotonic()
        hook.get_contacts()  # 429 minute, Retry-After 1: waited out
        assert hook.rate_limited == 1 and time.monotonic() - started >= 0.9
        assert sandbox.stats()["throttled"] == 1
        with pytest.raises(XeroError) as day:
            for _ in range(5):
                hook.get_contacts()
        assert day.value.problem == "day" and day.value.retryable
        assert sandbox.stats()["throttled"] == 1  # the day budget was known: no call was wasted on it
    finally:
        sandbox.stop()
