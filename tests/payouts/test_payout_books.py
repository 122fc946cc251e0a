"""Payouts in the books, and transfers Stripe refuses, against the Stripe sandbox and the real ledger and GX.

Journals: a planned item accrues its cost (contractor_costs / payouts_payable), its transfer pays it
(payouts_payable / cash_clearing), each once, with ids from kind and payout id; the receivable and the
reconciliation are untouched. Refusals: a 4xx Stripe saves under the key stops that item with an exception
naming it, the rest goes out; a 429 stays pending and the retry sends it once; resolving is recorded."""

from __future__ import annotations

import sys
from decimal import Decimal as D
from pathlib import Path

import pytest
import stripe
from closeout.ledger import tasks as ledger_tasks
from closeout.payouts import exceptions, release, tasks
from closeout.recon import run_reconciliation
from closeout.warehouse.db import connect
from payouts_support import check_invariant_6, green_recon, items, pay, payees_file, seed_invoices, user_key

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ledger"))
from ledger_support import check_invariants, sdk

pytestmark = pytest.mark.integration

ACCT_1, ACCT_2 = "acct_1U1Books", "acct_1U2Books"
WORK = {c: [("u1", D("1.00")), ("u2", D("2.00"))] for c in "ab"}  # four items: u1 in USD, u2 in EUR


@pytest.fixture
def payees(tmp_path, monkeypatch):
    path = payees_file(tmp_path, {"u1": ("50.00", "USD", ACCT_1), "u2": ("40.00", "EUR", ACCT_2)})
    monkeypatch.setenv("CLOSEOUT_PAYEES_CONFIG", str(path))
    monkeypatch.setenv("CLOSEOUT_PAYOUTS_APPROVAL", "off")
    return path


@pytest.fixture
def planned(warehouse, stripe_sandbox, payees) -> list[str]:
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, list(WORK))
    green_recon()
    tasks.check_gate("t")
    plan = tasks.plan_payouts("t")
    assert plan["items_planned"] == 4
    return plan["awaiting_approval"]


def _rate_limit_first_u1_transfer(warehouse, stripe_sandbox) -> None:
    """A 429 on u1's first transfer. The four items make one batch, sent in payout id order, and a payout id
    follows from payee, invoice and currency: the order is known before the plan."""
    from closeout.payouts.plan import payout_id

    paid = [r[0] for r in warehouse.rows("SELECT invoice_id FROM closeout.invoices WHERE status = 'paid'")]
    order = sorted((payout_id(user_key(u), iid, cur), u) for iid in paid for u, cur in (("u1", "USD"), ("u2", "EUR")))
    stripe_sandbox.inject("rate_limit", times=1, path_prefix="/v1/transfers", after=[u for _, u in order].index("u1"))


def _payout_journals(warehouse) -> dict[tuple[str, str], tuple]:
    """(kind, payout_id) -> (journal_id, currency, ((role, account, debit, credit), ...))."""
    out: dict[tuple[str, str], tuple] = {}
    for kind, source, jid, currency in warehouse.rows(
        """SELECT kind, source_ref, journal_id, currency FROM closeout.ledger_journals
           WHERE kind IN ('payout_accrual', 'payout_transfer')"""
    ):
        lines = tuple(warehouse.rows(
            """SELECT role, account, debit_minor, credit_minor FROM closeout.ledger_lines WHERE journal_id = %s
               ORDER BY line_no""", (jid,)))  # fmt: skip
        out[(kind, source)] = (jid, currency, lines)
    return out


def test_the_payouts_dag_books_each_item_once_and_reconciliation_holds(warehouse, stripe_sandbox, run_dag, payees,
                                                                      tmp_path):  # fmt: skip
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, list(WORK))
    ledger_tasks.post_journals("events")  # the invoices and payments, as the events DAG posts them
    green_recon()

    result = run_dag("closeout_payouts")
    assert result.state == "success", result
    assert result.task_states["post_journals"] == "success", result

    got = _payout_journals(warehouse)
    rows = warehouse.rows("SELECT payout_id, amount_minor, currency, external_id FROM closeout.payout_items")
    assert len(rows) == 4 and len(got) == 8
    for pid, amount, currency, external in rows:
        accrual_id, accrual_cur, accrual = got[("payout_accrual", pid)]
        transfer_id, transfer_cur, transfer = got[("payout_transfer", pid)]
        assert accrual == (("contractor_costs", "5000", amount, 0), ("payouts_payable", "2100", 0, amount))
        assert transfer == (("payouts_payable", "2100", amount, 0), ("cash_clearing", "1150", 0, amount))
        assert accrual_cur == transfer_cur == currency
        assert (accrual_id, transfer_id) == warehouse.rows(
            "SELECT closeout_data.journal_id('payout_accrual', %s), closeout_data.journal_id('payout_transfer', %s)",
            (pid, pid))[0]  # fmt: skip
        assert external in warehouse.scalar("SELECT description FROM closeout.ledger_journals WHERE journal_id = %s",
                                            (transfer_id,))  # fmt: skip
    balances = dict(((r[0], r[1]), r[2]) for r in warehouse.rows(
        "SELECT account, currency, balance_minor FROM closeout.trial_balance WHERE account IN ('2100', '5000')"))
    assert balances == {("2100", "USD"): 0, ("2100", "EUR"): 0, ("5000", "USD"): 10000, ("5000", "EUR"): 16000}
    check_invariants(warehouse)

    assert ledger_tasks.post_journals("again")["journals"] == 0  # reposting posts nothing
    assert run_dag("closeout_payouts").state == "success"
    assert _payout_journals(warehouse) == got

    with connect() as conn:
        recon = run_reconciliation(conn, data_docs_dir=tmp_path / "docs")
    statuses = {c.check_name: c.status for c in recon.checks}
    assert statuses["journals"] == "passed", statuses
    assert statuses["payouts_to_paid_invoices"] == "passed", statuses
    assert statuses["payments_to_journals"] == "passed", statuses


def test_a_refused_transfer_stops_its_item_and_a_429_is_sent_once_on_the_retry(warehouse, stripe_sandbox, planned):
    stripe_sandbox.refuse_transfers("balance_insufficient", destination=ACCT_2)
    _rate_limit_first_u1_transfer(warehouse, stripe_sandbox)
    with pytest.raises(release.ReleaseIncomplete, match=r"1 transfers failed.*2 refused for good"):
        tasks.release_batches("t1", planned, "auto: approval switched off")
    by_payee = {}
    for (payee, _), (_, _, status, *_rest) in items(warehouse).items():
        by_payee.setdefault(payee, []).append(status)
    assert sorted(by_payee[user_key("u1")]) == ["pending", "transferred"]  # the 429 stays pending
    assert by_payee[user_key("u2")] == ["stopped", "stopped"]  # refused: stopped, not pending forever
    assert stripe_sandbox.count("transfer") == 1

    refusals = warehouse.rows(
        """SELECT exception_id, payout_id, payee_key, reason, amount_minor, currency, stripe_code, resolved_at
           FROM closeout.payout_exceptions WHERE kind = 'transfer_refused' ORDER BY exception_id"""
    )
    assert len(refusals) == 2
    for _, pid, payee, reason, amount, currency, code, resolved in refusals:
        assert (payee, amount, currency, code, resolved) == (user_key("u2"), 8000, "EUR", "balance_insufficient", None)
        for part in (pid, user_key("u2"), ACCT_2, "80.00 EUR", "balance_insufficient", "400"):
            assert part in reason, (part, reason)

    sent = stripe_sandbox.stats()["by_path"].get("/v1/transfers", 0)
    again = tasks.release_batches("t2", planned, "auto: approval switched off")  # Airflow's retry
    assert (again["transferred"], again["stopped"]) == (1, 0)
    assert stripe_sandbox.stats()["by_path"]["/v1/transfers"] == sent + 1, "a stopped item was sent again"
    assert stripe_sandbox.count("transfer") == 2
    assert warehouse.rows("SELECT status, stopped FROM closeout.payout_batches") == [("released_with_exceptions", 2)]
    check_invariant_6(warehouse, stripe_sandbox)

    # finance tops up the balance: one refusal is sent again (under a key of its own: Stripe would replay the
    # saved refusal for the first one), the other given up; both recorded with who and why
    stripe_sandbox.refuse_transfers(None, destination=ACCT_2)
    (first, first_pid, *_), (second, second_pid, *_) = refusals
    with connect() as conn:
        assert exceptions.resolve(conn, first, resolved_by="ana@finance", resolution="balance topped up",
                                  action="retry") == "pending"  # fmt: skip
        assert exceptions.resolve(conn, second, resolved_by="ana@finance", resolution="paid by hand",
                                  action="abandon") == "stopped"  # fmt: skip
        with pytest.raises(ValueError, match="no such open exception"):
            exceptions.resolve(conn, first, resolved_by="ben", resolution="twice", action="retry")
        with pytest.raises(ValueError, match=r"who .* and why"):
            exceptions.resolve(conn, second, resolved_by=" ", resolution="", action="retry")
    third = tasks.release_batches("t3", planned, "auto: approval switched off")
    assert (third["transferred"], third["stopped"]) == (1, 0)
    key, status, retries = warehouse.rows(
        "SELECT idempotency_key, status, retries FROM closeout.payout_items WHERE payout_id = %s", (first_pid,))[0]
    assert (status, retries) == ("transferred", 1) and key.endswith(f"/payout/{first_pid}/transfer/retry-1")
    assert warehouse.scalar("SELECT status FROM closeout.payout_items WHERE payout_id = %s", (second_pid,)) == "stopped"
    assert warehouse.rows(
        """SELECT action, resolved_by, resolution FROM closeout.payout_exceptions WHERE kind = 'transfer_refused'
           ORDER BY exception_id""") == [("retry", "ana@finance", "balance topped up"),
                                         ("abandon", "ana@finance", "paid by hand")]  # fmt: skip
    assert stripe_sandbox.count("transfer") == 3
    assert tasks.release_batches("t4", planned, "x")["transferred"] == 0
    check_invariant_6(warehouse, stripe_sandbox)

    # the books: all four accrued; three paid; the abandoned one stays payable
    ledger_tasks.post_journals("books")
    payable = dict(warehouse.rows(
        "SELECT currency, balance_minor FROM closeout.trial_balance WHERE account = '2100'"))  # fmt: skip
    assert payable == {"USD": 0, "EUR": -8000}
    check_invariants(warehouse)


def test_a_refusal_fails_the_dag_run_without_retry_after_the_rest_went_out(warehouse, stripe_sandbox, run_dag, payees):
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, list(WORK))
    green_recon()
    stripe_sandbox.refuse_transfers("account_closed", destination=ACCT_2)

    result = run_dag("closeout_payouts")
    assert result.state == "failed", result
    assert result.task_states["release"] == "failed" and result.tries["release"] == 1, result
    assert sorted(v[2] for v in items(warehouse).values()) == ["stopped", "stopped", "transferred", "transferred"]
    reason = warehouse.scalar("SELECT reason FROM closeout.payout_runs WHERE step = 'release'")
    assert "2 transfers refused by Stripe" in reason and "account_closed" in reason
    check_invariant_6(warehouse, stripe_sandbox)


def test_the_sandbox_refuses_a_transfer_as_stripe_does_and_replays_the_refusal_for_its_key(stripe_sandbox):
    client = sdk(stripe_sandbox)
    params = {"amount": 500, "currency": "usd", "destination": ACCT_2}
    stripe_sandbox.refuse_transfers("insufficient_capabilities_for_transfer", destination=ACCT_2)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.transfers.create(params=params, options={"idempotency_key": "k-1"})
    error = refused.value
    assert (error.http_status, error.code) == (400, "insufficient_capabilities_for_transfer")
    assert error.param == "destination"
    assert error.json_body["error"]["type"] == "invalid_request_error"
    assert error.json_body["error"]["doc_url"].endswith("/error-codes/insufficient-capabilities-for-transfer")

    stripe_sandbox.refuse_transfers(None, destination=ACCT_2)
    with pytest.raises(stripe.InvalidRequestError) as replayed:  # the refusal was saved under its key
        client.v1.transfers.create(params=params, options={"idempotency_key": "k-1"})
    assert replayed.value.headers.get("Idempotent-Replayed") == "true"
    assert client.v1.transfers.create(params=params, options={"idempotency_key": "k-2"}).amount == 500
    with pytest.raises(ValueError, match="unknown transfer refusal"):
        stripe_sandbox.refuse_transfers("card_declined")


def test_a_refusal_behind_a_429_still_fails_the_run_after_the_retry_sends_the_rest(warehouse, stripe_sandbox,
                                                                                   run_dag, payees):  # fmt: skip
    invoices = seed_invoices(warehouse, WORK)
    pay(stripe_sandbox, invoices, list(WORK))
    green_recon()
    stripe_sandbox.refuse_transfers("balance_insufficient", destination=ACCT_2)
    _rate_limit_first_u1_transfer(warehouse, stripe_sandbox)

    result = run_dag("closeout_payouts")  # try 1: a 429 (retryable) and two refusals; try 2: the 429's item goes
    assert result.state == "failed", result
    assert result.task_states["release"] == "failed" and result.tries["release"] == 2, result
    assert sorted(v[2] for v in items(warehouse).values()) == ["stopped", "stopped", "transferred", "transferred"]
    runs = warehouse.rows("SELECT status, reason FROM closeout.payout_runs WHERE step = 'release' ORDER BY 1")
    assert [r[0] for r in runs] == ["failed", "failed"]
    assert any("refused by Stripe and stopped in an earlier try" in (r[1] or "") for r in runs), runs
    check_invariant_6(warehouse, stripe_sandbox)
