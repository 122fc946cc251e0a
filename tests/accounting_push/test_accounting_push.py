"""The books pushed to QuickBooks Online and Xero exactly once, against both sandboxes and the real warehouse, after a
real chain (closeout published the invoices to the Stripe sandbox, Stripe was paid, closeout read the cash back and
posted the journals). The sandboxes' own counts are the proof: each invoice, payment and journal exists there once,
a rerun sends nothing, a timeout after commit is replayed, and a key past its lifetime is found by reference."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from accounting_push_support import (
    QBO_NO_LIMITS,
    XERO_NO_LIMITS,
    a_month,
    connect_quickbooks,
    connect_xero,
    created,
    expected_journals,
    links,
    objects,
    set_push,
)
from closeout.accounting.push.run import books_for, push
from closeout.accounting.push.tasks import sync_customers

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.xero import XeroSandbox

pytestmark = pytest.mark.integration


@pytest.fixture(params=["quickbooks", "xero"])
def books(request: pytest.FixtureRequest, warehouse, monkeypatch: pytest.MonkeyPatch):
    """One accounting system's sandbox, connected; ``request.param`` names it."""
    if request.param == "quickbooks":
        sandbox: Any = QuickBooksSandbox(**QBO_NO_LIMITS)
        sandbox.start()
        connect_quickbooks(monkeypatch, sandbox, max_attempts=2)
    else:
        sandbox = XeroSandbox(**XERO_NO_LIMITS)
        sandbox.start()
        connect_xero(monkeypatch, sandbox, max_attempts=2)
    sandbox.system = request.param
    yield sandbox
    sandbox.stop()


def write_path(sandbox: Any) -> str:
    """Where the push's invoice writes go: QuickBooks' batch endpoint, Xero's Invoices."""
    if isinstance(sandbox, QuickBooksSandbox):
        return f"/v3/company/{sandbox.realm_id}/batch"
    return "/api.xro/2.0/Invoices"


def run_push(system: str):
    sync_customers(system)
    return push(books_for(system))


def _total_there(system: str, obj: dict[str, Any]) -> D:
    return D(str(obj["TotalAmt"] if system == "quickbooks" else obj["Total"]))


def test_every_object_goes_once_and_a_rerun_sends_nothing(warehouse, stripe_sandbox, books) -> None:
    invoices = a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("3.5")], "c": [D("1")]}, paid=("a", "c"))
    run = run_push(books.system)
    journals = expected_journals(warehouse)
    assert journals >= 1  # Stripe's fees on the two payments: one journal for their day (fees go per day and currency)
    assert created(books) == {"invoice": 3, "payment": 2, "journal": journals}, run.as_dict()
    assert run.pushed == {"invoice": 3, "payment": 2, "journal": journals} and not run.held
    linked = links(warehouse, books.system, "invoice")
    assert set(linked) == {iid for iid, _, _ in invoices.values()}
    by_id = {o["Id" if books.system == "quickbooks" else "InvoiceID"]: o for o in objects(books, "invoice")}
    for iid, _, total in invoices.values():  # invariant 9: the same total and currency there
        external_id, total_minor, currency, matched_by = linked[iid]
        assert (total_minor, currency, matched_by) == (total, "USD", "pushed")
        assert _total_there(books.system, by_id[external_id]) == D(total).scaleb(-2)
    balances = [D(str(o["Balance"] if books.system == "quickbooks" else o["AmountDue"])) for o in by_id.values()]
    assert sorted(balances) == [0, 0, D("350.00")]  # the payments were applied to a's and c's invoices there
    before = books.stats()["requests"]
    again = run_push(books.system)
    assert not again.pushed and not again.held and again.batches == 0
    assert created(books) == {"invoice": 3, "payment": 2, "journal": journals}
    writes = [r for r in books.stats()["log"][before:] if r[0] in ("POST", "PUT")]
    assert writes == [], writes  # nothing sent on the rerun


def test_a_timeout_after_commit_is_replayed_not_repeated(warehouse, stripe_sandbox, books) -> None:
    a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]}, paid=("a",))
    sync_customers(books.system)
    books.faults.add("timeout_after_commit", path_prefix=write_path(books), times=1, after=0, delay=0)
    run = push(books_for(books.system))
    assert created(books)["invoice"] == 2 and run.pushed["invoice"] == 2
    assert books.stats()["replays"] >= 1  # the hook's retry got the first answer back


def test_a_batch_past_its_key_lifetime_is_found_by_reference_not_created_again(
    warehouse, stripe_sandbox, books, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]})
    sync_customers(books.system)
    # every attempt of the hook loses its answer
    books.faults.add("timeout_after_commit", path_prefix=write_path(books), times=2, after=0, delay=0)
    with pytest.raises(Exception, match="no answer"):
        push(books_for(books.system))
    assert created(books)["invoice"] == 2 and links(warehouse, books.system, "invoice") == {}
    assert warehouse.scalar("SELECT count(*) FROM closeout_data.accounting_push_batches WHERE state = 'pending'") == 1
    if books.system == "quickbooks":  # the vendor forgets the key ...
        books.request_id_ttl_seconds = 60
    else:
        books.idempotency_ttl_seconds = 60
    books.advance_clock(3600)
    set_push(monkeypatch, books.system, key_lifetime_seconds=0)  # ... and closeout knows it may have
    run = push(books_for(books.system))
    assert run.looked_up == 1 and run.found_by_reference == 2 and run.pushed == {"invoice": 2}
    assert created(books)["invoice"] == 2  # found, not created again
    assert {v[3] for v in links(warehouse, books.system, "invoice").values()} == {"reference"}


def test_two_pushes_of_one_company_never_overlap(warehouse, stripe_sandbox, books,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from closeout import locks
    from closeout.warehouse.db import connect

    a_month(warehouse, stripe_sandbox, {"a": [D("2")]})
    sync_customers(books.system)
    pushing = books_for(books.system)
    monkeypatch.setenv("CLOSEOUT_LOCK_WAIT_SECONDS", "0.5")
    with connect(autocommit=True) as other:  # the close's push of the same company is running
        name = f"accounting_push:{books.system}:{pushing.company_id}"
        locks.acquire(other, locks.lock_key(other, name), name=name)
        with pytest.raises(locks.LockBusy):
            push(pushing)
        assert created(books)["invoice"] == 0
    assert push(books_for(books.system)).pushed == {"invoice": 1}  # once it is done, the next one goes
