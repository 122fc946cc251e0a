"""The event rule on its own: any order, any duplication of a real invoice history's snapshots ends in the
state in-order delivery gives; the rule never takes a step the database would refuse."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from closeout.payments import keys, transitions
from closeout.webhooks.verify import SignatureError, verify_stripe
from hypothesis import given
from hypothesis import strategies as st

from sandbox.stripe.webhooks import sign

# Stripe histories: (status, amount_paid) snapshots in the order Stripe produced them (total 100).
HISTORIES = [
    [("draft", 0), ("open", 0), ("paid", 100)],
    [("draft", 0), ("open", 0), ("open", 40), ("paid", 100)],
    [("draft", 0), ("open", 0), ("void", 0)],
    [("draft", 0), ("open", 0), ("uncollectible", 0), ("paid", 100)],
    [("draft", 0), ("open", 0), ("open", 30), ("uncollectible", 30), ("void", 30)],
    [("draft", 0), ("open", 0), ("open", 10), ("open", 30)],
]


def _run(snapshots: list[tuple[str, int]]) -> tuple[str, int]:
    status, paid = "publishing", 0
    for snapshot_status, snapshot_paid in snapshots:
        decision = transitions.decide(status, paid, snapshot_status, snapshot_paid)
        assert decision.outcome != "conflict", decision
        assert transitions.valid_step(status, decision.status), (status, decision)
        assert decision.amount_paid >= paid
        status, paid = decision.status, decision.amount_paid
    return status, paid


@given(st.sampled_from(HISTORIES), st.data())
def test_any_order_and_any_duplicates_end_where_in_order_delivery_ends(history, data) -> None:
    delivered = data.draw(st.lists(st.sampled_from(history), min_size=len(history), max_size=3 * len(history)))
    delivered = data.draw(st.permutations(delivered + history))  # every snapshot at least once, in any order
    assert _run(delivered) == _run(history)


def test_contradicting_final_states_are_a_conflict_not_a_guess() -> None:
    assert transitions.decide("paid", 100, "void", 0).outcome == "conflict"
    assert transitions.decide("void", 0, "paid", 100).outcome == "conflict"
    assert transitions.decide("paid", 100, "open", 40).outcome == "stale"
    assert transitions.decide("open", 0, "open", 0).outcome == "no_change"


def test_stripe_signatures_are_checked_against_every_secret_in_constant_time_with_a_tolerance() -> None:
    body = b'{"id": "evt_1"}'
    header = sign(body, "whsec_new", 1_000)
    verify_stripe(body, header, ["whsec_old", "whsec_new"], now=1_100)  # rotation: either secret
    with pytest.raises(SignatureError, match="does not match"):
        verify_stripe(body + b" ", header, ["whsec_new"], now=1_100)
    with pytest.raises(SignatureError, match="off"):
        verify_stripe(body, header, ["whsec_new"], now=1_000 + 301)
    with pytest.raises(SignatureError):
        verify_stripe(body, "v1=" + hmac.new(b"whsec_new", body, hashlib.sha256).hexdigest(), ["whsec_new"], now=1_000)


def test_idempotency_keys_are_deterministic_distinct_per_operation_and_bounded() -> None:
    a = keys.invoice_key("closeout", "inv_1", 2, "create")
    assert a == keys.invoice_key("closeout", "inv_1", 2, "create")
    others = [keys.invoice_key("closeout", "inv_1", 2, "finalize"), keys.invoice_key("closeout", "inv_1", 3, "create"),
              keys.invoice_key("closeout", "inv_1", 2, "add_lines", 0),
              keys.invoice_key("closeout", "inv_1", 2, "add_lines", 1)]  # fmt: skip
    assert len({a, *others}) == 5
    long = keys.customer_key("closeout", "client:" + "x" * 400)
    assert len(long) <= 255 and long == keys.customer_key("closeout", "client:" + "x" * 400)
    assert long != keys.customer_key("closeout", "client:" + "x" * 399)
