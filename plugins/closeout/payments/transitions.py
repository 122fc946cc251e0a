"""Which invoice state an event may move us to, decided against the current state, never arrival order.

Stripe delivers events late, twice, or out of order. Every invoice event carries a snapshot of the invoice;
we only ever move *forward* along publishing -> open -> uncollectible -> paid | void (open and
uncollectible may also go to void), and amount paid only grows. So applying the same set of snapshots in
any order, any number of times, ends in the same state: the furthest one. A snapshot behind the current
state is stale and changes nothing. Two final states that contradict each other (paid and void) cannot
be ordered by rank: then order matters, and the caller re-reads the invoice from Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass

RANK = {"publishing": 1, "open": 2, "uncollectible": 3, "paid": 4, "void": 4}
FINAL = frozenset({"paid", "void"})
# Stripe's invoice status -> ours (a Stripe draft is our 'publishing': not final yet).
FROM_STRIPE = {"draft": None, "open": "open", "uncollectible": "uncollectible", "paid": "paid", "void": "void"}


@dataclass(frozen=True)
class Decision:
    status: str
    amount_paid: int
    outcome: str  # applied | no_change | stale | conflict
    reason: str


def decide(status: str, amount_paid: int, snapshot_status: str, snapshot_paid: int) -> Decision:
    """Where an invoice at (``status``, ``amount_paid``) goes given a Stripe snapshot of it."""
    target = FROM_STRIPE.get(snapshot_status)
    paid = max(amount_paid, snapshot_paid)
    if snapshot_status not in FROM_STRIPE:
        return Decision(status, amount_paid, "conflict", f"unknown Stripe invoice status {snapshot_status!r}")
    new_status = status
    reason = ""
    if target is None or target == status:
        pass
    elif status in FINAL:
        if target in FINAL:
            return Decision(status, amount_paid, "conflict", f"Stripe says {target}, closeout has {status}")
        reason = f"snapshot {target} is behind {status}"
    elif RANK[target] > RANK[status] or target == "void":
        new_status = target
    else:
        reason = f"snapshot {target} is behind {status}"
    if new_status != status or paid != amount_paid:
        changes = []
        if new_status != status:
            changes.append(f"{status} -> {new_status}")
        if paid != amount_paid:
            changes.append(f"amount paid {amount_paid} -> {paid}")
        return Decision(new_status, paid, "applied", ", ".join(changes))
    return Decision(status, amount_paid, "stale" if reason else "no_change", reason or "already in this state")


def valid_step(current: str, new: str) -> bool:
    """The same rule the database enforces (0005_payments.sql, guard_invoice_status)."""
    if current == new:
        return True
    if current in FINAL:
        return False
    return RANK[new] > RANK[current] or new == "void"
