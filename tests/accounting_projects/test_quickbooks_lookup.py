"""Finding pushed objects again the way the real QuickBooks query allows (issue 17 item 4): the sandbox refuses a
WHERE on a property QuickBooks does not mark filterable (400, code 4001, as Intuit does), and after a batch's
requestid has expired each kind is found by what IS filterable (journals by the DocNumber closeout derives from their
ref, payments by their TxnDate range with the PrivateNote compared client-side), not created a second time."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from projects_support import QBO_NO_LIMITS, a_month, connect_quickbooks, created, follow_cash, links, set_push

from sandbox.quickbooks import QuickBooksSandbox

pytestmark = pytest.mark.integration


@pytest.fixture
def qbo(warehouse, monkeypatch: pytest.MonkeyPatch):
    sandbox = QuickBooksSandbox(**QBO_NO_LIMITS)
    sandbox.start()
    connect_quickbooks(monkeypatch, sandbox, max_attempts=2)
    yield sandbox
    sandbox.stop()


def test_a_where_on_a_non_filterable_property_is_refused_as_quickbooks_refuses_it(warehouse, qbo) -> None:
    from closeout.accounting.api.quickbooks import QuickBooksError, QuickBooksHook

    hook = QuickBooksHook()
    for entity in ("Payment", "JournalEntry", "Deposit", "CreditMemo"):
        with pytest.raises(QuickBooksError) as refused:
            hook.query(entity, "PrivateNote = 'closeout payment x'")
        assert refused.value.status == 400 and refused.value.code == "4001"
        assert "QueryValidationError: property 'PrivateNote' is not queryable" in str(refused.value)
    assert hook.query("JournalEntry", "DocNumber IN ('CJ1') AND TxnDate >= '2026-01-01'") == []
    assert hook.query("Payment", "TxnDate >= '2026-01-01' AND TxnDate <= '2026-12-31'") == []


def test_the_lookup_queries_use_only_filterable_properties() -> None:
    from closeout.accounting.push.books import closeout_doc_number, quickbooks_lookup_query

    journal = closeout_doc_number("journal", "jnl_42:EUR")
    assert len(journal) == 21 and journal == closeout_doc_number("journal", "jnl_42:EUR") != closeout_doc_number(
        "journal", "jnl_43:EUR")
    [by_doc] = quickbooks_lookup_query("JournalEntry", [{"ref": "jnl_42:EUR", "lookup": journal}])
    assert by_doc.where == f"DocNumber IN ('{journal}')" and by_doc.field == "DocNumber"
    [by_date] = quickbooks_lookup_query("Payment", [
        {"ref": "p1", "lookup": "closeout payment p1", "txn_date": "2026-11-03"},
        {"ref": "p2", "lookup": "closeout payment p2", "txn_date": "2026-11-01"}])  # fmt: skip
    assert by_date.where == "TxnDate >= '2026-11-01' AND TxnDate <= '2026-11-03'" and by_date.field == "PrivateNote"
    assert by_date.wanted == {"closeout payment p1": "p1", "closeout payment p2": "p2"}
    # a batch recorded before dates were: every payment is read (paged) and matched on its note
    [legacy] = quickbooks_lookup_query("Payment", [{"ref": "p3", "lookup": "closeout payment p3"}])
    assert legacy.where is None


@pytest.mark.parametrize("kind", ["payment", "journal"])
def test_a_batch_past_its_key_lifetime_is_found_by_filterable_properties(
    warehouse, stripe_sandbox, qbo, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from closeout.accounting.push.run import books_for, push
    from closeout.accounting.push.tasks import sync_customers

    a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]}, paid=("a", "b"))
    sync_customers("quickbooks")
    batch = f"/v3/company/{qbo.realm_id}/batch"
    # the invoices' batch goes through (and the payments' too when journals are the kind under test); every attempt
    # of the hook for the kind's batch loses its answer after QuickBooks committed it
    qbo.faults.add("timeout_after_commit", path_prefix=batch, times=2, after={"payment": 1, "journal": 2}[kind],
                   delay=0)  # fmt: skip
    with pytest.raises(Exception, match="no answer"):
        push(books_for("quickbooks"))
    made = created(qbo)[kind]
    assert made >= 1 and links(warehouse, "quickbooks", kind) == {}
    qbo.request_id_ttl_seconds = 60  # QuickBooks forgets the requestid ...
    qbo.advance_clock(3600)
    set_push(monkeypatch, "quickbooks", key_lifetime_seconds=0)  # ... and closeout knows it may have
    run = push(books_for("quickbooks"))
    assert run.looked_up == 1 and run.found_by_reference == made, run.as_dict()
    assert created(qbo)[kind] == made  # found, not created again
    assert {v[3] for v in links(warehouse, "quickbooks", kind).values()} == {"reference"}
    queries = [r[1] for r in qbo.stats()["log"] if r[0] == "GET" and "/query" in r[1]]
    assert queries and not any("PrivateNote" in q for q in queries)


def test_the_sandbox_holds_sub_customers_to_quickbooks_rules(warehouse, qbo) -> None:
    from closeout.accounting.api.quickbooks import QuickBooksError, QuickBooksHook

    hook = QuickBooksHook()
    parent = hook.create_customer({"DisplayName": "Client A", "CurrencyRef": {"value": "EUR"}}, "t:a").body["Customer"]
    child = hook.create_customer({"DisplayName": "Website (Client A)", "Job": True,
                                  "ParentRef": {"value": parent["Id"]}}, "t:web").body["Customer"]  # fmt: skip
    assert (child["FullyQualifiedName"], child["Level"]) == ("Client A:Website (Client A)", 1)
    assert child["CurrencyRef"] == {"value": "EUR"}  # its parent's
    refusals = {
        "no such parent": ({"DisplayName": "Orphan", "Job": True, "ParentRef": {"value": "999"}}, "2500"),
        "a job without a parent": ({"DisplayName": "Loose job", "Job": True}, "2020"),
        "a name taken anywhere": ({"DisplayName": "website (client a)", "Job": True,
                                   "ParentRef": {"value": parent["Id"]}}, "6240"),
        "another currency": ({"DisplayName": "Dollar job", "Job": True, "ParentRef": {"value": parent["Id"]},
                              "CurrencyRef": {"value": "USD"}}, "6000"),
    }  # fmt: skip
    for why, (customer, code) in refusals.items():
        with pytest.raises(QuickBooksError) as refused:
            hook.create_customer(customer, f"t:{why}")
        assert refused.value.code == code, why
    assert len(qbo.objects("Customer")) == 2


def test_a_deposit_past_its_key_lifetime_is_found_by_its_date_and_note(
    warehouse, stripe_sandbox, qbo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from closeout.accounting.push.run import books_for, push
    from closeout.accounting.push.tasks import sync_customers

    a_month(warehouse, stripe_sandbox, {"a": [D("2")], "b": [D("1")]}, paid=("a", "b"))
    sync_customers("quickbooks")
    push(books_for("quickbooks"))  # the month is there; now Stripe pays the balance out and it reaches the bank
    for _ in range(2):
        stripe_sandbox.run_payouts(now=stripe_sandbox.state.now() + 3 * 86400)
        follow_cash()
    batch = f"/v3/company/{qbo.realm_id}/batch"
    qbo.faults.add("timeout_after_commit", path_prefix=batch, times=2, after=0, delay=0)  # the deposits' batch
    with pytest.raises(Exception, match="no answer"):
        push(books_for("quickbooks"))
    made = qbo.create_counts().get("Deposit", 0)
    assert made >= 1 and links(warehouse, "quickbooks", "deposit") == {}
    qbo.request_id_ttl_seconds = 60
    qbo.advance_clock(3600)
    set_push(monkeypatch, "quickbooks", key_lifetime_seconds=0)
    run = push(books_for("quickbooks"))
    assert run.looked_up == 1 and run.found_by_reference == made, run.as_dict()
    assert qbo.create_counts()["Deposit"] == made
    assert {v[3] for v in links(warehouse, "quickbooks", "deposit").values()} == {"reference"}
