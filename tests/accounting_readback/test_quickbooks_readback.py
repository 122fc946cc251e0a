"""QuickBooks read back through its API into the real warehouse: customers linked by closeout.accounting.links,
invoices and journals pushed through the hook and recorded in closeout.accounting_links; the read-back fills the
tables the accounting checks read and they pass on API data; an accountant's edit fails accounting_links (naming
the invoice) and accounting_invoices (with the difference); a deleted invoice has vanished; a second invoice with the
same reference is a duplicate; the incremental cursor reads only what changed."""

from __future__ import annotations

import pytest
from closeout.accounting.api.quickbooks import QuickBooksHook
from closeout.accounting.links import customers_for, link_customers
from closeout.accounting.readback.tasks import read_back
from readback_support import (
    books,  # noqa: F401 - the fixture
    customer_ids,
    invoice_day,
    ledger_lines,
    money,
    published,
    quickbooks,  # noqa: F401 - the fixture
    reconcile,
    record_link,
    statuses,
)

from sandbox.quickbooks.cdc import accountant_deletes, accountant_edits

pytestmark = pytest.mark.integration

ACCOUNTING = ("accounting_ledger", "accounting_invoices", "accounting_links")


def push_books(warehouse, sandbox) -> dict[str, tuple[str, int]]:
    """What the push does, through the hook: customers linked, each invoice once (DocNumber = closeout's number,
    dated the day closeout booked it, its receivable and revenue accounts), every other journal as a JournalEntry.
    Returns invoice_id -> (QuickBooks id, total_minor)."""
    link_customers(customers_for("quickbooks"))
    customers = customer_ids(warehouse, "quickbooks")
    hook = QuickBooksHook()
    pushed = {}
    for invoice_id, client, number, total, currency in published(warehouse):
        body = {"CustomerRef": {"value": customers[client]}, "DocNumber": number,
                "TxnDate": invoice_day(warehouse, invoice_id).isoformat(),
                "ARAccountRef": {"value": "1200", "name": "Accounts receivable"},
                "Line": [{"Amount": money(total), "DetailType": "SalesItemLineDetail",
                          "SalesItemLineDetail": {"ItemAccountRef": {"value": "4000", "name": "Services revenue"}}}]}
        created = hook.create_invoice(body, f"invoice:{invoice_id}").body["Invoice"]
        record_link("quickbooks", sandbox.realm_id, "invoice", invoice_id, created["Id"], total, currency)
        pushed[invoice_id] = (created["Id"], total)
    for journal_id, lines in ledger_lines(warehouse, except_kind="invoice").items():
        entry = {"DocNumber": journal_id[:21], "TxnDate": lines[0][4].isoformat(), "Line": [
            {"Amount": money(debit or credit), "DetailType": "JournalEntryLineDetail",
             "JournalEntryLineDetail": {"PostingType": "Debit" if debit else "Credit",
                                        "AccountRef": {"value": code, "name": name}}}
            for code, name, debit, credit, _ in lines if debit or credit]}  # fmt: skip
        hook.write("journalentry.create", f"journal:{journal_id}", "journalentry", entry, entity="JournalEntry")
    return pushed


def test_read_back_feeds_the_accounting_checks_and_invariant_9_catches_edits_deletions_and_duplicates(
    warehouse, books, quickbooks, tmp_path  # noqa: F811 - fixtures
) -> None:
    before = reconcile(tmp_path)
    assert {k: statuses(before)[k] for k in ACCOUNTING} == dict.fromkeys(ACCOUNTING, "not_applicable")
    pushed = push_books(warehouse, quickbooks)
    assert len(pushed) == 3

    first = read_back("quickbooks")
    assert first["mode"] == "full" and first["invoices_ingest_id"] and first["ledger_ingest_id"]
    # the invoices that changed, and the general ledger of last month and of this month (each month whole)
    assert warehouse.rows("SELECT source, kind FROM closeout.accounting_ingests ORDER BY ingest_id") == [
        ("quickbooks_api", "invoices"), ("quickbooks_api", "general_ledger"), ("quickbooks_api", "general_ledger")]
    # the general ledger there holds the invoices and every other journal, per account, as closeout booked them
    theirs_gl = dict(warehouse.rows("SELECT account, sum(amount_minor) FROM closeout.accounting_ledger GROUP BY 1"))
    ours_gl = dict(warehouse.rows("SELECT account_name, sum(debit_minor - credit_minor) FROM closeout.ledger_lines "
                                  "GROUP BY 1"))  # fmt: skip
    assert theirs_gl == {a: b for a, b in ours_gl.items() if b} and len(theirs_gl) >= 3, (theirs_gl, ours_gl)
    their = dict(warehouse.rows("SELECT invoice_number, total_minor FROM closeout.accounting_invoices"))
    assert their == {number: total for _, _, number, total, _ in published(warehouse)}
    green = reconcile(tmp_path)
    assert {k: statuses(green)[k] for k in ACCOUNTING} == dict.fromkeys(ACCOUNTING, "passed"), [
        (c.check_name, c.evidence) for c in green.checks if c.check_name in ACCOUNTING]  # fmt: skip

    # nothing changed: one CDC request and the reports (two months' ledgers, the trial balance), no new invoices
    # ingest, no object changed
    quiet = read_back("quickbooks")
    assert (quiet["mode"], quiet["requests"], quiet["objects_changed"], quiet["invoices_ingest_id"]) == (
        "incremental", 4, 0, None)  # fmt: skip

    # an accountant edits a pushed invoice's amount in QuickBooks
    (edited_id, (edited_qb, edited_total)), (gone_id, (gone_qb, _)), (kept_id, (kept_qb, kept_total)) = sorted(
        pushed.items())
    quickbooks.advance_clock(5)
    accountant_edits(quickbooks, "Invoice", edited_qb, {"Line": [{"Amount": money(edited_total + 2500),
                                                                   "DetailType": "SalesItemLineDetail"}]})
    edited = read_back("quickbooks")
    assert (edited["requests"], edited["objects_changed"]) == (4, 1) and edited["invoices_ingest_id"]
    result = reconcile(tmp_path)
    assert statuses(result)["accounting_links"] == "failed"
    [row] = result.by_name()["accounting_links"].evidence["rows"]
    assert (row["kind"], row["item"], row["difference_minor"]) == (
        "total", f"quickbooks invoice {edited_id} -> {edited_qb}", 2500)  # fmt: skip
    number = warehouse.scalar("SELECT stripe_number FROM closeout.invoices WHERE invoice_id = %s", (edited_id,))
    [theirs] = result.by_name()["accounting_invoices"].evidence["rows"]
    assert (theirs["kind"], theirs["item"], theirs["difference_minor"]) == ("total", number, 2500)

    # an accountant deletes another; and a second invoice carrying the third one's number appears there
    quickbooks.advance_clock(5)
    accountant_deletes(quickbooks, "Invoice", gone_qb)
    customer = QuickBooksHook().get_invoice(kept_qb)["CustomerRef"]
    kept_number = warehouse.scalar("SELECT stripe_number FROM closeout.invoices WHERE invoice_id = %s", (kept_id,))
    twin = QuickBooksHook().create_invoice({"CustomerRef": customer, "DocNumber": kept_number, "Line": [
        {"Amount": money(kept_total), "DetailType": "SalesItemLineDetail"}]}, "someone-else:twin").body["Invoice"]
    read_back("quickbooks")
    result = reconcile(tmp_path)
    evidence = result.by_name()["accounting_links"].evidence["rows"]
    rows = {(r["kind"], r["item"]): r["difference_minor"] for r in evidence}
    gone_total = pushed[gone_id][1]
    assert rows == {
        ("total", f"quickbooks invoice {edited_id} -> {edited_qb}"): 2500,
        ("vanished", f"quickbooks invoice {gone_id} -> {gone_qb}"): -gone_total,
        ("duplicate", f"quickbooks invoice {kept_id} -> {kept_qb} duplicate {twin['Id']}"): kept_total,
    }, rows
    copy = dict(warehouse.rows("SELECT external_id, deleted FROM closeout.accounting_remote_objects "
                               "WHERE entity = 'Invoice'"))  # fmt: skip
    assert copy[gone_qb] is True and copy[kept_qb] is False and copy[twin["Id"]] is False
    # the deleted invoice reads 0 there now: accounting_invoices reports it too
    gone_number = warehouse.scalar("SELECT stripe_number FROM closeout.invoices WHERE invoice_id = %s", (gone_id,))
    differences = {r["item"]: r["difference_minor"] for r in result.by_name()["accounting_invoices"].evidence["rows"]}
    assert differences[gone_number] == -gone_total
