"""QuickBooksHook's writes and pacing against the QuickBooks sandbox and the real warehouse: requestid from business
identity recorded in the outbox before the call, replays after timeouts and lost answers create nothing, Intuit's
own refusals (6240 duplicate name, 5010 stale SyncToken) come back with their codes, batches of at most 30, 429s
waited out, and pacing that keeps steady state under the limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from accounting_api_support import UNLIMITED, connect_quickbooks
from closeout.accounting.api.outbox import IdempotencyConflict
from closeout.accounting.api.quickbooks import QuickBooksError, QuickBooksHook, quote_value

from sandbox.quickbooks import QuickBooksSandbox


@pytest.fixture
def quickbooks(warehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[QuickBooksSandbox]:
    sandbox = QuickBooksSandbox(**UNLIMITED)
    sandbox.start()
    connect_quickbooks(monkeypatch, sandbox)
    yield sandbox
    sandbox.stop()


def outbox(warehouse) -> list[tuple]:
    return warehouse.rows("SELECT operation, business_ref, status, attempts, external_id, http_status, error "
                          "FROM closeout_data.accounting_api_outbox ORDER BY outbox_id")  # fmt: skip


def test_a_repeated_write_sends_the_same_requestid_and_gets_the_original_object(warehouse, quickbooks) -> None:
    first = QuickBooksHook().create_customer({"DisplayName": "Acme Ltd"}, "client:acme")
    again = QuickBooksHook().create_customer({"DisplayName": "Acme Ltd"}, "client:acme")  # another task, later
    assert again.body["Customer"]["Id"] == first.body["Customer"]["Id"]
    assert again.request_id == first.request_id and len(first.request_id) == 36
    assert again.replayed and not first.replayed
    assert quickbooks.create_counts()["Customer"] == 1
    assert outbox(warehouse) == [("customer.create", "client:acme", "succeeded", 2, first.body["Customer"]["Id"],
                                  200, None)]  # fmt: skip
    # the key is in the request QuickBooks saw, next to the minor version
    sent = [target for _, target, _ in quickbooks.stats()["log"] if "/customer?" in target]
    assert all(f"requestid={first.request_id}" in t and "minorversion=75" in t for t in sent) and len(sent) == 2


def test_a_changed_body_under_the_same_business_identity_is_refused_before_it_is_sent(warehouse, quickbooks) -> None:
    hook = QuickBooksHook()
    hook.create_customer({"DisplayName": "Acme Ltd"}, "client:acme")
    requests_before = quickbooks.stats()["requests"]
    with pytest.raises(IdempotencyConflict, match="different body"):
        hook.create_customer({"DisplayName": "Acme Limited"}, "client:acme")
    assert quickbooks.stats()["requests"] == requests_before


def test_an_answer_lost_after_the_commit_is_replayed_not_repeated(warehouse, monkeypatch, quickbooks) -> None:
    connect_quickbooks(monkeypatch, quickbooks, timeout=0.5)
    hook = QuickBooksHook()
    hook.query_customers()  # tokens first, so the faults below hit the writes
    # the create is committed at QuickBooks, then the answer never comes (read timeout)
    quickbooks.faults.add("timeout_after_commit", times=1, path_prefix="/v3/", after=0, delay=2.0)
    customer = hook.create_customer({"DisplayName": "Beta"}, "client:beta").body["Customer"]
    # and again with the connection dropped after the commit
    quickbooks.faults.add("timeout_after_commit", times=1, path_prefix="/v3/", after=0, delay=0.0)
    invoice = hook.create_invoice({"CustomerRef": {"value": customer["Id"]}, "DocNumber": "INV-1",
                                   "Line": [{"Amount": Decimal("1250.10"), "DetailType": "SalesItemLineDetail"}]},
                                  "invoice:INV-1:v1").body["Invoice"]  # fmt: skip
    assert invoice["TotalAmt"] == Decimal("1250.10")  # exact money both ways
    assert quickbooks.create_counts() == {"Customer": 1, "Invoice": 1}
    assert quickbooks.stats()["replays"] == 2
    assert [(r[0], r[2], r[4]) for r in outbox(warehouse)] == [
        ("customer.create", "succeeded", customer["Id"]), ("invoice.create", "succeeded", invoice["Id"])]


def test_a_worker_that_died_after_sending_leaves_a_pending_row_whose_retry_replays(
    warehouse, monkeypatch, quickbooks
) -> None:
    connect_quickbooks(monkeypatch, quickbooks, max_attempts=1)
    QuickBooksHook().query_customers()
    quickbooks.faults.add("timeout_after_commit", times=1, path_prefix="/v3/", after=0, delay=0.0)
    with pytest.raises(QuickBooksError) as lost:
        QuickBooksHook().create_customer({"DisplayName": "Gamma"}, "client:gamma")
    assert lost.value.retryable
    assert outbox(warehouse)[0][:4] == ("customer.create", "client:gamma", "pending", 1)
    retried = QuickBooksHook().create_customer({"DisplayName": "Gamma"}, "client:gamma")  # Airflow's task retry
    assert retried.replayed and quickbooks.create_counts()["Customer"] == 1
    assert outbox(warehouse)[0][2:5] == ("succeeded", 2, retried.body["Customer"]["Id"])


def test_intuits_refusals_come_back_with_their_codes_and_are_recorded(warehouse, quickbooks) -> None:
    hook = QuickBooksHook()
    customer = hook.create_customer({"DisplayName": "Delta"}, "client:delta").body["Customer"]
    with pytest.raises(QuickBooksError) as duplicate:
        hook.create_customer({"DisplayName": "delta"}, "client:delta-2")
    assert duplicate.value.code == "6240" and not duplicate.value.retryable
    assert quickbooks.create_counts()["Customer"] == 1
    found = hook.query_customers(f"DisplayName = {quote_value('Delta')}")
    assert [c["Id"] for c in found] == [customer["Id"]]

    invoice = hook.create_invoice({"CustomerRef": {"value": customer["Id"]},
                                   "Line": [{"Amount": Decimal("10.00"), "DetailType": "SalesItemLineDetail"}]},
                                  "invoice:INV-2:v1").body["Invoice"]  # fmt: skip
    quickbooks.edit("Invoice", invoice["Id"], {"PrivateNote": "changed by the accountant"})
    with pytest.raises(QuickBooksError) as stale:
        hook.update_invoice({"Id": invoice["Id"], "SyncToken": invoice["SyncToken"], "sparse": True,
                             "CustomerMemo": {"value": "thanks"}}, "invoice:INV-2:v2")  # fmt: skip
    assert stale.value.code == "5010"
    current = hook.get_invoice(invoice["Id"])
    memo = {"Id": invoice["Id"], "SyncToken": current["SyncToken"], "sparse": True, "CustomerMemo": {"value": "thanks"}}
    updated = hook.update_invoice(memo, "invoice:INV-2:v2b").body["Invoice"]
    assert updated["SyncToken"] == "2" and updated["PrivateNote"] == "changed by the accountant"
    statuses = [(r[1], r[2], r[5]) for r in outbox(warehouse)]
    assert ("client:delta-2", "failed", 400) in statuses and ("invoice:INV-2:v2", "failed", 400) in statuses
    assert any("6240" in (r[6] or "") for r in outbox(warehouse))


def test_a_batch_carries_at_most_30_items_under_one_requestid(warehouse, quickbooks) -> None:
    hook = QuickBooksHook()
    items = [{"bId": f"c{n}", "operation": "create", "Customer": {"DisplayName": f"Client {n:02d}"}}
             for n in range(30)]  # fmt: skip
    answer = hook.batch(items, "customers:2026-11:part-1")
    assert len(answer.body["BatchItemResponse"]) == 30 and quickbooks.create_counts()["Customer"] == 30
    again = hook.batch(items, "customers:2026-11:part-1")
    assert again.replayed and quickbooks.create_counts()["Customer"] == 30
    with pytest.raises(ValueError, match="1 to 30"):
        hook.batch([*items, {"bId": "c30", "operation": "create", "Customer": {"DisplayName": "X"}}], "too-many")
    assert len(hook.query_customers()) == 30


def test_a_429_is_waited_out_and_the_call_succeeds(warehouse, monkeypatch) -> None:
    sandbox = QuickBooksSandbox(requests_per_minute=3, batch_per_minute=None, max_concurrent=None, window_seconds=1.0)
    sandbox.start()
    try:
        connect_quickbooks(monkeypatch, sandbox, requests_per_minute=1000)  # our pacing off: provoke the 429s
        hook = QuickBooksHook()
        for n in range(8):
            hook.create_customer({"DisplayName": f"Client {n}"}, f"client:{n}")
        assert sandbox.stats()["throttled"] >= 1 and hook.rate_limited >= 1
        assert sandbox.create_counts()["Customer"] == 8
    finally:
        sandbox.stop()


def test_pacing_keeps_steady_state_under_the_limits_without_a_429(warehouse, monkeypatch) -> None:
    sandbox = QuickBooksSandbox(requests_per_minute=6, batch_per_minute=2, max_concurrent=2, window_seconds=1.0)
    sandbox.start()
    try:
        connect_quickbooks(monkeypatch, sandbox, requests_per_minute=6, batch_requests_per_minute=2,
                           max_concurrent=2, rate_window_seconds=1.0)  # fmt: skip
        sandbox.faults.add("slow", times=8, path_prefix="/v3/", after=0, delay=0.2)
        hooks = [QuickBooksHook() for _ in range(4)]
        started = time.monotonic()
        errors: list[BaseException] = []

        def task(hook: QuickBooksHook, n: int) -> None:
            try:
                for _ in range(4):
                    hook.query_customers()
                hook.batch([{"bId": "1", "Query": "select * from Customer"}], f"probe:{n}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=task, args=(hook, n)) for n, hook in enumerate(hooks)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        stats = sandbox.stats()
        assert stats["throttled"] == 0, stats["status_counts"]
        assert sum(h.requests_sent for h in hooks) == 20
        # 20 requests at 6 a second and 4 batches at 2 a second cannot take less than about 3 windows
        assert time.monotonic() - started >= 2.0
    finally:
        sandbox.stop()


def test_the_outbox_row_is_committed_before_quickbooks_sees_the_write(warehouse, quickbooks) -> None:
    hook = QuickBooksHook()
    hook.query_customers()  # tokens first
    quickbooks.faults.add("slow", times=1, path_prefix="/v3/", after=0, delay=3.0)  # the create is held in flight
    done = threading.Event()
    worker = threading.Thread(target=lambda: (hook.create_customer({"DisplayName": "Epsilon"}, "client:epsilon"),
                                              done.set()))  # fmt: skip
    worker.start()
    deadline = time.monotonic() + 30
    while not outbox(warehouse):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # visible to another session (committed) while QuickBooks has not created anything yet
    assert outbox(warehouse)[0][:3] == ("customer.create", "client:epsilon", "pending")
    assert quickbooks.create_counts()["Customer"] == 0 and not done.is_set()
    worker.join(30)
    assert done.is_set() and outbox(warehouse)[0][2] == "succeeded" and quickbooks.create_counts()["Customer"] == 1
