"""Crash matrix, publishing: a worker publishing drafts to Stripe is killed (SIGKILL) after each outbox stage
recorded its intent and before it called Stripe, and after Stripe answered and before the answer was recorded;
``closeout_stripe_publish`` then runs again under ``dag.test``. Stripe (the sandbox) holds exactly one customer,
one invoice with exactly its lines, finalized at our total; the outbox is all done; the ledger posts one
invoicing journal per invoice."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from closeout.ledger import tasks as ledger_tasks
from crash_support import die_at, duplicate_journals, journal_count
from payments_support import check_invariant_3, seed_drafts

pytestmark = pytest.mark.integration

PUBLISH_POINTS = [
    f"stripe.{operation}.{when}"
    for operation in ("customer.create", "invoice.create", "invoice.add_lines", "invoice.finalize")
    for when in ("before_call", "after_call")
]
PUBLISH = "from closeout.payments import tasks; tasks.publish_drafts('crashed-worker')"


@pytest.mark.parametrize("point", PUBLISH_POINTS)
def test_publish_killed_between_intent_and_outcome_makes_one_stripe_invoice(
    warehouse, stripe_sandbox, run_dag, point: str
) -> None:
    (invoice_id,) = seed_drafts({"a": [D("2"), D("1.5"), D("0.25")]})
    die_at(point, PUBLISH)
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_outbox WHERE status = 'pending'") >= 1, (
        "the worker died with an operation recorded and not completed"
    )

    result = run_dag("closeout_stripe_publish")
    assert result.state == "success", result

    assert stripe_sandbox.count("customer") == 1
    assert stripe_sandbox.count("invoice") == 1
    (invoice,) = stripe_sandbox.objects("invoice")
    assert invoice["metadata"]["closeout_invoice_id"] == invoice_id
    lines = [ln for ln in stripe_sandbox.objects("line_item") if ln["invoice"] == invoice["id"]]
    assert sorted(ln["amount"] for ln in lines) == [2500, 15000, 20000], "each line once"
    assert invoice["status"] == "open" and invoice["total"] == 37500
    assert warehouse.rows("SELECT status, stripe_invoice_id, total_minor FROM closeout.invoices") == [
        ("open", invoice["id"], 37500)
    ]
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_outbox WHERE status <> 'done'") == 0
    check_invariant_3(warehouse, stripe_sandbox)

    ledger_tasks.post_journals("after-crash")
    assert journal_count(warehouse, "invoice") == 1
    assert duplicate_journals(warehouse) == []
