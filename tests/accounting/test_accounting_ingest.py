"""The reverse: the accounting system's own exports (hand-built from the reference's description, in
tests/fixtures/accounting/) read to exact integer minor units; malformed rows quarantined with their line
number and reason while every other row loads; the same file ingested twice loads once."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
from closeout.accounting.amounts import ParseError, parse_minor
from closeout.accounting.gl_report import Bad, GeneralLedgerParser, GlRow
from closeout.accounting.ingest import _text_lines, ingest_quickbooks_gl, ingest_xero_invoices
from closeout.accounting.xero_export import XeroInvoiceParser
from closeout.warehouse.db import connect

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "accounting"
CURRENCIES = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}


@pytest.mark.parametrize(
    "text, exponent, minor",
    [("-2,562.45", 2, -256245), ("(420.81)", 2, -42081), ("$(250.00)", 2, -25000), ("-$1.00", 2, -100),
     ("$-1.00", 2, -100), ("1,234,567.89", 2, 123456789), ("12.34", 2, 1234), ("0.00", 2, 0), ("2,833", 0, 2833),
     ("(2,833)", 0, -2833), ("24.690", 3, 24690), ("-0.001", 3, -1), ("150", 2, 15000), ("12.5", 2, 1250),
     (" 7.00 ", 2, 700), ("5.00-", 2, -500), ("", 2, None)],
)  # fmt: skip
def test_amount_notations_to_exact_minor_units(text: str, exponent: int, minor: int | None) -> None:
    assert parse_minor(text, exponent) == minor


@pytest.mark.parametrize(
    "text, reason",
    [("12.3.4", "not a number"), ("1.005", "more than 2 decimals"), ("abc", "not a number"),
     ("-(5.00)", "two minus signs"), ("1,23.00", "not a number"), ("1e3", "not a number"), ("--5", "two minus")],
)  # fmt: skip
def test_amounts_that_are_not_numbers_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_minor(text, 2)


def _parse_gl(name: str, exponent: int = 2) -> tuple[GeneralLedgerParser, list[GlRow], list[Bad]]:
    parser = GeneralLedgerParser(exponent)
    items = list(parser.parse(_text_lines((FIXTURES / name).read_bytes())))
    return parser, [i for i in items if isinstance(i, GlRow)], [i for i in items if isinstance(i, Bad)]


def test_quickbooks_general_ledger_old_header_form() -> None:
    parser, rows, bad = _parse_gl("quickbooks_general_ledger_old.csv")
    assert parser.title == "General Ledger" and parser.report_range == "October 1 - October 31, 2026"
    txns = [(r.line_no, r.account, r.txn_date, r.num, r.amount_minor) for r in rows if r.row_kind == "transaction"]
    ar = "Accounts Receivable (A/R)"
    assert txns == [
        (8, ar, date(2026, 10, 5), "INV-0001", 256245),
        (9, ar, date(2026, 10, 7), None, -42081),
        (10, ar, date(2026, 10, 8), "CR-1", -25000),
        (11, ar, date(2026, 10, 9), "J-7", -256245),
        (16, ar, date(2026, 10, 13), "INV-0013", 123456789),
        (20, "Expenses:Bank Fees", date(2026, 10, 15), None, 1234),
        (21, "Expenses:Bank Fees", date(2026, 10, 16), None, -100),
    ]
    assert rows[1].name == '=HYPERLINK("http://x","y")' and rows[4].memo == "reversal, part 1"
    kinds = [(r.row_kind, r.account, r.amount_minor, r.balance_minor) for r in rows if r.row_kind != "transaction"]
    assert kinds == [
        ("beginning_balance", ar, None, 300000),
        ("account_total", ar, 123389708, None),
        ("account_total", "Expenses:Bank Fees", 1134, None),
        ("account_total", "Expenses", 1134, None),
        ("total", None, 123390842, None),
    ]
    assert [(b.line_no, b.reason) for b in bad] == [
        (12, "amount '12.3.4': not a number"),
        (13, "date '10/32/2026': not MM/DD/YYYY"),
        (14, "transaction row without an amount"),
        (15, "amount '1.005': more than 2 decimals for this currency"),
    ]
    assert bad[0].raw == ",10/10/2026,Invoice,INV-0009,Plain Co,,Services,12.3.4,"


def test_quickbooks_general_ledger_new_header_form_with_bom() -> None:
    parser, rows, bad = _parse_gl("quickbooks_general_ledger_new.csv")
    assert parser.report_range == "October 2026"
    assert [(r.row_kind, r.account, r.txn_date, r.amount_minor, r.balance_minor, r.split_account) for r in rows] == [
        ("beginning_balance", "Services", None, None, 0, None),
        ("transaction", "Services", date(2026, 10, 5), -150000, -150000, "Accounts Receivable (A/R)"),
        ("transaction", "Services", date(2026, 10, 6), 25000, -125000, "Accounts Receivable (A/R)"),
        ("account_total", "Services", None, -125000, None, None),
        ("total", None, None, -125000, None, None),
    ]
    assert [(b.line_no, b.reason) for b in bad] == [(10, "amount 'abc': not a number")]


def test_xero_invoice_export_to_minor_units_per_row_currency() -> None:
    items = list(XeroInvoiceParser(CURRENCIES).parse(_text_lines((FIXTURES / "xero_invoice_export.csv").read_bytes())))
    lines = [i for i in items if not isinstance(i, Bad)]
    bad = [(i.line_no, i.reason) for i in items if isinstance(i, Bad)]
    assert [(r.invoice_number, r.currency, r.line_amount_minor, r.total_minor, r.amount_due_minor) for r in lines] == [
        ("INV-0001", "USD", 15000, 13000, 13000),
        ("INV-0001", "USD", -2000, 13000, 13000),
        ("INV-0002", "JPY", 2500, 2833, 0),
        ("INV-0002", "JPY", 333, 2833, 0),
        ("INV-0003", "KWD", 24690, 24690, 24690),
        ("CN-0004", "EUR", 5000, 5000, 5000),
        ("INV-0008", "USD", -7500, -7500, -7500),
    ]
    assert lines[0].contact_name == '=HYPERLINK("http://x","y")' and lines[0].invoice_date == date(2026, 10, 5)
    assert lines[4].description == 'Design, "phase 2"' and lines[4].unit_amount == D("12.345")
    assert lines[5].invoice_type == "Sales Credit Note" and lines[2].status == "Paid"
    assert bad == [
        (8, "date '31/02/2026': not DD/MM/YYYY"),
        (9, "currency 'XXX' is not in closeout_data.currencies"),
        (10, "amount '12.345': more than 2 decimals for this currency"),
    ]


def test_a_file_without_a_header_is_one_quarantined_problem_not_a_crash() -> None:
    items = list(GeneralLedgerParser(2).parse(["just,a,table\r\n", "1,2,3\r\n"]))
    assert [(i.line_no, i.reason) for i in items] == [
        (0, "no header row (with Amount and Date or Transaction date) found")
    ]


@pytest.mark.integration
def test_ingest_loads_good_rows_quarantines_bad_ones_and_loads_a_file_once(warehouse) -> None:
    with connect() as conn:
        gl = ingest_quickbooks_gl(conn, FIXTURES / "quickbooks_general_ledger_old.csv", currency="USD")
        new = ingest_quickbooks_gl(conn, FIXTURES / "quickbooks_general_ledger_new.csv", currency="USD")
        xe = ingest_xero_invoices(conn, FIXTURES / "xero_invoice_export.csv")
        again = ingest_quickbooks_gl(conn, FIXTURES / "quickbooks_general_ledger_old.csv", currency="USD")
    assert (gl["loaded"], gl["quarantined"], gl["duplicate"]) == (12, 4, False)
    assert (new["loaded"], new["quarantined"]) == (5, 1)
    assert (xe["loaded"], xe["quarantined"]) == (7, 3)
    assert again == {**gl, "duplicate": True}
    assert warehouse.scalar("SELECT count(*) FROM closeout.accounting_ingests") == 3
    assert warehouse.rows(
        """SELECT account, sum(amount_minor)::bigint, count(*) FROM closeout.accounting_ledger
           WHERE ingest_id = %s GROUP BY account ORDER BY account""",
        (gl["ingest_id"],),
    ) == [("Accounts Receivable (A/R)", 123389708, 5), ("Expenses:Bank Fees", 1134, 2)]
    assert warehouse.rows(
        "SELECT file_name, line_no, reason FROM closeout.accounting_quarantine ORDER BY file_name, line_no"
    ) == [
        ("quickbooks_general_ledger_new.csv", 10, "amount 'abc': not a number"),
        ("quickbooks_general_ledger_old.csv", 12, "amount '12.3.4': not a number"),
        ("quickbooks_general_ledger_old.csv", 13, "date '10/32/2026': not MM/DD/YYYY"),
        ("quickbooks_general_ledger_old.csv", 14, "transaction row without an amount"),
        ("quickbooks_general_ledger_old.csv", 15, "amount '1.005': more than 2 decimals for this currency"),
        ("xero_invoice_export.csv", 8, "date '31/02/2026': not DD/MM/YYYY"),
        ("xero_invoice_export.csv", 9, "currency 'XXX' is not in closeout_data.currencies"),
        ("xero_invoice_export.csv", 10, "amount '12.345': more than 2 decimals for this currency"),
    ]
    assert warehouse.rows(
        """SELECT invoice_number, currency, line_count, lines_minor::bigint, total_minor, signed_total_minor
           FROM closeout.accounting_invoices ORDER BY invoice_number"""
    ) == [
        ("CN-0004", "EUR", 1, 5000, 5000, -5000),
        ("INV-0001", "USD", 2, 13000, 13000, 13000),
        ("INV-0002", "JPY", 2, 2833, 2833, 2833),
        ("INV-0003", "KWD", 1, 24690, 24690, 24690),
        ("INV-0008", "USD", 1, -7500, -7500, -7500),
    ]
