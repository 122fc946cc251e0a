"""Xero read back through its API into the real warehouse: contacts linked by closeout.accounting.links, invoices and
journals pushed through the hook and recorded in closeout.accounting_links; the modified-since read-back and the
trial balance fill the tables the accounting checks read and they pass on API data; an accountant's edit fails
accounting_links and accounting_invoices; a voided invoice has vanished; a second invoice with the same number is a
duplicate; the cursors read only what changed (one request per listing while nothing did)."""

from __future__ import annotations

import pytest
from closeout.accounting.api.xero import XeroHook
from closeout.accounting.links import customers_for, link_customers
from closeout.accounting.readback.objects import XERO_LISTINGS
from closeout.accounting.readback.tasks import read_back
from readback_support import (
    books,  # noqa: F401 - the fixture
    customer_ids,
    invoice_day,
    ledger_lines,
    money,
    published,
    reconcile,
    record_link,
    statuses,
    xero,  # noqa: F401 - the fixture
)

from sandbox.xero.reports import accountant_deletes, accountant_edits

pytestmark = pytest.mark.integration

ACCOUNTING = ("accounting_ledger", "accounting_invoices", "accounting_links")


def line(total: int) -> dict:
    return {"Description": "Consulting", "Quantity": 1, "UnitAmount": money(total), "AccountCode": "4000"}


def push_books(warehouse, sandbox) -> dict[str, tuple[str, int]]:
    """Contacts linked, the invoices in one batch (InvoiceNumber = closeout's number, approved, dated the day
    closeout booked them, revenue by code), every other journal as a posted manual journal (lines by code, signed)."""
    sandbox.receivable_account_code = "1200"  # the organisation's receivable account, as closeout's chart has it
    link_customers(customers_for("xero"))
    contacts = customer_ids(warehouse, "xero")
    hook = XeroHook()
    rows = published(warehouse)
    invoices = [{"Type": "ACCREC", "Contact": {"ContactID": contacts[client]}, "InvoiceNumber": number,
                 "Date": invoice_day(warehouse, invoice_id).isoformat(), "Status": "AUTHORISED",
                 "CurrencyCode": currency, "LineAmountTypes": "NoTax", "LineItems": [line(total)]}
                for invoice_id, client, number, total, currency in rows]  # fmt: skip
    answered = hook.create_invoices(invoices, "invoices:readback-test")
    assert answered.failed == [], answered.failed
    pushed = {}
    for (invoice_id, _, number, total, currency), element in zip(rows, answered.elements, strict=True):
        assert element["InvoiceNumber"] == number
        record_link("xero", sandbox.tenant_id, "invoice", invoice_id, element["InvoiceID"], total, currency)
        pushed[invoice_id] = (element["InvoiceID"], total)
    journals = [{"Narration": f"closeout journal {journal_id}", "Date": lines[0][4].isoformat(), "Status": "POSTED",
                 "JournalLines": [{"LineAmount": money(debit - credit), "AccountCode": code, "Description": name}
                                  for code, name, debit, credit, _ in lines if debit or credit]}
                for journal_id, lines in ledger_lines(warehouse, except_kind="invoice").items()]  # fmt: skip
    answered = hook.write("manualjournals.create", "journals:readback-test", "PUT", "ManualJournals", journals)
    assert answered.failed == [], answered.failed
    return pushed


def test_read_back_feeds_the_accounting_checks_and_invariant_9_catches_edits_voids_and_duplicates(
    warehouse, books, xero, tmp_path  # noqa: F811 - fixtures
) -> None:
    pushed = push_books(warehouse, xero)
    first = read_back("xero")
    assert first["mode"] == "full" and first["invoices_ingest_id"] and first["ledger_ingest_id"]
    assert warehouse.scalar("SELECT count(*) FROM closeout.accounting_ingests WHERE source = 'xero_api'") == 3
    theirs_gl = dict(warehouse.rows("SELECT account, sum(amount_minor) FROM closeout.accounting_ledger GROUP BY 1"))
    ours_gl = dict(warehouse.rows("SELECT account, sum(debit_minor - credit_minor) FROM closeout.ledger_lines "
                                  "GROUP BY 1"))  # fmt: skip
    assert theirs_gl == {a: b for a, b in ours_gl.items() if b} and len(theirs_gl) >= 3, (theirs_gl, ours_gl)
    tb = warehouse.rows("SELECT account, debit_minor, credit_minor FROM closeout.accounting_trial_balances")
    assert sum(d for _, d, _ in tb) == sum(c for _, _, c in tb) > 0
    green = reconcile(tmp_path)
    assert {k: statuses(green)[k] for k in ACCOUNTING} == dict.fromkeys(ACCOUNTING, "passed"), [
        (c.check_name, c.evidence) for c in green.checks if c.check_name in ACCOUNTING]  # fmt: skip

    # nothing changed: one request per listing, the organisation (base currency) and two months' trial balances
    quiet = read_back("xero")
    assert (quiet["mode"], quiet["requests"], quiet["objects_changed"], quiet["invoices_ingest_id"]) == (
        "incremental", len(XERO_LISTINGS) + 3, 0, None)  # fmt: skip

    (edited_id, (edited_x, edited_total)), (gone_id, (gone_x, gone_total)), (kept_id, (kept_x, kept_total)) = (
        sorted(pushed.items()))
    xero.advance_clock(5)
    accountant_edits(xero, "Invoices", edited_x, {"LineItems": [line(edited_total - 1000)]})
    accountant_deletes(xero, "Invoices", gone_x)  # approved: voided
    kept = XeroHook().get_invoice(kept_x)
    twin = XeroHook().create_invoices([{**{k: kept[k] for k in ("Type", "Contact", "InvoiceNumber", "CurrencyCode")},
                                        "Date": kept["Date"], "Status": "AUTHORISED", "LineAmountTypes": "NoTax",
                                        "LineItems": [line(kept_total)]}], "someone-else:twin").elements[0]
    assert twin.get("StatusAttributeString") == "OK", twin
    changed = read_back("xero")
    assert changed["objects_changed"] == 3 and changed["requests"] == len(XERO_LISTINGS) + 3
    result = reconcile(tmp_path)
    assert statuses(result)["accounting_links"] == "failed"
    evidence = result.by_name()["accounting_links"].evidence["rows"]
    rows = {(r["kind"], r["item"]): r["difference_minor"] for r in evidence}
    assert rows == {
        ("total", f"xero invoice {edited_id} -> {edited_x}"): -1000,
        ("vanished", f"xero invoice {gone_id} -> {gone_x}"): -gone_total,
        ("duplicate", f"xero invoice {kept_id} -> {kept_x} duplicate {twin['InvoiceID']}"): kept_total,
    }, rows
    numbers = dict(warehouse.rows("SELECT invoice_id, stripe_number FROM closeout.invoices"))
    differences = {r["item"]: r["difference_minor"] for r in result.by_name()["accounting_invoices"].evidence["rows"]}
    assert differences[numbers[edited_id]] == -1000 and differences[numbers[gone_id]] == -gone_total
