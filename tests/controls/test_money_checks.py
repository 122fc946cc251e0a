"""Money checks at every exit (issue 15 item 5), through real Postgres and the Stripe sandbox: a hold opened
mid-release stops the rest of that release; the gate wants a green reconciliation covering the paid work's
billing period; a payee currency Stripe reads with another minor unit is refused; cost rates are exact."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal as D

import controls_support  # noqa: F401 - puts the payouts and gate helpers on sys.path
import pytest
from closeout.gate.holds import open_hold, release_hold
from closeout.payouts import config, tasks
from closeout.warehouse.db import connect
from payments_support import last_month
from payouts_support import check_invariant_6, green_recon, items, pay, payees_file, seed_invoices

pytestmark = pytest.mark.integration

WORK = {c: [("u1", D("1.00")), ("u2", D("2.00"))] for c in "ab"}  # four items: two payees on two invoices


@pytest.fixture
def paid(warehouse, stripe_sandbox, tmp_path, monkeypatch):
    path = payees_file(tmp_path, {"u1": ("50.00", "USD", "acct_1U1Ctl"), "u2": ("40.00", "EUR", "acct_1U2Ctl")})
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(path))
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, list(WORK))
    return invoices


def test_a_hold_opened_mid_release_stops_the_rest_of_that_release(warehouse, stripe_sandbox, paid):
    green_recon()
    tasks.check_gate("t")
    batches = tasks.plan_payouts("t")["awaiting_approval"]
    # the second transfer is slow; a reconciliation opens a hold (its own connection) once the first is made
    stripe_sandbox.inject("slow", times=1, path_prefix="/v1/transfers", after=1, delay=3.0)
    opened: list[int] = []

    def reconciliation_breaches() -> None:
        deadline = time.monotonic() + 60
        while stripe_sandbox.count("transfer") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        with connect() as conn:
            hold, _ = open_hold(conn, recon_run_id="recon-mid", check_name="stripe_balance", period=None,
                                reason="balance differs mid-release")  # fmt: skip
            opened.append(hold.hold_id)

    breach = threading.Thread(target=reconciliation_breaches)
    breach.start()
    with pytest.raises(tasks.PayoutsRefusedUnderHold, match="opened during the release: 2 transfers not sent"):
        tasks.release_batches("t", batches)
    breach.join(10)
    assert opened
    assert stripe_sandbox.count("transfer") == 2  # the first, and the one already on its way when the hold came
    assert sorted(v[2] for v in items(warehouse).values()) == ["pending", "pending", "transferred", "transferred"]
    status, reason = warehouse.rows("SELECT status, reason FROM closeout.payout_runs WHERE step = 'release'")[0]
    assert status == "refused" and f"payout hold {opened[0]}" in reason

    with connect() as conn:  # the hold is released by finance (tests/controls/test_hold_release.py): the rest goes
        release_hold(conn, opened[0], by="ana", why="balance explained")
    assert tasks.release_batches("t2", batches)["transferred"] == 2
    assert stripe_sandbox.count("transfer") == 4
    check_invariant_6(warehouse, stripe_sandbox)


def test_the_gate_wants_a_green_reconciliation_covering_the_paid_work(warehouse, stripe_sandbox, paid):
    billing = last_month()
    earlier = (billing.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    green_recon("recon-earlier", period=earlier)  # green, the latest run, but for the month before
    tasks.check_gate("t")  # nothing planned yet: nothing to cover
    batches = tasks.plan_payouts("t")["awaiting_approval"]
    uncovered = f"no finished reconciliation covers the billing period {billing:%Y-%m}"
    with pytest.raises(tasks.PayoutsRefused, match=uncovered):
        tasks.release_batches("t", batches)
    assert stripe_sandbox.count("transfer") == 0

    green_recon("recon-billing-failed", status="failed", period=billing.strftime("%Y-%m"))
    green_recon("recon-later", period=None)  # a newer green run of another scope does not help ...
    with connect() as conn:  # ... as a full run whose ledger cut-off is before the period's end
        conn.execute("UPDATE closeout_data.recon_runs SET period = NULL, ledger_cutoff = %s "
                     "WHERE run_id = 'recon-later'", (billing,))  # fmt: skip
        conn.commit()
    with pytest.raises(tasks.PayoutsRefused, match=r"recon-billing-failed.*is not green: invoices_to_stripe=failed"):
        tasks.release_batches("t", batches)
    assert stripe_sandbox.count("transfer") == 0

    green_recon("recon-full", period=None)  # a full run, cut off now: after the billing period, green
    with connect() as conn:
        conn.execute("UPDATE closeout_data.recon_runs SET period = NULL WHERE run_id = 'recon-full'")
        conn.commit()
    assert tasks.release_batches("t", batches)["transferred"] == 4


def test_a_currency_stripe_reads_with_another_minor_unit_is_refused(warehouse, stripe_sandbox, tmp_path,
                                                                     monkeypatch, paid):  # fmt: skip
    path = payees_file(tmp_path, {"u1": ("5000", "ISK", "acct_1U1Isk"), "u2": ("40.00", "EUR", "acct_1U2Ctl")})
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(path))
    green_recon()
    planned = tasks.plan_payouts("t")
    assert planned["items_planned"] == 2  # u2's two; u1's ISK work is an exception, not an item
    assert {(k[0], v[1]) for k, v in items(warehouse).items()} == {("harvest:u2", "EUR")}
    rows = warehouse.rows("SELECT payee_key, reason, detail FROM closeout.payout_exceptions ORDER BY invoice_id")
    assert [(r[0], r[1]) for r in rows] == [("harvest:u1", "currency_minor_unit")] * 2
    assert "ISK has 0 decimals in ISO 4217 but 2 in Stripe" in rows[0][2]
    tasks.release_batches("t", planned["awaiting_approval"])
    assert {t["currency"] for t in stripe_sandbox.objects("transfer")} == {"eur"}


def test_cost_rates_are_read_as_exact_decimals(tmp_path) -> None:
    path = tmp_path / "payees.yaml"
    path.write_text(
        "payees:\n"
        "  - {user_key: 'harvest:u1', cost_rate: 37.1, currency: USD, account_id: acct_1A}\n"
        "  - {user_key: 'harvest:u2', cost_rate: 33.333333333333333333, currency: USD, account_id: acct_1B}\n"
        "  - {user_key: 'harvest:u3', cost_rate: 1_000.125, currency: USD, account_id: acct_1C}\n",
        encoding="utf-8",
    )
    rates = {p.payee_key: p.cost_rate for p in config.load(path)}
    assert rates == {"harvest:u1": D("37.1"), "harvest:u2": D("33.333333333333333333"), "harvest:u3": D("1000.125")}
    assert all(type(r) is D for r in rates.values())
    json_path = tmp_path / "payees.json"
    json_path.write_text('{"payees": [{"user_key": "k", "cost_rate": 33.333333333333333333, "currency": "USD", '
                         '"account_id": "acct_1A"}]}')  # fmt: skip
    assert config.load(json_path)[0].cost_rate == D("33.333333333333333333")
    with pytest.raises(config.PayeeConfigError, match="binary float"):
        config.parse({"payees": [{"user_key": "k", "cost_rate": 37.1, "currency": "USD", "account_id": "acct_1"}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("payees:\n  - {user_key: k, cost_rate: .nan, currency: USD, account_id: acct_1A}\n")
    with pytest.raises(config.PayeeConfigError, match=r"not a number|number >= 0"):
        config.load(bad)
