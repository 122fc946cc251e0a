"""Projects as QuickBooks sub-customers (issue 17 item 2), against the QuickBooks sandbox and the real warehouse after
a real chain (closeout published the invoices to the Stripe sandbox, Stripe was paid, the journals posted): each
project billed for a linked client becomes one sub-customer (Job, ParentRef = the client's customer), created once
whatever is retried, replayed or killed; an invoice of one project goes to its sub-customer, one of two projects to
the client's customer; a near match waits for finance."""

from __future__ import annotations

from typing import Any

import pytest
from closeout.paths import load_sql
from closeout.warehouse.db import connect
from projects_support import (
    QBO_NO_LIMITS,
    connect_projects,
    project_links,
    publish_projects,
    sub_customers,
)

from sandbox.quickbooks import QuickBooksSandbox

pytestmark = pytest.mark.integration


@pytest.fixture
def qbo(warehouse, monkeypatch: pytest.MonkeyPatch):
    sandbox = QuickBooksSandbox(**QBO_NO_LIMITS)
    sandbox.start()
    connect_projects(monkeypatch, sandbox, max_attempts=2)
    yield sandbox
    sandbox.stop()


def customers_then_push() -> Any:
    from closeout.accounting.push.run import books_for, push
    from closeout.accounting.push.tasks import sync_customers

    linked = sync_customers("quickbooks")
    return linked, push(books_for("quickbooks"))


def parent_ids(warehouse) -> dict[str, str]:
    return dict(warehouse.rows("SELECT closeout_ref, external_id FROM closeout.accounting_links "
                               "WHERE system = 'quickbooks' AND object_kind = 'customer'"))  # fmt: skip


def test_sub_customers_are_created_once_under_their_client_and_invoices_go_by_project(
    warehouse, stripe_sandbox, qbo
) -> None:
    invoices = publish_projects(stripe_sandbox, {"a": ["web"], "b": ["web", "app"]}, names={"web": "Website"},
                                paid=("a", "b"))  # fmt: skip
    linked, run = customers_then_push()
    assert linked["projects"] == {"linked": 3, "created": 3, "reviews": 0}, linked
    parents = parent_ids(warehouse)
    subs = {c["Id"]: c for c in sub_customers(qbo)}
    links = project_links(warehouse)
    assert set(links) == {"harvest:a/harvest:web", "harvest:b/harvest:web", "harvest:b/harvest:app"}
    for ref, (external_id, matched_by) in links.items():
        client = ref.split("/")[0]
        assert matched_by == "created" and subs[external_id]["ParentRef"]["value"] == parents[client]
    # two clients' "Website" projects: names unique across the company, so each carries its client's
    assert sorted(c["DisplayName"] for c in subs.values()) == [
        "Project APP (Client B)", "Website (Client A)", "Website (Client B)"]
    # the one-project invoice goes to its sub-customer, the two-project one to the client's customer
    by_doc = {o["DocNumber"]: o for o in qbo.objects("Invoice")}
    stripe_numbers = dict(warehouse.rows("SELECT invoice_id, stripe_number FROM closeout.invoices"))
    a_invoice = by_doc[stripe_numbers[invoices["a"][0]]]
    b_invoice = by_doc[stripe_numbers[invoices["b"][0]]]
    assert a_invoice["CustomerRef"]["value"] == links["harvest:a/harvest:web"][0]
    assert b_invoice["CustomerRef"]["value"] == parents["harvest:b"]
    # the payments were received from each invoice's own customer, and applied
    assert run.pushed.get("payment") == 2 and not run.held, run.as_dict()
    payer = {p["Line"][0]["LinkedTxn"][0]["TxnId"]: p["CustomerRef"]["value"] for p in qbo.objects("Payment")}
    assert payer == {a_invoice["Id"]: a_invoice["CustomerRef"]["value"], b_invoice["Id"]: parents["harvest:b"]}
    assert all(o["Balance"] == 0 for o in qbo.objects("Invoice"))
    # a rerun creates and sends nothing
    before = qbo.create_counts()["Customer"]
    writes_before = qbo.stats()["requests"]
    again, again_push = customers_then_push()
    assert again["projects"] == {"linked": 0, "created": 0, "reviews": 0} and not again_push.pushed
    assert qbo.create_counts()["Customer"] == before == 5
    assert [r for r in qbo.stats()["log"][writes_before:] if r[0] == "POST"] == []


def test_a_timeout_replay_and_a_killed_worker_create_no_second_sub_customer(warehouse, stripe_sandbox, qbo) -> None:
    from closeout.accounting.links import customers_for, link_customers, link_projects, projects_for

    publish_projects(stripe_sandbox, {"a": ["web"], "b": ["app"]})
    link_customers(customers_for("quickbooks"))
    batch = f"/v3/company/{qbo.realm_id}/batch"
    # the answer is lost once: the hook's retry carries the same requestid and QuickBooks replays it
    qbo.faults.add("timeout_after_commit", path_prefix=batch, times=1, after=0, delay=0)
    first = link_projects(projects_for())
    assert sorted(first.created) == ["harvest:a/harvest:web", "harvest:b/harvest:app"]
    assert len(sub_customers(qbo)) == 2 and qbo.stats()["replays"] >= 1
    # a new project; every answer of its create is lost (the worker gives up, as if killed before recording)
    publish_projects(stripe_sandbox, {"c": ["ops"]})
    link_customers(customers_for("quickbooks"))
    qbo.faults.add("timeout_after_commit", path_prefix=batch, times=2, after=0, delay=0)
    with pytest.raises(Exception, match="no answer"):
        link_projects(projects_for())
    assert len(sub_customers(qbo)) == 3 and "harvest:c/harvest:ops" not in project_links(warehouse)
    # the next run finds it under its parent by its name and links it, creating nothing
    rerun = link_projects(projects_for())
    assert rerun.created == [] and rerun.linked == {"harvest:c/harvest:ops": "name"}
    assert len(sub_customers(qbo)) == 3 and len(project_links(warehouse)) == 3


def test_an_existing_sub_customer_is_matched_and_a_near_one_waits_for_finance_s_decision(
    warehouse, stripe_sandbox, qbo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from closeout.accounting.api.quickbooks import QuickBooksHook
    from closeout.accounting.links import customers_for, link_customers
    from closeout.accounting.push.run import books_for, push
    from closeout.accounting.push.tasks import sync_customers

    invoices = publish_projects(stripe_sandbox, {"a": ["web"], "b": ["app"]}, names={"web": "Website", "app": "App"})
    link_customers(customers_for("quickbooks"))
    parents = parent_ids(warehouse)
    hook = QuickBooksHook()  # an accountant made these by hand in QuickBooks
    made = hook.create_customer({"DisplayName": "Website", "Job": True, "ParentRef": {"value": parents["harvest:a"]}},
                                "test:accountant:website").body["Customer"]  # fmt: skip
    near_one = hook.create_customer({"DisplayName": "A.P.P. (Client B)", "Job": True,
                                     "ParentRef": {"value": parents["harvest:b"]}},
                                    "test:accountant:app").body["Customer"]  # fmt: skip
    created_before = qbo.create_counts()["Customer"]
    linked = sync_customers("quickbooks")
    assert linked["projects"] == {"linked": 1, "created": 0, "reviews": 1}
    assert project_links(warehouse) == {"harvest:a/harvest:web": (made["Id"], "name")}
    review = warehouse.rows("SELECT object_kind, reason, state FROM closeout.accounting_link_reviews "
                            "WHERE closeout_ref = 'harvest:b/harvest:app'")  # fmt: skip
    assert review == [("project", "near_match", "open")]
    assert qbo.create_counts()["Customer"] == created_before  # nothing created while finance decides
    run = push(books_for("quickbooks"))
    # a's invoice went to the accountant's sub-customer; b's waits for the review instead of going to the parent
    assert run.pushed == {"invoice": 1}, run.as_dict()
    held = warehouse.rows("SELECT closeout_ref, reason FROM closeout.accounting_push_exceptions WHERE open")
    assert held == [(invoices["b"][0], "customer_link")]
    assert [o["CustomerRef"]["value"] for o in qbo.objects("Invoice")] == [made["Id"]]
    # finance decides (a closeout_finance login, through the one function that records decisions): that is the one
    (review_id,) = warehouse.rows("SELECT review_id FROM closeout.accounting_link_reviews WHERE state = 'open'")[0]
    from controls_support import conn_json_as, login_in

    with login_in("closeout_finance") as finance, monkeypatch.context() as as_finance:
        as_finance.setenv("AIRFLOW_CONN_CLOSEOUT_WAREHOUSE", conn_json_as(finance))
        with connect(autocommit=True) as conn:
            conn.execute(load_sql("accounting_api/reviews_resolve.sql"), {
                "review_id": review_id, "external_id": near_one["Id"], "decided_by": "fin.one@example.com",
                "reason": "A.P.P. is their app project", "ref": "{}"})  # fmt: skip
    assert project_links(warehouse)["harvest:b/harvest:app"] == (near_one["Id"], "finance")
    after = push(books_for("quickbooks"))
    assert after.pushed == {"invoice": 1} and not after.held, after.as_dict()
    assert sorted(o["CustomerRef"]["value"] for o in qbo.objects("Invoice")) == sorted([made["Id"], near_one["Id"]])
    assert qbo.create_counts()["Customer"] == created_before
