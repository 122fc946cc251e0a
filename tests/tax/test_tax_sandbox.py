"""The Stripe sandbox's Tax Rates and invoice tax, through the real SDK: create, retrieve, list, update and archive
rates; invoice items and add_lines carrying tax_rates; each line's tax per rate, rounded half-up in the minor
unit, exclusive on top and inclusive inside; total_taxes, subtotal, total_excluding_tax, total and amount_due as
Stripe reports them; idempotent replay of a rate; archived and unknown rates refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe


@pytest.fixture
def sdk(stripe_sandbox) -> Iterator[stripe.StripeClient]:
    yield stripe.StripeClient(stripe_sandbox.secret_key, base_addresses={"api": stripe_sandbox.url},
                              max_network_retries=0)  # fmt: skip


def test_tax_rates_are_created_once_listed_and_archived(sdk: stripe.StripeClient) -> None:
    params = {"display_name": "VAT", "percentage": "20", "inclusive": False, "country": "GB", "jurisdiction": "GB",
              "metadata": {"closeout_tax_rate": "20%/exclusive/VAT/GB"}}  # fmt: skip
    first = sdk.v1.tax_rates.create(params=params, options={"idempotency_key": "txr-1"})
    again = sdk.v1.tax_rates.create(params=params, options={"idempotency_key": "txr-1"})
    assert first.id == again.id and first.percentage == 20 and first.inclusive is False and first.active
    gst = sdk.v1.tax_rates.create(params={"display_name": "GST", "percentage": "8.875", "inclusive": True})
    assert [r.id for r in sdk.v1.tax_rates.list().data] == [gst.id, first.id]
    assert [r.id for r in sdk.v1.tax_rates.list(params={"inclusive": True}).data] == [gst.id]
    assert sdk.v1.tax_rates.retrieve(first.id).display_name == "VAT"
    sdk.v1.tax_rates.update(gst.id, params={"active": False})
    assert [r.id for r in sdk.v1.tax_rates.list(params={"active": True}).data] == [first.id]
    customer = sdk.v1.customers.create(params={"name": "A"})
    with pytest.raises(stripe.InvalidRequestError, match="archived"):
        sdk.v1.invoice_items.create(params={"customer": customer.id, "amount": 100, "currency": "usd",
                                            "tax_rates": [gst.id]})  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError, match="No such tax rate"):
        sdk.v1.invoice_items.create(params={"customer": customer.id, "amount": 100, "currency": "usd",
                                            "tax_rates": ["txr_missing"]})  # fmt: skip
    with pytest.raises(stripe.InvalidRequestError, match="percentage"):
        sdk.v1.tax_rates.create(params={"display_name": "X", "percentage": "101", "inclusive": False})
    with pytest.raises(stripe.InvalidRequestError, match="inclusive"):
        sdk.v1.tax_rates.create(params={"display_name": "X", "percentage": "5"})


def test_invoice_lines_carry_tax_per_line_and_the_invoice_totals_follow(sdk: stripe.StripeClient) -> None:
    vat = sdk.v1.tax_rates.create(params={"display_name": "VAT", "percentage": "20", "inclusive": False})
    gst = sdk.v1.tax_rates.create(params={"display_name": "GST", "percentage": "10", "inclusive": True})
    customer = sdk.v1.customers.create(params={"name": "A"})
    invoice = sdk.v1.invoices.create(params={"customer": customer.id, "currency": "usd",
                                             "collection_method": "send_invoice", "days_until_due": 30})  # fmt: skip
    # 10113 x 20 % = 2022.6 -> 2023; 13 x 20 % = 2.6 -> 3; 11000 inclusive 10 % -> 1000; 7 inclusive -> 0.64 -> 1
    sdk.v1.invoices.add_lines(invoice.id, params={"lines": [
        {"amount": 10113, "description": "a", "tax_rates": [vat.id]},
        {"amount": 13, "description": "b", "tax_rates": [vat.id]},
        {"amount": 11000, "description": "c", "tax_rates": [gst.id]},
        {"amount": 7, "description": "d", "tax_rates": [gst.id]},
        {"amount": 500, "description": "untaxed"}]})  # fmt: skip
    item = sdk.v1.invoice_items.create(params={"customer": customer.id, "invoice": invoice.id, "amount": -25,
                                               "tax_rates": [vat.id]})  # fmt: skip
    assert [r["id"] for r in item.to_dict()["tax_rates"]] == [vat.id]
    current = sdk.v1.invoices.retrieve(invoice.id).to_dict()
    lines = sdk.v1.invoices.line_items.list(invoice.id).data
    taxes = [[(t["amount"], t["tax_behavior"], t["taxable_amount"]) for t in ln.to_dict()["taxes"]] for ln in lines]
    assert taxes == [[(2023, "exclusive", 10113)], [(3, "exclusive", 13)], [(1000, "inclusive", 10000)],
                     [(1, "inclusive", 6)], [], [(-5, "exclusive", -25)]]  # fmt: skip
    by_rate = {t["tax_rate_details"]["tax_rate"]: (t["amount"], t["taxable_amount"]) for t in current["total_taxes"]}
    assert by_rate == {vat.id: (2021, 10101), gst.id: (1001, 10006)}
    subtotal = 10113 + 13 + 11000 + 7 + 500 - 25
    assert current["subtotal"] == subtotal
    assert current["subtotal_excluding_tax"] == subtotal - 1001
    assert current["total"] == subtotal + 2021
    assert current["total_excluding_tax"] == subtotal - 1001
    assert current["amount_due"] == subtotal + 2021
    finalized = sdk.v1.invoices.finalize_invoice(invoice.id).to_dict()
    assert (finalized["total"], finalized["amount_remaining"]) == (subtotal + 2021, subtotal + 2021)
