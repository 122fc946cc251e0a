"""Fast bulk history for the Stripe sandbox: months of card charges with their balance transactions, some
refunds, daily Stripe fees and daily automatic payouts carrying what became available, in seconds.

For benchmarks (listing a million balance transactions): the objects are the ones the API would have made
(charges with PaymentIntents and fee-bearing ``charge`` txns, refunds with ``refund`` txns, ``stripe_fee``
txns, automatic payouts with their ``payout`` txn and ``?payout=`` sets, the balance's running totals) but
no events are recorded and no webhooks sent. Everything is dated in the past, in creation order, so it must
come before any other object of those kinds: seed a fresh sandbox.
"""

from __future__ import annotations

import gc
import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from sandbox.stripe.money import FeeRule, fee_for

__all__ = ["seed_balance_transactions"]

DAY = 86400


def _adder(collection: Any) -> Callable[[dict[str, Any]], None]:
    """``collection.add`` without the metadata index (bulk objects carry no metadata), for speed."""
    ids, pos, created, objects = collection.ids, collection.pos, collection.created, collection.objects
    indexes = list(collection.index.items())

    def add(obj: dict[str, Any]) -> None:
        oid = obj["id"]
        position = len(ids)
        ids.append(oid)
        pos[oid] = position
        created.append(obj["created"])
        objects[oid] = obj
        for field, index in indexes:
            index.setdefault(obj.get(field), []).append(position)

    return add


def _fee_function(rule: FeeRule | None) -> Callable[[int], int]:
    """The fee on a positive amount; integer arithmetic (half-up) when the percentage is whole basis points."""
    if rule is None:
        return lambda amount: 0
    bps = rule.percent_bps
    if bps == bps.to_integral_value():
        whole, fixed = int(bps), rule.fixed
        return lambda amount: (amount * whole + 5_000) // 10_000 + fixed
    return lambda amount: fee_for(amount, rule)


def seed_balance_transactions(
    state: Any,
    charges: int,
    *,
    days: int = 60,
    currency: str = "usd",
    refund_every: int = 10,
    customers: int = 100,
    payouts: bool = True,
    seed: int = 0,
) -> dict[str, int]:
    """Create ``charges`` card charges spread over the ``days`` before now (each with its PaymentIntent and
    balance transaction, fee per the fee schedule), a partial refund of every ``refund_every``-th charge, one
    ``stripe_fee`` per day, and (``payouts``) one automatic payout per day sweeping every transaction available
    by then. Payouts whose arrival date has passed are ``paid`` and reconciled. Caller holds ``state.lock``.
    Returns how many objects of each kind were made."""
    if charges < 0 or days < 1:
        raise ValueError("charges must be >= 0 and days >= 1")
    collecting = gc.isenabled()
    gc.disable()  # millions of new dicts: the cyclic collector would rescan them all, over and over
    try:
        return _seed(state, charges, days=days, currency=currency, refund_every=refund_every, customers=customers,
                     payouts=payouts, seed=seed)  # fmt: skip
    finally:
        gc.freeze()  # the history lives as long as the sandbox: keep later collections from rescanning it
        if collecting:
            gc.enable()


def _seed(state: Any, charges: int, *, days: int, currency: str, refund_every: int, customers: int, payouts: bool,
          seed: int) -> dict[str, int]:  # fmt: skip
    rng = random.Random(seed)
    now = state.now()
    start = now - days * DAY
    touched = (state.customers, state.charges, state.payment_intents, state.balance_transactions, state.refunds,
               state.payouts)  # fmt: skip
    if any(c.created and c.created[-1] > start for c in touched):
        raise ValueError("bulk history is dated before every existing object: seed a fresh sandbox")
    fee_of = _fee_function(state._rule(state.fee_schedule, currency))
    delay = state.availability_delay
    txns, txn_add = state.balance_transactions, _adder(state.balance_transactions)
    add_intent, add_charge, add_refund = _adder(state.payment_intents), _adder(state.charges), _adder(state.refunds)
    billing = {"email": None, "name": None}
    new_id = state.new_id
    card = {"type": "card", "card": {"brand": "visa", "country": "US", "last4": "4242"}}  # shared, never mutated
    outcome = {"type": "authorized", "network_status": "approved_by_network"}
    customer_ids = []
    for n in range(max(1, customers)):
        cid = new_id("cus")
        state.customers.add({
            "id": cid, "object": "customer", "address": None, "balance": 0, "created": start, "currency": currency,
            "default_source": None, "delinquent": False, "description": None, "discount": None,
            "email": f"bulk{n}@example.com", "invoice_prefix": cid[-8:].upper(), "invoice_settings": {
                "custom_fields": None, "default_payment_method": None, "footer": None, "rendering_options": None},
            "livemode": False, "metadata": {}, "name": f"Bulk customer {n}", "next_invoice_sequence": 1,
            "phone": None, "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
        })  # fmt: skip
        customer_ids.append(cid)
    counts = dict.fromkeys(("customers", "charges", "refunds", "stripe_fees", "payouts", "balance_transactions"), 0)
    counts["customers"] = len(customer_ids)
    totals = state._balance.setdefault(currency, [0, 0])
    maturing: deque[tuple[int, str]] = deque()  # (available_on, txn id), in time order
    sweep: list[str] = []
    objects = txns.objects
    seeded = [0, 0]  # transactions made, their net sum

    def txn(kind: str, category: str, amount: int, fee: int, source: str | None, at: int, later: bool) -> str:
        tid = new_id("txn")
        available_on = at + delay if later else at
        net = amount - fee
        txn_add({"id": tid, "object": "balance_transaction", "amount": amount, "available_on": available_on,
                 "balance_type": "payments", "created": at, "currency": currency, "description": None,
                 "exchange_rate": None, "fee": fee,
                 "fee_details": [{"amount": fee, "application": None, "currency": currency,
                                  "description": "Stripe processing fees", "type": "stripe_fee"}] if fee else [],
                 "net": net, "reporting_category": category, "source": source,
                 "status": "pending" if available_on > now else "available", "type": kind})  # fmt: skip
        seeded[0] += 1
        seeded[1] += net
        if available_on > at:
            maturing.append((available_on, tid))
        else:
            sweep.append(tid)
        return tid

    def payout_run(at: int) -> None:
        while maturing and maturing[0][0] <= at:
            sweep.append(maturing.popleft()[1])
        total = sum(objects[t]["net"] for t in sweep)
        if not sweep or total <= 0:
            return
        pid = new_id("po")
        arrival = at + state.payout_delay
        payout = {
            "id": pid, "object": "payout", "amount": total, "arrival_date": arrival, "automatic": True,
            "balance_transaction": None, "created": at, "currency": currency, "description": "STRIPE PAYOUT",
            "destination": "ba_sandbox_default", "failure_balance_transaction": None, "failure_code": None,
            "failure_message": None, "livemode": False, "metadata": {}, "method": "standard",
            "original_payout": None, "reconciliation_status": "completed" if arrival <= now else "in_progress",
            "reversed_by": None, "source_type": "card", "statement_descriptor": None,
            "status": "paid" if arrival <= now else "pending",
            "trace_id": {"status": "supported", "value": f"SBXTRACE{pid[-8:]}"} if arrival <= now
            else {"status": "pending", "value": None}, "type": "bank_account",
        }  # fmt: skip
        state.payouts.add(payout)
        positions = sorted(txns.pos[t] for t in sweep)
        for tid in sweep:
            state.txn_payout[tid] = pid
        sweep.clear()
        own = txn("payout", "payout", -total, 0, pid, at, False)
        sweep.pop()  # a payout's own txn is carried by that payout, not swept again
        payout["balance_transaction"] = own
        positions.append(txns.pos[own])
        state.payout_positions[pid] = positions
        counts["payouts"] += 1

    per_day, extra = divmod(charges, days)
    for day in range(days):
        t0 = start + day * DAY
        if payouts and day:
            payout_run(t0)
        k = per_day + (1 if day < extra else 0)
        step = max(1, (DAY - 2) // max(k, 1))
        for i in range(k):
            at = t0 + 1 + i * step
            amount = 1_000 + int(rng.random() * 199_000)
            cid, pi = new_id("ch"), new_id("pi")
            customer = customer_ids[counts["charges"] % len(customer_ids)]
            fee = fee_of(amount)
            tid = txn("charge", "charge", amount, fee, cid, at, True)
            add_intent({
                "id": pi, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
                "amount_received": amount, "capture_method": "automatic", "created": at, "currency": currency,
                "customer": customer, "description": None, "latest_charge": cid, "livemode": False, "metadata": {},
                "payment_method": None, "payment_method_types": ["card"], "status": "succeeded",
            })  # fmt: skip
            charge = {
                "id": cid, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": 0,
                "balance_transaction": tid, "billing_details": billing, "captured": True,
                "created": at, "currency": currency, "customer": customer, "description": None, "disputed": False,
                "failure_code": None, "failure_message": None, "livemode": False, "metadata": {},
                "outcome": outcome, "paid": True, "payment_intent": pi, "payment_method": None,
                "payment_method_details": card, "receipt_url": None, "refunded": False, "status": "succeeded",
            }  # fmt: skip
            add_charge(charge)
            counts["charges"] += 1
            if refund_every and counts["charges"] % refund_every == 0:
                rid = new_id("re")
                back = amount // 2
                rtid = txn("refund", "refund", -back, 0, rid, at, False)
                add_refund({
                    "id": rid, "object": "refund", "amount": back, "balance_transaction": rtid, "charge": cid,
                    "created": at, "currency": currency, "description": None, "destination_details": None,
                    "failure_balance_transaction": None, "failure_reason": None, "instructions_email": None,
                    "metadata": {}, "next_action": None, "payment_intent": pi, "pending_reason": None,
                    "reason": "requested_by_customer", "receipt_number": None, "source_transfer_reversal": None,
                    "status": "succeeded", "transfer_reversal": None,
                })  # fmt: skip
                charge["amount_refunded"] = back
                counts["refunds"] += 1
        txn("stripe_fee", "fee", -rng.randrange(100, 5_000), 0, None, t0 + DAY - 1, False)
        counts["stripe_fees"] += 1
    # what is still pending joins the live machinery; swept-but-unpaid leftovers stay sweepable
    pending = 0
    for available_on, tid in maturing:
        if available_on <= now:
            sweep.append(tid)
        else:
            heapq.heappush(state._maturing, (available_on, txns.pos[tid], tid, True))
            pending += objects[tid]["net"]
    state._sweepable.setdefault(currency, []).extend(sweep)
    totals[0] += seeded[1] - pending
    totals[1] += pending
    counts["balance_transactions"] = seeded[0]
    state.version += 1
    return counts
