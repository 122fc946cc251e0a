"""The Stripe sandbox's cash side under delivery and network trouble: its events reach webhooks signed (and
through the duplicate/shuffle knobs), its POSTs take the injected faults and replay under their idempotency
keys, and bulk history lists at page cost."""

from __future__ import annotations

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

KEY = "sk_test_sandbox"
WHSEC = "whsec_cash_secret"
DAY = 86400


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    sb = StripeSandbox(seed=19)
    sb.start("127.0.0.1", 0)
    try:
        yield sb
    finally:
        sb.stop()


def make_client(sb: StripeSandbox, *, timeout: float | None = None) -> stripe.StripeClient:
    options: dict[str, Any] = {}
    if timeout is not None:
        options["http_client"] = stripe.RequestsClient(timeout=timeout)
    return stripe.StripeClient(KEY, base_addresses={"api": sb.url}, max_network_retries=0, **options)


@pytest.fixture
def client(sandbox: StripeSandbox) -> stripe.StripeClient:
    return make_client(sandbox)


class Receiver:
    """A webhook endpoint that records every delivery."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str]] = []
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
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def events(self) -> list[Any]:
        with self.lock:
            received = list(self.received)
        return [stripe.Webhook.construct_event(body, signature, WHSEC) for body, signature in received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def paid_invoice(sb: StripeSandbox, client: stripe.StripeClient, amount: int) -> tuple[str, str]:
    """(invoice id, charge id) of an invoice paid in full by card."""
    invoice = sb.dashboard_invoice([("Consulting", amount)])
    sb.pay_invoice(invoice["id"])
    return invoice["id"], client.v1.invoice_payments.list(params={"invoice": invoice["id"]}).data[0].payment.charge


# ---------------------------------------------------------------------------------------------- webhooks


def test_cash_events_are_delivered_signed_even_duplicated_and_shuffled(
    sandbox: StripeSandbox, receiver: Receiver
) -> None:
    client = make_client(sandbox)
    sandbox.set_availability_delay(0)
    sandbox.set_webhook(receiver.url, WHSEC, events=["refund.*", "charge.*", "credit_note.*", "payout.*"])
    sandbox.webhook_faults(duplicate=1.0, shuffle=True, seed=3)
    invoice_id, charge_id = paid_invoice(sandbox, client, 9_000)
    client.v1.refunds.create(params={"charge": charge_id, "amount": 1_000})
    note = client.v1.credit_notes.create(params={"invoice": invoice_id, "amount": 500, "refund_amount": 500})
    client.v1.credit_notes.update(note.id, params={"memo": "sorry"})
    dispute = sandbox.dispute(invoice_id, 2_000)
    sandbox.win_dispute(dispute["id"])
    [payout] = sandbox.run_payouts()
    sandbox.settle_payout(payout["id"])
    assert sandbox.flush_webhooks(10)
    received = receiver.events()
    counts = Counter(e.id for e in received)
    assert set(counts.values()) == {2}  # every event twice, all verified with the SDK
    wanted = {"refund.created", "charge.refunded", "credit_note.created", "credit_note.updated",
              "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated",
              "charge.dispute.closed", "payout.created", "payout.paid", "payout.reconciliation_completed"}  # fmt: skip
    assert {e.type for e in received} == wanted
    stored = {e["id"]: e for e in sandbox.events()}
    assert set(counts) == {i for i, e in stored.items() if e["type"] in wanted}
    by_type = {e.type: e for e in received}
    assert by_type["credit_note.updated"].data.previous_attributes.memo is None
    assert by_type["payout.reconciliation_completed"].data.object.reconciliation_status == "completed"
    withdrawn = by_type["charge.dispute.funds_withdrawn"].data.object
    assert withdrawn.balance_transactions[0].reporting_category == "dispute"  # rendered as the API renders it
    polled = client.v1.events.list(params={"type": "credit_note.*"}).data
    assert [e.type for e in polled] == ["credit_note.updated", "credit_note.created"]


# ---------------------------------------------------------------------------------------------- faults


def test_timeout_after_commit_on_refund_and_credit_note_create_replays(sandbox: StripeSandbox) -> None:
    impatient = make_client(sandbox, timeout=0.3)
    invoice_id, charge_id = paid_invoice(sandbox, impatient, 5_000)

    sandbox.inject("timeout_after_commit", path_prefix="/v1/refunds", delay=0.8)
    params = {"charge": charge_id, "amount": 1_000, "metadata": {"closeout_refund": "r-1"}}
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.refunds.create(params=params, options={"idempotency_key": "refund-r-1"})
    assert sandbox.count("refund") == 1  # the client saw a failure, Stripe has the refund
    retried = impatient.v1.refunds.create(params=params, options={"idempotency_key": "refund-r-1"})
    assert retried.last_response.headers["Idempotent-Replayed"] == "true"
    assert retried.id == sandbox.objects("refund")[0]["id"] and sandbox.count("refund") == 1
    assert impatient.v1.charges.retrieve(charge_id).amount_refunded == 1_000

    sandbox.inject("timeout_after_commit", path_prefix="/v1/credit_notes", delay=0.8)
    note_params = {"invoice": invoice_id, "amount": 2_000, "refund_amount": 1_500, "credit_amount": 500}
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.credit_notes.create(params=note_params, options={"idempotency_key": "cn-1"})
    assert sandbox.count("credit_note") == 1 and sandbox.count("refund") == 2
    again = impatient.v1.credit_notes.create(params=note_params, options={"idempotency_key": "cn-1"})
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert again.id == sandbox.objects("credit_note")[0]["id"]
    assert (sandbox.count("credit_note"), sandbox.count("refund")) == (1, 2)
    assert impatient.v1.customers.retrieve(again.customer).balance == -500
    with pytest.raises(stripe.IdempotencyError):
        impatient.v1.credit_notes.create(params={**note_params, "amount": 2_001}, options={"idempotency_key": "cn-1"})


def test_500_and_dropped_connections_leave_nothing_behind(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    invoice_id, charge_id = paid_invoice(sandbox, client, 3_000)
    dispute_id = sandbox.dispute(invoice_id, 1_000)["id"]
    sandbox.inject("error_500", path_prefix="/v1/disputes")
    with pytest.raises(stripe.APIError):
        client.v1.disputes.close(dispute_id, options={"idempotency_key": "close"})
    assert client.v1.disputes.retrieve(dispute_id).status == "needs_response"
    assert client.v1.disputes.close(dispute_id, options={"idempotency_key": "close"}).status == "lost"

    sandbox.inject("drop", path_prefix="/v1/refunds")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.refunds.create(params={"charge": charge_id, "amount": 100}, options={"idempotency_key": "r"})
    assert sandbox.count("refund") == 0
    created = client.v1.refunds.create(params={"charge": charge_id, "amount": 100}, options={"idempotency_key": "r"})
    assert created.last_response.headers.get("Idempotent-Replayed") is None and sandbox.count("refund") == 1

    sandbox.inject("error_500", path_prefix="/v1/credit_notes")
    with pytest.raises(stripe.APIError):
        client.v1.credit_notes.create(params={"invoice": invoice_id, "amount": 100, "out_of_band_amount": 100})
    assert sandbox.count("credit_note") == 0
    with pytest.raises(stripe.InvalidRequestError):  # refused after executing: saved, replayed
        client.v1.credit_notes.create(params={"invoice": invoice_id, "amount": 100}, options={"idempotency_key": "x"})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.create(params={"invoice": invoice_id, "amount": 100}, options={"idempotency_key": "x"})
    assert excinfo.value.headers["Idempotent-Replayed"] == "true"


# ---------------------------------------------------------------------------------------------- bulk history


def test_bulk_history_is_consistent_and_lists_at_page_cost(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    started = time.perf_counter()
    counts = sandbox.seed_balance_transactions(100_000, days=20, refund_every=10)
    seeded = time.perf_counter() - started
    assert counts["charges"] == 100_000 and counts["refunds"] == 10_000 and counts["stripe_fees"] == 20
    # a payout a day from day 3 on: until then only refunds and fees are available (charges wait two days)
    assert counts["payouts"] == 17 and counts["balance_transactions"] == 100_000 + 10_000 + 20 + 17
    assert seeded < 30, seeded  # a million transactions must be seedable for the benchmark
    assert sandbox.events() == []

    first = client.v1.balance_transactions.list(params={"limit": 100})
    assert len(first.data) == 100 and first.has_more
    cursor = first.data[-1].id
    for _ in range(3):  # deep cursors cost a page, not a scan
        began = time.perf_counter()
        page = client.v1.balance_transactions.list(params={"limit": 100, "starting_after": cursor})
        assert time.perf_counter() - began < 1.0  # a page costs O(limit); generous for a busy machine
        cursor = page.data[-1].id
    oldest = client.v1.balance_transactions.list(params={"limit": 100, "ending_before": cursor})
    assert len(oldest.data) == 100

    payout = client.v1.payouts.list(params={"limit": 3}).data[-1]
    assert payout.automatic and payout.status == "paid" and payout.reconciliation_status == "completed"
    carried = list(client.v1.balance_transactions.list(params={"payout": payout.id, "limit": 100}).auto_paging_iter())
    assert sum(t.net for t in carried) == 0 and {t.type for t in carried} >= {"charge", "payout", "refund"}
    assert all(t.status == "available" for t in carried)
    some = next(t for t in carried if t.type == "charge")
    charge = client.v1.charges.retrieve(some.source)
    assert charge.balance_transaction == some.id and some.net == charge.amount - some.fee
    assert client.v1.payment_intents.retrieve(charge.payment_intent).latest_charge == charge.id
    refund = client.v1.refunds.list(params={"limit": 1}).data[0]
    assert client.v1.balance_transactions.retrieve(refund.balance_transaction).amount == -refund.amount

    balance = client.v1.balance.retrieve()
    total = balance.available[0].amount + balance.pending[0].amount
    with sandbox.state.lock:
        assert total == sum(t["net"] for t in sandbox.state.balance_transactions.objects.values())
    sandbox.advance_clock(3 * DAY)  # the pending tail matures and the schedule sweeps it
    [swept] = sandbox.run_payouts()
    assert swept["amount"] == total and client.v1.balance.retrieve().available[0].amount == 0
    with pytest.raises(ValueError):
        sandbox.seed_balance_transactions(10)  # history goes before everything, so only on a fresh sandbox
    response = requests.post(sandbox.url + "/_sandbox/seed/balance_transactions", json={"charges": 5}, timeout=5)
    assert response.status_code == 400


def test_transfer_reversals_are_sources_too(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    transfer = client.v1.transfers.create(params={"amount": 900, "currency": "usd", "destination": "acct_1Payee"})
    reversal = client.v1.transfers.reversals.create(transfer.id, params={"amount": 400})
    back = client.v1.balance_transactions.retrieve(reversal.balance_transaction, params={"expand": ["source"]})
    assert (back.type, back.reporting_category, back.amount) == ("transfer_refund", "transfer_reversal", 400)
    assert back.source.object == "transfer_reversal" and back.source.transfer == transfer.id
    listed = client.v1.balance_transactions.list(params={"source": reversal.id}).data
    assert [t.id for t in listed] == [back.id]


def test_cli_seeds_bulk_history_before_serving() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.stripe", "--port", "0", "--bulk-charges", "2000", "--seed", "3"],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("STRIPE_SANDBOX_URL="), line
        cli = stripe.StripeClient(KEY, base_addresses={"api": line.split("=", 1)[1]}, max_network_retries=0)
        charges = [t for t in cli.v1.balance_transactions.list(params={"type": "charge", "limit": 100})
                   .auto_paging_iter()]  # fmt: skip
        assert len(charges) == 2_000
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
