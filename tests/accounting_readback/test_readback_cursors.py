"""The read-back's cursors against the sandboxes and the real warehouse: a read-back that fails records a failed run
and moves nothing (the next one reads the same change); QuickBooks change data capture past its 1000-per-entity
limit is asked again from the last change (and refuses, rather than skips, more than 1000 in one second); a cursor
older than CDC's 30 days falls back to a full read; Xero listings page on a full read and list only the changes
after it."""

from __future__ import annotations

import json
import os

import pytest
from closeout.accounting.api.quickbooks import QuickBooksError, QuickBooksHook
from closeout.accounting.api.xero import XeroHook
from closeout.accounting.readback.objects import XERO_LISTINGS
from closeout.accounting.readback.quickbooks import ReadBackError
from closeout.accounting.readback.tasks import read_back
from closeout.masking import forget_known_secrets
from closeout.warehouse.db import connect
from readback_support import quickbooks, xero  # noqa: F401 - the fixtures

from sandbox.quickbooks.cdc import accountant_edits
from sandbox.xero.reports import accountant_edits as xero_edits

pytestmark = pytest.mark.integration


def set_extra(monkeypatch: pytest.MonkeyPatch, **extra: object) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_QUICKBOOKS_DEFAULT"])
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_QUICKBOOKS_DEFAULT", json.dumps(conn))
    forget_known_secrets()


def invoices(sandbox, customer: str, count: int, first: int = 0) -> None:
    """``count`` invoices made in QuickBooks by someone else (in process: fast, same clock second)."""
    company = sandbox.company(sandbox.realm_id)
    with sandbox._lock:
        for n in range(first, first + count):
            sandbox._create(company, "Invoice", {"CustomerRef": {"value": customer}, "DocNumber": f"X-{n}",
                                                 "Line": [{"Amount": "1.00", "DetailType": "SalesItemLineDetail"}]})


def cursor(warehouse) -> object:
    return warehouse.scalar("SELECT cursor FROM closeout_data.accounting_readback_cursors WHERE stream = 'cdc'")


def test_a_failed_read_back_moves_nothing_and_the_next_one_reads_the_same_change(
    warehouse, quickbooks, monkeypatch  # noqa: F811 - fixture
) -> None:
    set_extra(monkeypatch, max_attempts=1)
    hook = QuickBooksHook()
    customer = hook.create_customer({"DisplayName": "Acme"}, "client:acme").body["Customer"]["Id"]
    invoice = hook.create_invoice({"CustomerRef": {"value": customer}, "DocNumber": "INV-1", "Line": [
        {"Amount": "10.00", "DetailType": "SalesItemLineDetail"}]}, "invoice:1").body["Invoice"]  # fmt: skip
    first = read_back("quickbooks")
    before = cursor(warehouse)
    assert first["objects_changed"] == 2 and before is not None
    quickbooks.advance_clock(5)
    accountant_edits(quickbooks, "Invoice", invoice["Id"], {"Line": [
        {"Amount": "12.00", "DetailType": "SalesItemLineDetail"}]})  # fmt: skip
    quickbooks.faults.add("500", times=5, path_prefix=f"/v3/company/{quickbooks.realm_id}/reports", after=0, delay=0.0)
    with pytest.raises(QuickBooksError):
        read_back("quickbooks")
    runs = warehouse.rows("SELECT status, error FROM closeout.accounting_readback_runs ORDER BY run_id")
    assert [r[0] for r in runs] == ["succeeded", "failed"] and "500" in runs[1][1]
    assert cursor(warehouse) == before
    total_there = "SELECT total_minor FROM closeout.accounting_remote_objects WHERE entity = 'Invoice'"
    assert warehouse.scalar(total_there) == 1000
    quickbooks.faults.clear()
    again = read_back("quickbooks")
    assert again["objects_changed"] == 1 and again["invoices_ingest_id"]
    assert warehouse.scalar(total_there) == 1200
    assert cursor(warehouse) > before


def test_cdc_past_1000_changes_is_asked_again_and_more_than_1000_in_one_second_is_refused(
    warehouse, quickbooks  # noqa: F811 - fixture
) -> None:
    hook = QuickBooksHook()
    customer = hook.create_customer({"DisplayName": "Acme"}, "client:acme").body["Customer"]["Id"]
    read_back("quickbooks")
    quickbooks.advance_clock(5)
    invoices(quickbooks, customer, 600)
    quickbooks.advance_clock(2)
    invoices(quickbooks, customer, 600, first=600)
    paged = read_back("quickbooks")
    # two CDC requests (1000, then the rest from the last change) and the three reports
    assert (paged["mode"], paged["objects_changed"], paged["requests"]) == ("incremental", 1200, 5)
    assert warehouse.scalar("SELECT count(*) FROM closeout.accounting_remote_objects WHERE entity = 'Invoice'") == 1200
    quickbooks.advance_clock(5)
    invoices(quickbooks, customer, 1001, first=2000)
    with pytest.raises(ReadBackError, match="more than 1000 Invoice changes"):
        read_back("quickbooks")
    assert warehouse.scalar("SELECT count(*) FROM closeout.accounting_remote_objects WHERE entity = 'Invoice'") == 1200


def test_a_cursor_older_than_cdc_can_look_back_falls_back_to_a_full_read(
    warehouse, quickbooks  # noqa: F811 - fixture
) -> None:
    hook = QuickBooksHook()
    hook.create_customer({"DisplayName": "Acme"}, "client:acme")
    assert read_back("quickbooks")["mode"] == "full"
    assert read_back("quickbooks")["mode"] == "incremental"
    with connect() as conn:
        conn.execute("UPDATE closeout_data.accounting_readback_cursors SET cursor = cursor - interval '31 days'")
        conn.commit()
    aged = read_back("quickbooks")
    # every entity listed through query (one page each) instead of a CDC the API would refuse, and the reports
    assert (aged["mode"], aged["objects_read"], aged["requests"]) == ("full", 1, 6 + 3)


def test_xero_listings_page_on_a_full_read_and_read_only_the_changes_after(
    warehouse, xero, monkeypatch  # noqa: F811 - fixture
) -> None:
    hook = XeroHook()
    [contact] = hook.create_contacts([{"Name": "Acme"}], "client:acme").elements
    made = []
    for batch in range(3):  # 130 invoices, 50 a request as Xero takes them
        made += hook.create_invoices([
            {"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]}, "InvoiceNumber": f"X-{n}",
             "Status": "AUTHORISED", "LineItems": [{"Description": "work", "Quantity": 1, "UnitAmount": "1.00",
                                                    "AccountCode": "200"}]}
            for n in range(batch * 50, min(batch * 50 + 50, 130))], f"invoices:{batch}").elements  # fmt: skip
    set_xero_extra(monkeypatch, readback_overlap_seconds=0)  # the cursor's own second is still listed again
    xero.advance_clock(5)
    edit(xero, made[-1], "1.00")  # the newest change before the first read: its second is where the cursor lands
    full = read_back("xero")
    listings = len(XERO_LISTINGS)
    # Invoices take two pages (100 + 30), every other listing one; the organisation and two trial balances
    assert (full["mode"], full["objects_read"], full["requests"]) == ("full", 131, listings + 1 + 3)
    xero.advance_clock(120)
    for invoice in made[:2]:
        edit(xero, invoice, "2.00")
    changed = read_back("xero")
    # the two edits, and the newest invoice and the contact again (each listing's cursor second), one page each
    assert (changed["mode"], changed["objects_read"], changed["objects_changed"], changed["requests"]) == (
        "incremental", 4, 2, listings + 3)  # fmt: skip
    assert warehouse.scalar("SELECT sum(total_minor) FROM closeout.accounting_remote_objects "
                            "WHERE entity = 'Invoices'") == 130 * 100 + 2 * 100  # fmt: skip


def edit(sandbox, invoice: dict, amount: str) -> None:
    xero_edits(sandbox, "Invoices", invoice["InvoiceID"], {"LineItems": [
        {"Description": "work", "Quantity": 1, "UnitAmount": amount, "AccountCode": "200"}]})


def set_xero_extra(monkeypatch: pytest.MonkeyPatch, **extra: object) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_XERO_DEFAULT"])
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_XERO_DEFAULT", json.dumps(conn))
    forget_known_secrets()
