"""The netting rule itself (closeout.payouts.netting.allocate, no I/O): per payee and currency, oldest adjustment
first, opposite signs cancel, what the payee is owed rides on the first new item, what they owe comes off the
new items in payout id order, never below zero, and the rest stays outstanding."""

from __future__ import annotations

from closeout.payouts.netting import NewItem, allocate


def _settled(result) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, adjustment_id, amount, _, _ in result.settlements:
        out[adjustment_id] = out.get(adjustment_id, 0) + amount
    return out


def test_clawbacks_come_off_new_items_oldest_first_and_never_below_zero():
    open_ = [("old", "p1", "USD", -700), ("new", "p1", "USD", -500), ("eur", "p1", "EUR", -100)]
    items = [NewItem("po_b", "p1", "USD", 400), NewItem("po_a", "p1", "USD", 600), NewItem("po_z", "p2", "USD", 900)]
    result = allocate(open_, items)
    assert result.netted == {"po_a": 600, "po_b": 400}  # 1,000 of 1,200 owed: both transfers are zero
    assert _settled(result) == {"old": -700, "new": -300}  # 200 of 'new' carried forward; EUR untouched
    by_item = [(s[1], s[2], s[3]) for s in result.settlements]
    assert by_item == [("old", -600, "po_a"), ("old", -100, "po_b"), ("new", -300, "po_b")]  # payout id order
    assert result.netted_by_currency(items) == {"USD": 1000}


def test_a_partial_netting_leaves_a_transfer_and_a_reversal_rides_on_the_first_item():
    result = allocate([("c1", "p1", "USD", -250)], [NewItem("po_1", "p1", "USD", 1000)])
    assert result.netted == {"po_1": 250}
    result = allocate([("r1", "p1", "USD", 300)], [NewItem("po_2", "p1", "USD", 1000), NewItem("po_3", "p1", "USD", 5)])
    assert result.netted == {"po_2": -300}
    assert [(s[1], s[2], s[3]) for s in result.settlements] == [("r1", 300, "po_2")]


def test_opposite_signs_cancel_without_new_work_and_the_rest_stays():
    result = allocate([("c1", "p1", "USD", -800), ("r1", "p1", "USD", 500)], [])
    assert result.netted == {}
    assert _settled(result) == {"c1": -500, "r1": 500}
    assert {(s[1], s[4]) for s in result.settlements} == {("c1", "r1"), ("r1", "c1")}
    assert len({s[0] for s in result.settlements}) == 2  # distinct, deterministic ids
    assert allocate([("c1", "p1", "USD", -800), ("r1", "p1", "USD", 500)], []).settlements == result.settlements


def test_nothing_outstanding_nets_nothing():
    result = allocate([], [NewItem("po_1", "p1", "USD", 1000)])
    assert (result.netted, result.settlements) == ({}, [])
