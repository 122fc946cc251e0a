"""Issue 6's break-injection matrix, end to end.

A green chain first, built once for the module through closeout's own code and real DAG runs (``dag.test``):
drafts -> closeout_stripe_publish -> customers pay in the Stripe sandbox -> closeout_stripe_events (payments
applied, journals posted) -> the accounting round trip (closeout's export files imported by the accounting system,
its own exports ingested back) -> closeout_reconcile green on all seven checks -> closeout_payouts transfers each
item once, a second run transfers nothing -> closeout_reconcile green again over the real transfers.

Then one break per check, each on its own copy of that warehouse (CREATE DATABASE ... TEMPLATE) and injected the
way it would really happen: the issue's five, plus a journal entry edited in QuickBooks (accounting_ledger) and a
recorded payment lost from the warehouse (payments_to_journals), so that every check has one.

Each must fail exactly its own check, pause closeout_payouts through the real Airflow API server, open exactly one
payout hold naming the run and the check, and deliver one e-mail (to a real local SMTP server) and one webhook (to
a local HTTP receiver) a finance person can act on; a reconcile run again, after someone unpaused payouts, pauses
again and sends nothing new; closeout_payouts triggered anyway refuses and no transfer reaches Stripe.

The reconciliations here run without a period, as the daily schedule does: the books to date. (A month's run
compares the ledger lines posted in that month, and closeout posts today what Stripe confirms today, so a month
before today holds no journals to compare with the accounting system's General Ledger.)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
import e2e_support as e2e  # noqa: E402
import gate_support  # noqa: E402
from payouts_support import check_invariant_6, draft_work, items, payees_file, user_key  # noqa: E402

pytestmark = pytest.mark.integration

api_server, airflow_api, smtp, hook_receiver, finance_conns = (
    gate_support.api_server, gate_support.airflow_api, gate_support.smtp, gate_support.hook_receiver,
    gate_support.finance_conns,
)  # fmt: skip

PAYOUTS = "closeout_payouts"
PERIOD = last_month().strftime("%Y-%m")
CHECKS = ("entries_to_invoice_lines", "expenses_to_invoice_lines", "invoices_to_stripe", "journals",
          "payments_to_journals", "accounting_ledger",
          "accounting_invoices", "payouts_to_paid_invoices",
          "stripe_objects", "stripe_balance", "stripe_fees", "stripe_payouts")  # fmt: skip
# client -> [(user, hours)] at 100.00 USD an hour; entries are numbered 1.. in this order. a and b are paid.
WORK = {"a": [("u1", D("2.00")), ("u2", D("1.50"))], "b": [("u1", D("3.25"))], "c": [("u2", D("4.00"))]}
PAYEES = {"u1": ("60.00", "USD", "acct_1E2eContractorU1"), "u2": ("45.00", "USD", "acct_1E2eContractorU2")}
PLANNED = {(user_key("u1"), "a"): 12000, (user_key("u2"), "a"): 6750, (user_key("u1"), "b"): 19500}


@dataclass
class Chain:
    """The green baseline: its database (the template of every break), sandbox, files and what each step did."""

    server: dict
    database: str
    sandbox: Any
    root: Path
    invoices: dict[str, tuple[str, str, int, str]] = field(default_factory=dict)  # client -> (id, stripe, total, no)
    runs: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, dict[str, str]] = field(default_factory=dict)
    transfers: dict[str, int] = field(default_factory=dict)
    items: dict = field(default_factory=dict)


def recon_checks(warehouse: Warehouse, airflow_run_id: str) -> dict[str, dict[str, Any]]:
    rows = warehouse.rows(
        """SELECT c.check_name, c.status, c.observed, c.tolerance, c.evidence, c.run_id
           FROM closeout.recon_checks c JOIN closeout_data.recon_runs r USING (run_id)
           WHERE r.airflow_run_id = %s""",
        (airflow_run_id,),
    )
    return {r[0]: dict(zip(("status", "observed", "tolerance", "evidence", "run_id"), r[1:], strict=True))
            for r in rows}  # fmt: skip


def statuses(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    # accounting_links judges API read-backs (docs/accounting-readback.md); this chain uses the file mode; and
    # tracker_billed_state judges write-backs to the trackers (docs/tracker-writeback.md), which it does not run
    return {name: c["status"] for name, c in checks.items()
            if not (name in ("accounting_links", "tracker_billed_state")
                    and c["status"] == "not_applicable")}  # fmt: skip


@pytest.fixture(scope="module")
def chain(warehouse_server, template_database, airflow_db, tmp_path_factory) -> Iterator[Chain]:
    from sandbox.stripe import StripeSandbox

    root = tmp_path_factory.mktemp("e2e")
    database = f"closeout_e2e_base_{os.getpid()}"
    e2e.clone_database(warehouse_server, template_database, database)
    sandbox = StripeSandbox(webhook_secret=STRIPE_WEBHOOK_SECRET, seed=23)
    sandbox.start()
    made = Chain(warehouse_server, database, sandbox, root)
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
            _build_green_chain(made)
            yield made
    finally:
        sandbox.stop()
        e2e.drop_database(warehouse_server, database)


def _build_green_chain(chain: Chain) -> None:
    warehouse = Warehouse(chain.database)
    draft_work({c: list(w) for c, w in WORK.items()})
    chain.runs["publish"] = run_dag_now("closeout_stripe_publish")
    for client, iid, sid, total, number in warehouse.rows(
        "SELECT client_key, invoice_id, stripe_invoice_id, total_minor, stripe_number FROM closeout.invoices"
    ):
        chain.invoices[client.removeprefix("harvest:")] = (iid, sid, total, number)
    for client in ("a", "b"):
        chain.sandbox.pay_invoice(chain.invoices[client][1])
    chain.runs["events"] = run_dag_now("closeout_stripe_events")
    chain.runs["accounting"] = e2e.accounting_round_trip(chain.root / "accounting", PERIOD)
    for step in ("reconcile", "payouts", "payouts_again", "reconcile_again"):
        if step == "reconcile_again":  # the payouts' journals go to the accounting system, as every day's do
            chain.runs["accounting_again"] = e2e.accounting_round_trip(chain.root / "accounting", PERIOD)
        chain.runs[step] = run_dag_now(PAYOUTS if step.startswith("payouts") else "closeout_reconcile")
        if step.startswith("reconcile"):
            chain.checks[step] = statuses(recon_checks(warehouse, chain.runs[step].run_id))
        chain.transfers[step] = chain.sandbox.count("transfer")
    chain.items = items(warehouse)


def test_the_green_chain_reconciles_every_link_and_pays_each_item_once(chain: Chain) -> None:
    for step in ("publish", "events", "reconcile", "payouts", "payouts_again", "reconcile_again"):
        assert chain.runs[step].state == "success", (step, chain.runs[step])
    assert {c: v[2] for c, v in chain.invoices.items()} == {"a": 35000, "b": 32500, "c": 40000}
    # every check compared something and passed: the accounting ones on the ingested exports, payouts on real items
    assert chain.checks["reconcile"] == dict.fromkeys(CHECKS, "passed"), chain.checks["reconcile"]
    assert chain.checks["reconcile_again"] == dict.fromkeys(CHECKS, "passed"), chain.checks["reconcile_again"]
    assert chain.runs["payouts"].task_states["approve"] == "skipped"  # approval switched off by configuration

    invoice_of = {v[0]: c for c, v in chain.invoices.items()}
    got = {(payee, invoice_of[iid]): v for (payee, iid), v in chain.items.items()}
    assert {k: (v[0], v[1], v[2]) for k, v in got.items()} == {k: (a, "USD", "transferred") for k, a in PLANNED.items()}
    assert chain.transfers["payouts"] == len(PLANNED)  # one transfer per item
    assert chain.transfers["payouts_again"] == len(PLANNED)  # and the second run released nothing
    assert chain.transfers["reconcile_again"] == len(PLANNED)


def test_the_green_chain_maps_each_item_to_exactly_one_transfer(chain: Chain, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, e2e.warehouse_conn_json(chain.server, chain.database))
    warehouse = Warehouse(chain.database)
    check_invariant_6(warehouse, chain.sandbox)
    ingests = warehouse.rows("SELECT kind, rows_loaded, rows_quarantined FROM closeout.accounting_ingests ORDER BY 1")
    # the month's General Ledger twice (before and after the payouts' journals; the second supersedes the first),
    # Xero's unchanged invoice export once
    assert [(k, q) for k, _, q in ingests] == [("general_ledger", 0), ("general_ledger", 0), ("invoices", 0)]
    assert all(n for _, n, _ in ingests), ingests
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 0


# -- the breaks ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Injected:
    """What a break did: the evidence rows its check must report (kind, item, difference_minor) and the
    transfers Stripe made while injecting it (a replayed release makes one)."""

    rows: list[tuple[str, str, int]]
    transfers: int = 0


def _stripe_total_changed(chain: Chain, warehouse: Warehouse) -> Injected:
    """Someone adds 123.45 to client c's open invoice in Stripe (no event for it); the customer's card is then
    declined, and Stripe's invoice.payment_failed carries the invoice as it now is: closeout_stripe_events sees
    the total differ from ours and records an exception (it never overwrites our total)."""
    iid, sid, total, _ = chain.invoices["c"]
    chain.sandbox.tamper_invoice_total(sid, total + 12345)
    chain.sandbox.fail_payment(sid)
    exceptions = "SELECT kind, invoice_id, stripe_total_minor FROM closeout.payment_exceptions ORDER BY 1, 2"
    for _ in range(2):  # the second run (a retry) finds nothing new to record
        result = run_dag_now("closeout_stripe_events")
        assert result.state == "success", result
        assert warehouse.rows(exceptions) == [("total_mismatch", iid, total + 12345)]
    assert warehouse.scalar("SELECT total_minor FROM closeout.invoices WHERE invoice_id = %s", (iid,)) == total
    return Injected([("exception:total_mismatch", iid, 12345)])


def _journal_line_missing(chain: Chain, warehouse: Warehouse) -> Injected:
    """The receivable line of client a's payment journal goes missing (deleted with the append-only guard off):
    the journal no longer balances and a's receivable shows 350.00 still owed on a paid invoice."""
    (journal_id,) = warehouse.rows("SELECT journal_id FROM closeout.ledger_journals WHERE kind = 'payment' AND "
                                   "invoice_id = %s", (chain.invoices["a"][0],))[0]  # fmt: skip
    _, debit, credit = e2e.delete_journal_line(journal_id, "receivable")
    assert (debit, credit) == (0, 35000)
    from closeout.ledger import tasks as ledger_tasks

    ledger_tasks.post_journals("e2e-retry")  # posting again neither repairs nor duplicates a posted journal
    assert warehouse.scalar("SELECT lines FROM closeout.journal_balance WHERE journal_id = %s", (journal_id,)) == 1
    return Injected([("unbalanced_journal", journal_id, 35000), ("receivable_vs_open_invoices", "harvest:a", 35000)])


def _payment_record_lost(chain: Chain, warehouse: Warehouse) -> Injected:
    """Client b's recorded payment goes missing from the warehouse (a clean-up of 'duplicate' payment rows, a
    partial restore), while its journal stays: the books hold cash that no recorded payment explains. The invoice
    still says paid (as Stripe does), so the receivable holds, and only payments_to_journals can see it. (A payment
    recorded whose journal is missing instead also leaves the receivable too high, which journals rightly reports
    as well: tests/recon/test_recon_suites.py covers that one.)"""
    from closeout.ledger import tasks as ledger_tasks
    from closeout.warehouse.db import connect

    with connect() as conn:
        [(payment_ref, amount)] = conn.execute(
            """DELETE FROM closeout_data.invoice_payments WHERE invoice_id = %s AND kind = 'payment'
               RETURNING payment_ref, amount_minor""",
            (chain.invoices["b"][0],),
        ).fetchall()
        conn.commit()
    assert amount == 32500
    ledger_tasks.post_journals("e2e-retry")  # posting again posts nothing: the payment's journal exists
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals WHERE kind = 'payment'") == 2
    return Injected([("journal_without_payment", payment_ref, 32500)])


def _accounting_row_altered(chain: Chain, warehouse: Warehouse) -> Injected:
    """Someone edits invoice a's total in Xero (350.00 -> 337.66); the next export of Xero's invoices is
    ingested."""
    number = chain.invoices["a"][3]
    loaded = e2e.alter_accounting_invoice(chain.root / "accounting", PERIOD, number, D("337.66"))
    assert loaded["loaded"] == 4 and not loaded["duplicate"], loaded  # a's two lines, b's and c's
    again = e2e.alter_accounting_invoice(chain.root / "accounting", PERIOD, number, D("337.66"))
    assert again["duplicate"] and again["ingest_id"] == loaded["ingest_id"], again  # the same file loads once
    return Injected([("total", number, -1234)])


def _ledger_entry_edited_in_accounting(chain: Chain, warehouse: Warehouse) -> Injected:
    """Someone edits client b's payment entry in QuickBooks (325.00 -> 320.00 on both lines); the month's General
    Ledger report is downloaded again and ingested: it supersedes the earlier one, and two accounts differ."""
    journal_id = warehouse.scalar("SELECT journal_id FROM closeout.ledger_journals WHERE kind = 'payment' AND "
                                  "invoice_id = %s", (chain.invoices["b"][0],))  # fmt: skip
    ours = warehouse.rows("SELECT account, debit_minor - credit_minor FROM closeout.ledger_lines WHERE journal_id = %s",
                          (journal_id,))  # fmt: skip
    assert sorted(amount for _, amount in ours) == [-32500, 32500], ours
    for _ in range(2):  # the same edited report ingested twice loads once
        e2e.accounting_round_trip(chain.root / "accounting", PERIOD, amend={journal_id: "320.00"})
    assert warehouse.scalar("SELECT count(*) FROM closeout.accounting_ingests WHERE kind = 'general_ledger'") == 3
    return Injected([("account_balance", account, -500 if amount > 0 else 500) for account, amount in ours])


def _payout_replayed(chain: Chain, warehouse: Warehouse) -> Injected:
    """u1's work on invoice a (120.00) is planned and released a second time: a second real transfer."""
    payout_id = warehouse.scalar("SELECT payout_id FROM closeout.payout_items WHERE payee_key = %s AND invoice_id = %s",
                                 (user_key("u1"), chain.invoices["a"][0]))  # fmt: skip
    replay = e2e.replay_payout(payout_id)
    assert replay["external_id"] and replay["amount_minor"] == 12000, replay
    from closeout.payments.hook import StripeHook
    from closeout.payouts import release
    from closeout.warehouse.db import connect

    with connect() as conn:  # releasing again sends nothing: every item, the replayed one too, is transferred
        assert release.release(conn, StripeHook()).transferred == 0
    # the books record what happened (the replay's accrual and transfer journals, balanced), and the accounting
    # system gets them as every day's journals: the ledger, the accounting system and Stripe all agree on the
    # second payment, and only the payouts check sees that it pays for work already paid
    from closeout.ledger import tasks as ledger_tasks

    ledger_tasks.post_journals("e2e-replay")
    assert warehouse.scalar("SELECT count(*) FROM closeout.ledger_journals WHERE source_ref = %s",
                            (replay["payout_id"],)) == 2  # fmt: skip
    e2e.accounting_round_trip(chain.root / "accounting", PERIOD)
    return Injected([("duplicate_work", f"{replay['payout_id']}:{chain.invoices['a'][0]}", 12000)], transfers=1)


def _entry_edited_after_invoicing(chain: Chain, warehouse: Warehouse) -> Injected:
    """Entry 1 (u1, 2.00 h on invoice a) is edited to 2.50 h after a was invoiced, and the adjustment that
    drafting would make for it never comes: the entry is billed 50.00 less than it is now worth."""
    assert e2e.edit_entry_after_invoicing("1", D("2.50")) == 1
    assert e2e.edit_entry_after_invoicing("1", D("2.50")) == 0  # the same version seen again is not a new one
    return Injected([("entry_billed", "harvest:1", -5000)])


BREAKS: dict[str, tuple[str, Callable[[Chain, Warehouse], Injected]]] = {
    "stripe_total_changed": ("invoices_to_stripe", _stripe_total_changed),
    "journal_line_missing": ("journals", _journal_line_missing),
    "payment_record_lost": ("payments_to_journals", _payment_record_lost),
    "accounting_row_altered": ("accounting_invoices", _accounting_row_altered),
    "ledger_entry_edited_in_accounting": ("accounting_ledger", _ledger_entry_edited_in_accounting),
    "payout_replayed": ("payouts_to_paid_invoices", _payout_replayed),
    "entry_edited_after_invoicing": ("entries_to_invoice_lines", _entry_edited_after_invoicing),
}


@pytest.fixture
def broken_copy(chain: Chain, warehouse_server, monkeypatch, request) -> Iterator[Warehouse]:
    """A copy of the green chain's warehouse, wired as closeout_warehouse for the test."""
    name = f"closeout_e2e_{request.node.callspec.id}_{os.getpid()}"[:63]
    e2e.clone_database(warehouse_server, chain.database, name)
    monkeypatch.setenv(ENV_VAR, e2e.warehouse_conn_json(warehouse_server, name))
    yield Warehouse(name)
    e2e.drop_database(warehouse_server, name)


def _open_holds(warehouse: Warehouse) -> list[tuple]:
    return warehouse.rows("SELECT hold_id, recon_run_id, check_name, reason FROM closeout.payout_holds "
                          "WHERE released_at IS NULL")  # fmt: skip


@pytest.mark.parametrize("name", list(BREAKS))
def test_a_break_fails_only_its_check_holds_payouts_once_and_tells_finance(
    name, chain, broken_copy, airflow_api, smtp, hook_receiver, finance_conns
) -> None:
    warehouse = broken_copy
    check, inject = BREAKS[name]
    airflow_api.set_paused(PAYOUTS, False)
    transfers = chain.sandbox.count("transfer")
    injected = inject(chain, warehouse)
    assert chain.sandbox.count("transfer") == transfers + injected.transfers
    transfers += injected.transfers
    paid_out = items(warehouse)

    # 1. exactly its own check fails; every other one passes as in the green chain; the run fails, unretried
    first = run_dag_now("closeout_reconcile")
    assert first.state == "failed" and first.tries["reconcile"] == 1, first
    checks = recon_checks(warehouse, first.run_id)
    assert statuses(checks) == {**dict.fromkeys(CHECKS, "passed"), check: "failed"}, statuses(checks)
    got = checks[check]
    rows = sorted((r["kind"], r["item"], r["difference_minor"]) for r in got["evidence"]["rows"])
    assert rows == sorted(injected.rows), got["evidence"]
    biggest = max(abs(d) for _, _, d in injected.rows)
    assert got["observed"]["by_currency"]["USD"]["max_abs_difference_minor"] == biggest
    assert got["observed"]["failing_rows"] == len(injected.rows)
    docs = got["evidence"]["data_docs"]
    assert docs.startswith("file://") and Path(docs.removeprefix("file://")).is_file()

    # 2. through the real gate: paused by the API server, one hold naming the run and the check, one of each alert
    assert airflow_api.is_paused(PAYOUTS) is True
    [(hold_id, hold_run, hold_check, reason)] = _open_holds(warehouse)
    assert (hold_run, hold_check) == (got["run_id"], check) and check in reason and got["run_id"] in reason
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1
    mail = smtp.messages[0]
    assert check in mail.message["Subject"] and f"#{hold_id}" in mail.message["Subject"]
    body = mail.body
    for needed in (
        f"Check:     {check}",  # what failed
        f"Recon run: {got['run_id']}",
        e2e.major(biggest),  # by how much, in major units with the currency
        *(f"{item} ({kind}):" for kind, item, _ in injected.rows),  # which invoice, entry, journal, account...
        *(e2e.major(d) for _, _, d in injected.rows),  # ... and by how much
        f"failing_rows: {len(injected.rows)}",  # how many
        docs,  # where the evidence is
        f"Hold id:   {hold_id}",
        f"The Airflow DAG {PAYOUTS} has been paused.",
        f"python -m closeout.gate release --hold-id {hold_id}",  # what to do
    ):
        assert needed in body, (needed, body)
    payload = hook_receiver.requests[0]["json"]
    assert (payload["check_name"], payload["hold_id"], payload["recon_run_id"]) == (check, hold_id, got["run_id"])
    assert payload["evidence"] == docs and payload["dag_paused"] is True and payload["dag_id"] == PAYOUTS

    # 3. retried (someone unpaused payouts meanwhile): the same verdict, paused again, no new hold, nothing sent
    airflow_api.set_paused(PAYOUTS, False)
    again = run_dag_now("closeout_reconcile")
    assert again.state == "failed", again
    assert statuses(recon_checks(warehouse, again.run_id)) == statuses(checks)
    assert airflow_api.is_paused(PAYOUTS) is True
    assert [h[0] for h in _open_holds(warehouse)] == [hold_id]
    assert warehouse.scalar("SELECT count(*) FROM closeout.payout_holds") == 1
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1

    # 4. closeout_payouts triggered anyway (a trigger unpauses it): the gate refuses, twice; nothing reaches Stripe
    for _ in range(2):
        refused = run_dag_now(PAYOUTS)
        assert refused.state == "failed" and refused.task_states["gate"] == "failed", refused
        assert refused.task_states["release"] == "upstream_failed", refused
    assert chain.sandbox.count("transfer") == transfers
    assert items(warehouse) == paid_out
    refusals = warehouse.rows("SELECT reason, counts FROM closeout.payout_runs WHERE step = 'gate' "
                              "AND status = 'refused'")  # fmt: skip
    assert len(refusals) == 2 and all(f"payout hold {hold_id}" in r and c["hold_ids"] == [hold_id]
                                      for r, c in refusals), refusals  # fmt: skip
    # finance already has the hold's alert: a trigger during the hold tells the platform team only
    assert len(smtp.messages) == 1 and len(hook_receiver.requests) == 1, [m.message["Subject"] for m in smtp.messages]
