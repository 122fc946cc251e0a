"""Taxed invoices pushed with closeout's tax, against both sandboxes after a real chain: closeout drafted the
invoices from each client's ``tax`` config, published them to the Stripe sandbox and followed the cash; the push
sends each line's tax code and the invoice's tax (QuickBooks keeps the given TotalTax; Xero computes its own and its
answer is checked). The sandboxes' own figures are the proof; a read-back then lets accounting_links compare tax,
and a tax an accountant forged there breaks it, naming the invoice."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from accounting_tax_support import (
    VAT20,
    VAT20_INCLUSIVE,
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

from sandbox.quickbooks import QuickBooksSandbox
from sandbox.quickbooks.cdc import accountant_edits
from sandbox.xero.reports import accountant_edits as xero_edits

pytestmark = pytest.mark.integration


@pytest.fixture(params=["quickbooks", "xero"])
def books(request: pytest.FixtureRequest, warehouse, monkeypatch: pytest.MonkeyPatch):
    sandbox: Any = quickbooks() if request.param == "quickbooks" else xero()
    # untaxed clients keep the connection's default code (the books want a code on every line)
    if request.param == "quickbooks":
        connect_quickbooks(monkeypatch, sandbox, max_attempts=2, push={"tax_code": "NON"})
    else:
        connect_xero(monkeypatch, sandbox, max_attempts=2, push={"tax_code": "NONE"})
    sandbox.system = request.param
    yield sandbox
    sandbox.stop()


def run_push(system: str):
    sync_customers(system)
    return push(books_for(system))


def there(sandbox: Any, external_id: str) -> dict[str, Any]:
    if isinstance(sandbox, QuickBooksSandbox):
        return next(o for o in sandbox.objects("Invoice") if o["Id"] == external_id)
    return next(o for o in sandbox.objects("Invoices") if o["InvoiceID"] == external_id)


def total_and_tax(sandbox: Any, obj: dict[str, Any]) -> tuple[int, int]:
    if isinstance(sandbox, QuickBooksSandbox):
        return int(D(str(obj["TotalAmt"])) * 100), int(D(str((obj.get("TxnTaxDetail") or {}).get("TotalTax", 0))) * 100)
    return int(D(str(obj["Total"])) * 100), int(D(str(obj["TotalTax"])) * 100)


def test_exclusive_inclusive_and_untaxed_invoices_go_with_closeouts_tax(warehouse, stripe_sandbox, books) -> None:
    # 1.25 h x 100.00 = 125.00 per line; 20% of 125.00 = 25.00
    invoices = taxed_month(stripe_sandbox, {"ex": ([D("1.25"), D("2")], VAT20), "in": ([D("1.25")], VAT20_INCLUSIVE),
                                            "plain": ([D("1")], None)})  # fmt: skip
    ex, inc, plain = invoices["ex"], invoices["in"], invoices["plain"]
    assert (ex[2], ex[3]) == (32500 + 6500, 6500)  # lines 325.00 + 20% on top
    assert (inc[2], inc[3]) == (12500, 2083)  # 125.00 holds 125 x 20/120 = 20.83
    assert plain[3] == 0
    run = run_push(books.system)
    assert run.pushed.get("invoice") == 3 and not run.held, run.as_dict()
    for iid, _, total, tax in invoices.values():
        link = link_row(warehouse, books.system, iid)
        assert link is not None and (link["total_minor"], link["tax_minor"]) == (total, tax)
        assert total_and_tax(books, there(books, link["external_id"])) == (total, tax)  # the same total and tax there
    ex_there = there(books, link_row(warehouse, books.system, ex[0])["external_id"])
    in_there = there(books, link_row(warehouse, books.system, inc[0])["external_id"])
    if books.system == "quickbooks":
        assert ex_there["GlobalTaxCalculation"] == "TaxExcluded" and in_there["GlobalTaxCalculation"] == "TaxInclusive"
        codes = {line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in ex_there["Line"]}
        net = sum(D(str(line["Amount"])) for line in in_there["Line"])
        assert net == D("104.17")  # QuickBooks lines are net of the inclusive tax
    else:
        assert (ex_there["LineAmountTypes"], in_there["LineAmountTypes"]) == ("Exclusive", "Inclusive")
        codes = {line["TaxType"] for line in ex_there["LineItems"]}
    assert codes == {"VAT20" if books.system == "quickbooks" else "OUTPUT2"}
    again = run_push(books.system)
    assert not again.pushed and again.batches == 0  # nothing goes twice
    read_back(books.system)
    assert links_breaks() == []  # same total, currency and tax there


def test_a_taxed_client_without_a_code_for_the_system_is_held(warehouse, stripe_sandbox, books) -> None:
    codeless = {**VAT20, "codes": {"quickbooks": "VAT20"} if books.system == "xero" else {"xero": "OUTPUT2"}}
    invoices = taxed_month(stripe_sandbox, {"a": ([D("1")], codeless), "b": ([D("2")], VAT20)})
    run = run_push(books.system)
    assert run.pushed.get("invoice") == 1, run.as_dict()
    reason, detail = open_holds(warehouse, books.system)[invoices["a"][0]]
    field = "tax.codes.xero" if books.system == "xero" else "tax.codes.quickbooks"
    assert reason == "tax_code" and field in detail and "harvest:a" in detail
    assert link_row(warehouse, books.system, invoices["a"][0]) is None
    assert link_row(warehouse, books.system, invoices["b"][0]) is not None


def test_a_system_computing_another_tax_is_held_as_tax_mismatch_never_accepted(
    warehouse, stripe_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = xero(tax_types={"OUTPUT2": D("17.5")})  # the organisation's rate for the code is not closeout's
    connect_xero(monkeypatch, sandbox, max_attempts=2)
    try:
        invoices = taxed_month(stripe_sandbox, {"a": ([D("1")], VAT20)})
        iid = invoices["a"][0]
        run = run_push("xero")
        assert run.held.get("invoice") == [iid], run.as_dict()
        reason, detail = open_holds(warehouse, "xero")[iid]
        assert reason == "tax_mismatch" and "117.50" in detail and "120.00" in detail
        link = link_row(warehouse, "xero", iid)  # it exists there once: linked, never created again
        assert link is not None and len(sandbox.objects("Invoices")) == 1
        assert push(books_for("xero")).batches == 0
    finally:
        sandbox.stop()


def test_a_tax_forged_in_the_books_fails_accounting_links(warehouse, stripe_sandbox, books) -> None:
    invoices = taxed_month(stripe_sandbox, {"a": ([D("1")], VAT20)})
    iid = invoices["a"][0]
    run_push(books.system)
    external_id = link_row(warehouse, books.system, iid)["external_id"]
    read_back(books.system)
    assert links_breaks() == []
    books.advance_clock(5)
    if books.system == "quickbooks":  # an accountant types another tax total over closeout's
        accountant_edits(books, "Invoice", external_id, {"TxnTaxDetail": {"TotalTax": D("12.00")}})
    else:  # an accountant switches the line to another tax rate
        current = there(books, external_id)
        lines = [{**line, "TaxType": "RROUTPUT"} for line in current["LineItems"]]
        xero_edits(books, "Invoices", external_id, {"LineItems": lines})
    read_back(books.system)
    breaks = {(kind, item): difference for kind, _, item, difference, hard in links_breaks()}
    tax_item = next(item for kind, item in breaks if kind == "tax")
    assert iid in tax_item and external_id in tax_item
    expected = -800 if books.system == "quickbooks" else -1500  # 12.00 (or 5% = 5.00) there against 20.00
    assert breaks[("tax", tax_item)] == expected
    assert any(kind == "total" and iid in item for kind, item in breaks)
