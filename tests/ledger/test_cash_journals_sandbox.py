"""The cash leg's journals through the real chain: invoices published by closeout to the Stripe sandbox, paid by
card (one presented in EUR and settled in USD), refunded, disputed, charged a later Stripe fee and paid out to
the bank, Stripe's events and list endpoints read by closeout's cash sync, then the journals posted. After every
step the ledger's Stripe balance per settlement currency equals the sum of Stripe's balance transactions' net,
fees booked equal Stripe's fees, every journal balances per currency, and posting again posts nothing."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from closeout.ledger import tasks as ledger_tasks
from ledger_support import check_cash_invariants, follow_cash, lines_of, publish, role_balance, stripe_net
from payments_support import last_month

pytestmark = pytest.mark.integration


def _posts_nothing_again(warehouse) -> None:
    before = warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines")
    assert ledger_tasks.post_journals("again")["journals"] == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines") == before


def _kinds(warehouse) -> dict[str, int]:
    return dict(warehouse.rows("SELECT kind, count(*) FROM closeout.ledger_journals GROUP BY kind"))


def test_a_month_of_cash_through_the_sandbox_ties_the_ledger_to_stripe(warehouse, stripe_sandbox) -> None:
    """charge -> fee -> refund (closeout's, the Dashboard's, a credit note's, one that fails) -> disputes won and
    lost -> a later stripe_fee -> a EUR charge settled in USD refunded at another rate -> credit notes before and
    after payment, one voided -> the automatic payout created, then paid."""
    usd = publish(warehouse, {"a": [D("4")], "b": [D("3")], "d": [D("2")], "e": [D("6")], "f": [D("1")]})
    eur = publish(warehouse, {"c": [D("5")]}, currency="EUR", first_id=100)
    stripe_sandbox.set_settlement("eur", "usd", D("1.10"))
    for client, (_, sid, _) in (*usd.items(), *eur.items()):
        if client != "d":  # d stays open
            stripe_sandbox.pay_invoice(sid)
    follow_cash()
    kinds = _kinds(warehouse)
    assert kinds["payment"] == 5 and kinds["fee"] == 5 and kinds["fx_conversion"] == 1, kinds
    check_cash_invariants(warehouse)
    assert set(stripe_net(warehouse)) == {"USD"}, "the EUR charge is settled in USD"
    _posts_nothing_again(warehouse)

    charge = dict(warehouse.rows("SELECT invoice_id, charge_id FROM closeout.invoice_payments WHERE kind = 'payment'"))
    stripe_sandbox.refund(usd["a"][1], 1000)
    stripe_sandbox.refund_charge(charge[usd["a"][0]], 400, reason="duplicate")  # made in the Dashboard
    stripe_sandbox.refunds_pending(True)
    (failing,) = stripe_sandbox.refund(usd["a"][1], 300)
    stripe_sandbox.refunds_pending(False)
    won = stripe_sandbox.dispute(usd["b"][1])
    lost = stripe_sandbox.dispute(usd["f"][1])
    stripe_sandbox.add_stripe_fee(250, "usd")
    stripe_sandbox.set_settlement("eur", "usd", D("1.25"))
    stripe_sandbox.refund(eur["c"][1])
    pre = stripe_sandbox.dashboard_credit_note(usd["d"][1], amount=1000)
    stripe_sandbox.dashboard_credit_note(usd["e"][1], amount=1500, refund_amount=1000, credit_amount=500)
    follow_cash()
    kinds = _kinds(warehouse)
    assert (kinds["refund"], kinds["dispute"], kinds["credit_note"], kinds["fx_realised"]) == (5, 2, 2, 1), kinds
    check_cash_invariants(warehouse)
    total_c = eur["c"][2]
    assert role_balance(warehouse, "fx_gain_loss") == {"USD": round(total_c * D("1.25")) - round(total_c * D("1.10"))}
    assert role_balance(warehouse, "fx_clearing") == {}, "closed in both currencies once refunded in full"
    assert role_balance(warehouse, "dispute_fees") == {"USD": 3000}
    assert role_balance(warehouse, "customer_credit") == {"USD": -500}
    _posts_nothing_again(warehouse)

    stripe_sandbox.fail_refund(failing["id"])
    stripe_sandbox.win_dispute(won["id"])
    stripe_sandbox.lose_dispute(lost["id"])
    stripe_sandbox.void_credit_note(pre["id"])
    follow_cash()
    kinds = _kinds(warehouse)
    assert (kinds["refund_failure"], kinds["dispute_reinstatement"], kinds["credit_note_void"]) == (1, 1, 1), kinds
    assert role_balance(warehouse, "disputes") == {"USD": usd["f"][2]}, "the lost dispute stays booked"
    check_cash_invariants(warehouse)

    stripe_sandbox.run_payouts(now=stripe_sandbox.state.now() + 3 * 86400)
    follow_cash()
    (payout, amount) = warehouse.rows("SELECT payout_id, amount_minor FROM closeout.stripe_payouts")[0]
    assert _kinds(warehouse)["stripe_payout"] == 1 and role_balance(warehouse, "bank_clearing") == {"USD": amount}
    check_cash_invariants(warehouse)
    stripe_sandbox.run_payouts(now=stripe_sandbox.state.now() + 3 * 86400)
    follow_cash()
    assert warehouse.scalar("SELECT status FROM closeout.stripe_payouts WHERE payout_id = %s", (payout,)) == "paid"
    assert _kinds(warehouse)["stripe_payout_paid"] == 1
    assert role_balance(warehouse, "cash") == {"USD": amount} and role_balance(warehouse, "bank_clearing") == {}
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)


def test_a_customer_credit_used_on_the_next_invoice_settles_its_receivable(warehouse, stripe_sandbox) -> None:
    """A credit note's credit_amount goes to the customer's Stripe balance (customer_credit); Stripe applies it
    when the client's next invoice is finalised, so that invoice is paid by card with less than its total. The
    application is booked (customer_credit_applied: debit customer_credit, credit receivable, no cash), so the
    client's receivable is settled, the credit is used up and the ledger still ties to Stripe's balance."""
    first = publish(warehouse, {"a": [D("4")]})["a"]
    stripe_sandbox.pay_invoice(first[1])
    follow_cash()
    stripe_sandbox.dashboard_credit_note(first[1], amount=1000, credit_amount=1000)
    follow_cash()
    assert role_balance(warehouse, "customer_credit") == {"USD": -1000}
    second = publish(warehouse, {"a": [D("2")]}, first_id=50, period=last_month().replace(day=1) - timedelta(days=31))
    stripe_sandbox.pay_invoice(second["a"][1])
    follow_cash()
    assert warehouse.scalar("SELECT amount_paid_minor FROM closeout.invoices WHERE invoice_id = %s",
                            (second["a"][0],)) == second["a"][2] - 1000  # fmt: skip
    check_cash_invariants(warehouse)
    assert role_balance(warehouse, "customer_credit") == {}
    assert lines_of(warehouse, "customer_credit_applied", second["a"][0]) == (
        ("USD", "customer_credit", 1000, 0), ("USD", "receivable", 0, 1000))
    assert _kinds(warehouse)["payment"] == 2, "the card paid the rest; the credit is not a payment"
    _posts_nothing_again(warehouse)
