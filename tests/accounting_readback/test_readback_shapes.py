"""The read-back's reading of the APIs' shapes, without a server: QuickBooks objects and CDC deletions, Xero
documents (voided and deleted ones gone, bills apart from invoices), exact minor units per currency, the QuickBooks
General Ledger with sub-accounts and the Xero trial balance's columns."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from closeout.accounting.readback.objects import parse_timestamp, quickbooks_object, to_minor, xero_object
from closeout.accounting.readback.reports import (
    quickbooks_general_ledger,
    quickbooks_trial_balance,
    xero_trial_balance,
)

EXPONENTS = {"USD": 2, "JPY": 0, "BHD": 3}


def test_amounts_become_exact_minor_units_with_the_currencys_exponent() -> None:
    assert to_minor(Decimal("1234.56"), "USD", EXPONENTS) == 123456
    assert to_minor(Decimal("1500"), "jpy", EXPONENTS) == 1500
    assert to_minor(Decimal("1.234"), "BHD", EXPONENTS) == 1234
    assert to_minor("0.1", "USD", EXPONENTS) == 10 and to_minor(None, "USD", EXPONENTS) is None
    assert to_minor(Decimal("92233720368547758.07"), "USD", EXPONENTS) == 2**63 - 1  # no float on the way


def test_quickbooks_objects_and_cdc_deletions() -> None:
    invoice = quickbooks_object("Invoice", {
        "Id": "42", "SyncToken": "3", "DocNumber": "SBX-0001", "TxnDate": "2026-11-03", "TotalAmt": Decimal("250.50"),
        "CurrencyRef": {"value": "usd"}, "MetaData": {"LastUpdatedTime": "2026-11-03T10:00:00-08:00"}},
        "EUR", EXPONENTS)  # fmt: skip
    assert (invoice.object_kind, invoice.reference, invoice.total_minor, invoice.currency, invoice.remote_version,
            invoice.deleted, invoice.txn_date) == ("invoice", "SBX-0001", 25050, "USD", "3", False, date(2026, 11, 3))
    assert invoice.remote_updated_at == datetime(2026, 11, 3, 18, 0, tzinfo=UTC)
    journal = quickbooks_object("JournalEntry", {"Id": "7", "SyncToken": "0", "PrivateNote": "closeout journal j1",
                                                 "Line": [
        {"Amount": "10.00", "JournalEntryLineDetail": {"PostingType": "Debit"}},
        {"Amount": "5.00", "JournalEntryLineDetail": {"PostingType": "Debit"}},
        {"Amount": "15.00", "JournalEntryLineDetail": {"PostingType": "Credit"}}]}, "USD", EXPONENTS)  # fmt: skip
    assert (journal.object_kind, journal.reference, journal.total_minor, journal.currency) == (
        "journal", "closeout journal j1", 1500, "USD")  # home currency when none is named
    gone = quickbooks_object("Invoice", {"status": "Deleted", "domain": "QBO", "Id": "42",
                                         "MetaData": {"LastUpdatedTime": "2026-11-04T00:00:00Z"}}, "USD", EXPONENTS)
    assert (gone.deleted, gone.total_minor, gone.reference, gone.remote_version) == (True, None, None, "deleted")
    customer = quickbooks_object("Customer", {"Id": "1", "SyncToken": "0", "DisplayName": "Acme", "Active": False,
                                              "CurrencyRef": {"value": "JPY"}}, "USD", EXPONENTS)  # fmt: skip
    assert (customer.object_kind, customer.total_minor, customer.status, customer.currency) == (
        "customer", None, "inactive", "JPY")  # fmt: skip


def test_xero_documents_voided_and_deleted_are_gone_and_bills_are_not_invoices() -> None:
    stamp = "/Date(1764633600000+0000)/"
    sale = xero_object("Invoices", {"InvoiceID": "a", "Type": "ACCREC", "InvoiceNumber": "SBX-1", "Total": Decimal("5"),
                                    "CurrencyCode": "JPY", "Status": "AUTHORISED", "UpdatedDateUTC": stamp,
                                    "Date": "2026-12-02T00:00:00"}, EXPONENTS)  # fmt: skip
    assert (sale.object_kind, sale.total_minor, sale.deleted, sale.txn_date) == ("invoice", 5, False, date(2026, 12, 2))
    assert sale.remote_updated_at == parse_timestamp(stamp) == datetime(2025, 12, 2, tzinfo=UTC)
    bill = xero_object("Invoices", {"InvoiceID": "b", "Type": "ACCPAY", "Total": 1, "Status": "VOIDED"}, EXPONENTS)
    assert (bill.object_kind, bill.deleted) == ("bill", True)
    payment = xero_object("Payments", {"PaymentID": "p", "Amount": "20.00", "Reference": "closeout payment x",
                                       "Status": "DELETED", "Invoice": {"CurrencyCode": "USD"}}, EXPONENTS)
    assert (payment.object_kind, payment.total_minor, payment.currency, payment.deleted) == ("payment", 2000, "USD",
                                                                                              True)  # fmt: skip
    lines = [{"LineAmount": "12.50"}, {"LineAmount": "-12.50"}]
    journal = xero_object("ManualJournals", {"ManualJournalID": "m", "Narration": "closeout journal j",
                                             "JournalLines": lines}, EXPONENTS)  # fmt: skip
    assert (journal.total_minor, journal.currency, journal.reference) == (1250, None, "closeout journal j")
    contact = xero_object("Contacts", {"ContactID": "c", "ContactNumber": "harvest:a", "ContactStatus": "ARCHIVED"},
                          EXPONENTS)  # fmt: skip
    assert (contact.object_kind, contact.reference, contact.deleted) == ("customer", "harvest:a", False)


def test_the_quickbooks_general_ledger_keeps_sub_accounts_beginning_balances_and_totals() -> None:
    columns = ["tx_date", "txn_type", "doc_num", "name", "memo", "split_acc", "subt_nat_amount", "rbal_nat_amount"]

    def data(*values: str) -> dict:
        return {"type": "Data", "ColData": [{"value": v} for v in values]}

    report = {"Header": {"Currency": "USD"}, "Columns": {"Column": [{"ColType": c} for c in columns]}, "Rows": {"Row": [
        {"Header": {"ColData": [{"value": "Bank"}]}, "Rows": {"Row": [
            data("Beginning Balance", "", "", "", "", "", "", "1,000.00"),
            {"Header": {"ColData": [{"value": "Checking"}]}, "Rows": {"Row": [
                data("2026-11-02", "Deposit", "D1", "", "", "Undeposited Funds", "(250.00)", "750.00")]},
             "Summary": {"ColData": [{"value": "Total for Checking"}, *([{"value": ""}] * 5), {"value": "-250.00"}]}},
        ]}, "Summary": {"ColData": [{"value": "Total for Bank"}, *([{"value": ""}] * 5), {"value": "-250.00"}]}},
    ]}}  # fmt: skip
    rows = list(quickbooks_general_ledger(report, EXPONENTS))
    assert [(r.row_kind, r.account, r.txn_date, r.num, r.amount_minor, r.balance_minor) for r in rows] == [
        ("beginning_balance", "Bank", None, None, None, 100000),
        ("transaction", "Bank:Checking", date(2026, 11, 2), "D1", -25000, 75000),
        ("account_total", "Bank:Checking", None, None, -25000, None),
        ("account_total", "Bank", None, None, -25000, None)]  # fmt: skip
    trial = {"Header": {"Currency": "USD"}, "Rows": {"Row": [
        {"ColData": [{"value": "Checking", "id": "35"}, {"value": "4151.74"}, {"value": ""}]},
        {"ColData": [{"value": "Sales", "id": "9"}, {"value": ""}, {"value": "4151.74"}]},
        {"group": "GrandTotal", "type": "Section", "Summary": {"ColData": [{"value": "TOTAL"}]}}]}}  # fmt: skip
    assert [(t.account, t.account_id, t.debit_minor, t.credit_minor) for t in quickbooks_trial_balance(
        trial, EXPONENTS)] == [("Checking", "35", 415174, 0), ("Sales", "9", 0, 415174)]  # fmt: skip


def test_the_xero_trial_balance_gives_each_accounts_code_month_movement_and_balance() -> None:
    report = {"Rows": [
        {"RowType": "Header", "Cells": [{"Value": "Account"}, {"Value": "Debit"}, {"Value": "Credit"},
                                        {"Value": "YTD Debit"}, {"Value": "YTD Credit"}]},
        {"RowType": "Section", "Title": "Revenue", "Rows": [
            {"RowType": "Row", "Cells": [{"Value": "Sales (200)", "Attributes": [{"Value": "uuid-1", "Id": "account"}]},
                                         {"Value": ""}, {"Value": "120.00"}, {"Value": ""}, {"Value": "1,150.00"}]}]},
        {"RowType": "Section", "Rows": [{"RowType": "SummaryRow", "Cells": [{"Value": "Total"}]}]}]}  # fmt: skip
    [(month, balance)] = xero_trial_balance(report, "USD", EXPONENTS)
    assert (month.account, month.account_id, month.debit_minor, month.credit_minor) == ("200", "uuid-1", 0, 12000)
    assert (balance.debit_minor, balance.credit_minor) == (0, 115000)
