"""The Stripe sandbox, driven through the real ``stripe`` SDK: objects, invoice state machine, idempotency,
faults, events, signed webhooks, customer-behaviour controls and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe

from sandbox.stripe import StripeSandbox

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk_test_sandbox"
WHSEC = "whsec_test_secret"


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    sb = StripeSandbox(seed=7)
    sb.start("127.0.0.1", 0)
    try:
        yield sb
    finally:
        sb.stop()


def make_client(sb: StripeSandbox, *, timeout: float | None = None, key: str = KEY) -> stripe.StripeClient:
    options: dict[str, Any] = {}
    if timeout is not None:
        options["http_client"] = stripe.RequestsClient(timeout=timeout)
    return stripe.StripeClient(key, base_addresses={"api": sb.url}, max_network_retries=0, **options)


@pytest.fixture
def client(sandbox: StripeSandbox) -> stripe.StripeClient:
    return make_client(sandbox)


def new_customer(client: stripe.StripeClient, name: str = "Acme", client_key: str = "acme") -> Any:
    return client.v1.customers.create(
        params={"name": name, "email": f"{client_key}@example.com", "metadata": {"closeout_client": client_key}}
    )


def new_draft(client: stripe.StripeClient, customer: str, **extra: Any) -> Any:
    params = {
        "customer": customer,
        "auto_advance": False,
        "collection_method": "send_invoice",
        "days_until_due": 30,
        "currency": "usd",
        "metadata": {"closeout_draft": "d-1"},
        "pending_invoice_items_behavior": "exclude",
        **extra,
    }
    return client.v1.invoices.create(params=params)


def open_invoice(client: stripe.StripeClient, amount: int = 1000) -> Any:
    customer = new_customer(client)
    draft = new_draft(client, customer.id)
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": draft.id, "amount": amount, "currency": "usd"}
    )
    return client.v1.invoices.finalize_invoice(draft.id)


class Receiver:
    """A tiny webhook endpoint: records every POST, answers with queued statuses (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append((body, self.headers.get("Stripe-Signature") or ""))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def events(self) -> list[Any]:
        """Every received delivery, verified with the SDK's webhook helper."""
        with self.lock:
            received = list(self.received)
        return [stripe.Webhook.construct_event(body, signature, WHSEC) for body, signature in received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


# ---------------------------------------------------------------------------------------------- basics


def test_auth_requires_the_configured_secret_key(sandbox: StripeSandbox) -> None:
    with pytest.raises(stripe.AuthenticationError) as excinfo:
        make_client(sandbox, key="sk_test_wrong").v1.customers.list()
    assert excinfo.value.http_status == 401
    response = requests.get(sandbox.url + "/v1/customers", timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert requests.get(sandbox.url + "/v1/customers", auth=(KEY, ""), timeout=5).status_code == 200


def test_customers_create_retrieve_update_list_and_search(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    acme = new_customer(client, "Acme", "acme")
    globex = new_customer(client, "Globex", "globex")
    assert acme.id.startswith("cus_") and acme.object == "customer" and acme.livemode is False
    assert isinstance(acme.created, int) and acme.metadata["closeout_client"] == "acme"
    assert client.v1.customers.retrieve(acme.id).email == "acme@example.com"

    updated = client.v1.customers.update(acme.id, params={"name": "Acme Corp", "metadata": {"tier": "gold"}})
    assert updated.name == "Acme Corp" and updated.metadata.to_dict() == {"closeout_client": "acme", "tier": "gold"}
    unset = client.v1.customers.update(acme.id, params={"metadata": {"tier": ""}})
    assert unset.metadata.to_dict() == {"closeout_client": "acme"}

    listed = client.v1.customers.list(params={"limit": 1})
    assert [c.id for c in listed.data] == [globex.id] and listed.has_more
    assert [c.id for c in client.v1.customers.list().auto_paging_iter()] == [globex.id, acme.id]

    found = client.v1.customers.search(params={"query": "metadata['closeout_client']:'acme'"})
    assert found.object == "search_result" and [c.id for c in found.data] == [acme.id]
    both = client.v1.customers.search(
        params={"query": "metadata['closeout_client']:'acme' OR metadata['closeout_client']:'globex'", "limit": 1}
    )
    assert [c.id for c in both.data] == [globex.id] and both.has_more and both.next_page
    assert [c.id for c in both.auto_paging_iter()] == [globex.id, acme.id]
    assert client.v1.customers.search(params={"query": "name~'Glob'"}).data[0].id == globex.id
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.search(params={"query": "metadata['a']:'b' AND name:'x' OR email:'y'"})

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.customers.create(params={"nmae": "typo"})
    assert excinfo.value.code == "parameter_unknown" and excinfo.value.param == "nmae"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.customers.retrieve("cus_missing")
    assert excinfo.value.http_status == 404 and excinfo.value.code == "resource_missing"
    assert sandbox.count("customer") == 2 and sandbox.count("customers") == 2


# ---------------------------------------------------------------------------------------------- invoices


def test_invoice_draft_lines_finalize_and_partial_payments(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    draft = new_draft(client, customer.id)
    assert draft.id.startswith("in_") and draft.status == "draft" and draft.number is None
    assert draft.hosted_invoice_url is None and draft.total == 0 and draft.currency == "usd"
    assert draft.metadata["closeout_draft"] == "d-1" and draft.customer == customer.id

    item = client.v1.invoice_items.create(
        params={
            "customer": customer.id,
            "invoice": draft.id,
            "amount": 12_500,
            "currency": "usd",
            "description": "Consulting, March",
            "metadata": {"closeout_line": "l-1"},
        }
    )
    assert item.id.startswith("ii_") and item.invoice == draft.id
    with_lines = client.v1.invoices.add_lines(
        draft.id,
        params={
            "lines": [
                {"amount": 2_500, "description": "Expenses", "metadata": {"closeout_line": "l-2"}},
                {"amount": -1_000, "description": "Credit", "metadata": {"closeout_line": "l-3"}},
            ]
        },
    )
    assert with_lines.total == with_lines.subtotal == with_lines.amount_due == 14_000
    assert with_lines.lines.total_count == 3

    lines = client.v1.invoices.line_items.list(draft.id, params={"limit": 2})
    assert [line.amount for line in lines.data] == [12_500, 2_500] and lines.has_more
    assert all(line.id.startswith("il_") and line.object == "line_item" for line in lines.data)
    assert lines.data[0].metadata["closeout_line"] == "l-1"
    rest = client.v1.invoices.line_items.list(draft.id, params={"starting_after": lines.data[-1].id})
    assert [line.amount for line in rest.data] == [-1_000] and not rest.has_more
    everything = list(client.v1.invoices.line_items.list(draft.id, params={"limit": 1}).auto_paging_iter())
    assert sum(line.amount for line in everything) == 14_000

    opened = client.v1.invoices.finalize_invoice(draft.id)
    assert opened.status == "open" and opened.number == "SBX-0001"
    assert opened.hosted_invoice_url.startswith(f"{sandbox.url}/i/{draft.id}/test_")  # a token per link
    finalized_at = opened.status_transitions.finalized_at
    assert isinstance(finalized_at, int) and opened.due_date == finalized_at + 30 * 86400
    page = requests.get(opened.hosted_invoice_url, timeout=5)
    assert page.status_code == 200 and "SBX-0001" in page.text

    paid_part = sandbox.pay_invoice(draft.id, 4_000)
    assert (paid_part["status"], paid_part["amount_paid"], paid_part["amount_remaining"]) == ("open", 4_000, 10_000)
    fetched = client.v1.invoices.retrieve(draft.id)
    assert (fetched.amount_paid, fetched.amount_remaining) == (4_000, 10_000)
    paid = sandbox.pay_invoice(draft.id)
    assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == ("paid", 14_000, 0)
    assert paid["status_transitions"]["paid_at"] is not None

    types = [e["type"] for e in sandbox.events()]
    assert types[:2] == ["customer.created", "invoice.created"]
    assert types.count("invoiceitem.created") == 3 and types.count("invoice_payment.paid") == 2
    assert types[-4:] == ["invoice_payment.paid", "invoice.updated", "invoice_payment.paid", "invoice.paid"]
    payments = client.v1.invoice_payments.list(params={"invoice": draft.id})
    assert sorted(p.amount_paid for p in payments.data) == [4_000, 10_000]


def test_invoice_transitions_void_uncollectible_delete_and_edit_rules(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    customer = new_customer(client)
    first = open_invoice(client)
    assert client.v1.invoices.void_invoice(first.id).status == "void"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(first.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(first.id)

    second = open_invoice(client, 5_000)
    assert second.number == "SBX-0002"
    marked = client.v1.invoices.mark_uncollectible(second.id)
    assert marked.status == "uncollectible" and marked.status_transitions.marked_uncollectible_at
    paid = client.v1.invoices.pay(second.id, params={"paid_out_of_band": True})
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 5_000, 0)

    third = open_invoice(client)
    client.v1.invoices.mark_uncollectible(third.id)
    assert client.v1.invoices.void_invoice(third.id).status == "void"

    # a finalized invoice: lines and money fields are frozen, metadata is not
    frozen = open_invoice(client)
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.invoices.add_lines(frozen.id, params={"lines": [{"amount": 100, "description": "late"}]})
    assert excinfo.value.http_status == 400 and excinfo.value.code == "invoice_not_editable"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.update(frozen.id, params={"days_until_due": 10})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoice_items.create(
            params={"customer": frozen.customer, "invoice": frozen.id, "amount": 100, "currency": "usd"}
        )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.finalize_invoice(frozen.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.delete(frozen.id)
    tagged = client.v1.invoices.update(frozen.id, params={"metadata": {"closeout_run": "r-9"}})
    assert tagged.metadata["closeout_run"] == "r-9" and tagged.total == 1_000

    draft = new_draft(client, customer.id)
    deleted = client.v1.invoices.delete(draft.id)
    assert deleted.deleted is True and deleted.id == draft.id
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.invoices.retrieve(draft.id)
    assert excinfo.value.http_status == 404

    zero = new_draft(client, customer.id)
    assert client.v1.invoices.finalize_invoice(zero.id).status == "paid"  # nothing due: paid at once

    assert [i.id for i in client.v1.invoices.list(params={"status": "void"}).data] == [third.id, first.id]
    assert [i.id for i in client.v1.invoices.list(params={"customer": customer.id}).data] == [zero.id]
    found = client.v1.invoices.search(params={"query": "metadata['closeout_run']:'r-9'"})
    assert [i.id for i in found.data] == [frozen.id]
    assert client.v1.invoices.search(params={"query": "status:'paid' AND total>1000"}).data[0].id == second.id
    assert sandbox.count("invoice") == 5  # six made, one draft deleted
    types = {e["type"] for e in sandbox.events()}
    assert {"invoice.voided", "invoice.marked_uncollectible", "invoice.deleted", "invoice.finalized"} <= types


def test_amount_and_currency_validation(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    for params in (
        {"currency": "USD"},
        {"currency": "us"},
        {"currency": "kwd", "amount": 1_005},
        {"amount": "12.50"},
        {"amount": 100_000_000},
    ):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.invoice_items.create(params={"customer": customer.id, "amount": 100, "currency": "usd", **params})
    ok = client.v1.invoice_items.create(params={"customer": customer.id, "amount": 1_000, "currency": "kwd"})
    assert ok.amount == 1_000 and ok.invoice is None
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.invoices.create(params={"customer": customer.id, "collection_method": "send_invoice"})
    assert excinfo.value.code == "parameter_missing" and excinfo.value.param == "days_until_due"


def test_expand_and_pending_items(client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    pending = client.v1.invoice_items.create(params={"customer": customer.id, "amount": 700, "currency": "usd"})
    excluded = new_draft(client, customer.id)
    assert excluded.total == 0
    included = new_draft(client, customer.id, pending_invoice_items_behavior="include")
    assert included.total == 700 and included.lines.data[0].parent.invoice_item_details.invoice_item == pending.id
    expanded = client.v1.invoices.retrieve(included.id, params={"expand": ["customer"]})
    assert expanded.customer.id == customer.id and expanded.customer.name == "Acme"
    listed = client.v1.invoices.list(params={"expand": ["data.customer"], "limit": 1})
    assert listed.data[0].customer.object == "customer"


def test_invoice_items_update_delete_and_list(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    customer = new_customer(client)
    draft = client.v1.invoices.create(params={"customer": customer.id, "currency": "eur"})
    item = client.v1.invoice_items.create(params={"customer": customer.id, "invoice": draft.id, "amount": 500})
    assert item.currency == "eur"  # defaults to the invoice's currency
    item = client.v1.invoice_items.update(item.id, params={"amount": 700, "metadata": {"k": "v"}})
    refreshed = client.v1.invoices.retrieve(draft.id)
    assert item.amount == 700 and refreshed.total == 700 and refreshed.lines.data[0].metadata["k"] == "v"
    assert [i.id for i in client.v1.invoice_items.list(params={"invoice": draft.id}).data] == [item.id]
    assert client.v1.invoice_items.delete(item.id).deleted is True
    emptied = client.v1.invoices.retrieve(draft.id)
    assert emptied.total == 0 and emptied.lines.total_count == 0 and sandbox.count("line_item") == 0
    assert "invoiceitem.deleted" in {e["type"] for e in sandbox.events()}


# ---------------------------------------------------------------------------------------------- idempotency


def test_idempotent_replay_returns_the_same_object(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    params = {"name": "Acme", "metadata": {"closeout_client": "acme"}}
    first = client.v1.customers.create(params=params, options={"idempotency_key": "cust-acme"})
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    again = client.v1.customers.create(params=params, options={"idempotency_key": "cust-acme"})
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert sandbox.count("customer") == 1
    stats = sandbox.stats()
    assert stats["replays"] == 1 and stats["mutations"] == 1

    # errors are replayed too, once the endpoint ran...
    invoice = open_invoice(client)
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError) as excinfo:
            client.v1.invoices.finalize_invoice(invoice.id, options={"idempotency_key": "finalize-again"})
    assert excinfo.value.headers["Idempotent-Replayed"] == "true"
    # ...but a validation failure saves nothing: the key stays usable
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.create(params={"name": "X", "balance": "lots"}, options={"idempotency_key": "k-valid"})
    created = client.v1.customers.create(params={"name": "X"}, options={"idempotency_key": "k-valid"})
    assert created.last_response.headers.get("Idempotent-Replayed") is None


def test_idempotency_key_mismatch_length_and_concurrency(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError) as excinfo:
        client.v1.customers.create(params={"name": "Globex"}, options={"idempotency_key": "k"})
    assert excinfo.value.http_status == 400
    with pytest.raises(stripe.IdempotencyError):  # same key on another endpoint
        client.v1.payouts.create(params={"amount": 100, "currency": "usd"}, options={"idempotency_key": "k"})

    with pytest.raises(stripe.InvalidRequestError) as too_long:
        client.v1.customers.create(params={"name": "Long"}, options={"idempotency_key": "x" * 256})
    assert too_long.value.http_status == 400
    assert client.v1.customers.create(params={"name": "Long"}, options={"idempotency_key": "x" * 255}).id

    sandbox.inject("slow", delay=0.6, path_prefix="/v1/invoices")
    customer = new_customer(client)
    results: dict[str, Any] = {}

    def slow_with_key() -> None:
        results["first"] = make_client(sandbox).v1.invoices.create(
            params={"customer": customer.id}, options={"idempotency_key": "inv-1"}
        )

    thread = threading.Thread(target=slow_with_key)
    thread.start()
    time.sleep(0.2)
    with pytest.raises(stripe.APIError) as conflict:
        client.v1.invoices.create(params={"customer": customer.id}, options={"idempotency_key": "inv-1"})
    assert conflict.value.http_status == 409
    thread.join(5)
    replay = client.v1.invoices.create(params={"customer": customer.id}, options={"idempotency_key": "inv-1"})
    assert replay.id == results["first"].id and sandbox.count("invoice") == 1
    assert sandbox.stats()["idempotency_errors"] >= 3


def test_idempotency_keys_expire_after_24_hours(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    first = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "daily"})
    sandbox.advance_clock(23 * 3600)
    assert client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "daily"}).id == first.id
    sandbox.advance_clock(3600 + 1)
    second = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "daily"})
    assert second.id != first.id and second.created >= first.created + 24 * 3600
    assert sandbox.expire_idempotency_keys() >= 1
    third = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "daily"})
    assert third.id not in (first.id, second.id) and sandbox.count("customer") == 3


# ---------------------------------------------------------------------------------------------- faults


def test_error_500_has_no_side_effect(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    sandbox.inject("error_500", path_prefix="/v1/customers")
    with pytest.raises(stripe.APIError) as excinfo:
        client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "c1"})
    assert excinfo.value.http_status == 500 and excinfo.value.headers["Stripe-Should-Retry"] == "true"
    assert sandbox.count("customer") == 0
    created = client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "c1"})
    assert created.last_response.headers.get("Idempotent-Replayed") is None and sandbox.count("customer") == 1
    assert sandbox.stats()["faults"] == 1


def test_drop_closes_the_connection_before_anything(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    sandbox.inject("drop", path_prefix="/v1/customers")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "c1"})
    assert sandbox.count("customer") == 0
    assert client.v1.customers.create(params={"name": "Acme"}, options={"idempotency_key": "c1"}).id
    assert sandbox.stats()["status_counts"][0] == 1


def test_timeout_after_commit_leaves_the_object_behind(sandbox: StripeSandbox) -> None:
    impatient = make_client(sandbox, timeout=0.3)
    customer = new_customer(impatient)
    sandbox.inject("timeout_after_commit", path_prefix="/v1/invoices", delay=0.8)
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.invoices.create(params={"customer": customer.id}, options={"idempotency_key": "draft-1"})
    assert sandbox.count("invoice") == 1  # the client saw a failure, Stripe has the invoice
    retried = impatient.v1.invoices.create(params={"customer": customer.id}, options={"idempotency_key": "draft-1"})
    assert retried.last_response.headers["Idempotent-Replayed"] == "true"
    assert retried.id == sandbox.objects("invoice")[0]["id"] and sandbox.count("invoice") == 1

    sandbox.inject("timeout_after_commit", path_prefix="/v1/invoices")  # no delay: dropped right after commit
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.invoices.create(params={"customer": customer.id})
    assert sandbox.count("invoice") == 2


def test_rate_limit_answers_429_with_retry_after(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    sandbox.inject("rate_limit", times=2, path_prefix="/v1/", delay=3)
    for _ in range(2):
        with pytest.raises(stripe.RateLimitError) as excinfo:
            client.v1.customers.list()
        assert excinfo.value.http_status == 429 and excinfo.value.headers["Retry-After"] == "3"
    assert client.v1.customers.list().data == []
    sandbox.inject("error_500", path_prefix="/v1/", after=1)
    client.v1.customers.list()
    with pytest.raises(stripe.APIError):
        client.v1.customers.list()
    assert sandbox.stats()["status_counts"] == {429: 2, 200: 2, 500: 1}


# ---------------------------------------------------------------------------------------------- events


def test_events_list_filters_and_cursors(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    customers = [new_customer(client, f"C{i}", f"c{i}") for i in range(5)]
    open_invoice(client)
    all_events = client.v1.events.list(params={"limit": 100}).data
    assert all_events[0].type == "invoice.finalized"
    assert [e.created for e in all_events] == sorted((e.created for e in all_events), reverse=True)
    assert all(e.id.startswith("evt_") and e.object == "event" for e in all_events)

    newest_first = [c["id"] for c in reversed(sandbox.objects("customer"))]  # the loop's 5 + open_invoice's
    assert newest_first[1:] == [c.id for c in reversed(customers)]
    page1 = client.v1.events.list(params={"type": "customer.created", "limit": 2})
    assert page1.has_more and len(page1.data) == 2
    page2 = client.v1.events.list(params={"type": "customer.created", "limit": 2, "starting_after": page1.data[-1].id})
    page3 = client.v1.events.list(params={"type": "customer.created", "limit": 2, "starting_after": page2.data[-1].id})
    assert [e.data.object.id for e in [*page1.data, *page2.data, *page3.data]] == newest_first
    assert page2.has_more and not page3.has_more
    back = client.v1.events.list(params={"type": "customer.created", "limit": 2, "ending_before": page2.data[0].id})
    assert [e.id for e in back.data] == [e.id for e in page1.data] and not back.has_more
    assert len(list(client.v1.events.list(params={"type": "customer.created", "limit": 2}).auto_paging_iter())) == 6

    several = client.v1.events.list(params={"types": ["invoice.created", "invoice.finalized"]})
    assert [e.type for e in several.data] == ["invoice.finalized", "invoice.created"]
    wildcard = client.v1.events.list(params={"type": "invoice.*"})
    assert {e.type for e in wildcard.data} == {"invoice.created", "invoice.updated", "invoice.finalized"}

    sandbox.advance_clock(3600)
    later = new_customer(client, "Later", "later")
    recent = client.v1.events.list(params={"created": {"gte": later.created}})
    assert [e.data.object.id for e in recent.data] == [later.id]

    event = client.v1.events.retrieve(recent.data[0].id)
    assert event.type == "customer.created" and event.data.object.name == "Later"
    assert event.request.idempotency_key  # the SDK's own key, recorded on the event
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve("evt_missing")


def test_events_snapshot_the_object_at_that_moment(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    invoice = open_invoice(client, 900)
    sandbox.pay_invoice(invoice.id)
    snapshots = {e["type"]: e["data"]["object"] for e in sandbox.events()}
    assert snapshots["invoice.created"]["status"] == "draft" and snapshots["invoice.created"]["total"] == 0
    assert snapshots["invoice.finalized"]["status"] == "open"
    assert snapshots["invoice.paid"]["status"] == "paid" and snapshots["invoice.paid"]["amount_paid"] == 900
    updated = sandbox.events("invoice.updated")
    assert updated[0]["data"]["previous_attributes"]["total"] == 0 and updated[0]["data"]["object"]["total"] == 900


# ---------------------------------------------------------------------------------------------- webhooks


def test_webhooks_are_signed_and_verify_with_the_sdk(sandbox: StripeSandbox, receiver: Receiver) -> None:
    client = make_client(sandbox)
    assert sandbox.set_webhook(receiver.url, WHSEC) == WHSEC
    invoice = open_invoice(client)
    sandbox.pay_invoice(invoice.id)
    assert sandbox.flush_webhooks(5)
    received = receiver.events()
    assert [e.id for e in received] == [e["id"] for e in sandbox.events()]
    assert received[-1].type == "invoice.paid" and received[-1].data.object.id == invoice.id
    body, signature = receiver.received[0]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, signature, "whsec_wrong")
    parts = dict(part.split("=", 1) for part in signature.split(","))
    assert abs(int(parts["t"]) - sandbox.now()) < 5 and len(parts["v1"]) == 64


def test_webhook_delivery_retries_on_non_2xx(sandbox: StripeSandbox, receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    sandbox.set_webhook(receiver.url, WHSEC)
    customer = new_customer(make_client(sandbox))
    assert sandbox.flush_webhooks(5)
    attempts = [(d["attempt"], d["status"]) for d in sandbox.webhook_deliveries()]
    assert attempts == [(1, 500), (2, 503), (3, 200)]
    assert [e.data.object.id for e in receiver.events()] == [customer.id] * 3
    assert sandbox.stats()["webhooks"]["delivered"] == 1


def test_webhook_duplicate_drop_and_shuffle_knobs(sandbox: StripeSandbox, receiver: Receiver) -> None:
    client = make_client(sandbox)
    sandbox.set_webhook(receiver.url, WHSEC)

    sandbox.webhook_faults(duplicate=1.0)
    new_customer(client, "A", "a")
    new_customer(client, "B", "b")
    assert sandbox.flush_webhooks(5)
    counts = Counter(e.id for e in receiver.events())
    assert len(counts) == 2 and set(counts.values()) == {2}
    receiver.received.clear()

    sandbox.webhook_faults(drop=1.0)
    new_customer(client, "C", "c")
    assert sandbox.flush_webhooks(5)
    assert receiver.events() == []
    assert sandbox.webhook_deliveries()[-1]["status"] is None
    assert client.v1.events.list(params={"limit": 1}).data[0].data.object.name == "C"  # polling backfills it

    sandbox.webhook_faults()
    sandbox.hold_webhooks()
    made = [new_customer(client, f"S{i}", f"s{i}").id for i in range(12)]
    assert not sandbox.flush_webhooks(0.2) and receiver.events() == []  # held
    sandbox.release_webhooks(shuffle=True)
    assert sandbox.flush_webhooks(5)
    delivered = [e.data.object.id for e in receiver.events()]
    assert sorted(delivered) == sorted(made) and delivered != made


def test_webhook_events_filter(sandbox: StripeSandbox, receiver: Receiver) -> None:
    client = make_client(sandbox)
    sandbox.set_webhook(receiver.url, WHSEC, events=["invoice.*"])
    open_invoice(client)
    assert sandbox.flush_webhooks(5)
    assert {e.type for e in receiver.events()} == {"invoice.created", "invoice.updated", "invoice.finalized"}


# ---------------------------------------------------------------------------------------------- money out and aftermath


def test_transfers_and_payouts(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    transfer = client.v1.transfers.create(
        params={
            "amount": 2_500,
            "currency": "usd",
            "destination": "acct_1Contractor",
            "transfer_group": "batch-7",
            "metadata": {"closeout_payout_item": "p-1"},
        },
        options={"idempotency_key": "payout-item-p-1"},
    )
    assert transfer.id.startswith("tr_") and transfer.reversed is False
    assert client.v1.transfers.retrieve(transfer.id).metadata["closeout_payout_item"] == "p-1"
    assert [t.id for t in client.v1.transfers.list(params={"transfer_group": "batch-7"}).data] == [transfer.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.create(params={"amount": 100, "currency": "usd", "destination": "bogus"})
    reversal = sandbox.reverse_transfer(transfer.id, 500)
    assert reversal["amount"] == 500
    after = client.v1.transfers.retrieve(transfer.id)
    assert after.amount_reversed == 500 and after.reversed is False
    over_api = client.v1.transfers.reversals.create(transfer.id, params={"amount": 1_000})
    assert over_api.object == "transfer_reversal" and over_api.amount == 1_000
    assert [r.amount for r in client.v1.transfers.reversals.list(transfer.id).data] == [1_000, 500]
    sandbox.reverse_transfer(transfer.id)
    assert client.v1.transfers.retrieve(transfer.id).reversed is True

    payout = client.v1.payouts.create(params={"amount": 9_000, "currency": "eur", "metadata": {"k": "v"}})
    assert payout.id.startswith("po_") and payout.status == "pending"
    failing = client.v1.payouts.create(params={"amount": 1_000, "currency": "eur"})
    assert sandbox.settle_payout(payout.id)["status"] == "paid"
    assert sandbox.fail_payout(failing.id, "account_closed")["failure_code"] == "account_closed"
    assert [p.status for p in client.v1.payouts.list().data] == ["failed", "paid"]
    assert client.v1.payouts.retrieve(payout.id).status == "paid"
    assert client.v1.payouts.cancel(client.v1.payouts.create(params={"amount": 5, "currency": "eur"}).id).status == (
        "canceled"
    )
    types = [e["type"] for e in sandbox.events()]
    assert types == [
        "transfer.created", "transfer.reversed", "transfer.reversed", "transfer.reversed", "payout.created",
        "payout.created", "payout.paid", "payout.failed", "payout.created", "payout.canceled",
    ]  # fmt: skip


def test_payment_failure_dispute_refund_and_tampering(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    invoice = open_invoice(client, 3_000)
    failed = sandbox.fail_payment(invoice.id)
    assert failed["attempt_count"] == 1 and failed["status"] == "open"
    sandbox.pay_invoice(invoice.id)
    dispute = sandbox.dispute(invoice.id)
    assert dispute["id"].startswith("dp_") and dispute["amount"] == 3_000
    refunds = sandbox.refund(invoice.id, 1_000)
    assert [r["amount"] for r in refunds] == [1_000]
    charge = client.v1.charges.retrieve(dispute["charge"])
    assert charge.id.startswith("ch_") and charge.amount_refunded == 1_000 and charge.disputed is True
    types = [e["type"] for e in sandbox.events()]
    assert {"invoice.payment_failed", "charge.dispute.created", "charge.refunded"} <= set(types)

    other = open_invoice(client, 2_000)
    tampered = sandbox.tamper_invoice_total(other.id, 2_500)
    seen = client.v1.invoices.retrieve(other.id)
    assert seen.total == 2_500 and seen.amount_remaining == 2_500 and tampered["total"] == 2_500
    assert sum(line.amount for line in seen.lines.data) == 2_000
    assert sandbox.events()[-1]["type"] == "invoice.finalized"  # no event for the tampering

    sandbox.decline_payments()
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(other.id)
    assert sandbox.events()[-1]["type"] == "invoice.payment_failed"


def test_control_endpoints_over_http(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    invoice = open_invoice(client, 1_500)
    base = sandbox.url + "/_sandbox"
    paid = requests.post(f"{base}/invoices/{invoice.id}/pay", json={"amount": 500}, timeout=5).json()
    assert paid["amount_remaining"] == 1_000
    assert requests.get(f"{base}/count/invoice", timeout=5).json()["count"] == 1
    assert requests.post(f"{base}/faults", json={"kind": "error_500"}, timeout=5).status_code == 200
    with pytest.raises(stripe.APIError):
        client.v1.invoices.retrieve(invoice.id)
    assert requests.post(f"{base}/faults", json={"kind": "nope"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/invoices/in_missing/pay", json={}, timeout=5).status_code == 404
    stats = requests.get(f"{base}/stats", timeout=5).json()
    assert stats["faults"] == 1 and stats["status_counts"]["500"] == 1


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.stripe", "--port", "0", "--secret-key", "sk_test_cli", "--seed", "3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("STRIPE_SANDBOX_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        cli_client = stripe.StripeClient("sk_test_cli", base_addresses={"api": url}, max_network_retries=0)
        assert cli_client.v1.customers.create(params={"name": "CLI"}).id.startswith("cus_")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_search_and_list_stay_consistent_under_load(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    """Many objects: cursors walk every invoice exactly once; the metadata index finds each one."""
    customer = new_customer(client)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {KEY}"
    made = []
    for n in range(150):
        response = session.post(
            sandbox.url + "/v1/invoices",
            data={"customer": customer.id, "metadata[closeout_draft]": f"d-{n}", "metadata[batch]": "b"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        made.append(response.json()["id"])
    walked = [i.id for i in client.v1.invoices.list(params={"limit": 100}).auto_paging_iter()]
    assert walked == list(reversed(made))
    hit = client.v1.invoices.search(params={"query": "metadata['closeout_draft']:'d-42'"})
    assert [i.id for i in hit.data] == [made[42]]
    batch = list(client.v1.invoices.search(params={"query": "metadata['batch']:'b'", "limit": 100}).auto_paging_iter())
    assert len(batch) == 150
    body = json.loads(session.get(sandbox.url + "/v1/events", params={"limit": 100}, timeout=5).text)
    assert len(body["data"]) == 100 and body["has_more"] is True
