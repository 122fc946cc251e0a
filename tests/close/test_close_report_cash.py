"""The close report's cash section (issue 13 item 6) over money that really moved through the Stripe sandbox:
invoices published by closeout and paid by card (fees), one partly refunded, a later Stripe fee, an automatic
payout to the bank; Stripe's lists read by the cash sync, journals posted, reconciled. Per settlement currency the
month in Stripe's balance and its tie-outs against figures queried independently; collected against billed per
client, by name (billing configuration, else the tracker) with the key beside. Then the headline rule: a failed
check or an open payout hold is the headline, never "every currency ties out" above it.

Stripe's clock is today's, so the cash moves in this month while the invoices bill last month: the cash section is
read from this month's report and the collections from last month's (the close of a month reads both at once)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from decimal import Decimal as D
from pathlib import Path

import pytest
from billing_support import Books
from closeout.close import report
from closeout.ledger import tasks as ledger_tasks
from closeout.payments import tasks as payment_tasks
from closeout.recon import run_reconciliation
from closeout.trackers import store
from closeout.warehouse.db import connect
from payments_support import last_month, seed_drafts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))

pytestmark = pytest.mark.integration

BILLED = last_month().strftime("%Y-%m")
NOW = datetime.now(UTC).strftime("%Y-%m")
REFUNDED = 5_000
LATER_FEE = 700


def follow_cash(run: str = "close-cash") -> None:
    from closeout.payments.cash import tasks as cash_tasks

    payment_tasks.collect_events(run)
    payment_tasks.apply_events(run)
    cash_tasks.sync_cash(run)
    ledger_tasks.post_journals(run)


def _sql(query: str, *params):
    with connect() as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def cash_month(warehouse, stripe_sandbox, tmp_path):
    """a (Client A, 2 h) and b (Client B, 1.5 h) paid in full, 50.00 of b refunded; t (no name in the billing
    configuration, 'Tracked Ltd' in Harvest, 3 h) unpaid; a later Stripe fee; the balance swept to the bank."""
    seed_drafts({"a": [D("2")], "b": [D("1.5")], "t": [D("3")]})
    with connect() as conn:
        books = Books(conn)
        books.configure({"defaults": {"require_approval": False},
                         "clients": [{"client_key": "harvest:a", "currency": "USD", "grouping": "entry",
                                      "name": "Client A"},
                                     {"client_key": "harvest:b", "currency": "USD", "grouping": "entry",
                                      "name": "Client B"},
                                     {"client_key": "harvest:t", "currency": "USD", "grouping": "entry"}]})  # fmt: skip
        store.upsert_entities(conn, source="harvest", kind="client", sync_run_id=books.sync_run_id,
                              rows=[{"source_id": "t", "name": "Tracked Ltd", "payload": {"id": "t"}}])  # fmt: skip
        conn.commit()
    payment_tasks.publish_drafts("close-cash")
    invoices = {c.removeprefix("harvest:"): (iid, sid, total) for c, iid, sid, total in _sql(
        "SELECT client_key, invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices")}  # fmt: skip
    follow_cash()
    stripe_sandbox.set_availability_delay(0)
    stripe_sandbox.pay_invoice(invoices["a"][1])
    stripe_sandbox.pay_invoice(invoices["b"][1])
    stripe_sandbox.refund(invoices["b"][1], REFUNDED)
    stripe_sandbox.add_stripe_fee(LATER_FEE, "usd")
    follow_cash()
    [payout] = stripe_sandbox.run_payouts()
    stripe_sandbox.settle_payout(payout["id"])
    follow_cash()
    return {"invoices": invoices, "payout": payout}


def _reconcile(tmp_path, period: str):
    with connect() as conn:
        return run_reconciliation(conn, period=period, data_docs_dir=tmp_path / "docs")


def test_the_cash_section_shows_the_month_in_stripe_and_ties_it_out(warehouse, cash_month, tmp_path) -> None:
    recon = _reconcile(tmp_path, NOW)
    assert recon.status == "passed", [(c.check_name, c.status, c.evidence) for c in recon.checks]
    with connect() as conn:
        rep = report.build_report(conn, NOW)
    (usd,) = rep.cash
    # against Stripe's balance transactions, summed here independently
    [(gross, fees, refunds, paid_out, net_all)] = _sql(
        """SELECT sum(amount_minor) FILTER (WHERE reporting_category = 'charge'),
                  sum(fee_minor) + coalesce(-sum(amount_minor) FILTER (WHERE type = 'stripe_fee'), 0),
                  -sum(amount_minor) FILTER (WHERE reporting_category = 'refund'),
                  -sum(net_minor) FILTER (WHERE type = 'payout'), sum(net_minor)
           FROM closeout.stripe_balance_transactions WHERE currency = 'USD'""")  # fmt: skip
    a, b = cash_month["invoices"]["a"][2], cash_month["invoices"]["b"][2]
    assert gross == a + b and refunds == REFUNDED and paid_out == cash_month["payout"]["amount"]
    assert (usd.currency, usd.opening_minor, usd.gross_minor, usd.fees_minor, usd.refunds_minor) == (
        "USD", 0, gross, fees, REFUNDED)  # fmt: skip
    assert fees > LATER_FEE  # the card fees and the later one, as Stripe took them
    assert (usd.disputes_minor, usd.other_minor, usd.paid_out_minor) == (0, 0, paid_out)
    assert usd.net_minor == gross - fees - REFUNDED and usd.closing_minor == net_all
    assert usd.closing_minor == usd.net_minor - paid_out  # everything available was swept to the bank
    # the ledger's Stripe balance (cash_clearing) equals Stripe's closing balance, and every line ties out
    assert usd.ledger_closing_minor == usd.closing_minor
    assert [t.difference_minor for t in usd.tie_outs] == [0, 0, 0] and rep.ties_out
    assert usd.stripe_reported_minor == net_all  # what GET /v1/balance said when the sync read it
    good, said = rep.headline
    assert good and said == ["Every currency ties out, Stripe's balance included, every check is green and no payout "
                             "is on hold."]  # fmt: skip

    urls = report.write_report(rep, str(tmp_path / "reports"))
    html = Path(urls["html"]).read_text(encoding="utf-8")
    assert 'id="cash"' in html and "Cash in Stripe" in html and "Paid out to the bank" in html
    assert html.count('class="tieout cash-tieout"') == 3 and "DOES NOT TIE OUT" not in html
    assert "Stripe balance in USD: opening to closing" in html and 'class="ledger"' in html  # the waterfall
    assert "Every currency ties out, Stripe&#39;s balance included" in html
    doc = json.loads(Path(urls["json"]).read_text(encoding="utf-8"))
    assert doc["cash"][0]["closing_minor"] == net_all and doc["cash"][0]["ties_out"] is True
    assert doc["headline"]["good"] is True


def test_collected_against_billed_per_client_by_name(warehouse, cash_month, tmp_path) -> None:
    with connect() as conn:
        rep = report.build_report(conn, BILLED)
    got = {k.client_key: k for k in rep.collections}
    a, b, t = (cash_month["invoices"][c][2] for c in "abt")
    assert {k: (v.client_name, v.billed_minor, v.collected_minor, v.refunded_minor, v.net_collected_minor,
                v.uncollected_minor) for k, v in got.items()} == {
        "harvest:a": ("Client A", a, a, 0, a, 0),
        "harvest:b": ("Client B", b, b, REFUNDED, b - REFUNDED, REFUNDED),
        "harvest:t": ("Tracked Ltd", t, 0, 0, 0, t),  # the tracker's name: the billing configuration has none
    }  # fmt: skip
    # the per-client figures name t by its tracker's name too
    assert {c.client_key: c.client_name for c in rep.clients}["harvest:t"] == "Tracked Ltd"
    html = Path(report.write_report(rep, str(tmp_path / "reports"))["html"]).read_text(encoding="utf-8")
    assert "Collected against billed, per client" in html
    assert "Tracked Ltd<br><code>harvest:t</code>" in html and "Client B<br><code>harvest:b</code>" in html
    # wherever the page names a client: per client, collected against billed, the invoice list
    assert html.count("Tracked Ltd<br><code>harvest:t</code>") == 3


def test_a_failed_check_or_an_open_hold_is_the_headline(warehouse, cash_month, stripe_sandbox, tmp_path) -> None:
    from closeout.gate.holds import open_hold

    # 1. a failed check whose figures still tie out: an invoice made by hand in the Stripe Dashboard
    invoice = stripe_sandbox.dashboard_invoice([("Rush job", 9_900)])
    follow_cash()
    recon = _reconcile(tmp_path, NOW)
    assert {c.check_name for c in recon.checks if c.status == "failed"} == {"stripe_objects"}
    with connect() as conn:
        rep = report.build_report(conn, NOW)
    assert rep.ties_out  # every figure on the page still ties out ...
    good, said = rep.headline
    assert not good and said == ["Reconciliation failed: stripe_objects."]  # ... and the failed check is the headline
    html = Path(report.write_report(rep, str(tmp_path / "one"))["html"]).read_text(encoding="utf-8")
    assert "Every currency ties out" not in html and '<div class="verdict bad">Reconciliation failed' in html
    assert invoice["id"] in html  # the evidence row names the Dashboard invoice

    # 2. the breach's hold is open, and a later Stripe fee is left unbooked: hold first, then the checks, then the
    #    figures that no longer tie out (the ledger's Stripe balance is 2.50 over Stripe's)
    with connect() as conn:
        open_hold(conn, recon_run_id=recon.run_id, check_name="stripe_objects", period=NOW,
                  reason=f"reconciliation check stripe_objects failed for {NOW}")  # fmt: skip
    stripe_sandbox.add_stripe_fee(250, "usd")
    payment_tasks.collect_events("late")
    from closeout.payments.cash import tasks as cash_tasks

    cash_tasks.sync_cash("late")  # listed, not posted
    recon = _reconcile(tmp_path, NOW)
    assert {c.check_name for c in recon.checks if c.status == "failed"} == {"stripe_objects", "stripe_fees"}
    with connect() as conn:
        rep = report.build_report(conn, NOW)
    (usd,) = rep.cash
    assert usd.ledger_closing_minor - usd.closing_minor == 250 and not rep.ties_out
    good, said = rep.headline
    assert not good and said == [
        "Payouts are on hold: 1 open payout hold(s) (stripe_objects); no payout is released until finance releases "
        "them.",
        "Reconciliation failed: stripe_fees, stripe_objects.",
        "Does not tie out: Stripe cash in USD (see the checks below).",
    ]  # fmt: skip
    html = Path(report.write_report(rep, str(tmp_path / "two"))["html"]).read_text(encoding="utf-8")
    verdict = html.split('<div class="verdict', 1)[1].split("</div>", 1)[0]
    assert verdict.startswith(' bad">Payouts are on hold') and "ties out." not in verdict
    assert "DOES NOT TIE OUT" in html


def test_the_cash_waterfall_floats_each_step_from_the_last_and_marks_the_ledger() -> None:
    """Pure drawing: opening 100.00, +350.00 in, -10.00 fees, -50.00 refunds, -15.00 disputes, -5.00 other, -300.00
    paid out = closing 70.00; the ledger's balance 72.50 is marked (dashed) beside the closing bar."""
    from closeout.close import charts

    cash = report.CashCurrency(currency="USD", exponent=2, opening_minor=10_000, gross_minor=35_000, fees_minor=1_000,
                               refunds_minor=5_000, disputes_minor=1_500, other_minor=-500, net_minor=27_000,
                               paid_out_minor=30_000, closing_minor=7_000, ledger_closing_minor=7_250,
                               transactions=9, payouts=1, payouts_in_transit=0, as_of=None)  # fmt: skip
    assert [t.difference_minor for t in cash.tie_outs] == [0, 0, 250]
    svg = charts.cash_waterfall(cash)
    assert svg.count("<rect") == 8 and "paid out: -300.00 USD" in svg and "closing: 70.00 USD" in svg
    # the top of the chart is the highest level reached (100 + 350 = 450.00): gross's bar starts at 100.00 and
    # reaches the top line (y = 34); the closing bar stands on the zero line
    top, plot, span = 34, 180, 45_000
    zero = top + Decimal(45_000) * plot / span
    assert f'y="{charts._n(Decimal(top))}" width="70" height="{charts._n(Decimal(35_000) * plot / span)}"' in svg
    assert f'y1="{charts._n(zero)}"' in svg and "ledger Stripe balance: 72.50 USD" in svg
