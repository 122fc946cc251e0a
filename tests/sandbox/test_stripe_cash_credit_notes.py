"""Credit notes in the Stripe sandbox, through the real ``stripe`` SDK: pre- and post-payment credit with the
refund / customer balance / out-of-band split Stripe requires, preview, listing, updates and voids, and the
Dashboard controls that make the same objects and events by hand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import stripe

from sandbox.stripe import StripeSandbox

KEY = "sk_test_sandbox"


@pytest.fixture
def sandbox() -> Iterator[StripeSandbox]:
    sb = StripeSandbox(seed=17)
    sb.start("127.0.0.1", 0)
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def client(sandbox: StripeSandbox) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": sandbox.url}, max_network_retries=0)


def open_invoice(client: stripe.StripeClient, *amounts: int, currency: str = "usd") -> Any:
    customer = client.v1.customers.create(params={"name": "Acme", "metadata": {"closeout_client": "acme"}})
    draft = client.v1.invoices.create(params={"customer": customer.id, "currency": currency,
                                              "collection_method": "send_invoice", "days_until_due": 30})  # fmt: skip
    client.v1.invoices.add_lines(draft.id, params={"lines": [
        {"amount": a, "description": f"Consulting {n}"} for n, a in enumerate(amounts)]})  # fmt: skip
    return client.v1.invoices.finalize_invoice(draft.id)


def types_since(sandbox: StripeSandbox, start: int) -> list[str]:
    return [e["type"] for e in sandbox.events()[start:]]


# ---------------------------------------------------------------------------------------------- pre-payment


def test_credit_on_an_open_invoice_reduces_what_remains_and_can_settle_it(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    invoice = open_invoice(client, 10_000)
    mark = len(sandbox.events())
    note = client.v1.credit_notes.create(
        params={"invoice": invoice.id, "amount": 3_000, "reason": "order_change", "memo": "Hours billed twice",
                "metadata": {"closeout_cn": "c-1"}})  # fmt: skip
    assert note.id.startswith("cn_") and note.object == "credit_note" and note.status == "issued"
    assert (note.amount, note.pre_payment_amount, note.post_payment_amount, note.type) == (3_000, 3_000, 0,
                                                                                          "pre_payment")  # fmt: skip
    assert note.number == f"{invoice.number}-CN-01" and note.customer == invoice.customer
    assert note.refunds == [] and note.customer_balance_transaction is None and note.out_of_band_amount is None
    assert (note.memo, note.reason, note.metadata["closeout_cn"]) == ("Hours billed twice", "order_change", "c-1")
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.status, after.amount_remaining, after.pre_payment_credit_notes_amount) == ("open", 7_000, 3_000)
    assert after.post_payment_credit_notes_amount == 0 and after.total == 10_000
    assert types_since(sandbox, mark) == ["credit_note.created", "invoice.updated"]
    updated = sandbox.events("invoice.updated")[-1]["data"]
    assert updated["previous_attributes"] == {"amount_remaining": 10_000, "pre_payment_credit_notes_amount": 0}

    with pytest.raises(stripe.InvalidRequestError) as excinfo:  # nothing was paid: nothing to refund
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 1_000, "refund_amount": 1_000})
    assert "must equal the credit note's post-payment amount (0)" in excinfo.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 7_001})
    assert "(7000)" in excinfo.value.user_message

    mark = len(sandbox.events())
    rest = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 7_000})
    assert rest.number == f"{invoice.number}-CN-02" and rest.pre_payment_amount == 7_000
    paid = client.v1.invoices.retrieve(invoice.id)
    assert (paid.status, paid.amount_remaining, paid.amount_paid) == ("paid", 0, 0)
    assert types_since(sandbox, mark) == ["credit_note.created", "invoice.paid"]
    assert sandbox.count("refund") == 0 and sandbox.count("balance_transaction") == 0


def test_only_finalized_invoices_take_credit_notes(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"name": "Acme"})
    draft = client.v1.invoices.create(params={"customer": customer.id})
    client.v1.invoice_items.create(params={"customer": customer.id, "invoice": draft.id, "amount": 500})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.create(params={"invoice": draft.id, "amount": 100})
    assert excinfo.value.param == "invoice" and "draft" in excinfo.value.user_message
    voided = open_invoice(client, 500)
    client.v1.invoices.void_invoice(voided.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.credit_notes.create(params={"invoice": voided.id, "amount": 100})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.create(params={"invoice": "in_missing", "amount": 100})
    assert excinfo.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.create(params={"invoice": voided.id})
    assert excinfo.value.code == "parameter_missing"


# ---------------------------------------------------------------------------------------------- post-payment


def test_credit_on_a_paid_invoice_splits_into_refund_balance_and_out_of_band(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    sandbox.set_fee("usd", 0, 0)
    invoice = open_invoice(client, 6_000, 4_000)
    sandbox.pay_invoice(invoice.id)
    lines = client.v1.invoices.line_items.list(invoice.id).data
    params = {"invoice": invoice.id, "reason": "product_unsatisfactory",
              "lines": [{"type": "invoice_line_item", "invoice_line_item": lines[0].id, "amount": 2_500},
                        {"type": "custom_line_item", "unit_amount": 500, "quantity": 2, "description": "Goodwill"}],
              "refund_amount": 2_000, "credit_amount": 1_000, "out_of_band_amount": 500}  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.create(params={**params, "out_of_band_amount": 400})
    assert "The sum of credit amount, refund amount and out of band amount (3400) must equal the credit note's " \
        "post-payment amount (3500)" in excinfo.value.user_message  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.create(params={**params, "refund_amount": 12_000, "credit_amount": 0,
                                              "out_of_band_amount": 0, "amount": 12_000, "lines": None})  # fmt: skip
    assert excinfo.value.param == "amount"  # more than the invoice total

    mark = len(sandbox.events())
    note = client.v1.credit_notes.create(params=params)
    assert (note.amount, note.pre_payment_amount, note.post_payment_amount, note.type) == (
        3_500, 0, 3_500, "post_payment")  # fmt: skip
    assert (note.out_of_band_amount, note.reason) == (500, "product_unsatisfactory")
    assert [(line.type, line.amount, line.invoice_line_item) for line in note.lines.data] == [
        ("invoice_line_item", 2_500, lines[0].id), ("custom_line_item", 1_000, None)]  # fmt: skip
    [link] = note.refunds
    assert link.amount_refunded == 2_000 and link.type == "refund"
    refund = client.v1.refunds.retrieve(link.refund)
    assert (refund.amount, refund.status) == (2_000, "succeeded")
    refund_txn = client.v1.balance_transactions.retrieve(refund.balance_transaction)
    assert (refund_txn.type, refund_txn.amount) == ("refund", -2_000)

    customer = client.v1.customers.retrieve(invoice.customer)
    assert customer.balance == -1_000
    [credit] = client.v1.customers.balance_transactions.list(invoice.customer).data
    assert (credit.id, credit.amount, credit.credit_note, credit.type, credit.ending_balance) == (
        note.customer_balance_transaction, -1_000, note.id, "credit_note", -1_000)  # fmt: skip
    after = client.v1.invoices.retrieve(invoice.id)
    assert (after.status, after.amount_paid, after.post_payment_credit_notes_amount) == ("paid", 10_000, 3_500)
    assert types_since(sandbox, mark) == ["refund.created", "charge.refunded", "customer.updated",
                                          "credit_note.created", "invoice.updated"]  # fmt: skip

    with pytest.raises(stripe.InvalidRequestError) as excinfo:  # 8000 refundable is left, 6500 creditable
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 6_600, "refund_amount": 6_600})
    assert excinfo.value.param == "amount"


def test_credit_on_a_partly_paid_invoice_is_mixed(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    invoice = open_invoice(client, 10_000)
    sandbox.pay_invoice(invoice.id, 4_000)
    preview_params = {"invoice": invoice.id, "amount": 8_000, "refund_amount": 2_000}
    before = (sandbox.count("credit_note"), sandbox.count("refund"), len(sandbox.events()))
    preview = client.v1.credit_notes.preview(params=preview_params)
    assert (preview.amount, preview.pre_payment_amount, preview.post_payment_amount, preview.type) == (
        8_000, 6_000, 2_000, "mixed")  # fmt: skip
    assert [r.amount_refunded for r in preview.refunds] == [2_000]
    assert (sandbox.count("credit_note"), sandbox.count("refund"), len(sandbox.events())) == before
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.credit_notes.preview(params={"invoice": invoice.id, "amount": 8_000})

    note = client.v1.credit_notes.create(params=preview_params)
    assert (note.pre_payment_amount, note.post_payment_amount, note.type) == (6_000, 2_000, "mixed")
    paid = client.v1.invoices.retrieve(invoice.id)
    assert (paid.status, paid.amount_remaining, paid.pre_payment_credit_notes_amount,
            paid.post_payment_credit_notes_amount) == ("paid", 0, 6_000, 2_000)  # fmt: skip
    assert sandbox.events()[-1]["type"] == "invoice.paid"


def test_existing_refunds_can_be_linked(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    invoice = open_invoice(client, 5_000)
    sandbox.pay_invoice(invoice.id)
    charge = client.v1.invoice_payments.list(params={"invoice": invoice.id}).data[0].payment.charge
    refund = client.v1.refunds.create(params={"charge": charge, "amount": 1_200})
    link = [{"refund": refund.id, "amount_refunded": 1_200}]
    note = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 1_200, "refunds": link})
    assert [(r.refund, r.amount_refunded) for r in note.refunds] == [(refund.id, 1_200)]
    assert sandbox.count("refund") == 1  # linked, not refunded again
    with pytest.raises(stripe.InvalidRequestError):
        missing = [{"refund": "re_missing", "amount_refunded": 100}]
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 100, "refunds": missing})


# ---------------------------------------------------------------------------------------------- reads, updates, voids


def test_list_retrieve_update_and_lines(sandbox: StripeSandbox, client: stripe.StripeClient) -> None:
    first = open_invoice(client, 1_000)
    second = open_invoice(client, 2_000)
    a = client.v1.credit_notes.create(params={"invoice": first.id, "amount": 100})
    sandbox.advance_clock(60)
    b = client.v1.credit_notes.create(params={"invoice": second.id, "lines": [
        {"type": "custom_line_item", "unit_amount": 50, "quantity": 3, "description": "Rounding"}]})  # fmt: skip
    c = client.v1.credit_notes.create(params={"invoice": second.id, "amount": 200})
    assert [n.id for n in client.v1.credit_notes.list().data] == [c.id, b.id, a.id]
    assert [n.id for n in client.v1.credit_notes.list(params={"invoice": second.id}).data] == [c.id, b.id]
    assert [n.id for n in client.v1.credit_notes.list(params={"customer": first.customer}).data] == [a.id]
    assert [n.id for n in client.v1.credit_notes.list(params={"created": {"gte": b.created}}).data] == [c.id, b.id]
    page = client.v1.credit_notes.list(params={"limit": 2})
    assert page.has_more and [n.id for n in page.auto_paging_iter()] == [c.id, b.id, a.id]
    got = client.v1.credit_notes.retrieve(b.id)
    assert got.amount == 150 and got.lines.total_count == 1
    assert client.v1.credit_notes.line_items.list(b.id).data[0].unit_amount == 50
    updated = client.v1.credit_notes.update(b.id, params={"memo": "Rounding credit", "metadata": {"k": "v"}})
    assert updated.memo == "Rounding credit" and updated.metadata["k"] == "v"
    event = sandbox.events("credit_note.updated")[-1]["data"]
    assert event["previous_attributes"] == {"memo": None, "metadata": {}}


def test_voiding_restores_the_invoice_and_the_customer_balance(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    invoice = open_invoice(client, 10_000)
    pre = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 4_000})
    mark = len(sandbox.events())
    voided = client.v1.credit_notes.void_credit_note(pre.id, options={"idempotency_key": "void-1"})
    assert voided.status == "void" and voided.voided_at is not None
    restored = client.v1.invoices.retrieve(invoice.id)
    assert (restored.amount_remaining, restored.pre_payment_credit_notes_amount) == (10_000, 0)
    assert types_since(sandbox, mark) == ["credit_note.voided", "invoice.updated"]
    replay = client.v1.credit_notes.void_credit_note(pre.id, options={"idempotency_key": "void-1"})
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.credit_notes.void_credit_note(pre.id)
    again = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 10_000})
    assert again.number.endswith("-CN-02")  # a void note keeps its number; the total is creditable again

    paid = open_invoice(client, 3_000)
    sandbox.pay_invoice(paid.id)
    credit = client.v1.credit_notes.create(params={"invoice": paid.id, "amount": 1_000, "credit_amount": 1_000})
    assert client.v1.customers.retrieve(paid.customer).balance == -1_000
    client.v1.credit_notes.void_credit_note(credit.id)
    assert client.v1.customers.retrieve(paid.customer).balance == 0
    entries = client.v1.customers.balance_transactions.list(paid.customer).data
    assert [(e.amount, e.ending_balance) for e in entries] == [(1_000, 0), (-1_000, -1_000)]

    used = client.v1.credit_notes.create(params={"invoice": paid.id, "amount": 500, "credit_amount": 500})
    client.v1.customers.update(paid.customer, params={"balance": 0})  # the credit was applied elsewhere
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.void_credit_note(used.id)
    assert "has been used" in excinfo.value.user_message

    refunded = client.v1.credit_notes.create(params={"invoice": paid.id, "amount": 500, "refund_amount": 500})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.void_credit_note(refunded.id)
    assert "already been made" in excinfo.value.user_message

    sandbox.refunds_pending()
    pending = client.v1.credit_notes.create(params={"invoice": paid.id, "amount": 400, "refund_amount": 400})
    refund_id = pending.refunds[0].refund
    client.v1.credit_notes.void_credit_note(pending.id)
    canceled = client.v1.refunds.retrieve(refund_id)
    assert canceled.status == "canceled" and canceled.failure_balance_transaction
    back = client.v1.balance_transactions.retrieve(canceled.failure_balance_transaction)
    assert (back.type, back.amount) == ("refund_failure", 400)
    assert client.v1.invoices.retrieve(paid.id).post_payment_credit_notes_amount == 1_000

    settled = open_invoice(client, 800)
    client.v1.credit_notes.create(params={"invoice": settled.id, "amount": 300})
    sandbox.pay_invoice(settled.id)
    note = client.v1.credit_notes.list(params={"invoice": settled.id}).data[0]
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.credit_notes.void_credit_note(note.id)
    assert "has been paid" in excinfo.value.user_message


# ---------------------------------------------------------------------------------------------- the Dashboard


def test_dashboard_controls_make_the_same_objects_and_events(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    sandbox.set_fee("usd", 0, 0)
    invoice = sandbox.dashboard_invoice([("Workshop", 12_000), ("Travel", 800)], name="Walk-in", currency="eur")
    assert invoice["status"] == "open" and invoice["metadata"] == {} and invoice["total"] == 12_800
    customer = client.v1.customers.retrieve(invoice["customer"])
    assert customer.name == "Walk-in" and customer.metadata.to_dict() == {}
    kinds = [e["type"] for e in sandbox.events()]
    assert kinds[:2] == ["customer.created", "invoice.created"] and kinds[-1] == "invoice.finalized"

    paid = sandbox.pay_invoice_by_card(invoice["id"], settlement_currency="usd", rate="1.25")
    assert paid["status"] == "paid"
    charge = client.v1.charges.list(params={"customer": invoice["customer"]}).data[0]
    t = client.v1.balance_transactions.retrieve(charge.balance_transaction)
    assert (t.currency, t.amount, t.exchange_rate) == ("usd", 16_000, 1.25)

    note = sandbox.dashboard_credit_note(invoice["id"], amount=800, refund_amount=800, memo="Travel waived")
    assert note["post_payment_amount"] == 800 and note["refunds"][0]["amount_refunded"] == 800
    assert client.v1.credit_notes.retrieve(note["id"]).memo == "Travel waived"
    assert sandbox.events()[-1]["type"] == "invoice.updated"
    with pytest.raises(ValueError):
        sandbox.dashboard_credit_note(invoice["id"], amount=100)  # post-payment must be split
    draft = sandbox.dashboard_invoice([("Later", 100)], customer_id=invoice["customer"], finalize=False)
    assert draft["status"] == "draft" and draft["customer"] == invoice["customer"]

    base = sandbox.url + "/_sandbox"
    made = requests.post(base + "/dashboard/invoices", json={"lines": [{"description": "X", "amount": 900}],
                                                             "currency": "usd"}, timeout=5).json()  # fmt: skip
    assert made["status"] == "open" and made["total"] == 900
    response = requests.post(base + "/dashboard/credit_notes", json={"invoice": made["id"], "amount": 900}, timeout=5)
    assert response.status_code == 200 and response.json()["pre_payment_amount"] == 900
    assert client.v1.invoices.retrieve(made["id"]).status == "paid"
    voided = requests.post(base + f"/credit_notes/{response.json()['id']}/void", json={}, timeout=5)
    assert voided.status_code == 400  # its invoice is paid by the credit: it stays
    other = requests.post(base + "/dashboard/invoices", json={"lines": [{"description": "Y", "amount": 1_000}]},
                          timeout=5).json()  # fmt: skip
    requests.post(base + f"/invoices/{other['id']}/pay_by_card", json={"settlement_currency": "gbp", "rate": "0.8"},
                  timeout=5).raise_for_status()  # fmt: skip
    assert client.v1.balance_transactions.list(params={"currency": "gbp"}).data[0].amount == 800


# ---------------------------------------------------------------------------------------------- customer balance


def test_customer_balance_credit_is_used_by_the_next_finalized_invoices(
    sandbox: StripeSandbox, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create(params={"name": "Acme"})
    params = {"amount": -1_500, "currency": "usd", "description": "Hours credited back",
              "metadata": {"closeout_correction_id": "k-1"}}  # fmt: skip
    credit = client.v1.customers.balance_transactions.create(customer.id, params=params,
                                                             options={"idempotency_key": "credit-k-1"})  # fmt: skip
    assert credit.id.startswith("cbtxn_") and (credit.type, credit.amount, credit.ending_balance) == (
        "adjustment", -1_500, -1_500)  # fmt: skip
    replay = client.v1.customers.balance_transactions.create(customer.id, params=params,
                                                             options={"idempotency_key": "credit-k-1"})  # fmt: skip
    assert replay.id == credit.id and client.v1.customers.retrieve(customer.id).balance == -1_500
    assert sandbox.events("customer.updated")[-1]["data"]["previous_attributes"] == {"balance": 0}
    fetched = client.v1.customers.balance_transactions.retrieve(customer.id, credit.id)
    assert fetched.metadata["closeout_correction_id"] == "k-1"
    tagged = client.v1.customers.balance_transactions.update(customer.id, credit.id, params={"metadata": {"x": "y"}})
    assert tagged.metadata.to_dict() == {"closeout_correction_id": "k-1", "x": "y"}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.balance_transactions.create(customer.id, params={"amount": -1, "currency": "eur"})

    first = sandbox.dashboard_invoice([("Work", 1_000)], customer_id=customer.id)
    assert (first["status"], first["amount_due"], first["starting_balance"], first["ending_balance"]) == (
        "paid", 0, -1_500, -500)  # fmt: skip
    second = sandbox.dashboard_invoice([("More work", 2_000)], customer_id=customer.id)
    assert (second["status"], second["total"], second["amount_due"], second["amount_remaining"]) == (
        "open", 2_000, 1_500, 1_500)  # fmt: skip
    assert (second["starting_balance"], second["ending_balance"]) == (-500, 0)
    entries = client.v1.customers.balance_transactions.list(customer.id).data
    assert [(e.type, e.amount, e.invoice) for e in entries] == [
        ("applied_to_invoice", 500, second["id"]), ("applied_to_invoice", 1_000, first["id"]),
        ("adjustment", -1_500, None)]  # fmt: skip
    assert client.v1.customers.retrieve(customer.id).balance == 0
    note = client.v1.credit_notes.create(params={"invoice": second["id"], "amount": 1_500})
    assert note.pre_payment_amount == 1_500 and client.v1.invoices.retrieve(second["id"]).status == "paid"
