"""Netting: a payee's outstanding payout adjustments settled against the payee's new payout items.

A clawback (negative) is what the payee owes back for work paid out that stopped being payable; a reversal
(positive) gives a clawback back when its cause went away. Per payee and currency, oldest first:

1. adjustments of opposite signs cancel each other (a reversal of a clawback nothing netted yet leaves nothing
   outstanding);
2. what the payee is owed is added to the first new item's transfer;
3. what the payee owes is taken from the new items' transfers, item by item (in payout id order), never below
   zero: an item the clawbacks consume whole has no transfer (status ``netted``), and what the new items cannot
   absorb stays outstanding for the payee's next payouts.

Every netting is a settlement row (the adjustment, the part settled with the adjustment's sign, and the new item
or the opposite adjustment that settled it) written in the plan's transaction, with the items whose transfer
requests it fixed. A new item is planned once, so a rerun nets nothing twice; the ids follow from what they join.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

import psycopg


@dataclass(frozen=True)
class NewItem:
    payout_id: str
    payee_key: str
    currency: str
    amount_minor: int


@dataclass
class Netting:
    """netted: payout id -> what netting took from its transfer (negative: added to it)."""

    netted: dict[str, int] = field(default_factory=dict)
    settlements: list[tuple[str, str, int, str | None, str | None]] = field(default_factory=list)

    def settle(self, adjustment_id: str, amount: int, *, payout_id: str | None = None, offset: str | None = None):
        other = payout_id or offset
        sid = "ps_" + hashlib.sha256(f"{adjustment_id}|{other}".encode()).hexdigest()[:24]
        self.settlements.append((sid, adjustment_id, amount, payout_id, offset))

    def netted_by_currency(self, items: list[NewItem]) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in items:
            if self.netted.get(item.payout_id):
                out[item.currency] = out.get(item.currency, 0) + self.netted[item.payout_id]
        return out


def outstanding(conn: psycopg.Connection) -> list[tuple[str, str, str, int]]:
    """(adjustment_id, payee_key, currency, outstanding_minor) of every adjustment not wholly settled, oldest
    first per payee and currency."""
    return conn.execute(
        """SELECT a.adjustment_id, a.payee_key, a.currency, (a.amount_minor - coalesce(s.settled, 0))::bigint
           FROM closeout_data.payout_adjustments a
           LEFT JOIN (SELECT adjustment_id, sum(amount_minor) AS settled
                      FROM closeout_data.payout_adjustment_settlements GROUP BY adjustment_id) s
             ON s.adjustment_id = a.adjustment_id
           WHERE a.amount_minor - coalesce(s.settled, 0) <> 0
           ORDER BY a.payee_key, a.currency, a.created_at, a.adjustment_id"""
    ).fetchall()


def allocate(open_adjustments: list[tuple[str, str, str, int]], new_items: list[NewItem]) -> Netting:
    """Decide every settlement (pure: no I/O), as the module docstring says."""
    result = Netting()
    groups: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for adjustment_id, payee, currency, amount in open_adjustments:
        groups[(payee, currency)].append((adjustment_id, int(amount)))
    items_by_group: dict[tuple[str, str], list[NewItem]] = defaultdict(list)
    for item in sorted(new_items, key=lambda i: i.payout_id):
        items_by_group[(item.payee_key, item.currency)].append(item)
    for key, adjustments in groups.items():
        owed_back = [[aid, -amount] for aid, amount in adjustments if amount < 0]  # magnitudes
        owed = [[aid, amount] for aid, amount in adjustments if amount > 0]
        while owed_back and owed:  # 1. opposite signs cancel
            take = min(owed_back[0][1], owed[0][1])
            result.settle(owed_back[0][0], -take, offset=owed[0][0])
            result.settle(owed[0][0], take, offset=owed_back[0][0])
            for side in (owed_back, owed):
                side[0][1] -= take
                if side[0][1] == 0:
                    side.pop(0)
        items = items_by_group.get(key, [])
        if not items:
            continue
        transfer = {i.payout_id: i.amount_minor for i in items}
        for aid, amount in owed:  # 2. what the payee is owed rides on the first new item
            result.settle(aid, amount, payout_id=items[0].payout_id)
            transfer[items[0].payout_id] += amount
        for item in items:  # 3. what the payee owes comes off the transfers, never below zero
            while owed_back and transfer[item.payout_id] > 0:
                take = min(owed_back[0][1], transfer[item.payout_id])
                result.settle(owed_back[0][0], -take, payout_id=item.payout_id)
                transfer[item.payout_id] -= take
                owed_back[0][1] -= take
                if owed_back[0][1] == 0:
                    owed_back.pop(0)
        for item in items:
            if transfer[item.payout_id] != item.amount_minor:
                result.netted[item.payout_id] = item.amount_minor - transfer[item.payout_id]
    return result


def record(conn: psycopg.Connection, netting: Netting, planned_by: str | None) -> None:
    """Write the settlements (in the caller's transaction; the items they name are written in it too)."""
    if not netting.settlements:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.payout_adjustment_settlements (settlement_id, adjustment_id, amount_minor,
                   payout_id, offset_adjustment_id, planned_by)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            [(*s, planned_by) for s in netting.settlements],
        )
