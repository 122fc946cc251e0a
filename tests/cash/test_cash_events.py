"""The cash objects from Stripe's events (charges, refunds, disputes, payouts, invoice payments, the balance):
whatever the delivery (duplicated, shuffled, some dropped and backfilled later, newest first one by one) the
tables end as in-order delivery leaves them; an event whose object has since moved on never moves it back,
not even behind a list read; and the events DAG runs with cash present."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from cash_support import DAY, TABLES, cash_tables, money_story, paid_invoice, sdk, set_stripe_extra
from closeout.payments import tasks as payment_tasks
from closeout.payments.cash import events as cash_events
from closeout.payments.cash.store import Store
from closeout.payments.cash.sync import CashSync
from closeout.payments.hook import StripeHook
from closeout.warehouse.db import connect
from payments_support import seed_drafts

pytestmark = pytest.mark.integration

CASH_TYPES = ("charge.", "refund.", "payout.", "invoice_payment.", "balance.", "credit_note.")


def _story_with_everything(sandbox) -> None:
    """The money story plus a refund that goes pending -> succeeded and one that fails, and a payout that fails."""
    story = money_story(sandbox)
    client = sdk(sandbox)
    sandbox.refunds_pending(True)
    settled = client.v1.refunds.create(params={"charge": story.paid[3].charge_id, "amount": 1_000})
    failing = client.v1.refunds.create(params={"charge": story.fx.charge_id, "amount": 2_000})
    sandbox.settle_refund(settled.id)
    sandbox.fail_refund(failing.id)
    sandbox.add_stripe_fee(99, "usd")
    paid_invoice(sandbox, client, 50_000)
    sandbox.advance_clock(3 * DAY)
    (payout,) = sandbox.run_payouts()
    sandbox.fail_payout(payout["id"])


def _store(conn, events: list[dict]) -> None:
    """What the collect step writes: one row per event id, whichever way it came (a duplicate is a no-op)."""
    conn.cursor().executemany(
        """INSERT INTO closeout_data.stripe_events (event_id, event_type, created_at, object_type, object_id, body,
               received_via)
           VALUES (%s, %s, to_timestamp(%s), %s, %s, %s, 'backfill') ON CONFLICT (event_id) DO NOTHING""",
        [(e["id"], e["type"], e["created"], e["data"]["object"].get("object"), e["data"]["object"].get("id"),
          json.dumps(e)) for e in events],
    )  # fmt: skip


def _forget_cash(conn) -> None:
    conn.execute(f"TRUNCATE {', '.join(f'closeout_data.{t}' for t in TABLES)}, closeout_data.stripe_balances")
    conn.execute("UPDATE closeout_data.stripe_events SET cash_applied_at = NULL, cash_outcome = NULL")
    conn.commit()


def _deliver(conn, events: list[dict], delivery: str) -> None:
    rng = random.Random(7)
    if delivery == "duplicated":
        for event in events:
            _store(conn, [event, event])
        cash_events.apply(conn)
        _store(conn, events)  # and all of them once more, on a later run
        cash_events.apply(conn)
    elif delivery == "shuffled":
        mixed = events[:]
        rng.shuffle(mixed)
        for start in range(0, len(mixed), 3):  # a run every three arrivals
            _store(conn, mixed[start:start + 3])
            cash_events.apply(conn)
    elif delivery == "dropped":
        kept = [e for e in events if rng.random() < 0.5]
        _store(conn, kept)
        cash_events.apply(conn)
        _store(conn, events)  # the /v1/events backfill finds the rest
        cash_events.apply(conn)
    elif delivery == "newest_first":
        for event in reversed(events):
            _store(conn, [event])
            cash_events.apply(conn)
    else:
        raise AssertionError(delivery)
    conn.commit()


@pytest.mark.parametrize("delivery", ["duplicated", "shuffled", "dropped", "newest_first"])
def test_any_delivery_of_cash_events_ends_as_in_order_delivery(warehouse, stripe_sandbox, delivery) -> None:
    _story_with_everything(stripe_sandbox)
    events = [e for e in stripe_sandbox.events() if e["type"].startswith(CASH_TYPES)]
    assert {e["type"] for e in events} >= {"refund.created", "refund.updated", "refund.failed", "charge.refunded",
                                           "charge.dispute.created", "charge.dispute.closed", "payout.created",
                                           "payout.paid", "payout.failed", "invoice_payment.paid"}  # fmt: skip
    with connect() as conn:
        _store(conn, events)
        counts = cash_events.apply(conn)
        conn.commit()
        in_order = cash_tables(warehouse)
        assert counts["applied"] > 0 and counts.get("ignored", 0) == 0, counts
        _forget_cash(conn)
        _deliver(conn, events, delivery)
    assert cash_tables(warehouse) == in_order
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.stripe_events WHERE cash_applied_at IS NULL") == 0
    with connect() as conn:  # the per-run links (what each run wrote) left nothing for the full pass to link
        assert Store(conn).resolve(full=True) == 0
        conn.commit()

    # what the events say, in Stripe's words
    assert dict(warehouse.rows("SELECT status, count(*) FROM closeout.refunds GROUP BY 1")) == {
        "succeeded": 2, "failed": 1}
    assert sorted(r[0] for r in warehouse.rows("SELECT status FROM closeout.disputes")) == ["lost", "won"]
    assert {r[0] for r in warehouse.rows("SELECT status FROM closeout.stripe_payouts")} == {"paid", "failed"}
    # a failed refund gives its amount back to the charge, as Stripe does: only the succeeded refunds count
    refunded = dict(warehouse.rows(
        """SELECT c.charge_id, c.amount_refunded_minor FROM closeout.stripe_charges c
           WHERE EXISTS (SELECT 1 FROM closeout.refunds r WHERE r.charge_id = c.charge_id)"""))
    assert sorted(refunded.values()) == [0, 1_000, 3_000]


def test_an_event_never_moves_a_newer_list_read_back(warehouse, stripe_sandbox, monkeypatch) -> None:
    set_stripe_extra(monkeypatch, cash_reads_per_second=0)
    _story_with_everything(stripe_sandbox)
    events = [e for e in stripe_sandbox.events() if e["type"].startswith(CASH_TYPES)]
    with connect() as conn:
        CashSync(conn, StripeHook()).run()
        listed = cash_tables(warehouse)
        _store(conn, list(reversed(events)))
        counts = cash_events.apply(conn)
        conn.commit()
    assert counts["stale"] > 0
    after = cash_tables(warehouse)
    for table, rows in listed.items():
        for key, row in rows.items():
            for column in ("status", "amount_refunded_minor", "reconciliation_status", "payout_id"):
                if column in row:
                    assert after[table][key][column] == row[column], (table, key, column)
    stale = warehouse.rows(
        """SELECT event_type, object_id FROM closeout_data.stripe_events
           WHERE cash_outcome = 'stale' AND event_type = 'payout.created'""")
    assert stale, "the payout's first event found it already paid or failed"


def test_the_events_dag_follows_the_cash_of_closeout_invoices(warehouse, stripe_sandbox, monkeypatch, run_dag) -> None:
    set_stripe_extra(monkeypatch, cash_reads_per_second=0)
    ids = seed_drafts({"a": [Decimal("3")], "b": [Decimal("5")]})
    payment_tasks.publish_drafts("publish")
    stripe_ids = dict(warehouse.rows(
        "SELECT invoice_id, stripe_invoice_id FROM closeout.invoices WHERE invoice_id = ANY(%s)", (ids,)))
    for invoice_id in ids:
        stripe_sandbox.pay_invoice(stripe_ids[invoice_id])
    stripe_sandbox.refund(stripe_ids[ids[0]], 5_000)
    dispute = stripe_sandbox.dispute(stripe_ids[ids[1]])
    stripe_sandbox.lose_dispute(dispute["id"])
    stripe_sandbox.advance_clock(3 * DAY)
    stripe_sandbox.run_payouts()
    stripe_sandbox.advance_clock(3 * DAY)
    stripe_sandbox.run_payouts()

    result = run_dag("closeout_stripe_events")
    assert result.state == "success", result
    assert result.task_states["sync_cash"] == "success"
    # every charge, refund, dispute and their balance transactions name the closeout invoice
    assert dict(warehouse.rows("SELECT invoice_id, count(*) FROM closeout.stripe_charges GROUP BY 1")) == {
        ids[0]: 1, ids[1]: 1}
    assert warehouse.rows("SELECT invoice_id, amount_minor FROM closeout.refunds") == [(ids[0], 5_000)]
    assert warehouse.rows("SELECT invoice_id, status FROM closeout.disputes") == [(ids[1], "lost")]
    unlinked = warehouse.rows(
        """SELECT balance_transaction_id, type FROM closeout.stripe_balance_transactions
           WHERE source_type IN ('charge', 'refund', 'dispute') AND invoice_id IS NULL""")
    assert unlinked == []
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_invoice_snapshots WHERE invoice_id = ANY(%s)",
                            (ids,)) == 2  # fmt: skip
    # the payout and what it carried
    assert warehouse.rows("SELECT status, reconciliation_status FROM closeout.stripe_payouts") == [
        ("paid", "completed")]
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_balance_transactions WHERE payout_id IS NULL") == 0
    runs = warehouse.rows("SELECT status FROM closeout.payment_runs WHERE step = 'sync_cash'")
    assert runs == [("success",)]
