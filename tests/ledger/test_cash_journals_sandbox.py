"""The cash leg's journals through the real chain: invoices published by closeout to the Stripe sandbox, paid by
card (one presented in EUR and settled in USD), refunded, disputed, charged a later Stripe fee and paid out to
the bank, Stripe's events and list endpoints read by closeout's cash sync, then the journals posted. After every
step the ledger's Stripe balance per settlement currency equals the sum of Stripe's balance transactions' net,
fees booked equal Stripe's fees, every journal balances per currency, and posting again posts nothing."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from closeout.ledger import tasks as ledger_tasks
from ledger_support import check_cash_invariants, follow_cash, publish, role_balance, stripe_net

pytestmark = pytest.mark.integration


def _posts_nothing_again(warehouse) -> None:
    before = warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines")
    assert ledger_tasks.post_journals("again")["journals"] == 0
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_lines") == before


def _kinds(warehouse) -> dict[str, int]:
    return dict(warehouse.rows("SELECT kind, count(*) FROM closeout.ledger_journals GROUP BY kind"))


def test_a_month_of_cash_through_the_sandbox_ties_the_ledger_to_stripe(warehouse, stripe_sandbox) -> None:
    usd = publish(warehouse, {"a": [D("4")], "b": [D("3")]})
    eur = publish(warehouse, {"c": [D("5")]}, currency="EUR", first_id=100)
    stripe_sandbox.set_settlement("eur", "usd", D("1.10"))
    for _, sid, _ in (*usd.values(), *eur.values()):
        stripe_sandbox.pay_invoice(sid)
    follow_cash()
    kinds = _kinds(warehouse)
    assert kinds["payment"] == 3 and kinds["fee"] == 3 and kinds["fx_conversion"] == 1, kinds
    check_cash_invariants(warehouse)
    assert set(stripe_net(warehouse)) == {"USD"}
    _posts_nothing_again(warehouse)

    stripe_sandbox.refund(usd["a"][1], 1000)
    dispute = stripe_sandbox.dispute(usd["b"][1])
    stripe_sandbox.add_stripe_fee(250, "usd")
    stripe_sandbox.set_settlement("eur", "usd", D("1.25"))
    stripe_sandbox.refund(eur["c"][1])
    follow_cash()
    kinds = _kinds(warehouse)
    assert kinds["refund"] == 2 and kinds["dispute"] == 1 and kinds["fx_realised"] == 1, kinds
    check_cash_invariants(warehouse)
    total_c = eur["c"][2]
    assert role_balance(warehouse, "fx_gain_loss") == {"USD": round(total_c * D("1.25")) - round(total_c * D("1.10"))}
    assert role_balance(warehouse, "fx_clearing") == {}, "closed in both currencies once refunded in full"
    _posts_nothing_again(warehouse)

    stripe_sandbox.win_dispute(dispute["id"])
    follow_cash()
    assert _kinds(warehouse)["dispute_reinstatement"] == 1
    check_cash_invariants(warehouse)

    stripe_sandbox.run_payouts(now=stripe_sandbox.state.now() + 3 * 86400)
    follow_cash()
    assert _kinds(warehouse)["stripe_payout"] == 1
    check_cash_invariants(warehouse)
    _posts_nothing_again(warehouse)
