"""Invoices closeout voided after they were pushed, against both sandboxes after a real chain: the invoice is voided
in Stripe, closeout reads the void back (status void, its void journal), and the push voids it there once (QuickBooks
operation=void with the link's SyncToken, Xero Status VOIDED), recorded on the link; a rerun sends nothing, a retry
after lost answers replays the same key, a stale SyncToken is read again, and an invoice paid there is held for
finance. accounting_links then expects it voided, not vanished."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from accounting_tax_support import (
    VAT20,
    connect_quickbooks,
    connect_xero,
    link_row,
    links_breaks,
    open_holds,
    quickbooks,
    taxed_month,
    xero,
)
from closeout.accounting.push.run import books_for, push
from closeout.accounting.push.tasks import sync_customers
from closeout.accounting.readback.tasks import read_back
from ledger_support import follow_cash, sdk

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.quickbooks.cdc import accountant_edits

pytestmark = pytest.mark.integration


@pytest.fixture(params=["quickbooks", "xero"])
def books(request: pytest.FixtureRequest, warehouse, monkeypatch: pytest.MonkeyPatch):
    sandbox: Any = quickbooks() if request.param == "quickbooks" else xero()
    if request.param == "quickbooks":
        connect_quickbooks(monkeypatch, sandbox, max_attempts=2, push={"tax_code": "NON"})
    else:
        connect_xero(monkeypatch, sandbox, max_attempts=2, push={"tax_code": "NONE"})
    sandbox.system = request.param
    yield sandbox
    sandbox.stop()


def pushed_then_voided(warehouse, stripe_sandbox, books) -> tuple[str, str]:
    """Client a's taxed invoice pushed, then voided in Stripe and read back by closeout: (invoice_id, external id)."""
    invoices = taxed_month(stripe_sandbox, {"a": ([D("1")], VAT20), "b": ([D("2")], VAT20)})
    sync_customers(books.system)
    assert push(books_for(books.system)).pushed.get("invoice") == 2
    iid, sid = invoices["a"][0], invoices["a"][1]
    sdk(stripe_sandbox).v1.invoices.void_invoice(sid)
    follow_cash()
    assert warehouse.scalar("SELECT status FROM closeout.invoices WHERE invoice_id = %s", (iid,)) == "void"
    return iid, link_row(warehouse, books.system, iid)["external_id"]


def there(sandbox: Any, external_id: str) -> dict[str, Any]:
    if isinstance(sandbox, QuickBooksSandbox):
        return next(o for o in sandbox.objects("Invoice") if o["Id"] == external_id)
    return next(o for o in sandbox.objects("Invoices") if o["InvoiceID"] == external_id)


def voided_there(sandbox: Any, external_id: str) -> bool:
    obj = there(sandbox, external_id)
    if isinstance(sandbox, QuickBooksSandbox):
        return str(obj.get("PrivateNote", "")).startswith("Voided") and obj["TotalAmt"] == 0
    return obj["Status"] == "VOIDED"


def void_path(sandbox: Any) -> str:
    if isinstance(sandbox, QuickBooksSandbox):
        return f"/v3/company/{sandbox.realm_id}/invoice"
    return "/api.xro/2.0/Invoices"


def void_writes(sandbox: Any, start: int) -> list[tuple]:
    return [r for r in sandbox.stats()["log"][start:] if r[0] in ("POST", "PUT") and void_path(sandbox) in r[1]
            and (not isinstance(sandbox, QuickBooksSandbox) or "operation=void" in r[1])]  # fmt: skip


def void_outbox(warehouse, system: str) -> list[tuple]:
    return warehouse.rows("SELECT request_id, status FROM closeout_data.accounting_api_outbox "
                          "WHERE system = %s AND operation IN ('invoice.void', 'invoices.void')", (system,))


def test_a_voided_invoice_is_voided_there_once_and_accounting_links_expects_it(warehouse, stripe_sandbox,
                                                                                books) -> None:  # fmt: skip
    iid, external_id = pushed_then_voided(warehouse, stripe_sandbox, books)
    before = len(books.stats()["log"])
    run = push(books_for(books.system))
    assert run.pushed == {"void": 1} and not run.held, run.as_dict()
    assert voided_there(books, external_id)
    link = link_row(warehouse, books.system, iid)
    assert link["remote_state"] == "void"
    assert len(void_writes(books, before)) == 1
    rerun_start = len(books.stats()["log"])
    again = push(books_for(books.system))
    assert not again.pushed and not again.held and void_writes(books, rerun_start) == []  # once
    assert len(void_outbox(warehouse, books.system)) == 1
    # the void journal is the document's void there, never a journal of its own
    assert not warehouse.rows("SELECT 1 FROM closeout.accounting_links WHERE object_kind = 'journal' "
                              "AND closeout_ref IN (SELECT journal_id FROM closeout.ledger_journals "
                              "WHERE invoice_id = %s)", (iid,))  # fmt: skip
    read_back(books.system)
    assert links_breaks() == []  # voided, as expected: not "vanished"


def test_a_void_whose_answers_are_lost_is_replayed_under_the_same_key(warehouse, stripe_sandbox, books) -> None:
    iid, external_id = pushed_then_voided(warehouse, stripe_sandbox, books)
    books.faults.add("timeout_after_commit", path_prefix=void_path(books), times=2, after=0, delay=0)
    with pytest.raises(Exception, match="no answer"):
        push(books_for(books.system))  # voided there, but both answers lost: not recorded
    assert voided_there(books, external_id)
    assert link_row(warehouse, books.system, iid)["remote_state"] is None
    ((key, status),) = void_outbox(warehouse, books.system)
    assert status == "pending"
    replays = books.stats()["replays"]
    run = push(books_for(books.system))
    assert run.pushed == {"void": 1}, run.as_dict()
    assert books.stats()["replays"] == replays + 1  # the same key: the system replayed its first answer
    assert void_outbox(warehouse, books.system) == [(key, "succeeded")]
    assert link_row(warehouse, books.system, iid)["remote_state"] == "void"


def test_a_stale_sync_token_is_read_again_then_the_void_goes(warehouse, stripe_sandbox, monkeypatch) -> None:
    sandbox = quickbooks()
    connect_quickbooks(monkeypatch, sandbox, max_attempts=2, push={"tax_code": "NON"})
    sandbox.system = "quickbooks"
    try:
        iid, external_id = pushed_then_voided(warehouse, stripe_sandbox, sandbox)
        accountant_edits(sandbox, "Invoice", external_id, {"CustomerMemo": {"value": "thanks"}})  # SyncToken 0 -> 1
        run = push(books_for("quickbooks"))
        assert run.pushed == {"void": 1}, run.as_dict()
        assert voided_there(sandbox, external_id)
        link = link_row(warehouse, "quickbooks", iid)
        assert (link["remote_state"], link["remote_version"]) == ("void", "2")
        assert len(void_outbox(warehouse, "quickbooks")) == 2  # the stale try and the one with the token read again
    finally:
        sandbox.stop()


def test_an_invoice_paid_in_the_books_is_held_not_voided(warehouse, stripe_sandbox, books) -> None:
    iid, external_id = pushed_then_voided(warehouse, stripe_sandbox, books)
    with books._lock:  # an accountant records a payment against it there
        if isinstance(books, QuickBooksSandbox):
            company = books.company(books.realm_id)
            customer = there(books, external_id)["CustomerRef"]["value"]
            books._create(company, "Payment", {"CustomerRef": {"value": customer}, "TotalAmt": D("10.00"),
                                               "Line": [{"Amount": D("10.00"), "LinkedTxn": [
                                                   {"TxnId": external_id, "TxnType": "Invoice"}]}]})  # fmt: skip
        else:
            tenant = books._tenants[books.tenant_id]
            books._save(tenant, "Payments", "PaymentID", {"Invoice": {"InvoiceID": external_id},
                                                          "Account": {"Code": "090"}, "Amount": D("10.00"),
                                                          "Date": there(books, external_id)["Date"]},
                        create_only=True)  # fmt: skip
    run = push(books_for(books.system))
    assert run.held == {"void": [iid]} and not run.pushed, run.as_dict()
    reason, detail = open_holds(warehouse, books.system)[iid]
    assert reason == "has_payments" and "remove or unapply that payment" in detail
    assert not voided_there(books, external_id)
    assert link_row(warehouse, books.system, iid)["remote_state"] is None
