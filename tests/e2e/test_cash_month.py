"""Issue 13's "Done when", end to end: a month of cash through closeout's real DAG runs and the Stripe sandbox.

The green month (built once for the module): six clients' work for last month captured and drafted through
closeout (five in USD, one in EUR), published by ``closeout_stripe_publish``; client c's entry is then cut from
4.00 h to 3.00 h, and ``closeout_invoice_drafts`` + ``closeout_stripe_publish`` issue the decrease as a Stripe
credit note on c's open invoice (the corrections path). Then, in Stripe: customers pay by card under the sandbox's
default fee schedule (f in EUR, settled in USD at 1.10), the first automatic payout sweeps the balance and lands in
the bank; b's invoice is refunded in full, d's charge is disputed and the dispute lost, e's disputed and won, Stripe
charges a later usage fee, a and f pay, and a second automatic payout lands. ``closeout_stripe_events`` follows
the events, reads Stripe's lists (cash sync) and posts the journals; finance closes the two disputes' payment
exceptions once Stripe ruled; ``closeout_reconcile`` for the month the money moved in (Stripe's clock is today's)
is green, the four cash checks included, and the close report rendered again from it ties Stripe's balance out
against the ledger with a headline reporting no problem; with the accounting system's reports ingested (one
General Ledger per currency) the books to date are green on every check. ``closeout_payouts`` pays the
contractors for a, c, e and f and nothing for the refunded b (nor the lost d); a is then refunded in full after its
work was paid out, and the next payouts run claws it back from both payees (outstanding, no transfer), the books
still green on every check.

Then, each on its own copy of the green warehouse (CREATE DATABASE ... TEMPLATE, the break matrix's harness): one
movement left unbooked (its journal gone, from the ledger and so from the accounting system that imports it: a
card fee, the later Stripe fee, the refund, the lost dispute's withdrawal, the won dispute's reinstatement, the
first payout), and an invoice made in the Stripe Dashboard and read by the cash sync. Each fails exactly its own check
(docs/reconciliation.md, "One cause, one failing check"), pauses ``closeout_payouts`` through the real Airflow API
server, opens one hold, sends one e-mail and one webhook, and ``closeout_payouts`` triggered anyway is refused with
no transfer reaching Stripe.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from closeout.warehouse.embedded import ENV_VAR
from conftest import STRIPE_WEBHOOK_SECRET, Warehouse, run_dag_now
from payments_support import last_month

HERE = Path(__file__).resolve().parent
for _folder in ("gate", "payouts"):
    sys.path.insert(0, str(HERE.parent / _folder))
import cash_month_support as cash  # noqa: E402
import e2e_support as e2e  # noqa: E402
import gate_support  # noqa: E402
from payouts_support import check_invariant_6, items, payees_file, user_key  # noqa: E402
from test_break_matrix import CHECKS, PAYEES, PAYOUTS, recon_checks, statuses  # noqa: E402

pytestmark = pytest.mark.integration

api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server, gate_support.airflow_api, gate_support.smtp, gate_support.hook_receiver,
    gate_support.finance_conns,
)  # fmt: skip

PERIOD = last_month().strftime("%Y-%m")  # the month the work is billed for
NOW = datetime.now(UTC).strftime("%Y-%m")  # the month Stripe's clock moves the money in
CASH_CHECKS = ("stripe_objects", "stripe_balance", "stripe_fees", "stripe_payouts")
# client -> (currency, [(user, hours)]) at 100.00 an hour in the client's currency
WORK: cash.Work = {
    "a": ("USD", [("u1", D("2.00")), ("u2", D("1.50"))]),  # pays late (after the first payout)
    "b": ("USD", [("u1", D("3.25"))]),  # pays, refunded in full
    "c": ("USD", [("u2", D("4.00"))]),  # its entry cut to 3.00 h: credited, then pays what is left
    "d": ("USD", [("u1", D("1.50"))]),  # pays, dispute lost
    "e": ("USD", [("u1", D("2.50"))]),  # pays, dispute won
    "f": ("EUR", [("u2", D("3.00"))]),  # pays in EUR, settled in USD
}
EUR_TO_USD = D("1.10")
LATER_FEE = 700


@dataclass
class Month:
    """The green month: its database (the template of every break), sandbox, files and what each step did."""

    server: dict
    database: str
    sandbox: Any
    root: Path
    invoices: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # client -> (id, stripe id, total)
    runs: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, dict[str, str]] = field(default_factory=dict)
    stripe: dict[str, Any] = field(default_factory=dict)  # what the sandbox made: payouts, refund, disputes
    report: Any = None
    report_files: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def month(warehouse_server, template_database, airflow_db, tmp_path_factory) -> Iterator[Month]:
    from sandbox.stripe import StripeSandbox

    root = tmp_path_factory.mktemp("cash_month")
    database = f"closeout_cash_base_{os.getpid()}"
    e2e.clone_database(warehouse_server, template_database, database)
    sandbox = StripeSandbox(webhook_secret=STRIPE_WEBHOOK_SECRET, seed=31)
    sandbox.start()
    made = Month(warehouse_server, database, sandbox, root)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(ENV_VAR, e2e.warehouse_conn_json(warehouse_server, database))
            extra = {"webhook_secret": STRIPE_WEBHOOK_SECRET, "max_network_retries": 0, "timeout": 10}
            stripe_conn = {"conn_type": "http", "host": sandbox.url, "password": sandbox.secret_key, "extra": extra}
            mp.setenv("AIRFLOW_CONN_STRIPE_DEFAULT", json.dumps(stripe_conn))
            mp.setenv("CLOSEOUT_PAYEES_CONFIG", str(payees_file(root, PAYEES)))
            mp.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
            mp.setenv("CLOSEOUT_PAYOUTS_DAG_ID", PAYOUTS)
            mp.setenv("CLOSEOUT_DATA_DOCS_DIR", str(root / "data_docs"))
            _build_green_month(made)
            yield made
    finally:
        sandbox.stop()
        e2e.drop_database(warehouse_server, database)


def _run(month: Month, step: str, dag_id: str, conf: dict | None = None) -> None:
    month.runs[step] = result = run_dag_now(dag_id, conf)
    if dag_id == "closeout_reconcile":  # a failure says which check and why
        checks = recon_checks(Warehouse(month.database), result.run_id)
        month.checks[step] = statuses(checks)
        failed = {n: [(r["kind"], r["item"], r["currency"], r["difference_minor"])
                      for r in c["evidence"].get("rows") or []]
                  for n, c in checks.items() if c["status"] != "passed"}  # fmt: skip
        assert result.state == "success", (step, result.state, failed)
    assert result.state == "success", (step, result)


def _build_green_month(month: Month) -> None:
    from closeout.close import report

    warehouse, stripe = Warehouse(month.database), month.sandbox
    first_entry = cash.draft_month(WORK)
    _run(month, "publish", "closeout_stripe_publish")
    for client, iid, sid, total in warehouse.rows(
        "SELECT client_key, invoice_id, stripe_invoice_id, total_minor FROM closeout.invoices WHERE status = 'open'"
    ):
        month.invoices[client.removeprefix("harvest:")] = (iid, sid, total)
    # c's entry is cut by an hour after its invoice went out: the decrease becomes a credit note on that invoice
    assert e2e.edit_entry_after_invoicing(first_entry["c"], D("3.00")) == 1
    _run(month, "drafts", "closeout_invoice_drafts")
    _run(month, "publish_correction", "closeout_stripe_publish")

    stripe.set_availability_delay(0)
    stripe.set_settlement("eur", "usd", EUR_TO_USD)
    inv = {c: v[1] for c, v in month.invoices.items()}
    for client in ("b", "c", "d", "e"):
        stripe.pay_invoice(inv[client])
    # the payout schedule runs on Stripe's clock as it is: a clock moved past the real one would put the month's
    # later movements beyond the reconciliation's cut-off (now), unjudged
    [first] = stripe.run_payouts()
    stripe.settle_payout(first["id"])
    month.stripe["refund"] = stripe.refund(inv["b"])
    month.stripe["lost"] = stripe.dispute(inv["d"])
    month.stripe["won"] = stripe.dispute(inv["e"])
    stripe.lose_dispute(month.stripe["lost"]["id"])
    stripe.win_dispute(month.stripe["won"]["id"])
    month.stripe["later_fee"] = stripe.add_stripe_fee(LATER_FEE, "usd")
    for client in ("a", "f"):
        stripe.pay_invoice(inv[client])
    [second] = stripe.run_payouts()
    stripe.settle_payout(second["id"])
    month.stripe["payouts"] = [first["id"], second["id"]]

    _run(month, "events", "closeout_stripe_events")
    # a dispute is a payment exception for a person to answer while it is open; once Stripe's dispute list shows it
    # won or lost, the cash sync resolves it with Stripe's ruling, so a closed case holds no payout
    from closeout.warehouse.db import connect

    disputes = warehouse.rows("SELECT invoice_id, resolved_by, resolution FROM closeout.payment_exceptions "
                              "WHERE kind = 'dispute' ORDER BY invoice_id")  # fmt: skip
    assert [iid for iid, _, _ in disputes] == sorted([month.invoices["d"][0], month.invoices["e"][0]]), disputes
    assert {by for _, by, _ in disputes} == {"stripe"}, disputes
    assert sorted(r.split()[2] for _, _, r in disputes) == ["lost", "won"], disputes
    # the month the money moved in, reconciled and reported as its close does (before any accounting export of
    # it is ingested, so the accounting checks are not applicable yet), the report rendered again from the run
    _run(month, "reconcile_month", "closeout_reconcile", {"period": NOW})
    with connect() as conn:
        month.report = report.build_report(conn, NOW)
    month.report_files = report.write_report(month.report, str(month.root / "reports"))
    month.runs["accounting"] = cash.accounting_round_trip(month.root / "accounting", PERIOD)
    _run(month, "reconcile", "closeout_reconcile")  # the books to date, as the daily schedule runs it
    _run(month, "payouts", PAYOUTS)
    month.stripe["transfers"] = stripe.count("transfer")
    # a's work is paid out, then a's invoice is refunded in full: the payees owe it back (a clawback)
    month.stripe["late_refund"] = stripe.refund(inv["a"])
    # the contractor transfers are Stripe balance transactions too: read, booked and reconciled like the rest
    _run(month, "events_again", "closeout_stripe_events")
    month.runs["accounting_again"] = cash.accounting_round_trip(month.root / "accounting", PERIOD)
    _run(month, "reconcile_again", "closeout_reconcile")
    _run(month, "payouts_again", PAYOUTS)
    month.runs["accounting_final"] = cash.accounting_round_trip(month.root / "accounting", PERIOD)
    _run(month, "reconcile_final", "closeout_reconcile")


# -- the green month ----------------------------------------------------------------------------------------------
def test_the_cash_month_closes_green_and_ties_stripe_out(month: Month, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, e2e.warehouse_conn_json(month.server, month.database))
    warehouse = Warehouse(month.database)
    assert month.checks["reconcile"] == dict.fromkeys(CHECKS, "passed"), month.checks["reconcile"]
    for step in ("reconcile_again", "reconcile_final"):
        assert month.checks[step] == dict.fromkeys(CHECKS, "passed"), (step, month.checks[step])
    accounting = ("accounting_ledger", "accounting_invoices")
    assert month.checks["reconcile_month"] == {**dict.fromkeys(CHECKS, "passed"),
                                               **dict.fromkeys(accounting, "not_applicable")}, month.checks  # fmt: skip

    # every movement the month promised happened in Stripe and is known to closeout, and each was judged: no
    # balance transaction lies beyond the cut-off of the reconciliation that passed
    def cutoff(step: str) -> datetime:
        return warehouse.scalar("SELECT external_cutoff FROM closeout.recon_runs WHERE airflow_run_id = %s",
                                (month.runs[step].run_id,))  # fmt: skip

    last = "SELECT max(created_at) FROM closeout.stripe_balance_transactions"
    late = [r["id"] for r in month.stripe["late_refund"]]  # made after the close, with the contractors' transfers
    month_end = warehouse.scalar(f"{last} WHERE type <> 'transfer' AND source_id <> ALL(%s)", (late,))
    assert month_end <= min(cutoff("reconcile"), cutoff("reconcile_month"))
    assert warehouse.scalar(last) <= cutoff("reconcile_again") <= cutoff("reconcile_final")
    a, b, c, d, e, f = (month.invoices[k][0] for k in "abcdef")
    assert warehouse.rows("SELECT invoice_id, status, amount_minor FROM closeout.credit_notes") == [
        (c, "issued", 10000)]  # fmt: skip
    assert sorted(warehouse.rows("SELECT invoice_id, status, amount_minor FROM closeout.refunds")) == sorted(
        [(b, "succeeded", month.invoices["b"][2]), (a, "succeeded", month.invoices["a"][2])])  # fmt: skip
    assert sorted(warehouse.rows("SELECT invoice_id, status FROM closeout.disputes")) == sorted(
        [(d, "lost"), (e, "won")])  # fmt: skip
    assert warehouse.rows("SELECT payout_id, status, automatic FROM closeout.stripe_payouts ORDER BY created_at, "
                          "payout_id") == [(p, "paid", True) for p in month.stripe["payouts"]]  # fmt: skip
    [(eur_settled,)] = warehouse.rows(
        """SELECT currency FROM closeout.stripe_balance_transactions
           WHERE invoice_id = %s AND reporting_category = 'charge'""", (f,))  # fmt: skip
    assert eur_settled == "USD"
    kinds = dict(warehouse.rows("SELECT kind, count(*) FROM closeout.ledger_journals GROUP BY kind"))
    assert kinds["payment"] == 6 and kinds["fee"] >= 7 and kinds["fx_conversion"] == 1, kinds
    assert kinds["refund"] == 2 and kinds["credit_note"] == 1 and kinds["dispute_reinstatement"] == 1, kinds
    assert kinds["stripe_payout"] == 2 and kinds["stripe_payout_paid"] == 2, kinds

    # the close report: Stripe's balance tied out against the ledger, and nothing wrong said above it
    rep = month.report
    (usd,) = rep.cash
    [(gross,)] = warehouse.rows(
        """SELECT sum(amount_minor) FILTER (WHERE reporting_category = 'charge')
           FROM closeout.stripe_balance_transactions WHERE currency = 'USD'""")  # fmt: skip
    assert usd.currency == "USD" and usd.gross_minor == gross and usd.fees_minor > LATER_FEE
    assert usd.refunds_minor == month.invoices["b"][2] and usd.disputes_minor > 0
    assert usd.paid_out_minor == sum(p["amount"] for p in month.sandbox.objects("payout"))
    assert usd.closing_minor == usd.ledger_closing_minor, "the ledger's Stripe balance equals Stripe's"
    assert all(t.difference_minor == 0 for t in usd.tie_outs) and usd.ties_out and rep.ties_out
    good, said = rep.headline
    assert good, said
    html = Path(month.report_files["html"]).read_text(encoding="utf-8")
    assert 'id="cash"' in html and "DOES NOT TIE OUT" not in html and '<div class="verdict bad">' not in html
    assert json.loads(Path(month.report_files["json"]).read_text(encoding="utf-8"))["cash"][0]["ties_out"] is True

    # payouts follow the money back: the refunded invoice's work (and the lost dispute's) is not paid out
    paid = cash.payout_items_by_invoice(warehouse)
    transferred = {iid for iid, rows in paid.items() if any(s == "transferred" for _, _, s in rows)}
    assert b not in transferred and d not in transferred, paid
    assert {a, c, e, f} <= transferred, paid
    assert month.runs["payouts"].task_states["release"] == "success"
    # a was paid out before its refund: what u1 (2.00 h at 60.00) and u2 (1.50 h at 45.00) got is clawed back,
    # outstanding until they have new work to net it from (never a negative transfer)
    clawbacks = warehouse.rows("SELECT payee_key, amount_minor, status FROM closeout.payout_adjustments "
                               "WHERE invoice_id = %s AND kind = 'clawback' ORDER BY 1", (a,))  # fmt: skip
    assert clawbacks == [(user_key("u1"), -12000, "outstanding"), (user_key("u2"), -6750, "outstanding")], clawbacks
    assert dict(warehouse.rows("SELECT payee_key, clawed_back_minor FROM closeout.outstanding_clawbacks")) == {
        user_key("u1"): -12000, user_key("u2"): -6750}  # fmt: skip
    assert month.sandbox.count("transfer") == month.stripe["transfers"], "the second run transferred nothing"
    check_invariant_6(warehouse, month.sandbox)
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 0


# -- the breaks ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Injected:
    """What a break did: the evidence rows its check must report, as (kind, item) pairs."""

    rows: list[tuple[str, str]]


def _accounting_sees_the_books(month: Month, warehouse: Warehouse) -> None:
    """A movement never booked by closeout never reaches the accounting system either (it imports closeout's
    journals): the month's files are exported again and the accounting system's reports ingested again, so the
    accounting checks judge the books as they now are and only the cash check can see the movement."""
    cash.accounting_round_trip(month.root / f"accounting_{warehouse.name}", PERIOD)


def _card_fee_unbooked(month: Month, warehouse: Warehouse) -> Injected:
    """The fee journal of a's card payment is missing: Stripe kept a fee the ledger never booked."""
    txn = warehouse.scalar("SELECT balance_transaction_id FROM closeout.stripe_balance_transactions WHERE "
                           "invoice_id = %s AND reporting_category = 'charge'", (month.invoices["a"][0],))  # fmt: skip
    cash.delete_journals(cash.journal_ids("fee", source_ref=txn))
    _accounting_sees_the_books(month, warehouse)
    return Injected([("fee_not_booked", f"{txn} (charge)")])


def _refund_unbooked(month: Month, warehouse: Warehouse) -> Injected:
    """The journal of b's refund is missing: the money went back to the customer, the books do not say so."""
    cash.delete_journals(cash.journal_ids("refund", invoice_id=month.invoices["b"][0]))
    _accounting_sees_the_books(month, warehouse)
    return Injected([("balance", "USD")])


def _dispute_unbooked(month: Month, warehouse: Warehouse) -> Injected:
    """The journal of d's lost dispute's withdrawal is missing (its dispute fee stays booked)."""
    cash.delete_journals(cash.journal_ids("dispute", invoice_id=month.invoices["d"][0]))
    _accounting_sees_the_books(month, warehouse)
    return Injected([("balance", "USD")])


def _later_stripe_fee_unbooked(month: Month, warehouse: Warehouse) -> Injected:
    """The journal of Stripe's later usage fee (a fee-only balance transaction) is missing."""
    txn = warehouse.scalar("SELECT balance_transaction_id FROM closeout.stripe_balance_transactions "
                           "WHERE type = 'stripe_fee'")  # fmt: skip
    assert txn == month.stripe["later_fee"]["id"], (txn, month.stripe["later_fee"])
    cash.delete_journals(cash.journal_ids("fee", source_ref=txn))
    _accounting_sees_the_books(month, warehouse)
    return Injected([("fee_not_booked", txn)])


def _reinstatement_unbooked(month: Month, warehouse: Warehouse) -> Injected:
    """The journal of the funds Stripe reinstated when e's dispute was won is missing."""
    cash.delete_journals(cash.journal_ids("dispute_reinstatement", invoice_id=month.invoices["e"][0]))
    _accounting_sees_the_books(month, warehouse)
    return Injected([("balance", "USD")])


def _payout_unbooked(month: Month, warehouse: Warehouse) -> Injected:
    """The first automatic payout was never booked: neither leaving Stripe nor arriving in the bank."""
    payout = month.stripe["payouts"][0]
    cash.delete_journals(cash.journal_ids("stripe_payout", source_ref=payout)
                         + cash.journal_ids("stripe_payout_paid", source_ref=payout))  # fmt: skip
    _accounting_sees_the_books(month, warehouse)
    return Injected([("payout_not_booked", payout), ("payout_not_in_bank", payout)])


def _dashboard_invoice(month: Month, warehouse: Warehouse) -> Injected:
    """Someone makes and sends an invoice in the Stripe Dashboard; the next events run reads Stripe's lists."""
    invoice = month.sandbox.dashboard_invoice([("Rush job", 9_900)])
    result = run_dag_now("closeout_stripe_events")
    assert result.state == "success", result
    return Injected([("invoice_unknown", invoice["id"])])


BREAKS: dict[str, tuple[str, Callable[[Month, Warehouse], Injected]]] = {
    "card_fee_unbooked": ("stripe_fees", _card_fee_unbooked),
    "later_stripe_fee_unbooked": ("stripe_fees", _later_stripe_fee_unbooked),
    "refund_unbooked": ("stripe_balance", _refund_unbooked),
    "dispute_unbooked": ("stripe_balance", _dispute_unbooked),
    "reinstatement_unbooked": ("stripe_balance", _reinstatement_unbooked),
    "payout_unbooked": ("stripe_payouts", _payout_unbooked),
    "dashboard_invoice": ("stripe_objects", _dashboard_invoice),
}


@pytest.fixture
def broken_copy(month: Month, warehouse_server, monkeypatch, request) -> Iterator[Warehouse]:
    """A copy of the green month's warehouse, wired as closeout_warehouse for the test."""
    name = f"closeout_cash_{request.node.callspec.id}_{os.getpid()}"[:63]
    e2e.clone_database(warehouse_server, month.database, name)
    monkeypatch.setenv(ENV_VAR, e2e.warehouse_conn_json(warehouse_server, name))
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(month.root / "payees.json"))
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_DAG_ID", PAYOUTS)
    monkeypatch.setenv("CLOSEOUT_DATA_DOCS_DIR", str(month.root / "data_docs"))
    extra = {"webhook_secret": STRIPE_WEBHOOK_SECRET, "max_network_retries": 0, "timeout": 10}
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_DEFAULT", json.dumps(
        {"conn_type": "http", "host": month.sandbox.url, "password": month.sandbox.secret_key, "extra": extra}))
    yield Warehouse(name)
    e2e.drop_database(warehouse_server, name)


@pytest.mark.parametrize("name", list(BREAKS))
def test_an_unbooked_movement_fails_only_its_check_and_holds_payouts(
    name, month, broken_copy, airflow_api, smtp, hook_receiver, finance_conns
) -> None:
    warehouse = broken_copy
    check, inject = BREAKS[name]
    airflow_api.set_paused(PAYOUTS, False)
    transfers = month.sandbox.count("transfer")
    injected = inject(month, warehouse)
    paid_out = items(warehouse)

    # exactly its own check fails, naming the movement; every other check passes as in the green month
    run = run_dag_now("closeout_reconcile")
    assert run.state == "failed", run
    checks = recon_checks(warehouse, run.run_id)
    assert statuses(checks) == {**dict.fromkeys(CHECKS, "passed"), check: "failed"}, statuses(checks)
    got = checks[check]
    rows = sorted((r["kind"], r["item"]) for r in got["evidence"]["rows"])
    assert all(any(kind == k and item in i for k, i in rows) for kind, item in injected.rows), (rows, injected)
    assert len(rows) == len(injected.rows), rows

    # through the real gate: paused by the API server, one hold naming the run and the check, one of each alert
    assert airflow_api.is_paused(PAYOUTS) is True
    holds = warehouse.rows("SELECT hold_id, recon_run_id, check_name FROM closeout.payout_holds "
                           "WHERE released_at IS NULL")  # fmt: skip
    [(hold_id, hold_run, hold_check)] = holds
    assert (hold_run, hold_check) == (got["run_id"], check)
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1
    assert check in smtp.messages[0].message["Subject"] and f"#{hold_id}" in smtp.messages[0].message["Subject"]
    assert hook_receiver.requests[0]["json"]["check_name"] == check

    # closeout_payouts triggered anyway: the gate refuses; nothing reaches Stripe, no item changes
    refused = run_dag_now(PAYOUTS)
    assert refused.state == "failed" and refused.task_states["gate"] == "failed", refused
    assert refused.task_states["release"] == "upstream_failed", refused
    assert month.sandbox.count("transfer") == transfers
    assert items(warehouse) == paid_out
