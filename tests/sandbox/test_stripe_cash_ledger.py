"""The Stripe sandbox's cash side, through the real ``stripe`` SDK: balance transactions for every movement
(charges with fees, refunds, disputes, Stripe fees, payouts, transfers), settlement-currency conversion, the
balance, the refund and dispute endpoints, and automatic payouts that carry a known set of transactions."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
import stripe

from sandbox.stripe import StripeSandbox

KEY = "sk_test_sandbox"
DAY = 86400


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    sb = StripeSandbox(seed=13)
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


def paid_invoice(sb: StripeSandbox, client: stripe.StripeClient, amount: int, currency: str = "usd") -> Any:
    """An invoice for ``amount`` the customer paid in full by card; returns its charge (over the API)."""
    customer = client.v1.customers.create(params={"name": "Acme", "email": "ap@acme.example"})
    draft = client.v1.invoices.create(params={"customer": customer.id, "currency": currency,
                                              "collection_method": "send_invoice", "days_until_due": 30})  # fmt: skip
    client.v1.invoice_items.create(params={"customer": customer.id, "invoice": draft.id, "amount": amount})
    client.v1.invoices.finalize_invoice(draft.id)
    sb.pay_invoice(draft.id)
    payment = client.v1.invoice_payments.list(params={"invoice": draft.id}).data[0]
    return client.v1.charges.retrieve(payment.payment.charge)


def txn(client: stripe.StripeClient, txn_id: str) -> Any:
    return client.v1.balance_transactions.retrieve(txn_id)


# ---------------------------------------------------------------------------------------------- charges and fees


def test_a_charge_has_its_balance_transaction_with_the_scheduled_fee(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    sandbox.set_fee("usd", 290, 30)
    charge = paid_invoice(sandbox, client, 10_000)
    assert charge.balance_transaction.startswith("txn_")
    t = txn(client, charge.balance_transaction)
    assert (t.object, t.type, t.reporting_category, t.currency) == ("balance_transaction", "charge", "charge", "usd")
    assert (t.amount, t.fee, t.net, t.source, t.exchange_rate) == (10_000, 320, 9_680, charge.id, None)
    assert [(d.type, d.amount, d.currency) for d in t.fee_details] == [("stripe_fee", 320, "usd")]
    assert t.status == "pending" and t.available_on == t.created + 2 * DAY

    intent = client.v1.payment_intents.retrieve(charge.payment_intent)
    assert intent.latest_charge == charge.id and intent.amount_received == 10_000 and intent.status == "succeeded"
    assert [c.id for c in client.v1.charges.list(params={"payment_intent": intent.id}).data] == [charge.id]
    assert [c.id for c in client.v1.charges.list(params={"customer": charge.customer}).data] == [charge.id]

    balance = client.v1.balance.retrieve()
    assert [(b.currency, b.amount) for b in balance.pending] == [("usd", 9_680)]
    assert [(b.currency, b.amount) for b in balance.available] == [("usd", 0)]
    sandbox.advance_clock(2 * DAY)
    assert txn(client, t.id).status == "available"
    balance = client.v1.balance.retrieve()
    assert [(b.amount, b.currency) for b in balance.available] == [(9_680, "usd")] and balance.pending[0].amount == 0


def test_fees_round_half_up_per_settlement_currency(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    sandbox.set_fee("usd", 250, 0)  # 2.5% of 1060 = 26.5: half-up gives 27 (half-even would give 26)
    sandbox.set_fee("eur", Decimal("140"), 25)
    sandbox.set_fee("*", 0, 0)
    usd = txn(client, paid_invoice(sandbox, client, 1_060).balance_transaction)
    assert (usd.fee, usd.net) == (27, 1_033)
    eur = txn(client, paid_invoice(sandbox, client, 10_000, "eur").balance_transaction)
    assert (eur.fee, eur.net, eur.fee_details[0].currency) == (165, 9_835, "eur")
    gbp = txn(client, paid_invoice(sandbox, client, 10_000, "gbp").balance_transaction)
    assert (gbp.fee, gbp.fee_details) == (0, [])


# ---------------------------------------------------------------------------------------------- settlement FX


def test_foreign_charges_settle_converted_and_refunds_use_their_own_days_rate(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    sandbox.set_fee("usd", 0, 0)
    sandbox.set_settlement("eur", "usd", Decimal("1.0835"))
    charge = paid_invoice(sandbox, client, 10_000, "eur")
    t = txn(client, charge.balance_transaction)
    assert (t.currency, t.amount, t.exchange_rate) == ("usd", 10_835, 1.0835)
    assert Decimal(str(t.exchange_rate)) == Decimal("1.0835")

    sandbox.set_settlement("eur", "usd", "1.10")  # the rate moves before the refund
    refund = client.v1.refunds.create(params={"charge": charge.id, "amount": 5_000})
    r = txn(client, refund.balance_transaction)
    assert (r.type, r.reporting_category, r.currency, r.amount, r.net, r.exchange_rate) == (
        "refund", "refund", "usd", -5_500, -5_500, 1.1)  # fmt: skip
    assert refund.currency == "eur" and refund.amount == 5_000

    sandbox.set_settlement("eur", "usd", "1.05")
    dispute = sandbox.dispute(client.v1.invoice_payments.list(params={"limit": 1}).data[0].invoice, 5_000)
    withdrawal = dispute["balance_transactions"][0]
    assert (withdrawal["currency"], withdrawal["amount"], withdrawal["fee"], withdrawal["net"]) == (
        "usd", -5_250, 1_500, -6_750)  # fmt: skip

    sandbox.set_settlement("jpy", "usd", "0.0067")  # zero-decimal to two decimals: 1000 JPY = 6.70 USD
    yen = txn(client, paid_invoice(sandbox, client, 1_000, "jpy").balance_transaction)
    assert (yen.currency, yen.amount) == ("usd", 670)
    sandbox.set_settlement("gbp", "usd", "1.01")  # 0.50 GBP = 0.505 USD: half-up gives 51 cents
    assert txn(client, paid_invoice(sandbox, client, 50, "gbp").balance_transaction).amount == 51
    sandbox.set_settlement("eur", None)
    assert txn(client, paid_invoice(sandbox, client, 700, "eur").balance_transaction).currency == "eur"


# ---------------------------------------------------------------------------------------------- refunds


def test_refunds_over_the_api(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    charge = paid_invoice(sandbox, client, 3_000)
    first = client.v1.refunds.create(
        params={"charge": charge.id, "amount": 1_000, "reason": "requested_by_customer", "metadata": {"k": "v"}},
        options={"idempotency_key": "refund-1"},
    )
    assert first.id.startswith("re_") and first.status == "succeeded" and first.metadata["k"] == "v"
    assert (first.amount, first.charge, first.payment_intent) == (1_000, charge.id, charge.payment_intent)
    again = client.v1.refunds.create(
        params={"charge": charge.id, "amount": 1_000, "reason": "requested_by_customer", "metadata": {"k": "v"}},
        options={"idempotency_key": "refund-1"},
    )
    assert again.id == first.id and again.last_response.headers["Idempotent-Replayed"] == "true"
    rest = client.v1.refunds.create(params={"payment_intent": charge.payment_intent})
    assert rest.amount == 2_000
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 3_000
    assert client.v1.charges.retrieve(charge.id).refunded is True

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.refunds.create(params={"charge": charge.id})
    assert excinfo.value.code == "charge_already_refunded"
    other = paid_invoice(sandbox, client, 500)
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.refunds.create(params={"charge": other.id, "amount": 600})
    assert excinfo.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.refunds.create(params={"amount": 100})
    assert excinfo.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"charge": "ch_missing"})

    assert [r.id for r in client.v1.refunds.list(params={"charge": charge.id}).data] == [rest.id, first.id]
    by_intent = client.v1.refunds.list(params={"payment_intent": charge.payment_intent})
    assert [r.id for r in by_intent.data] == [rest.id, first.id]
    assert client.v1.refunds.retrieve(first.id).balance_transaction == first.balance_transaction
    assert client.v1.refunds.list(params={"created": {"gte": rest.created}}).data[0].id == rest.id
    assert client.v1.refunds.update(first.id, params={"metadata": {"k": "w"}}).metadata["k"] == "w"
    types = [e["type"] for e in sandbox.events() if e["type"].startswith(("refund.", "charge.refunded"))]
    assert types == ["refund.created", "charge.refunded", "refund.created", "charge.refunded", "refund.updated"]
    refunded = sandbox.events("charge.refunded")[-1]["data"]
    assert refunded["previous_attributes"] == {"amount_refunded": 1_000, "refunded": False}


def test_a_pending_refund_that_fails_returns_the_money(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    sandbox.set_fee("usd", 0, 0)
    charge = paid_invoice(sandbox, client, 4_000)
    sandbox.refunds_pending()
    refund = client.v1.refunds.create(params={"charge": charge.id, "amount": 1_500})
    assert refund.status == "pending" and txn(client, refund.balance_transaction).amount == -1_500
    failed = sandbox.fail_refund(refund.id)
    assert failed["status"] == "failed" and failed["failure_reason"] == "expired_or_canceled_card"
    back = txn(client, failed["failure_balance_transaction"])
    assert (back.type, back.reporting_category, back.amount, back.source) == (
        "refund_failure", "refund_failure", 1_500, refund.id)  # fmt: skip
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 0
    events = [e for e in sandbox.events() if e["type"] in ("refund.updated", "refund.failed")]
    assert [e["type"] for e in events] == ["refund.updated", "refund.failed"]
    assert events[0]["data"]["previous_attributes"]["status"] == "pending"
    assert events[1]["data"]["object"]["status"] == "failed"
    with pytest.raises(ValueError):
        sandbox.settle_refund(refund.id)
    second = client.v1.refunds.create(params={"charge": charge.id, "amount": 500})
    assert sandbox.settle_refund(second.id)["status"] == "succeeded"
    sources = {t.source for t in client.v1.balance_transactions.list(params={"source": refund.id}).data}
    assert sources == {refund.id}
    assert len(client.v1.balance_transactions.list(params={"source": refund.id}).data) == 2


# ---------------------------------------------------------------------------------------------- disputes


def test_disputes_withdraw_with_a_fee_and_reinstate_when_won(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    charge = paid_invoice(sandbox, client, 8_000)
    invoice_id = client.v1.invoice_payments.list(params={"limit": 1}).data[0].invoice
    opened = sandbox.dispute(invoice_id, 6_000, "fraudulent")
    dispute = client.v1.disputes.retrieve(opened["id"])
    assert dispute.status == "needs_response" and dispute.charge == charge.id and dispute.amount == 6_000
    [withdrawal] = dispute.balance_transactions
    assert (withdrawal.type, withdrawal.reporting_category, withdrawal.amount, withdrawal.fee, withdrawal.net) == (
        "adjustment", "dispute", -6_000, 1_500, -7_500)  # fmt: skip
    assert withdrawal.source == dispute.id and withdrawal.fee_details[0].type == "stripe_fee"

    won = sandbox.win_dispute(dispute.id)
    assert won["status"] == "won" and len(won["balance_transactions"]) == 2
    reversal = won["balance_transactions"][1]
    assert (reversal["reporting_category"], reversal["amount"], reversal["fee"], reversal["net"]) == (
        "dispute_reversal", 6_000, 0, 6_000)  # fmt: skip
    with pytest.raises(ValueError):
        sandbox.lose_dispute(dispute.id)
    types = [e["type"] for e in sandbox.events() if e["type"].startswith("charge.dispute.")]
    assert types == ["charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated",
                     "charge.dispute.closed"]  # fmt: skip
    closed = sandbox.events("charge.dispute.closed")[-1]["data"]
    assert closed["object"]["status"] == "won" and closed["previous_attributes"] == {"status": "needs_response"}
    by_source = client.v1.balance_transactions.list(params={"source": dispute.id})
    assert [t.reporting_category for t in by_source.data] == ["dispute_reversal", "dispute"]


def test_closing_a_dispute_accepts_the_loss(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    paid_invoice(sandbox, client, 2_000)
    invoice_id = client.v1.invoice_payments.list(params={"limit": 1}).data[0].invoice
    dispute_id = sandbox.dispute(invoice_id)["id"]
    updated = client.v1.disputes.update(dispute_id, params={"metadata": {"case": "c-1"}})
    assert updated.metadata["case"] == "c-1"
    closed = client.v1.disputes.close(dispute_id, options={"idempotency_key": "close-1"})
    assert closed.status == "lost" and len(closed.balance_transactions) == 1
    replay = client.v1.disputes.close(dispute_id, options={"idempotency_key": "close-1"})
    assert replay.last_response.headers["Idempotent-Replayed"] == "true" and replay.status == "lost"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.disputes.close(dispute_id)
    assert [d.id for d in client.v1.disputes.list(params={"charge": closed.charge}).data] == [dispute_id]
    assert client.v1.disputes.list().data[0].balance_transactions[0].amount == -2_000
    assert sandbox.events()[-1]["type"] == "charge.dispute.closed"
    assert "charge.dispute.updated" in {e["type"] for e in sandbox.events()}
    lost = sandbox.dispute(paid_invoice_id(sandbox, client, 900))["id"]
    assert sandbox.lose_dispute(lost)["status"] == "lost"


def paid_invoice_id(sb: StripeSandbox, client: stripe.StripeClient, amount: int) -> str:
    paid_invoice(sb, client, amount)
    return client.v1.invoice_payments.list(params={"limit": 1}).data[0].invoice


# ---------------------------------------------------------------------------------------------- listing


def test_balance_transactions_list_filters_cursors_and_expand(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    charges = [paid_invoice(sandbox, client, 1_000 + i) for i in range(5)]
    sandbox.advance_clock(3600)
    later = paid_invoice(sandbox, client, 2_000, "eur")
    fee = sandbox.add_stripe_fee(250, "usd", "Billing - Usage Fee (2026-11)")
    assert (fee["type"], fee["reporting_category"], fee["amount"], fee["source"]) == ("stripe_fee", "fee", -250, None)
    transfer = client.v1.transfers.create(params={"amount": 300, "currency": "usd", "destination": "acct_1X"})
    t = txn(client, transfer.balance_transaction)
    assert (t.type, t.reporting_category, t.amount, t.source) == ("transfer", "transfer", -300, transfer.id)

    everything = list(client.v1.balance_transactions.list(params={"limit": 3}).auto_paging_iter())
    assert len(everything) == 8 and everything[0].id == t.id
    assert [e.created for e in everything] == sorted((e.created for e in everything), reverse=True)
    first = client.v1.balance_transactions.list(params={"limit": 3})
    assert first.has_more and len(first.data) == 3
    nxt = client.v1.balance_transactions.list(params={"limit": 3, "starting_after": first.data[-1].id})
    back = client.v1.balance_transactions.list(params={"limit": 3, "ending_before": nxt.data[0].id})
    assert [x.id for x in back.data] == [x.id for x in first.data]

    charge_txns = client.v1.balance_transactions.list(params={"type": "charge", "limit": 100}).data
    assert [x.source for x in charge_txns] == [later.id, *[c.id for c in reversed(charges)]]
    eur = client.v1.balance_transactions.list(params={"currency": "eur"}).data
    assert [x.source for x in eur] == [later.id]
    recent = client.v1.balance_transactions.list(params={"created": {"gte": later.created}}).data
    assert {x.type for x in recent} == {"charge", "stripe_fee", "transfer"} and len(recent) == 3
    early = client.v1.balance_transactions.list(params={"created": {"lt": later.created}, "type": "charge"}).data
    assert len(early) == 5
    assert [x.id for x in client.v1.balance_transactions.list(params={"source": charges[2].id}).data] == [
        charges[2].balance_transaction]  # fmt: skip

    expanded = client.v1.balance_transactions.list(params={"type": "charge", "limit": 2, "expand": ["data.source"]})
    assert expanded.data[0].source.object == "charge" and expanded.data[0].source.id == later.id
    one = client.v1.balance_transactions.retrieve(later.balance_transaction, params={"expand": ["source"]})
    assert one.source.amount == 2_000
    charge = client.v1.charges.retrieve(later.id, params={"expand": ["balance_transaction"]})
    assert charge.balance_transaction.object == "balance_transaction"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.balance_transactions.list(params={"limit": 101})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.balance_transactions.retrieve("txn_missing")
    assert excinfo.value.http_status == 404


# ---------------------------------------------------------------------------------------------- payouts


def test_automatic_payouts_carry_the_available_transactions(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    sandbox.set_fee("usd", 0, 100)
    a = paid_invoice(sandbox, client, 10_000)
    b = paid_invoice(sandbox, client, 5_000)
    refund = client.v1.refunds.create(params={"charge": b.id, "amount": 1_000})
    assert sandbox.run_payouts() == []  # charges still pending; the refund alone is negative
    sandbox.advance_clock(2 * DAY)
    late = paid_invoice(sandbox, client, 7_000)  # pending: not in this payout
    [payout] = sandbox.run_payouts()
    assert payout["automatic"] is True and payout["currency"] == "usd"
    assert payout["amount"] == 9_900 + 4_900 - 1_000 and payout["reconciliation_status"] == "in_progress"
    carried = client.v1.balance_transactions.list(params={"payout": payout["id"], "limit": 100}).data
    assert {x.source for x in carried} == {a.id, b.id, refund.id, payout["id"]}
    assert sum(x.net for x in carried) == 0
    own = txn(client, payout["balance_transaction"])
    assert (own.type, own.reporting_category, own.amount, own.source) == ("payout", "payout", -13_800, payout["id"])
    assert late.balance_transaction not in {x.id for x in carried}
    assert client.v1.balance.retrieve().available[0].amount == 0

    manual = client.v1.payouts.create(params={"amount": 100, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.balance_transactions.list(params={"payout": manual.id})
    assert excinfo.value.param == "payout"
    manual_txn = txn(client, manual.balance_transaction)
    assert (manual_txn.type, manual_txn.amount) == ("payout", -100)

    settled = sandbox.settle_payout(payout["id"])
    assert settled["status"] == "paid" and settled["reconciliation_status"] == "completed"
    types = [e["type"] for e in sandbox.events() if e["type"].startswith("payout.")]
    assert types == ["payout.created", "payout.created", "payout.paid", "payout.reconciliation_completed"]

    sandbox.advance_clock(2 * DAY)  # the late charge is available, net of the manual payout's 100
    [second] = sandbox.run_payouts()
    assert second["amount"] == 6_900 - 100
    assert {x.source for x in client.v1.balance_transactions.list(params={"payout": second["id"]}).data} == {
        late.id, manual.id, second["id"]}  # fmt: skip
    assert sandbox.run_payouts(sandbox.now() + 2 * DAY) == []  # arrival passed: paid on the next run
    assert client.v1.payouts.retrieve(second["id"]).status == "paid"
    created = client.v1.payouts.list(params={"created": {"gte": second["created"]}}).data
    assert [p.id for p in created] == [second["id"]]


def test_a_failed_payout_returns_its_money_to_the_next_one(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    sandbox.set_fee("*", 0, 0)
    sandbox.set_availability_delay(0)
    paid_invoice(sandbox, client, 3_000)
    [first] = sandbox.run_payouts()
    failed = sandbox.fail_payout(first["id"], "account_closed")
    back = txn(client, failed["failure_balance_transaction"])
    assert (back.type, back.reporting_category, back.amount) == ("payout_failure", "payout_reversal", 3_000)
    [retry] = sandbox.run_payouts()
    assert retry["amount"] == 3_000
    assert [x.id for x in client.v1.balance_transactions.list(params={"payout": retry["id"]}).data] == [
        retry["balance_transaction"], back.id]  # fmt: skip
    sandbox.add_stripe_fee(5_000, "usd")  # the balance goes negative: no payout
    sandbox.settle_payout(retry["id"])
    paid_invoice(sandbox, client, 1_000)
    assert sandbox.run_payouts() == []
    assert client.v1.balance.retrieve().available[0].amount == -4_000
    canceled = client.v1.payouts.cancel(client.v1.payouts.create(params={"amount": 10, "currency": "usd"}).id)
    returned = txn(client, canceled.failure_balance_transaction)
    assert (returned.type, returned.amount) == ("payout_cancel", 10)


def test_cash_controls_over_http(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    base = sandbox.url + "/_sandbox"

    def post(path: str, body: dict[str, Any]) -> Any:
        response = requests.post(base + path, json=body, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    post("/fees", {"currency": "usd", "percent_bps": 100, "fixed": 10})
    post("/fees/dispute", {"currency": "usd", "amount": 2_000})
    post("/settlement", {"presentment": "eur", "settlement": "usd", "rate": "2"})
    post("/availability_delay", {"seconds": 0})
    charge = paid_invoice(sandbox, client, 1_000, "eur")
    t = txn(client, charge.balance_transaction)
    assert (t.currency, t.amount, t.fee, t.status) == ("usd", 2_000, 30, "available")
    fee = post("/fees/stripe_fee", {"amount": 70, "currency": "usd"})
    assert fee["amount"] == -70
    refund = post(f"/charges/{charge.id}/refund", {"amount": 100})
    assert refund["amount"] == 100 and txn(client, refund["balance_transaction"]).amount == -200
    balance = requests.get(base + "/balance", timeout=5).json()
    assert balance["available"] == [{"amount": 1_970 - 70 - 200, "currency": "usd", "source_types": {"card": 1_700}}]
    [payout] = post("/payouts/run", {})
    assert payout["amount"] == 1_700
    invoice_id = client.v1.invoice_payments.list(params={"limit": 1}).data[0].invoice
    dispute = post(f"/invoices/{invoice_id}/dispute", {"amount": 500})
    assert dispute["balance_transactions"][0]["fee"] == 2_000
    assert post(f"/disputes/{dispute['id']}/win", {})["status"] == "won"
    post("/refunds/pending", {"pending": True})
    pending = client.v1.refunds.create(params={"charge": charge.id, "amount": 10})
    assert post(f"/refunds/{pending.id}/fail", {})["status"] == "failed"
    assert requests.post(base + "/refunds/re_missing/fail", json={}, timeout=5).status_code in (400, 404)
