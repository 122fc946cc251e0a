"""Billed expenses in the close report: expense lines are their own figure (column "expenses" in the page, the
CSV and the JSON), apart from adjustments; an expense deleted after its invoice was issued is a credit line, so
it stays an adjustment of the period that bills it. The line tie-out is time + expenses + adjustments = billed.
Real warehouse, closeout's own expense capture and drafting; invoices issued by freezing them."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
from billing_support import Entry
from closeout.close import report
from closeout.warehouse.db import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "expense_billing"))
from expense_billing_support import Expense, ExpenseBooks

pytestmark = pytest.mark.integration

OCT = date(2026, 10, 1)
NOV = date(2026, 11, 1)


@pytest.fixture
def books(warehouse) -> Iterator[ExpenseBooks]:
    with connect() as conn:
        yield ExpenseBooks(conn)
        conn.rollback()


def _issued_months(books: ExpenseBooks) -> None:
    """October: 2 h of time (200.00) and two expenses at 10% markup (110.00 and 44.00), issued. November:
    expense 2 deleted (a credit of -44.00 linked to October), a new 5.00 expense (5.50) and 1 h, issued."""
    books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD", "expense_markup_percent": 10}]})
    books.put(Entry("t1", hours=D("2")))
    books.put_expenses(Expense("1", total=D("100.00")), Expense("2", total=D("40.00")))
    books.draft()
    books.freeze(books.invoice_for("harvest:c1", OCT))
    books.delete_expense("2")
    books.put(Entry("t2", hours=D("1"), spent_date=date(2026, 11, 3)))
    books.put_expenses(Expense("3", total=D("5.00"), spent_date=date(2026, 11, 4)))
    books.draft()
    books.freeze(books.invoice_for("harvest:c1", NOV))


def test_expenses_are_their_own_figure_and_corrections_stay_adjustments(books: ExpenseBooks, tmp_path) -> None:
    _issued_months(books)
    october = report.build_report(books.conn, "2026-10")
    november = report.build_report(books.conn, "2026-11")
    (oct_c1,) = october.clients
    (nov_c1,) = november.clients
    assert (oct_c1.time_billed_minor, oct_c1.expenses_minor, oct_c1.adjustments_minor, oct_c1.billed_minor) == (
        20000, 15400, 0, 35400)
    assert oct_c1.adjustment_lines == 0 and october.adjustments == ()
    assert (nov_c1.time_billed_minor, nov_c1.expenses_minor, nov_c1.adjustments_minor, nov_c1.billed_minor) == (
        10000, 550, -4400, 6150)
    assert nov_c1.adjustment_lines == 1
    assert [(a["kind"], a["amount_minor"]) for a in november.adjustments] == [("credit", -4400)]
    for rep in (october, november):
        (usd,) = rep.totals
        lines = next(t for t in usd.tie_outs if t.name == "invoice totals are the sum of their lines")
        assert lines.formula == "time lines + expense lines + adjustment lines = billed" and lines.ties_out
        assert usd.expenses_minor == rep.clients[0].expenses_minor
    # the invoices list splits them the same way
    (nov_invoice,) = november.invoices
    assert (nov_invoice["expenses_minor"], nov_invoice["adjustments_minor"]) == (550, -4400)

    urls = report.write_report(november, str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(Path(urls["csv"]).read_text(encoding="utf-8"))))
    assert [(r["row"], r["expenses_minor"], r["expenses"], r["adjustments"]) for r in rows] == [
        ("client", "550", "5.50", "-44.00"), ("total", "550", "5.50", "-44.00")]
    document = json.loads(Path(urls["json"]).read_text(encoding="utf-8"))
    assert (document["clients"][0]["expenses_minor"], document["clients"][0]["expenses"]) == (550, "5.50")
    assert document["totals"][0]["expenses"] == "5.50" and document["invoices"][0]["expenses"] == "5.50"
    html = Path(urls["html"]).read_text(encoding="utf-8")
    assert "<th class=\"num\">Expenses</th>" in html and "of which expenses" in html
    assert ">5.50<" in html and ">-44.00<" in html
