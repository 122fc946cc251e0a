"""Issue 17's "Done when", end to end: a month closed with QuickBooks Online AND Xero connected (both sandboxes),
through closeout's real DAG runs (``dag.test``) on the real warehouse against the Harvest, Stripe, QuickBooks and
Xero sandboxes (the month: ``accounting_month_support``).

Built once for the module: closeout_sync_harvest, closeout_invoice_drafts and closeout_stripe_publish bill three
clients; in Stripe A pays, an automatic payout sweeps it to the bank and A is refunded; B's time is cut in Harvest;
closeout_month_end_close (final sync, drafts, publish: B's credit note, events, journals, export, then the push to
both systems, reconcile) closes the month. C shares its name with two customers already in each system: it waits
in the review list with its invoice held (``customer_link``) and no third customer, until finance links it with the
documented command (``python -m closeout.accounting links resolve``, identified by the Airflow API server); the next
closeout_accounting_sync pushes its invoice once and a rerun sends nothing. B and C pay; the next sync's first write
to each system times out after the vendor committed it (the sandboxes' fault control) and the retry is replayed;
a second payout is then pushed by a worker SIGKILLed between the vendor's answer and its record, and the next sync
resends it under the same key. After each step the sandboxes' own objects and create counters equal closeout's
records, kind by kind (the kinds read from closeout.accounting_links), and the reconciliation is green. Last, an
accountant raises A's invoice in both systems: the next sync's read-back makes accounting_links fail naming it in
each, the real gate pauses closeout_payouts through the Airflow API server, opens a hold, alerts finance, and
closeout_payouts triggered anyway is refused at its gate.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from closeout.warehouse.embedded import ENV_VAR
from conftest import STRIPE_WEBHOOK_SECRET, Warehouse, run_dag_now

HERE = Path(__file__).resolve().parent
for _folder in ("accounting_readback", "gate"):
    sys.path.insert(0, str(HERE.parent / _folder))
import accounting_month_support as am  # noqa: E402
import e2e_support as e2e  # noqa: E402
import gate_support  # noqa: E402
from accounting_push_support import QBO_NO_LIMITS, XERO_NO_LIMITS, connect_quickbooks, connect_xero  # noqa: E402
from readback_support import money  # noqa: E402

from sandbox.quickbooks.cdc import accountant_edits as quickbooks_edits  # noqa: E402
from sandbox.xero.reports import accountant_edits as xero_edits  # noqa: E402

pytestmark = pytest.mark.integration

api_server = gate_support.api_server  # the real Airflow API server: the gate pauses through it, finance signs in to it

SYNC, CLOSE, RECONCILE, PAYOUTS = ("closeout_accounting_sync", "closeout_month_end_close", "closeout_reconcile",
                                   "closeout_payouts")  # fmt: skip
ACCOUNTING = ("accounting_links", "accounting_invoices", "accounting_ledger")
EDIT = 700  # what the accountant adds to A's invoice, in cents


@dataclass
class Month:
    """The month's sandboxes and what each step did (runs, the sandboxes' counts, held records, reviews)."""

    database: str
    root: Path
    books: dict[str, Any]  # system -> its sandbox
    work: am.Work | None = None
    planted: dict[str, list[str]] = field(default_factory=dict)  # system -> customers made there before
    invoices: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # letter -> (id, stripe id, total)
    runs: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # step -> system -> entity -> n
    held: dict[str, dict[str, dict[str, tuple[str, str]]]] = field(default_factory=dict)  # step -> system -> ...
    reviews: dict[str, dict[str, tuple[int, str, str]]] = field(default_factory=dict)
    links: dict[str, dict[str, dict[str, list[str]]]] = field(default_factory=dict)  # step -> system -> kind -> ids
    seen: dict[str, Any] = field(default_factory=dict)  # anything else a step observed


@pytest.fixture(scope="module")
def month(warehouse_server, template_database, airflow_db, api_server, tmp_path_factory) -> Iterator[Month]:
    from sandbox.harvest import HarvestSandbox
    from sandbox.quickbooks import QuickBooksSandbox
    from sandbox.stripe import StripeSandbox
    from sandbox.xero import XeroSandbox

    root = tmp_path_factory.mktemp("accounting_month")
    database = f"closeout_acctmonth_{os.getpid()}"
    e2e.clone_database(warehouse_server, template_database, database)
    harvest, stripe = HarvestSandbox(rate_limit=None), StripeSandbox(webhook_secret=STRIPE_WEBHOOK_SECRET, seed=17)
    qbo, xero = QuickBooksSandbox(**QBO_NO_LIMITS), XeroSandbox(**XERO_NO_LIMITS)
    smtp, hook = gate_support.SmtpReceiver(credentials=gate_support.SMTP_LOGIN).start(), gate_support.HttpReceiver()
    hook.start()
    servers = (harvest, stripe, qbo, xero)
    for server in servers:
        server.start()
    made = Month(database, root, {"quickbooks": qbo, "xero": xero})
    made.seen.update(smtp=smtp, hook=hook, api=api_server)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(ENV_VAR, e2e.warehouse_conn_json(warehouse_server, database))
            mp.setenv("AIRFLOW_CONN_HARVEST_DEFAULT", json.dumps(
                {"conn_type": "http", "host": harvest.url, "password": harvest.token,
                 "extra": {"account_id": harvest.account_id, "max_requests": 0, "per_page": 50}}))  # fmt: skip
            mp.setenv("AIRFLOW_CONN_STRIPE_DEFAULT", json.dumps(
                {"conn_type": "http", "host": stripe.url, "password": stripe.secret_key,
                 "extra": {"webhook_secret": STRIPE_WEBHOOK_SECRET, "max_network_retries": 0, "timeout": 10}}))
            connect_quickbooks(mp, qbo)
            connect_xero(mp, xero)
            # the companies' charts as closeout's: receivable 1200, the invoice item's income account 4000
            qbo.receivable_account = ("Accounts receivable", "1200")
            qbo.item_accounts = {"1": ("Services revenue", "4000")}
            xero.receivable_account_code = "1200"
            am.connect_alerts(mp, smtp, hook)
            mp.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(
                {"conn_type": "http", "host": api_server.url, "login": gate_support.API_USER,
                 "password": gate_support.API_PASSWORD}))  # fmt: skip
            mp.setenv("CLOSEOUT_PAYOUTS_DAG_ID", PAYOUTS)
            mp.setenv("CLOSEOUT_FINANCE_APPROVERS", gate_support.API_USER)
            api_server.set_paused(PAYOUTS, False)
            _build(made, harvest, stripe, mp)
            yield made
    finally:
        api_server.set_paused(PAYOUTS, False)  # the gate paused it in the shared metadata: leave it as found
        for server in (*servers, smtp, hook):
            server.stop()
        e2e.drop_database(warehouse_server, database)


def _ok(month: Month, step: str, dag_id: str, conf: dict | None = None):
    month.runs[step] = result = run_dag_now(dag_id, conf)
    assert result.state == "success", (step, result)
    return result


def _observe(month: Month, step: str) -> None:
    """The sandboxes' own counts (after proving every object is there once), held records and open reviews."""
    warehouse = Warehouse(month.database)
    month.counts[step] = {s: am.exactly_once(warehouse, s, b, month.planted[s]) for s, b in month.books.items()}
    month.held[step] = {s: am.held_refs(warehouse, s) for s in month.books}
    month.reviews[step] = am.open_reviews(warehouse)
    month.links[step] = {s: am.linked(warehouse, s) for s in month.books}


def _build(month: Month, harvest, stripe, mp: pytest.MonkeyPatch) -> None:
    warehouse = Warehouse(month.database)
    qbo, xero = month.books["quickbooks"], month.books["xero"]
    for system, sandbox in month.books.items():
        month.planted[system] = am.plant_namesakes(system, sandbox)
    month.work = work = am.fill_harvest(harvest)
    am.configure(month.root, work, mp)

    # -- the month billed: captured, drafted, published to Stripe ---------------------------------------------
    _ok(month, "sync", "closeout_sync_harvest")
    _ok(month, "drafts", "closeout_invoice_drafts")
    _ok(month, "publish", "closeout_stripe_publish")
    keys = {work.client_key(c): c for c in work.clients}
    for client, iid, sid, total in warehouse.rows("SELECT client_key, invoice_id, stripe_invoice_id, total_minor "
                                                  "FROM closeout.invoices WHERE status = 'open'"):
        month.invoices[keys[client]] = (iid, sid, total)
    assert set(month.invoices) == set(work.clients), month.invoices

    # -- the money in Stripe: A pays, the payout sweeps it, A is refunded; B's time is cut in Harvest -----------
    stripe.set_availability_delay(0)
    stripe.set_payout_delay(0)  # a payout is settled when it arrives: its arrival date is the day it is paid
    stripe.pay_invoice(month.invoices["a"][1])
    [payout] = stripe.run_payouts()
    stripe.settle_payout(payout["id"])
    month.seen["refund"] = stripe.refund(month.invoices["a"][1])
    am.cut_entries(harvest, work)

    # -- the close: pushes to both systems after its export -------------------------------------------------------
    close = _ok(month, "close", CLOSE, {"period": work.period, "trackers": ["harvest"]})
    month.seen["close_push"] = warehouse.scalar(
        "SELECT steps->'accounting_export'->'summary'->'accounting_push' FROM closeout_data.close_runs "
        "WHERE airflow_run_id = %s", (close.run_id,))  # fmt: skip
    month.seen["close_checks"] = am.check_statuses(warehouse, close.run_id)
    _observe(month, "close")

    # -- the hourly sync reads the books back; C still waits for finance -----------------------------------------
    _ok(month, "sync_1", SYNC)
    _observe(month, "sync_1")
    month.seen["review_listing"] = am.links_command("review")
    api = month.seen["api"]
    token = api.token()
    for system, (review_id, _ref, _reason) in sorted(month.reviews["sync_1"].items()):
        chosen = month.planted[system][-1]  # the live customer of that name
        month.seen[f"resolved_{system}"] = (chosen, am.resolve_as_finance(
            review_id, chosen, api_url=api.url, token=token, person=gate_support.API_USER))
    _ok(month, "sync_2", SYNC)  # C linked to the customer finance chose; its invoice goes once
    _observe(month, "sync_2")
    marks = {s: len(b.stats()["log"]) for s, b in month.books.items()}
    _ok(month, "sync_3", SYNC)  # the next hour: nothing new
    month.seen["rerun_writes"] = {s: am.writes_since(b, marks[s]) for s, b in month.books.items()}
    _observe(month, "sync_3")

    # -- B and C pay; the next batch to each system times out after the vendor committed it ----------------------
    for letter in ("b", "c"):
        stripe.pay_invoice(month.invoices[letter][1])
    _ok(month, "events_1", "closeout_stripe_events")
    replays = {s: b.stats()["replays"] for s, b in month.books.items()}
    qbo.faults.add("timeout_after_commit", path_prefix=f"/v3/company/{qbo.realm_id}/batch", times=1, after=0,
                   delay=0)  # fmt: skip
    xero.faults.add("timeout_after_commit", path_prefix="/api.xro/2.0/Payments", times=1, after=0, delay=0)
    _ok(month, "sync_timeout", SYNC)
    month.seen["replays_after_timeout"] = {s: b.stats()["replays"] - replays[s] for s, b in month.books.items()}
    _observe(month, "sync_timeout")

    # -- a second payout; the worker pushing it is killed between the vendor's answer and its record -------------
    [second] = stripe.run_payouts()
    stripe.settle_payout(second["id"])
    _ok(month, "events_2", "closeout_stripe_events")
    replays = {s: b.stats()["replays"] for s, b in month.books.items()}
    month.seen["killed_made"] = {s: am.kill_push_between_answer_and_record(s, b) for s, b in month.books.items()}
    month.seen["pending_after_kill"] = am.pending_batches(warehouse)
    month.seen["links_after_kill"] = {s: am.linked(warehouse, s) for s in month.books}
    _ok(month, "sync_after_kill", SYNC)
    month.seen["replays_after_kill"] = {s: b.stats()["replays"] - replays[s] for s, b in month.books.items()}
    month.seen["pending_after_retry"] = am.pending_batches(warehouse)
    _observe(month, "sync_after_kill")
    month.runs["reconcile_green"] = green = run_dag_now(RECONCILE)  # judged by its test, the month goes on
    month.seen["green"] = am.check_statuses(warehouse, green.run_id)
    month.seen["green_rows"] = am.failed_rows(warehouse, green.run_id)
    if month.seen["green_rows"]:
        month.seen["green_diagnosis"] = am.diagnosis(warehouse, month.root / "reconcile_green.json")
    month.seen["holds_before_edit"] = warehouse.scalar("SELECT count(*) FROM closeout.payout_holds")

    # -- an accountant raises A's invoice in both systems; the next sync reads it back --------------------------
    invoice_a, _, total_a = month.invoices["a"]
    external = dict(warehouse.rows("SELECT system, external_id FROM closeout.accounting_links "
                                   "WHERE object_kind = 'invoice' AND closeout_ref = %s", (invoice_a,)))  # fmt: skip
    month.seen["edited"] = external
    qbo.advance_clock(5)
    quickbooks_edits(qbo, "Invoice", external["quickbooks"], {"Line": [
        {"Amount": money(total_a + EDIT), "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})  # fmt: skip
    xero.advance_clock(5)
    xero_edits(xero, "Invoices", external["xero"], {"LineItems": [
        {"Description": "edited", "Quantity": 1, "UnitAmount": money(total_a + EDIT), "AccountCode": "4000"}]})
    _ok(month, "sync_after_edit", SYNC)
    _observe(month, "sync_after_edit")
    month.runs["reconcile_edit"] = breach = run_dag_now(RECONCILE)
    month.seen["breach_rows"] = am.failed_rows(warehouse, breach.run_id)
    month.seen["paused"] = api.is_paused(PAYOUTS)
    month.runs["payouts_refused"] = run_dag_now(PAYOUTS)


# -- the assertions -------------------------------------------------------------------------------------------------
def _customers(system: str) -> str:
    return am.entity_of(system, "customer")[0]


def _invoices(system: str) -> str:
    return am.entity_of(system, "invoice")[0]


def test_the_close_pushes_every_booked_object_once_to_each_system(month: Month) -> None:
    warehouse = Warehouse(month.database)
    a, b, c = (month.invoices[k][0] for k in "abc")
    pushed = month.seen["close_push"]
    assert set(pushed) == set(am.SYSTEMS), pushed
    for system in am.SYSTEMS:  # the close's push: A's and B's invoices, A's payment; C's invoice held for finance
        assert pushed[system]["pushed"]["invoice"] == 2 and pushed[system]["pushed"]["payment"] >= 1, pushed
        assert month.held["close"][system] == {c: ("invoice", "customer_link")}, month.held["close"]
        assert month.counts["close"][system][_invoices(system)] == 2
    # what the month booked reached both systems: the stripe side of it is in closeout, and the push owes nothing
    assert warehouse.rows("SELECT invoice_id FROM closeout.credit_notes") == [(b,)]
    assert warehouse.rows("SELECT invoice_id FROM closeout.refunds") == [(a,)]
    assert warehouse.scalar("SELECT count(*) FROM closeout.stripe_payouts") == 2
    kinds = {s: {k: len(v) for k, v in am.linked(warehouse, s).items()} for s in am.SYSTEMS}
    for system in am.SYSTEMS:
        assert {"customer", "invoice", "payment"} <= set(kinds[system]) and len(kinds[system]) >= 4, kinds
        refs = {r for (r,) in warehouse.rows("SELECT closeout_ref FROM closeout.accounting_links WHERE system = %s "
                                              "AND object_kind = 'invoice'", (system,))}  # fmt: skip
        assert refs == {a, b, c}, refs
        assert month.held["sync_after_kill"][system] == {}, "nothing booked is left behind"
    assert set(kinds["quickbooks"]) == set(kinds["xero"]), kinds  # the same kinds of objects in both
    for system, sandbox in month.books.items():  # the count sees what closeout did not make: the planted customers
        with pytest.raises(AssertionError, match="there, not linked"):
            am.exactly_once(warehouse, system, sandbox, planted=[])


def test_a_rerun_pushes_nothing_and_the_counts_do_not_move(month: Month) -> None:
    assert month.seen["rerun_writes"] == {s: [] for s in am.SYSTEMS}, month.seen["rerun_writes"]
    assert month.counts["sync_3"] == month.counts["sync_2"]
    assert month.counts["sync_after_edit"] == month.counts["sync_after_kill"], "reading the edit back made nothing"


def test_a_timeout_after_commit_and_a_killed_worker_leave_no_duplicate(month: Month) -> None:
    before, after = month.counts["sync_3"], month.counts["sync_timeout"]
    for system in am.SYSTEMS:
        payments = am.entity_of(system, "payment")[0]
        assert month.seen["replays_after_timeout"][system] >= 1, month.seen["replays_after_timeout"]
        assert after[system][payments] >= before[system][payments] + 2, (system, before, after)  # B's and C's
    # the killed worker: the vendor created the payout's objects, closeout recorded nothing, one batch pending
    assert all(n >= 1 for n in month.seen["killed_made"].values()), month.seen["killed_made"]
    assert month.seen["pending_after_kill"] == dict.fromkeys(am.SYSTEMS, 1), month.seen["pending_after_kill"]
    for system in am.SYSTEMS:
        assert month.seen["links_after_kill"][system] == month.links["sync_timeout"][system], "nothing recorded"
        # the retry resent the batch under its key: the vendor replayed it, nothing was created twice (each object
        # there is linked once: _observe), and what the killed worker made is among them
        assert month.seen["replays_after_kill"][system] >= 1, month.seen["replays_after_kill"]
        final = month.counts["sync_after_kill"][system]
        assert sum(final.values()) >= sum(after[system].values()) + month.seen["killed_made"][system], final
    assert month.seen["pending_after_retry"] == {}


def test_a_client_matching_two_customers_waits_for_finance_then_goes_once(month: Month) -> None:
    warehouse = Warehouse(month.database)
    c_key, c_invoice = month.work.client_key("c"), month.invoices["c"][0]
    for system in am.SYSTEMS:
        review_id, ref, reason = month.reviews["close"][system]
        assert (ref, reason) == (c_key, "ambiguous"), month.reviews["close"]
        # A and B created, C not: the two namesakes there and no third
        assert month.counts["close"][system][_customers(system)] == 2 + len(month.planted[system])
        assert month.held["sync_1"][system] == {c_invoice: ("invoice", "customer_link")}
        chosen, said = month.seen[f"resolved_{system}"]
        assert f"review {review_id}: linked to {chosen}" in said, said
    listing = month.seen["review_listing"]
    assert listing.returncode == 0 and f"client {c_key}" in listing.stdout, listing
    assert "2 accounting link review(s) waiting" in listing.stdout, listing.stdout
    assert month.reviews["sync_2"] == {}
    customers = dict(warehouse.rows("SELECT system, external_id FROM closeout.accounting_links "
                                    "WHERE object_kind = 'customer' AND closeout_ref = %s", (c_key,)))  # fmt: skip
    assert customers == {s: month.planted[s][-1] for s in am.SYSTEMS}
    decided = warehouse.rows("SELECT subject, decided_by, outcome FROM closeout.decisions "
                             "WHERE kind = 'accounting_link' ORDER BY subject")  # fmt: skip
    assert decided == [(f"{s}:customer:{c_key}", gate_support.API_USER, "approved") for s in am.SYSTEMS], decided
    for system in am.SYSTEMS:  # the next sync pushed C's invoice once, and made no customer
        assert month.held["sync_2"][system] == {}
        close, after = month.counts["close"][system], month.counts["sync_2"][system]
        assert after[_invoices(system)] == close[_invoices(system)] + 1
        assert after[_customers(system)] == close[_customers(system)]


def test_the_checks_are_green_until_an_accountant_edits_an_invoice_then_payouts_are_held(
    month: Month,
) -> None:
    warehouse = Warehouse(month.database)
    close, green = month.seen["close_checks"], month.seen["green"]
    assert {n: s for n, s in close.items() if s not in ("passed", "not_applicable")} == {}, close
    assert {n: s for n, s in green.items() if s not in ("passed", "not_applicable")} == {}, (
        month.seen["green_rows"], month.seen.get("green_diagnosis"))
    assert month.runs["reconcile_green"].state == "success", month.runs["reconcile_green"]
    assert {n: green.get(n) for n in ACCOUNTING} == dict.fromkeys(ACCOUNTING, "passed"), green
    assert month.seen["holds_before_edit"] == 0

    invoice_a = month.invoices["a"][0]
    breach, rows = month.runs["reconcile_edit"], month.seen["breach_rows"]
    assert breach.state == "failed" and set(rows) <= set(ACCOUNTING) and "accounting_links" in rows, rows
    named = {(r["kind"], r["item"], r["difference_minor"]) for r in rows["accounting_links"]}
    assert named == {("total", f"{s} invoice {invoice_a} -> {month.seen['edited'][s]}", EDIT) for s in am.SYSTEMS}
    # the invoice check compares each system on its own: the edit is named in both, neither hides the other's
    number_a = warehouse.scalar("SELECT stripe_number FROM closeout.invoices WHERE invoice_id = %s", (invoice_a,))
    by_system = {(r["kind"], r["item"], r["difference_minor"]) for r in rows.get("accounting_invoices", [])}
    assert by_system == {("total", f"{s} {number_a}", EDIT) for s in am.SYSTEMS}, by_system
    # the real gate: paused through the Airflow API server, a hold, finance alerted, the payouts DAG refused
    assert month.seen["paused"] is True
    reasons = [r for (r,) in warehouse.rows("SELECT reason FROM closeout.payout_holds WHERE released_at IS NULL")]
    assert any("accounting_links" in r for r in reasons), reasons
    smtp = month.seen["smtp"]
    assert any("accounting_links" in m.body for m in smtp.messages), [m.message["Subject"] for m in smtp.messages]
    refused = month.runs["payouts_refused"]
    assert refused.state == "failed" and refused.task_states["gate"] == "failed", refused
