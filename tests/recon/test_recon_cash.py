"""The four checks against Stripe itself (issue 13 item 5) over a month made by closeout's own flow and the Stripe
sandbox: invoices published, paid by card (fees), part of one refunded, a later Stripe fee, an automatic payout
swept to the bank; the events applied, Stripe's lists read by the cash sync, the journals posted. Every check is
green on that; then one natural break per case, each failing exactly its own check with its evidence, and a
per-currency tolerance. Before Stripe's lists are read, the four are not applicable, with the reason."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.ledger import tasks as ledger_tasks
from closeout.payments import tasks as payment_tasks
from closeout.recon import run_reconciliation
from closeout.recon.cash import run_cash_checks
from closeout.recon.checks import CASH_CHECKS
from closeout.warehouse.db import connect
from payments_support import last_month

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
import ledger_support

pytestmark = pytest.mark.integration

books = ledger_support.books  # three invoices published, a paid in full, b in part, journals posted (no cash sync)

REFUNDED = 5_000
LATER_FEE = 700


def follow_cash(run: str = "recon-cash") -> None:
    """What closeout_stripe_events does: Stripe's events in and applied, the cash sync (Stripe's own lists), the
    journals."""
    from closeout.payments.cash import tasks as cash_tasks

    payment_tasks.collect_events(run)
    payment_tasks.apply_events(run)
    cash_tasks.sync_cash(run)
    ledger_tasks.post_journals(run)


def sync_only(run: str = "recon-cash-sync") -> None:
    """Events and Stripe's lists recorded, and no posting after them (a posting step that did not run or missed)."""
    from closeout.payments.cash import tasks as cash_tasks

    payment_tasks.collect_events(run)
    payment_tasks.apply_events(run)
    cash_tasks.sync_cash(run)


def _run(tmp_path, **kwargs):
    with connect() as conn:
        return run_reconciliation(conn, data_docs_dir=tmp_path / "docs", **kwargs)


def _failed(result) -> set[str]:
    return {c.check_name for c in result.checks if c.status in ("failed", "error")}


def _cash_statuses(result) -> dict[str, str]:
    return {c.check_name: c.status for c in result.checks if c.check_name in CASH_CHECKS}


def _rows(result, check: str) -> list[tuple[str, str, int]]:
    return sorted((r["kind"], r["item"], r["difference_minor"]) for r in result.by_name()[check].evidence["rows"])


@pytest.fixture
def month(warehouse, stripe_sandbox, books):
    """The books' month followed into cash: a refund of 50.00 on a's charge, b paid in full, a later Stripe fee,
    the available balance swept into an automatic payout that reached the bank; Stripe's lists read, journals
    posted."""
    stripe_sandbox.set_availability_delay(0)
    stripe_sandbox.pay_invoice(books["b"][1])
    stripe_sandbox.refund(books["a"][1], REFUNDED)
    stripe_sandbox.add_stripe_fee(LATER_FEE, "usd")
    follow_cash()
    [payout] = stripe_sandbox.run_payouts()
    stripe_sandbox.settle_payout(payout["id"])
    follow_cash()
    return {**books, "payout": payout["id"]}


def test_before_stripes_lists_are_read_the_cash_checks_are_not_applicable(warehouse, books, tmp_path) -> None:
    result = _run(tmp_path)
    assert _cash_statuses(result) == dict.fromkeys(CASH_CHECKS, "not_applicable")
    for name in CASH_CHECKS:
        assert "have not been read completely yet" in result.by_name()[name].evidence["reason"]
    assert result.status == "passed", [(c.check_name, c.status, c.evidence) for c in result.checks]


def test_a_month_in_cash_is_green_on_every_check(warehouse, month, stripe_sandbox, tmp_path) -> None:
    # what the month holds, from Stripe's own lists: charges with fees, a refund, a later fee, a paid payout
    kinds = dict(warehouse.rows("SELECT type, count(*) FROM closeout.stripe_balance_transactions GROUP BY 1"))
    assert kinds.get("charge", 0) + kinds.get("payment", 0) >= 2 and kinds["refund"] == 1, kinds
    assert kinds["stripe_fee"] == 1 and kinds["payout"] == 1, kinds
    paid = warehouse.scalar("SELECT status FROM closeout.stripe_payouts WHERE payout_id = %s", (month["payout"],))
    assert paid == "paid"
    result = _run(tmp_path)
    assert _failed(result) == set(), [(c.check_name, c.status, c.evidence) for c in result.checks]
    assert _cash_statuses(result) == dict.fromkeys(CASH_CHECKS, "passed")
    # the same verdicts from the cash checks on their own (the benchmark's entry point), with their SQL timed
    with connect() as conn:
        cash = run_cash_checks(conn, data_docs_dir=tmp_path / "docs")
    assert _cash_statuses(cash) == dict.fromkeys(CASH_CHECKS, "passed")
    assert set(cash.timings["checks"]) == set(CASH_CHECKS)
    # the two sides the checks compare, by hand: Stripe's balance is the sum of net, and the ledger holds it
    stripe = dict(warehouse.rows("SELECT currency, sum(net_minor) FROM closeout.stripe_balance_transactions "
                                 "GROUP BY 1"))  # fmt: skip
    ledger = dict(warehouse.rows("SELECT currency, sum(debit_minor - credit_minor) FROM closeout.ledger_lines "
                                 "WHERE role = 'cash_clearing' GROUP BY 1"))  # fmt: skip
    assert {c: int(v) for c, v in ledger.items() if v} == {c: int(v) for c, v in stripe.items() if v}


def test_a_stripe_fee_left_unbooked_fails_stripe_fees_only(warehouse, month, stripe_sandbox, tmp_path) -> None:
    """Stripe takes another fee; it is listed, and no posting books it: a fee not booked, and the balance's other
    movements still agree (the fee is stripe_fees' part of the balance)."""
    txn = stripe_sandbox.add_stripe_fee(250, "usd")
    sync_only()
    result = _run(tmp_path)
    assert _failed(result) == {"stripe_fees"}, _cash_statuses(result)
    assert _rows(result, "stripe_fees") == [("fee_not_booked", f"{txn['id']} (fee)", 250)]
    # a fee with no journal at all is structural: no tolerance absorbs it
    loose = {"checks": {"stripe_fees": {"currencies": {"USD": 100_000}}}}
    assert _cash_statuses(_run(tmp_path, tolerance_overrides=loose))["stripe_fees"] == "failed"
    ledger_tasks.post_journals("recon-cash-late")  # booked: green again
    assert _failed(_run(tmp_path)) == set()


def test_a_refund_left_unbooked_fails_stripe_balance_only(warehouse, month, stripe_sandbox, tmp_path) -> None:
    """Someone refunds 20.00 of a's charge in the Dashboard: Stripe lists it, linked to a's invoice through its
    charge (so closeout knows it), and no posting books it: the Stripe balance moved and the ledger's did not."""
    charge = warehouse.scalar("SELECT charge_id FROM closeout.stripe_charges WHERE invoice_id = %s", (month["a"][0],))
    refund = stripe_sandbox.refund_charge(charge, 2_000, reason="requested_by_customer")
    sync_only()
    result = _run(tmp_path)
    assert _failed(result) == {"stripe_balance"}, _cash_statuses(result)
    [(kind, item, difference)] = _rows(result, "stripe_balance")
    assert (kind, item, difference) == ("balance", "USD", -2_000)
    # an amount: a per-currency tolerance of 20.00 USD absorbs it, 19.99 does not, another currency's does nothing
    loose = {"checks": {"stripe_balance": {"currencies": {"USD": 2_000}}}}
    assert _cash_statuses(_run(tmp_path, tolerance_overrides=loose))["stripe_balance"] == "passed"
    tight = {"checks": {"stripe_balance": {"currencies": {"USD": 1_999, "EUR": 100_000}}}}
    assert _cash_statuses(_run(tmp_path, tolerance_overrides=tight))["stripe_balance"] == "failed"
    assert warehouse.scalar("SELECT invoice_id FROM closeout.refunds WHERE refund_id = %s", (refund["id"],)) \
        == month["a"][0]  # fmt: skip
    ledger_tasks.post_journals("recon-cash-late")
    assert _failed(_run(tmp_path)) == set()


def test_a_payout_not_booked_fails_stripe_payouts_only(warehouse, month, stripe_sandbox, tmp_path) -> None:
    """c pays (booked), and the balance is swept into a second automatic payout that Stripe lists and no posting
    books: its money left the Stripe balance for the bank, and the ledger never moved it."""
    stripe_sandbox.pay_invoice(month["c"][1])
    follow_cash()
    [payout] = stripe_sandbox.run_payouts()
    stripe_sandbox.settle_payout(payout["id"])
    sync_only()
    result = _run(tmp_path)
    assert _failed(result) == {"stripe_payouts"}, _cash_statuses(result)
    # neither its leaving the Stripe balance nor its arrival in the bank is booked
    assert _rows(result, "stripe_payouts") == [("payout_not_booked", payout["id"], payout["amount"]),
                                               ("payout_not_in_bank", payout["id"], payout["amount"])]
    ledger_tasks.post_journals("recon-cash-late")
    assert _failed(_run(tmp_path)) == set()


def test_a_payout_whose_transactions_do_not_add_up_fails_stripe_payouts_only(warehouse, month, tmp_path) -> None:
    """The transactions listed for the automatic payout lose one (a page the ?payout= listing never stored): the
    payout no longer equals what it carried. Nothing else moved."""
    txn, net = warehouse.rows(
        """SELECT balance_transaction_id, net_minor FROM closeout.stripe_balance_transactions
           WHERE payout_id = %s AND type = 'stripe_fee'""", (month["payout"],))[0]  # fmt: skip
    with connect() as conn:
        conn.execute("UPDATE closeout_data.stripe_balance_transactions SET payout_id = NULL "
                     "WHERE balance_transaction_id = %s", (txn,))  # fmt: skip
        conn.commit()
    result = _run(tmp_path)
    assert _failed(result) == {"stripe_payouts"}, _cash_statuses(result)
    assert _rows(result, "stripe_payouts") == [("payout_vs_transactions", month["payout"], -net)]


def test_an_invoice_made_in_the_dashboard_and_paid_fails_stripe_objects_only(warehouse, month, stripe_sandbox,
                                                                              tmp_path) -> None:  # fmt: skip
    """Someone invoices a customer by hand in the Stripe Dashboard, credits 10.00 of it, the customer pays the rest
    and part is refunded: closeout never made that invoice, so it knows neither it, the credit note nor the refund.
    stripe_objects names all three by their Stripe ids; their money in the balance is left to it (stripe_balance
    stays green), and Stripe's fee on the charge is booked like every fee."""
    invoice = stripe_sandbox.dashboard_invoice([("Rush job", 12_000)])
    credit_note = stripe_sandbox.dashboard_credit_note(invoice["id"], amount=1_000)  # before payment: owes 110.00
    stripe_sandbox.pay_invoice(invoice["id"])
    [refund] = stripe_sandbox.refund(invoice["id"], 3_000)
    follow_cash()
    result = _run(tmp_path)
    assert _failed(result) == {"stripe_objects"}, _cash_statuses(result)
    assert _rows(result, "stripe_objects") == [("credit_note_unknown", credit_note["id"], 1_000),
                                               ("invoice_unknown", invoice["id"], 12_000),
                                               ("refund_unknown", refund["id"], 3_000)]
    alert_rows = result.by_name()["stripe_objects"].evidence["rows"]
    assert {r["currency"] for r in alert_rows} == {"USD"}
    # a close of last month judges what Stripe held at its end: the invoice was made this month, nothing differs
    month_before = _run(tmp_path, period=last_month().strftime("%Y-%m"))
    assert _failed(month_before) == set() and _cash_statuses(month_before) == dict.fromkeys(CASH_CHECKS, "passed")
    # this month's close reports it
    this_month = _run(tmp_path, period=datetime.now(UTC).strftime("%Y-%m"))
    assert _failed(this_month) == {"stripe_objects"} and _rows(this_month, "stripe_objects") == _rows(result,
                                                                                                      "stripe_objects")
    # without stripe_objects in the run, the unbooked money is the balance's to report: nothing goes unreported
    with connect() as conn:
        alone = run_reconciliation(conn, data_docs_dir=tmp_path / "docs",
                                   checks=tuple(c for c in _checks() if c.name == "stripe_balance"))  # fmt: skip
    assert alone.by_name()["stripe_balance"].status == "failed"
    assert [r["difference_minor"] for r in alone.by_name()["stripe_balance"].evidence["rows"]] == [11_000 - 3_000]


def test_an_invoice_closeout_holds_that_stripe_does_not_list_fails_stripe_objects(warehouse, month, tmp_path) -> None:
    """Stripe's list lost one of closeout's invoices (it was deleted or belongs to another account): reported with
    closeout's invoice id and the Stripe id it should have."""
    iid, sid, total = month["c"]
    with connect() as conn:
        conn.execute("DELETE FROM closeout_data.stripe_invoice_snapshots WHERE stripe_invoice_id = %s", (sid,))
        conn.commit()
    result = _run(tmp_path)
    assert _failed(result) == {"stripe_objects"}, _cash_statuses(result)
    assert _rows(result, "stripe_objects") == [("invoice_missing_in_stripe", f"{iid} ({sid})", -total)]


def _checks():
    from closeout.recon.checks import CHECKS

    return CHECKS


def test_a_foreign_payment_disputes_won_and_lost_stay_green_on_the_cash_checks(warehouse, stripe_sandbox,
                                                                                tmp_path) -> None:  # fmt: skip
    """EUR invoices settled in USD, one dispute lost and one won (the dispute fee stays): Stripe's balance, fees and
    objects all tie out with the ledger, per settlement currency."""
    inv = ledger_support.publish(warehouse, {"e": [D("2")], "f": [D("1")], "g": [D("3")]}, currency="EUR")
    payment_tasks.collect_events("fx")
    payment_tasks.apply_events("fx")
    ledger_tasks.post_journals("fx")
    for client in "efg":
        stripe_sandbox.pay_invoice_by_card(inv[client][1], settlement_currency="usd", rate="1.0825")
    lost = stripe_sandbox.dispute(inv["e"][1])
    won = stripe_sandbox.dispute(inv["f"][1])
    follow_cash()
    stripe_sandbox.lose_dispute(lost["id"])
    stripe_sandbox.win_dispute(won["id"])
    follow_cash()
    settled = {r[0] for r in warehouse.rows("SELECT DISTINCT currency FROM closeout.stripe_balance_transactions")}
    assert settled == {"USD"}
    with connect() as conn:
        result = run_cash_checks(conn, data_docs_dir=tmp_path / "docs")
    assert _cash_statuses(result) == dict.fromkeys(CASH_CHECKS, "passed"), [
        (c.check_name, c.evidence) for c in result.checks]  # fmt: skip


def test_a_list_is_complete_through_stripes_clock_at_the_pass_not_only_its_newest_object(
        warehouse, books, stripe_sandbox, tmp_path) -> None:  # fmt: skip
    """The last invoice of a month is finalized after the newest invoice Stripe will ever list was created (here:
    ten seconds of Stripe's clock pass before the sync); Stripe's ``Date`` on the pass says the list covers it,
    so a missing invoice is judged at once and not only when some later invoice comes along."""
    newest = warehouse.scalar("SELECT max(created_at) FROM closeout_data.stripe_invoice_snapshots")
    stripe_sandbox.advance_clock(10)
    before = stripe_sandbox.now()
    follow_cash()
    until = warehouse.scalar("SELECT listed_until FROM closeout.stripe_listed WHERE stream = 'invoices'")
    assert until >= datetime.fromtimestamp(before - 1, UTC), (until, before)
    assert newest is None or until > newest
    iid, sid, total = books["c"]
    with connect() as conn:
        conn.execute("DELETE FROM closeout_data.stripe_invoice_snapshots WHERE stripe_invoice_id = %s", (sid,))
        conn.commit()
    result = _run(tmp_path)
    assert ("invoice_missing_in_stripe", f"{iid} ({sid})", -total) in _rows(result, "stripe_objects")
