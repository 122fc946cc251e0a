"""Helpers for the ledger tests: publish real invoices to the Stripe sandbox, let Stripe's events come back
through closeout's own tasks, post, and read the journals and the two invariant views."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe
from closeout.ledger import tasks as ledger_tasks
from closeout.payments import tasks as payment_tasks
from payments_support import seed_drafts


def sdk(sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(sandbox.secret_key, base_addresses={"api": sandbox.url}, max_network_retries=0)


def publish(warehouse, clients: dict[str, list[Decimal]], **kwargs) -> dict[str, tuple[str, str, int]]:
    """client -> (invoice_id, stripe_invoice_id, total_minor), published and finalized through closeout."""
    ids = seed_drafts(clients, **kwargs)
    payment_tasks.publish_drafts("publish")
    rows = warehouse.rows(
        """SELECT client_key, invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices
           WHERE invoice_id = ANY(%s)""",
        (ids,),
    )
    return {c.removeprefix("harvest:"): (iid, sid, total) for c, iid, sid, total in rows}


def follow(run: str = "ledger-test") -> dict:
    """Stripe's events into closeout (backfill from /v1/events, apply), then post: what the DAG does."""
    payment_tasks.collect_events(run)
    payment_tasks.apply_events(run)
    return ledger_tasks.post_journals(run)


def journals(warehouse, invoice_id: str) -> list[tuple]:
    """(kind, source_ref, reverses_journal_id, journal_id, ((role, debit, credit), ...)) in posting order."""
    out = []
    for jid, kind, source, reverses in warehouse.rows(
        """SELECT journal_id, kind, source_ref, reverses_journal_id FROM closeout.ledger_journals
           WHERE invoice_id = %s ORDER BY posted_at, journal_id""",
        (invoice_id,),
    ):
        lines = tuple(warehouse.rows(
            """SELECT role, debit_minor, credit_minor FROM closeout.ledger_lines WHERE journal_id = %s
               ORDER BY line_no""", (jid,)))  # fmt: skip
        out.append((kind, source, reverses, jid, lines))
    return out


def kinds(warehouse, invoice_id: str) -> list[str]:
    return [j[0] for j in journals(warehouse, invoice_id)]


def receivable(warehouse, client: str) -> int:
    return int(warehouse.scalar(
        """SELECT coalesce(sum(debit_minor - credit_minor), 0) FROM closeout.ledger_lines
           WHERE role = 'receivable' AND client_key = %s""", (f"harvest:{client}",)))  # fmt: skip


def check_invariants(warehouse) -> None:
    """Invariant 4 (every journal balances) and 5 (receivable per client = unpaid remainder of open invoices),
    through the views a GX suite will use."""
    unbalanced = warehouse.rows("SELECT * FROM closeout.journal_balance WHERE NOT balanced")
    assert unbalanced == [], unbalanced
    broken = warehouse.rows("SELECT * FROM closeout.receivable_by_client WHERE NOT holds")
    assert broken == [], broken


@pytest.fixture
def books(warehouse, stripe_sandbox):
    """Three published invoices of last month, one paid in full and one in part, every journal posted (the
    reconciliation tests' books; import it into a test module to use it)."""
    inv = publish(warehouse, {"a": [Decimal("2")], "b": [Decimal("5"), Decimal("1.5")], "c": [Decimal("3")]})
    follow()
    stripe_sandbox.pay_invoice(inv["a"][1])
    stripe_sandbox.pay_invoice(inv["b"][1], 20_000)
    follow()
    return inv
