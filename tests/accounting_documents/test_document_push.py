"""Credit notes and Stripe payouts pushed as the accounting systems' own documents (issue 17 item 4): a credit note
that lowers its invoice goes as a QuickBooks CreditMemo applied to the invoice / a Xero ACCRECCREDIT credit note
allocated to it, a Stripe payout's move to the bank as a QuickBooks Deposit / Xero BankTransfer, each once (rerun,
a timeout after commit replayed, a key past its lifetime found by reference), never as a journal too; a lock date
holds what it covers and lets the rest through."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from documents_support import (
    a_month,
    books_for,
    created,
    follow_cash,
    held,
    links,
    push,
    run_push,
    set_push,
    start,
    there,
    write_path,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=["quickbooks", "xero"])
def books(request: pytest.FixtureRequest, warehouse, monkeypatch: pytest.MonkeyPatch):
    sandbox = start(request.param, monkeypatch)
    yield sandbox
    sandbox.stop()


def _credit_and_payout(warehouse, stripe_sandbox) -> dict[str, Any]:
    """a paid, b credited 10.00 before payment (the credit lowers what it owes) then paid; Stripe's automatic
    payout of the balance created and then arrived at the bank; closeout reads it all and posts the journals."""
    inv = a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]}, paid=("a",))
    note = stripe_sandbox.dashboard_credit_note(inv["b"][1], amount=1000)
    stripe_sandbox.pay_invoice(inv["b"][1])
    follow_cash()
    stripe_sandbox.run_payouts(now=stripe_sandbox.state.now() + 3 * 86400)
    follow_cash()
    stripe_sandbox.run_payouts(now=stripe_sandbox.state.now() + 3 * 86400)
    follow_cash()
    payout_journals = dict(warehouse.rows(
        "SELECT kind, journal_id FROM closeout.ledger_journals WHERE kind IN ('stripe_payout', 'stripe_payout_paid')"))
    assert set(payout_journals) == {"stripe_payout", "stripe_payout_paid"}, payout_journals
    return {"invoices": inv, "credit_note": note["id"], "payout_journals": payout_journals}


def _applied(books: Any, invoice_external_id: str) -> D:
    """What the invoice still owes there (QuickBooks Balance, Xero AmountDue)."""
    obj = there(books, "invoice")[invoice_external_id]
    return D(str(obj["Balance"] if books.system == "quickbooks" else obj["AmountDue"]))


def test_a_credit_note_and_a_payout_go_as_documents_once(warehouse, stripe_sandbox, books) -> None:
    month = _credit_and_payout(warehouse, stripe_sandbox)
    run = run_push(books.system)
    assert not run.held, run.as_dict()
    notes = links(warehouse, books.system, "credit_note")
    assert set(notes) == {month["credit_note"]} and notes[month["credit_note"]][1:3] == (1000, "USD")
    note_there = there(books, "credit_note")[notes[month["credit_note"]][0]]
    invoice_b = links(warehouse, books.system, "invoice")[month["invoices"]["b"][0]][0]
    if books.system == "quickbooks":
        assert D(str(note_there["TotalAmt"])) == D("10.00") and note_there["CustomerRef"]["value"]
    else:
        assert note_there["Type"] == "ACCRECCREDIT" and D(str(note_there["Total"])) == D("10.00")
        assert note_there["Allocations"][0]["Invoice"]["InvoiceID"] == invoice_b
    assert _applied(books, invoice_b) == 0  # paid by the card payment and the credit applied to it
    deposits = links(warehouse, books.system, "deposit")
    assert set(deposits) == set(month["payout_journals"].values())
    amount = warehouse.scalar("SELECT amount_minor FROM closeout.stripe_payouts")
    moves = {ref: there(books, "deposit")[ext] for ref, (ext, *_rest) in deposits.items()}
    for kind, journal_id in month["payout_journals"].items():
        obj = moves[journal_id]
        assert deposits[journal_id][1:3] == (amount, "USD")
        if books.system == "quickbooks":
            target = obj["DepositToAccountRef"]["value"]
            source = obj["Line"][0]["DepositLineDetail"]["AccountRef"]["value"]
            assert D(str(obj["TotalAmt"])) == D(amount).scaleb(-2)
        else:
            target, source = obj["ToBankAccount"]["Code"], obj["FromBankAccount"]["Code"]
            assert D(str(obj["Amount"])) == D(amount).scaleb(-2)
        roles = dict(warehouse.rows("SELECT CASE WHEN debit_minor > 0 THEN 'to' ELSE 'from' END, account "
                                    "FROM closeout.ledger_lines WHERE journal_id = %s", (journal_id,)))  # fmt: skip
        assert (source, target) == (roles["from"], roles["to"]), kind  # from the clearing account to the bank
    # no double booking: neither the credit note's nor the payout's ledger journals went as journals too
    journal_refs = set(links(warehouse, books.system, "journal"))
    assert not journal_refs & set(month["payout_journals"].values())
    assert all(ref.startswith("fees:") for ref in journal_refs), journal_refs
    counts = created(books)
    again = run_push(books.system)
    assert not again.pushed and again.batches == 0 and created(books) == counts


def test_a_timeout_after_commit_is_replayed_and_an_expired_key_is_found_by_reference(
    warehouse, stripe_sandbox, books, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]})
    run_push(books.system)  # the invoices are there first
    stripe_sandbox.dashboard_credit_note(inv["a"][1], amount=500)
    stripe_sandbox.dashboard_credit_note(inv["b"][1], amount=700)
    follow_cash()
    # the credit notes' write is committed there and its answer lost, once: the hook's retry is replayed
    books.faults.add("timeout_after_commit", path_prefix=write_path(books, "credit_note"), times=1, after=0, delay=0)
    run = push(books_for(books.system))
    assert run.pushed.get("credit_note") == 2 and created(books)["credit_note"] == 2
    assert books.stats()["replays"] >= 1
    # two more; every answer is lost, until the vendor's key lifetime is over
    stripe_sandbox.dashboard_credit_note(inv["a"][1], amount=300)
    stripe_sandbox.dashboard_credit_note(inv["b"][1], amount=200)
    follow_cash()
    books.faults.add("timeout_after_commit", path_prefix=write_path(books, "credit_note"), times=2, after=0, delay=0)
    with pytest.raises(Exception, match="no answer"):
        push(books_for(books.system))
    assert created(books)["credit_note"] == 4 and len(links(warehouse, books.system, "credit_note")) == 2
    if books.system == "quickbooks":
        books.request_id_ttl_seconds = 60
    else:
        books.idempotency_ttl_seconds = 60
    books.advance_clock(3600)
    set_push(monkeypatch, books.system, key_lifetime_seconds=0)
    later = push(books_for(books.system))
    assert later.looked_up == 1 and later.found_by_reference == 2, later.as_dict()
    assert created(books)["credit_note"] == 4  # found, not created again
    matched = [v[3] for v in links(warehouse, books.system, "credit_note").values()]
    assert sorted(matched) == ["pushed", "pushed", "reference", "reference"]


def test_a_lock_date_holds_the_documents_it_covers_and_lets_the_rest_through(
    warehouse, stripe_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    month = _credit_and_payout(warehouse, stripe_sandbox)
    days = dict(warehouse.rows("SELECT kind, (occurred_at AT TIME ZONE 'UTC')::date FROM closeout.ledger_journals "
                               "WHERE kind IN ('stripe_payout', 'stripe_payout_paid')"))  # fmt: skip
    assert days["stripe_payout_paid"] > days["stripe_payout"] > date.today() - timedelta(days=1)
    lock = days["stripe_payout"].isoformat()  # the books are locked up to the day the payout left Stripe
    for system in ("quickbooks", "xero"):
        locked = {"book_close_date": lock} if system == "quickbooks" else {"period_lock_date": lock}
        sandbox = start(system, monkeypatch, **locked)
        try:
            run = run_push(system)
            holds = held(warehouse, system)
            arrival = month["payout_journals"]["stripe_payout_paid"]
            assert set(links(warehouse, system, "deposit")) == {arrival}, holds  # dated after the lock: it went
            assert holds[month["payout_journals"]["stripe_payout"]][:2] == ("deposit", "closed_period")
            invoice_b = month["invoices"]["b"][0]
            assert holds[invoice_b][:2] == ("invoice", "closed_period") and lock in holds[invoice_b][2]
            assert holds[month["credit_note"]][:2] == ("credit_note", "invoice_not_pushed")  # waits for it
            assert run.pushed.get("deposit") == 1 and created(sandbox)["credit_note"] == 0
            if system == "quickbooks":  # finance reopens the period there
                sandbox.book_close_date = None
            else:
                sandbox.period_lock_date = None
            fixed = run_push(system)
            assert fixed.pushed.get("deposit") == 1 and fixed.pushed.get("credit_note") == 1, fixed.as_dict()
            assert held(warehouse, system) == {} and created(sandbox)["deposit"] == 2
        finally:
            sandbox.stop()


def test_a_credit_note_that_refunds_cash_stays_a_journal_with_its_refund(
    warehouse, stripe_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = start("xero", monkeypatch)
    try:
        inv = a_month(warehouse, stripe_sandbox, {"a": [D("2")]}, paid=("a",))
        note = stripe_sandbox.dashboard_credit_note(inv["a"][1], amount=1000, refund_amount=1000)  # cash back
        follow_cash()
        run = run_push("xero")
        assert not run.held and links(warehouse, "xero", "credit_note") == {}
        assert created(sandbox)["credit_note"] == 0
        journals = dict(warehouse.rows("SELECT kind, journal_id FROM closeout.ledger_journals "
                                       "WHERE source_ref = %s OR kind = 'refund'", (note["id"],)))  # fmt: skip
        assert {"credit_note", "refund"} <= set(journals), journals
        pushed = links(warehouse, "xero", "journal")
        assert journals["credit_note"] in pushed and journals["refund"] in pushed  # each once, as journals
    finally:
        sandbox.stop()


def test_journals_pushed_before_documents_existed_are_not_pushed_again_as_documents(
    warehouse, stripe_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from closeout.warehouse.db import connect

    month = _credit_and_payout(warehouse, stripe_sandbox)
    sandbox = start("xero", monkeypatch)
    try:
        sync_first = run_push("xero")  # everything goes once
        assert sync_first.pushed.get("deposit") == 2
        # an older closeout had pushed the credit note and the payout arrival as manual journals: their links say so
        arrival = month["payout_journals"]["stripe_payout_paid"]
        note_journal = warehouse.scalar("SELECT journal_id FROM closeout.ledger_journals WHERE kind = 'credit_note'")
        with connect() as conn:
            conn.execute("DELETE FROM closeout_data.accounting_links WHERE system = 'xero' AND "
                         "object_kind IN ('credit_note', 'deposit') AND closeout_ref IN (%s, %s)",
                         (month["credit_note"], arrival))  # fmt: skip
            conn.execute("INSERT INTO closeout_data.accounting_links (system, company_id, object_kind, closeout_ref, "
                         "external_id, matched_by, total_minor, currency) SELECT 'xero', company_id, 'journal', "
                         "x.ref, 'mj-' || x.ref, 'pushed', 0, 'USD' FROM closeout_data.accounting_links, "
                         "(VALUES (%s), (%s)) AS x(ref) WHERE system = 'xero' AND object_kind = 'invoice' LIMIT 2",
                         (note_journal, arrival))  # fmt: skip
            conn.commit()
        counts = created(sandbox)
        again = run_push("xero")
        assert not again.pushed and created(sandbox) == counts  # neither goes again as a document
    finally:
        sandbox.stop()
