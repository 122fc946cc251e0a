"""Poisoned Stripe events are quarantined one by one; the rest apply and the /v1/events backfill goes on.

Real closeout_stripe_events (dag.test), real Postgres, the real receiver over HTTP with real signatures,
the Stripe sandbox. Poisoned backfill events are planted in the sandbox's event log as the exact bytes
Stripe would list (Python's json cannot write ``1e-100000``); poisoned webhooks are signed and posted.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal as D

import pytest
import requests
from closeout.payments import tasks
from conftest import STRIPE_WEBHOOK_SECRET
from payments_support import seed_drafts

from sandbox.stripe.webhooks import sign

pytestmark = pytest.mark.integration

CLIENTS = {"a": [D("2")], "b": [D("5")], "c": [D("1")]}


def _publish(warehouse) -> dict[str, tuple[str, str, int]]:
    ids = seed_drafts(CLIENTS)
    tasks.publish_drafts("publish")
    rows = warehouse.rows(
        """SELECT client_key, invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices
           WHERE invoice_id = ANY(%s)""",
        (ids,),
    )
    return {client.removeprefix("harvest:"): (iid, sid, total) for client, iid, sid, total in rows}


def plant_event(sandbox, event: dict, replacements: dict[str, str] | None = None) -> None:
    """Add an event to the sandbox's log as raw bytes (listed by /v1/events like any other)."""
    raw = json.dumps(event, separators=(",", ":"))
    for placeholder, text in (replacements or {}).items():
        assert f'"{placeholder}"' in raw
        raw = raw.replace(f'"{placeholder}"', text)
    with sandbox._lock:
        sandbox.state.events.add(event["id"], event["type"], sandbox.state.now(), raw.encode())


def envelope(event_id: str, event_type: str, obj: dict, created: int | str | None = None) -> dict:
    when = int(time.time()) if created is None else created
    return {"id": event_id, "object": "event", "type": event_type, "created": when,
            "api_version": "2025-01-27.acacia", "livemode": False, "data": {"object": obj}}  # fmt: skip


def post_webhook(url: str, event: dict, raw: str | None = None) -> int:
    body = (raw or json.dumps(event)).encode()
    header = sign(body, STRIPE_WEBHOOK_SECRET, int(time.time()))
    return requests.post(f"{url}/stripe", data=body, headers={"Stripe-Signature": header}, timeout=10).status_code


def test_poisoned_events_are_quarantined_while_the_rest_apply_and_the_backfill_continues(
    warehouse, stripe_sandbox, webhook_receiver, run_dag
) -> None:
    invoices = _publish(warehouse)
    a_sid, b_sid, c_sid = invoices["a"][1], invoices["b"][1], invoices["c"][1]
    # backfill poison, listed by /v1/events between publishing's events and the payments
    paid = {"object": "invoice", "status": "paid"}
    plant_event(stripe_sandbox, envelope("evt_poison_nul_id", "invoice.paid", {**paid, "id": "in_\u0000evil"}))
    plant_event(stripe_sandbox, envelope("evt_poison_year_9999", "invoice.paid", {**paid, "id": a_sid}, 253402300799))
    tiny = envelope("evt_poison_tiny", "invoice.updated", {"id": b_sid, "object": "invoice", "total": "TINY"})
    plant_event(stripe_sandbox, tiny, {"TINY": "1e-100000"})
    note = {"id": "cus_x", "object": "customer", "description": "VIP\u0000 client"}
    plant_event(stripe_sandbox, envelope("evt_clean_note", "customer.updated", note))
    stripe_sandbox.pay_invoice(a_sid)
    stripe_sandbox.pay_invoice(b_sid)
    listed = len(stripe_sandbox.events())

    # webhook poison, through the real receiver (which stores anything signed and shaped like an event)
    created_zero = envelope("evt_poison_created_zero", "invoice.paid", {**paid, "id": c_sid}, 0)
    assert post_webhook(webhook_receiver, created_zero) == 200
    year_one = envelope("evt_poison_year_one", "invoice.paid", {"id": c_sid, "object": "invoice"}, -62135596800)
    assert post_webhook(webhook_receiver, year_one) == 200
    surrogate = envelope("evt_lone_surrogate", "customer.updated", {"id": "cus_y", "object": "customer",
                                                                    "description": "SUR"})  # fmt: skip
    assert post_webhook(webhook_receiver, surrogate, json.dumps(surrogate).replace('"SUR"', '"half \\ud800"')) == 200
    breaks_apply = envelope("evt_breaks_apply", "invoice_payment.paid",
                            {"id": "inpay_poison", "object": "invoice_payment", "invoice": c_sid, "amount_paid": 100,
                             "status_transitions": "not an object", "payment": {"charge": None}})  # fmt: skip
    assert post_webhook(webhook_receiver, breaks_apply) == 200

    result = run_dag("closeout_stripe_events")
    assert result.state == "success", result

    status = dict(warehouse.rows("SELECT invoice_id, status FROM closeout.invoices"))
    assert status[invoices["a"][0]] == "paid" and status[invoices["b"][0]] == "paid"
    assert status[invoices["c"][0]] == "open", "the poisoned payments of c applied nothing"

    quarantined = {r[0]: (r[1], r[2], r[3]) for r in warehouse.rows(
        "SELECT event_id, received_via, field, reason FROM closeout.event_quarantine")}  # fmt: skip
    assert quarantined["evt_poison_nul_id"][:2] == ("backfill", "data.object.id")
    assert "NUL" in quarantined["evt_poison_nul_id"][2]
    assert quarantined["evt_poison_year_9999"][1] == "created" and "absurd" in quarantined["evt_poison_year_9999"][2]
    assert quarantined["evt_poison_tiny"][1] == "data.object.total"
    assert quarantined["evt_poison_created_zero"][:2] == ("webhook", "created")
    assert quarantined["evt_poison_year_one"][:2] == ("webhook", "created")
    assert len(quarantined) == 5
    assert warehouse.scalar("SELECT raw FROM closeout.event_quarantine WHERE event_id = 'evt_poison_nul_id'").count(
        "\\u0000") == 1, "the event is kept whole, its NUL escaped"

    stored = dict(warehouse.rows("SELECT event_id, outcome FROM closeout.stripe_events"))
    assert len(stored) == listed - 3 + 2, "every listed event but the three poisoned, plus two clean webhooks"
    assert not set(stored) & set(quarantined)
    assert stored["evt_breaks_apply"] == "quarantined"
    reason, cash_outcome, cash_reason = warehouse.rows(
        "SELECT reason, cash_outcome, cash_reason FROM closeout_data.stripe_events WHERE event_id = 'evt_breaks_apply'"
    )[0]
    assert "AttributeError" in reason
    assert cash_outcome == "quarantined" and "AttributeError" in cash_reason, "the cash step quarantines it too"
    assert stored["evt_clean_note"] == "ignored" and stored["evt_lone_surrogate"] == "ignored"
    repairs = dict(warehouse.rows(
        "SELECT source_id, change FROM closeout.input_repairs WHERE source = 'stripe'"))  # fmt: skip
    assert repairs == {"evt_clean_note": "replaced 1 NUL character with U+FFFD",
                       "evt_lone_surrogate": "replaced 1 lone surrogate with U+FFFD"}  # fmt: skip
    inbox = dict(warehouse.rows("SELECT event_id, outcome FROM closeout_data.webhook_inbox WHERE vendor = 'stripe'"))
    assert inbox["evt_poison_created_zero"].startswith("quarantined: created: absurd timestamp 0")
    assert inbox["evt_lone_surrogate"] == "moved to stripe_events"

    # the cursor moved past the poison, to the newest event stored: the backfill is not stuck on it
    cursor = warehouse.scalar("SELECT last_created FROM closeout_data.stripe_event_cursor")
    assert cursor == max(e["created"] for e in stripe_sandbox.events() if e["id"].startswith("evt_") and
                         e["created"] < 4102444800)  # fmt: skip

    # the next run lists the poison again (overlap): counted, not duplicated, and nothing else moves
    stripe_sandbox.pay_invoice(c_sid)
    assert run_dag("closeout_stripe_events").state == "success"
    assert dict(warehouse.rows("SELECT invoice_id, status FROM closeout.invoices"))[invoices["c"][0]] == "paid"
    assert warehouse.scalar("SELECT count(*) FROM closeout.event_quarantine") == 5
