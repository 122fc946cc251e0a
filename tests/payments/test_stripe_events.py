"""closeout_stripe_events: Stripe's events (signed webhooks through the real receiver, and the /v1/events
backfill) turn published invoices paid, partly paid, void or uncollectible, and fill the payment history.
Whatever the delivery (in order, duplicated, shuffled, some dropped, or processed newest first across
separate runs) the final state is the one in-order delivery gives."""

from __future__ import annotations

import json
import time
from decimal import Decimal as D

import pytest
import requests
import stripe
from closeout.payments import events, tasks
from closeout.payments.hook import StripeHook
from closeout.warehouse.db import connect
from conftest import STRIPE_WEBHOOK_SECRET
from payments_support import check_invariant_3, invoice_state, seed_drafts

from sandbox.stripe.webhooks import sign

pytestmark = pytest.mark.integration

CLIENTS = {"a": [D("2")], "b": [D("5")], "c": [D("1")], "d": [D("3")], "e": [D("10")]}


def _sdk(sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(sandbox.secret_key, base_addresses={"api": sandbox.url}, max_network_retries=0)


def _publish_five(warehouse, sandbox) -> dict[str, tuple[str, str, int]]:
    ids = seed_drafts(CLIENTS)
    tasks.publish_drafts("publish")
    rows = warehouse.rows(
        """SELECT client_key, invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices
           WHERE invoice_id = ANY(%s)""",
        (ids,),
    )
    return {client.removeprefix("harvest:"): (iid, sid, total) for client, iid, sid, total in rows}


def _customers_act(sandbox, invoices: dict[str, tuple[str, str, int]]) -> None:
    """a pays in full; b pays 40 % then the rest; c is voided; d is marked uncollectible, then pays; e pays 30 %."""
    sdk = _sdk(sandbox)
    sandbox.pay_invoice(invoices["a"][1])
    sandbox.pay_invoice(invoices["b"][1], invoices["b"][2] * 40 // 100)
    sandbox.pay_invoice(invoices["b"][1])
    sdk.v1.invoices.void_invoice(invoices["c"][1])
    sdk.v1.invoices.mark_uncollectible(invoices["d"][1])
    sandbox.pay_invoice(invoices["d"][1])
    sandbox.pay_invoice(invoices["e"][1], invoices["e"][2] * 30 // 100)


def _expected(invoices: dict[str, tuple[str, str, int]]) -> dict[str, tuple]:
    total = {k: v[2] for k, v in invoices.items()}
    part = total["e"] * 30 // 100
    return {
        invoices["a"][0]: ("paid", total["a"], (("payment", 1, total["a"]),)),
        invoices["b"][0]: ("paid", total["b"], (("payment", 2, total["b"]),)),
        invoices["c"][0]: ("void", 0, ()),
        invoices["d"][0]: ("paid", total["d"], (("payment", 1, total["d"]),)),
        invoices["e"][0]: ("open", part, (("payment", 1, part),)),
    }


@pytest.mark.parametrize("delivery", ["in_order", "duplicated", "shuffled", "dropped", "newest_first"])
def test_any_delivery_ends_in_the_in_order_state(warehouse, stripe_sandbox, webhook_receiver, run_dag, delivery):
    invoices = _publish_five(warehouse, stripe_sandbox)
    before_webhook = len(stripe_sandbox.events())  # publishing's own events: only the backfill sees them
    stripe_sandbox.set_webhook(f"{webhook_receiver}/stripe", STRIPE_WEBHOOK_SECRET)
    if delivery == "duplicated":
        stripe_sandbox.webhook_faults(duplicate=1.0, seed=1)
    elif delivery == "dropped":
        stripe_sandbox.webhook_faults(drop=0.5, seed=3)
    elif delivery in ("shuffled", "newest_first"):
        stripe_sandbox.hold_webhooks()

    _customers_act(stripe_sandbox, invoices)
    if delivery == "shuffled":
        stripe_sandbox.release_webhooks(shuffle=True)
    if delivery == "newest_first":
        # every event stored and applied on its own, newest first: each run sees only what came so far
        hook = StripeHook()
        with connect() as conn:
            for event in reversed(stripe_sandbox.events()):
                conn.execute(
                    """INSERT INTO closeout_data.stripe_events (event_id, event_type, created_at, object_type,
                           object_id, body, received_via)
                       VALUES (%s, %s, to_timestamp(%s), %s, %s, %s, 'backfill')""",
                    (event["id"], event["type"], event["created"], event["data"]["object"].get("object"),
                     event["data"]["object"].get("id"), json.dumps(event)),
                )  # fmt: skip
                events.apply(conn, hook)
                conn.commit()
    else:
        assert stripe_sandbox.flush_webhooks(10)

    result = run_dag("closeout_stripe_events")
    assert result.state == "success", result
    assert invoice_state(warehouse) == _expected(invoices)
    via = dict(warehouse.rows("SELECT received_via, count(*) FROM closeout.stripe_events GROUP BY 1"))
    delivered = len(stripe_sandbox.events()) - before_webhook
    if delivery == "dropped":
        assert via["webhook"] < delivered and via["backfill"] > before_webhook, "the backfill found the dropped"
    if delivery in ("in_order", "duplicated", "shuffled"):
        assert via["webhook"] == delivered, "every event after the webhook was set came by webhook"
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_events") == len(stripe_sandbox.events())
    assert warehouse.scalar("SELECT count(*) FROM closeout.parked_events") == 0
    history = warehouse.rows(
        """SELECT from_status, to_status FROM closeout.invoice_status_history WHERE invoice_id = %s AND via <> 'publish'
           AND from_status <> to_status ORDER BY history_id""",
        (invoices["d"][0],),
    )
    if delivery != "newest_first":
        assert history == [("open", "uncollectible"), ("uncollectible", "paid")]
    check_invariant_3(warehouse, stripe_sandbox)

    # a second run changes nothing
    before = invoice_state(warehouse)
    assert run_dag("closeout_stripe_events").state == "success"
    assert invoice_state(warehouse) == before


def test_an_event_for_an_invoice_closeout_never_published_is_parked_with_the_reason(
    warehouse, stripe_sandbox, run_dag
) -> None:
    _publish_five(warehouse, stripe_sandbox)
    sdk = _sdk(stripe_sandbox)
    customer = sdk.v1.customers.create(params={"name": "Made by hand"})
    stray = sdk.v1.invoices.create(params={"customer": customer.id, "collection_method": "send_invoice",
                                          "days_until_due": 30, "currency": "usd"})  # fmt: skip
    sdk.v1.invoices.add_lines(stray.id, params={"lines": [{"amount": 5000, "description": "by hand"}]})
    sdk.v1.invoices.finalize_invoice(stray.id)
    stripe_sandbox.pay_invoice(stray.id)

    assert run_dag("closeout_stripe_events").state == "success"
    parked = warehouse.rows("SELECT event_type, object_id, reason FROM closeout.parked_events ORDER BY created_at")
    assert {t for t, _, _ in parked} >= {"invoice.finalized", "invoice.paid", "invoice_payment.paid"}
    assert all(stray.id in reason for _, _, reason in parked), parked
    assert warehouse.scalar("SELECT count(*) FROM closeout.invoice_payments") == 0
    assert run_dag("closeout_stripe_events").state == "success"
    assert warehouse.scalar("SELECT min(attempts) FROM closeout.parked_events") == 2, "parked events are retried"


def test_the_receiver_refuses_bad_signatures_stale_timestamps_and_malformed_bodies(
    warehouse, stripe_sandbox, webhook_receiver
) -> None:
    url = f"{webhook_receiver}/stripe"
    event = {"id": "evt_test_1", "object": "event", "type": "invoice.paid", "created": int(time.time()),
             "data": {"object": {"id": "in_1", "object": "invoice"}}}  # fmt: skip
    body = json.dumps(event).encode()

    def post(payload: bytes, header: str) -> int:
        return requests.post(url, data=payload, headers={"Stripe-Signature": header}, timeout=10).status_code

    now = int(time.time())
    assert post(body, sign(body, "whsec_wrong", now)) == 401
    assert post(body, sign(body, STRIPE_WEBHOOK_SECRET, now - 600)) == 401, "older than the 300 s tolerance"
    assert post(body, f"t={now}") == 401
    assert post(body, "") == 401
    not_json = b"{not json"
    assert post(not_json, sign(not_json, STRIPE_WEBHOOK_SECRET, now)) == 400
    not_event = json.dumps({"id": "x", "type": 3}).encode()
    assert post(not_event, sign(not_event, STRIPE_WEBHOOK_SECRET, now)) == 400
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.webhook_inbox") == 0, "nothing stored"

    assert post(body, sign(body, STRIPE_WEBHOOK_SECRET, now)) == 200
    assert post(body, sign(body, STRIPE_WEBHOOK_SECRET, now)) == 200
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.webhook_inbox WHERE vendor = 'stripe'") == 1


def test_hosted_invoice_links_close_to_expiry_are_refreshed(warehouse, stripe_sandbox) -> None:
    invoices = _publish_five(warehouse, stripe_sandbox)
    iid, sid, _ = invoices["a"]
    with connect() as conn:
        conn.execute(
            """UPDATE closeout_data.invoices SET hosted_invoice_url = NULL,
                   hosted_invoice_url_expires_at = clock_timestamp() + interval '1 day'
               WHERE invoice_id = %s""",
            (iid,),
        )
        conn.commit()
    assert tasks.refresh_hosted_urls("refresh")["refreshed"] == 1
    url, days_left = warehouse.rows(
        """SELECT hosted_invoice_url, extract(day FROM hosted_invoice_url_expires_at - clock_timestamp())
           FROM closeout.invoices WHERE invoice_id = %s""",
        (iid,),
    )[0]
    assert url == stripe_sandbox.get(sid)["hosted_invoice_url"] and days_left > 7
    assert tasks.refresh_hosted_urls("again")["refreshed"] == 0


def test_refunds_and_disputes_after_the_payment_was_recorded_find_their_invoice(
    warehouse, stripe_sandbox, run_dag
) -> None:
    invoices = _publish_five(warehouse, stripe_sandbox)
    stripe_sandbox.pay_invoice(invoices["a"][1])
    stripe_sandbox.pay_invoice(invoices["b"][1])
    assert run_dag("closeout_stripe_events").state == "success"

    # later runs see only the refund and the dispute: their invoices have no event in that batch
    stripe_sandbox.refund(invoices["a"][1], 500)
    stripe_sandbox.dispute(invoices["b"][1])
    assert run_dag("closeout_stripe_events").state == "success"
    assert warehouse.scalar("SELECT count(*) FROM closeout.parked_events") == 0
    rows = warehouse.rows(
        "SELECT invoice_id, kind, amount_minor FROM closeout.invoice_payments WHERE kind <> 'payment'"
    )
    assert sorted(rows) == sorted([(invoices["a"][0], "refund", 500), (invoices["b"][0], "dispute", invoices["b"][2])])
    assert warehouse.rows("SELECT invoice_id, kind FROM closeout.payment_exceptions") == [(invoices["b"][0], "dispute")]
