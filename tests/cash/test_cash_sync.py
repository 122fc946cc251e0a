"""closeout.payments.cash from Stripe's list endpoints, through the real SDK against the Stripe sandbox, into a
real warehouse: every balance transaction with its fee, FX rate, charge and payout; refunds, disputes won and
lost, automatic payouts and the transactions they carried, Stripe's own invoice list and balance; incremental
runs cost a page per 100 new objects plus a constant; status only moves forward; a kill resumes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cash_support import DAY, cash_tables, money_story, paid_invoice, sdk, set_stripe_extra, stripe_requests
from closeout.payments.cash import events as cash_events
from closeout.payments.cash import normalize
from closeout.payments.cash.store import Store
from closeout.payments.cash.sync import STREAM_NAMES, CashSync
from closeout.payments.hook import StripeHook
from closeout.warehouse.db import connect

pytestmark = pytest.mark.integration


@pytest.fixture
def unpaced(stripe_sandbox, monkeypatch):
    set_stripe_extra(monkeypatch, cash_reads_per_second=0)
    return stripe_sandbox


def _sync(**settings) -> dict:
    hook = StripeHook()
    with connect() as conn:
        sync = CashSync(conn, hook)
        if settings:
            sync.settings = type(sync.settings)(**{**sync.settings.__dict__, **settings})
        result = sync.run()
    return {**result.as_dict(), "hook_requests": hook.requests}


def test_full_sync_records_stripes_ledger(warehouse, unpaced) -> None:
    sandbox = unpaced
    story = money_story(sandbox)
    result = _sync()
    assert result["payouts_linked"] == 1

    # every balance transaction, as Stripe has it: settlement currency upper case, signed, net = amount - fee
    theirs = {t["id"]: t for t in sandbox.objects("balance_transaction")}
    ours = {r[0]: r[1:] for r in warehouse.rows(
        """SELECT balance_transaction_id, type, reporting_category, currency, amount_minor, fee_minor, net_minor,
                  exchange_rate, source_id, status, payout_id
           FROM closeout.stripe_balance_transactions""")}  # fmt: skip
    assert set(ours) == set(theirs)
    for tid, t in theirs.items():
        rate = None if t["exchange_rate"] is None else Decimal(repr(t["exchange_rate"]))
        assert ours[tid][:7] == (t["type"], t["reporting_category"], t["currency"].upper(), t["amount"], t["fee"],
                                 t["net"], rate), tid
        assert ours[tid][7:9] == (t["source"], t["status"]), tid

    # the automatic payout carried every transaction but its own... which it lists too (they net to zero)
    (payout,) = story.payouts
    carried = [t.id for t in sdk(sandbox).v1.balance_transactions.list(params={"payout": payout, "limit": 100}).data]
    assert {tid for tid, row in ours.items() if row[9] == payout} == set(carried)
    assert warehouse.rows("SELECT status, automatic, reconciliation_status, txn_count, amount_minor FROM "
                          "closeout.stripe_payouts") == [("paid", True, "completed", len(carried),
                                                           sandbox.get(payout)["amount"])]  # fmt: skip
    assert warehouse.scalar("SELECT sum(net_minor) FROM closeout.stripe_balance_transactions WHERE payout_id = %s",
                            (payout,)) == 0  # fmt: skip

    # the FX charge: settled in USD at 1.10, presented in EUR
    fx = warehouse.rows(
        """SELECT currency, amount_minor, exchange_rate, presentment_currency, presentment_amount_minor, charge_id
           FROM closeout.stripe_balance_transactions WHERE source_id = %s""",
        (story.fx.charge_id,),
    )
    assert fx == [("USD", 27_500, Decimal("1.1"), "EUR", 25_000, story.fx.charge_id)]

    # refunds, disputes (won and lost) with their transactions tied to the charge
    assert warehouse.rows("SELECT refund_id, charge_id, currency, amount_minor, status FROM closeout.refunds") == [
        (story.refund_ids[0], story.refunded.charge_id, "USD", 3_000, "succeeded")]
    disputes = dict(warehouse.rows("SELECT dispute_id, status FROM closeout.disputes"))
    assert disputes == {story.won: "won", story.lost: "lost"}
    assert warehouse.scalar("SELECT count(*) FROM closeout.disputes WHERE closed_at IS NULL") == 0
    by_dispute = warehouse.rows(
        """SELECT source_id, reporting_category, amount_minor, presentment_amount_minor, charge_id
           FROM closeout.stripe_balance_transactions WHERE source_type = 'dispute' ORDER BY source_id, amount_minor""")
    won_charge, lost_charge = story.paid[1].charge_id, story.paid[2].charge_id
    assert by_dispute == sorted([
        (story.won, "dispute", -11_000, -11_000, won_charge),
        (story.won, "dispute_reversal", 11_000, 11_000, won_charge),
        (story.lost, "dispute", -12_000, -12_000, lost_charge)])  # fmt: skip
    assert warehouse.scalar(
        """SELECT charge_id FROM closeout.stripe_balance_transactions WHERE source_id = %s""", (story.refund_ids[0],)
    ) == story.refunded.charge_id

    # charges know their Stripe invoice through its invoice payment; Stripe's whole invoice list is kept
    charges = dict(warehouse.rows("SELECT charge_id, stripe_invoice_id FROM closeout.stripe_charges"))
    assert charges == {p.charge_id: p.invoice_id for p in [*story.paid, story.fx]}
    assert warehouse.scalar("SELECT amount_refunded_minor FROM closeout.stripe_charges WHERE charge_id = %s",
                            (story.refunded.charge_id,)) == 3_000  # fmt: skip
    assert {r[0] for r in warehouse.rows("SELECT stripe_invoice_id FROM closeout.stripe_invoice_snapshots")} == {
        i["id"] for i in sandbox.objects("invoice")}

    # Stripe's balance, and it is the sum of the transactions' net per currency
    balance = sandbox.balance()
    assert warehouse.rows("SELECT currency, available_minor, pending_minor FROM closeout.stripe_balances") == [
        (b["currency"].upper(), b["amount"], p["amount"])
        for b, p in zip(balance["available"], balance["pending"], strict=True)]
    assert warehouse.rows(
        "SELECT currency, sum(net_minor) FROM closeout.stripe_balance_transactions GROUP BY 1 ORDER BY 1") == [
        (r[0], r[1] + r[2]) for r in warehouse.rows("SELECT currency, available_minor, pending_minor "
                                                   "FROM closeout.stripe_balances ORDER BY 1")]  # fmt: skip

    # a second run changes nothing (Stripe's invoice list only records that it saw them again) and costs one
    # request per stream, plus the balance
    before = cash_tables(warehouse)
    again = _sync()
    assert sum(n for stream, n in again["written"].items() if stream != "invoices") == 0
    assert again["payouts_linked"] == 0 and again["linked"] == 0
    assert cash_tables(warehouse) == before
    assert again["hook_requests"] <= len(STREAM_NAMES) + 1


def test_incremental_sync_costs_a_page_per_100_new_transactions(warehouse, unpaced) -> None:
    sandbox = unpaced
    money_story(sandbox)
    _sync()
    sandbox.advance_clock(DAY)
    new = 437
    for i in range(new):
        sandbox.add_stripe_fee(10 + i, "usd", f"usage {i}")
    # the overlap window (late-created objects) re-reads what was created in its last 600 s: part of the constant
    overlapped = warehouse.scalar(
        """SELECT count(*) FROM closeout.stripe_balance_transactions
           WHERE created_at >= (SELECT to_timestamp(last_created - 600) FROM closeout.stripe_cash_cursors
                                WHERE stream = 'balance_transactions')""")  # fmt: skip
    assert overlapped < 100
    sandbox.reset_stats()
    result = _sync()
    pages = math.ceil(new / 100)
    assert result["listed"]["balance_transactions"] == new + overlapped
    assert result["requests"]["balance_transactions"] == math.ceil((new + overlapped) / 100) <= pages + 1, result
    # the rest of the constant: one request for each other stream and one for the balance
    assert result["hook_requests"] == result["requests"]["balance_transactions"] + len(STREAM_NAMES) - 1 + 1, result
    assert stripe_requests(sandbox) == result["hook_requests"]
    assert stripe_requests(sandbox, "/v1/balance_transactions") == result["requests"]["balance_transactions"]
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_balance_transactions WHERE type = 'stripe_fee'") \
        == new + 1


def test_status_moves_forward_with_stripe_and_never_back(warehouse, unpaced) -> None:
    sandbox = unpaced
    client = sdk(sandbox)
    paid = paid_invoice(sandbox, client, 40_000)
    sandbox.refunds_pending(True)
    refund = client.v1.refunds.create(params={"charge": paid.charge_id, "amount": 5_000})
    _sync()
    assert warehouse.rows("SELECT status FROM closeout.refunds") == [("pending",)]
    charge_txn = warehouse.rows("SELECT status, payout_id FROM closeout.stripe_balance_transactions "
                                "WHERE source_id = %s", (paid.charge_id,))  # fmt: skip
    assert charge_txn == [("pending", None)]

    sandbox.settle_refund(refund.id)
    sandbox.advance_clock(3 * DAY)  # the charge's funds become available; the payout sweeps them
    (payout,) = sandbox.run_payouts()
    result = _sync()
    assert warehouse.rows("SELECT status FROM closeout.refunds") == [("succeeded",)]
    assert warehouse.rows("SELECT status, reconciliation_status, txns_linked_at IS NULL FROM closeout.stripe_payouts") \
        == [("pending", "in_progress", True)]
    assert warehouse.scalar("SELECT status FROM closeout.stripe_balance_transactions WHERE source_id = %s",
                            (paid.charge_id,)) == "available"  # fmt: skip
    assert result["payouts_linked"] == 0

    sandbox.advance_clock(3 * DAY)
    sandbox.run_payouts()
    result = _sync()
    assert result["payouts_linked"] == 1
    assert warehouse.rows("SELECT status, reconciliation_status FROM closeout.stripe_payouts") == [
        ("paid", "completed")]
    assert warehouse.scalar("SELECT payout_id FROM closeout.stripe_balance_transactions WHERE source_id = %s",
                            (paid.charge_id,)) == payout["id"]  # fmt: skip

    # an old snapshot (the payout as first listed, pending), read again now, never moves the row back
    stale = normalize.payout({**payout, "status": "pending", "reconciliation_status": "in_progress"}, datetime.now(UTC))
    with connect() as conn:
        assert Store(conn).upsert("payout", [stale]) == 0
        conn.commit()
    assert warehouse.rows("SELECT status, reconciliation_status FROM closeout.stripe_payouts") == [
        ("paid", "completed")]


def test_a_failed_refund_and_a_failed_payout_are_followed(warehouse, unpaced) -> None:
    sandbox = unpaced
    client = sdk(sandbox)
    paid = paid_invoice(sandbox, client, 20_000)
    refund = client.v1.refunds.create(params={"charge": paid.charge_id, "amount": 2_000})
    sandbox.advance_clock(3 * DAY)
    (payout,) = sandbox.run_payouts()
    _sync()
    sandbox.fail_refund(refund.id)
    sandbox.fail_payout(payout["id"])
    _sync()
    assert warehouse.rows("SELECT status, failure_balance_transaction_id IS NOT NULL FROM closeout.refunds") == [
        ("failed", True)]
    assert warehouse.rows("SELECT status, failure_code, failure_balance_transaction_id IS NOT NULL "
                          "FROM closeout.stripe_payouts") == [("failed", "account_closed", True)]  # fmt: skip
    categories = dict(warehouse.rows("SELECT reporting_category, count(*) FROM closeout.stripe_balance_transactions "
                                     "GROUP BY 1"))  # fmt: skip
    assert categories["refund_failure"] == 1 and categories["payout_reversal"] == 1


def test_a_kill_mid_sync_resumes_where_it_stopped(warehouse, unpaced) -> None:
    sandbox = unpaced
    for i in range(1_050):
        sandbox.add_stripe_fee(1 + i, "usd", f"usage {i}")

    class Killed(RuntimeError):
        pass

    seen = []

    def kill_after_four(stream: str, page) -> None:
        if stream == "balance_transactions":
            seen.append(page)
            if len(seen) == 4:
                raise Killed("worker lost")

    hook = StripeHook()
    with connect() as conn:
        sync = CashSync(conn, hook, on_page=kill_after_four)
        sync.settings = type(sync.settings)(**{**sync.settings.__dict__, "flush_rows": 100})
        with pytest.raises(Killed):
            sync.run()
    stored = warehouse.scalar("SELECT count(*) FROM closeout.stripe_balance_transactions")
    assert stored == 400, "every page handed on was committed with its cursor"
    state = warehouse.scalar("SELECT state -> 'incremental' ->> 'starting_after' FROM closeout.stripe_cash_cursors "
                             "WHERE stream = 'balance_transactions'")  # fmt: skip
    assert state == seen[-1].last_id

    sandbox.reset_stats()
    result = _sync()
    assert result["requests"]["balance_transactions"] == 7, "the rest: 650 more, not all 1,050 again"
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_balance_transactions") == 1_050
    assert warehouse.scalar("SELECT count(DISTINCT balance_transaction_id) FROM closeout.stripe_balance_transactions"
                            " WHERE type = 'stripe_fee'") == 1_050  # fmt: skip
    assert warehouse.scalar("SELECT state -> 'incremental' FROM closeout.stripe_cash_cursors "
                            "WHERE stream = 'balance_transactions'") is None, "the pass is complete"


def test_a_rate_limit_waits_and_never_fails(warehouse, unpaced) -> None:
    sandbox = unpaced
    money_story(sandbox, invoices=3)
    sandbox.inject("rate_limit", times=3, path_prefix="/v1/balance_transactions", delay=1)
    result = _sync()
    assert result["rate_limited"] == 3
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_balance_transactions") == \
        sandbox.count("balance_transaction")


def test_pacing_spaces_requests(warehouse, stripe_sandbox, monkeypatch) -> None:
    set_stripe_extra(monkeypatch, cash_reads_per_second=20)
    started = time.perf_counter()
    result = _sync()
    elapsed = time.perf_counter() - started
    assert elapsed >= (result["hook_requests"] - 1) / 20 * 0.9, (elapsed, result["hook_requests"])


def test_credit_notes_are_captured_with_their_split_and_void(warehouse, unpaced) -> None:
    sandbox = unpaced
    client = sdk(sandbox)
    paid = paid_invoice(sandbox, client, 30_000)
    # after payment: 5,000 refunded to the card, 2,000 to the customer's balance, 1,000 settled out of band
    after = client.v1.credit_notes.create(params={"invoice": paid.invoice_id, "amount": 8_000, "refund_amount": 5_000,
                                                  "credit_amount": 2_000, "out_of_band_amount": 1_000,
                                                  "reason": "order_change", "memo": "two days not worked",
                                                  "metadata": {"closeout_correction": "c-1"}})  # fmt: skip
    # before payment: it only reduces what is due
    customer = client.v1.customers.create(params={"name": "Open Ltd"})
    draft = client.v1.invoices.create(params={"customer": customer.id, "currency": "usd",
                                              "collection_method": "send_invoice", "days_until_due": 30})  # fmt: skip
    client.v1.invoice_items.create(params={"customer": customer.id, "invoice": draft.id, "amount": 12_000})
    client.v1.invoices.finalize_invoice(draft.id)
    before = client.v1.credit_notes.create(params={"invoice": draft.id, "amount": 4_000})
    _sync()
    notes = {r[0]: r[1:] for r in warehouse.rows(
        """SELECT credit_note_id, stripe_invoice_id, currency, amount_minor, pre_payment_amount_minor,
                  post_payment_amount_minor, refund_amount_minor, credit_amount_minor, out_of_band_amount_minor,
                  status, memo, metadata ->> 'closeout_correction', cardinality(refund_ids)
           FROM closeout.credit_notes""")}  # fmt: skip
    assert notes == {
        after.id: (paid.invoice_id, "USD", 8_000, 0, 8_000, 5_000, 2_000, 1_000, "issued", "two days not worked",
                   "c-1", 1),
        before.id: (draft.id, "USD", 4_000, 4_000, 0, 0, 0, 0, "issued", None, None, 0),
    }
    # the refund the credit note made names it, and is a refund of the card payment like any other
    assert warehouse.rows("SELECT credit_note_id, charge_id, amount_minor FROM closeout.refunds") == [
        (after.id, paid.charge_id, 5_000)]
    assert warehouse.scalar("SELECT post_payment_credit_notes_amount_minor FROM closeout.stripe_invoice_snapshots "
                            "WHERE stripe_invoice_id = %s", (paid.invoice_id,)) == 8_000  # fmt: skip

    client.v1.credit_notes.void_credit_note(before.id)
    # a void arrives as an event (the list is read by creation time): the events step applies it
    voided = [e for e in sandbox.events() if e["type"] == "credit_note.voided"]
    with connect() as conn:
        conn.execute(
            """INSERT INTO closeout_data.stripe_events (event_id, event_type, created_at, object_type, object_id, body,
                   received_via) VALUES (%s, %s, to_timestamp(%s), 'credit_note', %s, %s, 'webhook')""",
            (voided[0]["id"], voided[0]["type"], voided[0]["created"], before.id, json.dumps(voided[0])),
        )
        assert cash_events.apply(conn)["applied"] == 1
        conn.commit()
    assert warehouse.rows("SELECT status, voided_at IS NOT NULL FROM closeout.credit_notes WHERE credit_note_id = %s",
                          (before.id,)) == [("void", True)]  # fmt: skip


def test_a_sync_killed_with_sigkill_resumes_to_the_same_tables(warehouse, unpaced, monkeypatch) -> None:
    """The worker process dies outright (SIGKILL, no cleanup) mid-listing; the next run finishes the job."""
    sandbox = unpaced
    for i in range(1_500):
        sandbox.add_stripe_fee(1 + i, "usd", f"usage {i}")
    # slow enough to be caught mid-way: 20 pages a second, a commit every page
    set_stripe_extra(monkeypatch, cash_reads_per_second=20, cash_flush_rows=100)
    code = ("from closeout.payments.cash.sync import CashSync\n"
            "from closeout.payments.hook import StripeHook\n"
            "from closeout.warehouse.db import connect\n"
            "with connect() as conn:\n    CashSync(conn, StripeHook()).run()\n")
    child = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stored = warehouse.scalar("SELECT count(*) FROM closeout.stripe_balance_transactions")
        if stored >= 500:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    stored = warehouse.scalar("SELECT count(*) FROM closeout.stripe_balance_transactions")
    assert 500 <= stored < 1_500, stored
    assert warehouse.scalar("SELECT state -> 'incremental' ->> 'starting_after' FROM closeout.stripe_cash_cursors "
                            "WHERE stream = 'balance_transactions'") is not None  # fmt: skip

    set_stripe_extra(monkeypatch, cash_reads_per_second=0)
    _sync()
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_balance_transactions") == 1_500
    ours = warehouse.rows("SELECT balance_transaction_id FROM closeout.stripe_balance_transactions")
    assert sorted(r[0] for r in ours) == sorted(t["id"] for t in sandbox.objects("balance_transaction"))
