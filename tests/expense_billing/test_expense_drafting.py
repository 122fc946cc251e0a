"""Worked examples of expense billing on the real warehouse, through closeout's own expense capture and the
real drafting: markup rounded once per line, grouping by category or per expense, receipt links, an expense
in another currency on its own draft, expenses already billed in the tracker, edits, deletions and unit price
changes after issue as linked adjustments and credits, late expenses in a locked period, voids. Every
example ends by checking invariants 10 and 2 from the contract views."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal as D

import pytest
from closeout.billing.periods import lock_period
from closeout.warehouse.db import connect
from expense_billing_support import Expense, ExpenseBooks, billed_with_markup, expense_rows

OCT = date(2026, 10, 1)
NOV = date(2026, 11, 1)


@pytest.fixture
def books(warehouse) -> Iterator[ExpenseBooks]:
    with connect() as conn:
        yield ExpenseBooks(conn)
        conn.rollback()


def _configure(books: ExpenseBooks, **options) -> None:
    books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD", **options},
                                 {"client_key": "harvest:c2", "currency": "USD"}]})  # fmt: skip


def test_markup_is_rounded_once_per_line_and_each_expense_carries_its_own_share(books: ExpenseBooks) -> None:
    _configure(books, expense_markup_percent="12.5")
    # 0.05 x 12.5% = 0.625 cents each: per expense 1 cent (half-up of 0.625), per line of three 1.875 -> 2 cents
    books.put_expenses(*(Expense(str(i), total=D("0.05")) for i in (1, 2, 3)))
    books.draft()
    invoice_id = books.invoice_for("harvest:c1", OCT)
    [line] = books.expense_lines(invoice_id)
    _, kind, description, quantity, unit_rate, amount, rounding, count = line
    assert (kind, quantity, unit_rate, count) == ("expense", D("0.15"), D("1.125"), 3)
    assert amount == 17 and rounding == 17 - 3 * 6, "15 cents + 1.875 markup rounded once = 17; rows 6 each"
    assert description == "Expenses: Travel (3 items), incl. 12.5% markup"
    rows = expense_rows(books.conn, "1")
    assert [(r["cost_minor"], r["markup_minor"], r["amount_minor"]) for r in rows] == [(5, 1, 6)]
    assert books.invoices()[invoice_id][5] == 17
    books.check_expense_invariants({"1": 6, "2": 6, "3": 6})


def test_zero_and_three_decimal_currencies_round_in_their_own_minor_unit(books: ExpenseBooks) -> None:
    books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD", "expense_markup_percent": 15}]})
    books.put_expenses(Expense("1", total=D("999"), currency="JPY"), Expense("2", total=D("1.333"), currency="KWD"))
    books.draft()
    jpy = books.invoice_for("harvest:c1", OCT, "JPY")
    kwd = books.invoice_for("harvest:c1", OCT, "KWD")
    assert [ln[5] for ln in books.expense_lines(jpy)] == [1149]  # 999 x 1.15 = 1148.85 -> 1149 yen
    assert [ln[5] for ln in books.expense_lines(kwd)] == [1533]  # 1333 fils x 1.15 = 1532.95 -> 1533
    books.check_expense_invariants({"1": billed_with_markup(999, D(15)), "2": billed_with_markup(1333, D(15))})


def test_grouping_by_category_or_per_expense_and_receipt_links(books: ExpenseBooks) -> None:
    books.configure({"clients": [
        {"client_key": "harvest:c1", "currency": "USD", "expense_grouping": "category"},
        {"client_key": "harvest:c2", "currency": "USD", "expense_grouping": "expense", "expense_receipt_links": True},
    ]})  # fmt: skip
    receipt = "https://receipts.example/r/{}.pdf"
    books.put_expenses(
        Expense("1", category="Travel", total=D("100.00"), receipt_url=receipt.format(1)),
        Expense("2", category="Travel", total=D("50.00")),
        Expense("3", category="Meals", total=D("20.00"), receipt_url=receipt.format(3)),
        Expense("4", client="c2", category="Travel", total=D("70.00"), receipt_url=receipt.format(4),
                notes="Train to the client site", spent_date=date(2026, 10, 9)),
        Expense("5", client="c2", category="Meals", total=D("12.50"), spent_date=date(2026, 10, 2)),
    )  # fmt: skip
    books.draft()
    by_category = books.expense_lines(books.invoice_for("harvest:c1", OCT))
    assert [(ln[2], ln[5]) for ln in by_category] == [("Expenses: Meals (1 item)", 2000),
                                                      ("Expenses: Travel (2 items)", 15000)]  # fmt: skip
    assert all("receipt" not in ln[2] for ln in by_category), "c1 does not pass receipts through"
    per_expense = books.expense_lines(books.invoice_for("harvest:c2", OCT))
    assert [(ln[2], ln[5]) for ln in per_expense] == [
        ("Expense 2026-10-02 Meals", 1250),
        ("Expense 2026-10-09 Travel: Train to the client site, receipt: https://receipts.example/r/4.pdf", 7000),
    ]
    books.check_expense_invariants({"1": 10000, "2": 5000, "3": 2000, "4": 7000, "5": 1250})
    # switching c1 to per-expense lines with receipts rebuilds its draft (one new version), nothing else
    version = books.invoices()[books.invoice_for("harvest:c1", OCT)][6]
    books.configure({"clients": [
        {"client_key": "harvest:c1", "currency": "USD", "expense_grouping": "expense", "expense_receipt_links": True},
        {"client_key": "harvest:c2", "currency": "USD", "expense_grouping": "expense", "expense_receipt_links": True},
    ]})  # fmt: skip
    books.draft()
    lines = books.expense_lines(books.invoice_for("harvest:c1", OCT))
    assert len(lines) == 3 and sum("receipt: https://receipts.example/r/1.pdf" in ln[2] for ln in lines) == 1
    assert books.invoices()[books.invoice_for("harvest:c1", OCT)][6] == version + 1
    books.check_expense_invariants({"1": 10000, "2": 5000, "3": 2000, "4": 7000, "5": 1250})


def test_time_and_expenses_share_the_draft_and_lines_are_numbered_time_first(books: ExpenseBooks) -> None:
    from billing_support import Entry

    _configure(books)
    books.put(Entry("t1", hours=D("2"), rate=D("100")))
    books.put_expenses(Expense("1", total=D("30.00")))
    books.draft()
    invoice_id = books.invoice_for("harvest:c1", OCT)
    assert [(ln[0], ln[1], ln[5]) for ln in books.lines(invoice_id)] == [(1, "time", 20000), (2, "expense", 3000)]
    assert books.invoices()[invoice_id][5] == 23000
    assert books.billed("t1") == 20000
    books.check_expense_invariants({"1": 3000})


def test_an_expense_in_another_currency_goes_on_that_currencys_draft(books: ExpenseBooks) -> None:
    _configure(books)
    books.put_expenses(Expense("1", total=D("40.00")), Expense("2", total=D("25.00"), currency="EUR"))
    books.draft()
    usd, eur = books.invoice_for("harvest:c1", OCT, "USD"), books.invoice_for("harvest:c1", OCT, "EUR")
    assert usd and eur and usd != eur
    assert [ln[5] for ln in books.expense_lines(usd)] == [4000]
    assert [ln[5] for ln in books.expense_lines(eur)] == [2500]
    assert books.invoices()[eur][2] == "EUR"
    books.check_expense_invariants({"1": 4000, "2": 2500})


def test_not_billable_unapproved_deleted_and_already_billed_in_the_tracker_are_not_billed(
    books: ExpenseBooks,
) -> None:
    _configure(books)
    books.put_expenses(
        Expense("1", total=D("10.00")), Expense("2", billable=False), Expense("3", approved=False),
        Expense("4", billed_in_source=True), Expense("5", client=None), Expense("6"),
    )  # fmt: skip
    books.delete_expense("6")
    books.draft()
    assert [ln[5] for ln in books.expense_lines(books.invoice_for("harvest:c1", OCT))] == [1000]
    books.check_expense_invariants({"1": 1000})
    # approved later: billed; a draft expense the tracker then shows billed by someone else leaves the draft
    books.put_expenses(Expense("3", approved=True), Expense("1", total=D("10.00"), billed_in_source=True))
    books.draft()
    books.check_expense_invariants({"3": 1000})
    # a client without approval requirement bills unapproved expenses (as for time)
    books.configure({"clients": [{"client_key": "harvest:c1", "currency": "USD", "require_approval": False}]})
    books.put_expenses(Expense("7", approved=False, total=D("3.00")))
    books.draft()
    books.check_expense_invariants({"3": 1000, "7": 300})


def test_drafting_twice_writes_nothing(books: ExpenseBooks) -> None:
    _configure(books, expense_markup_percent=10, expense_receipt_links=True)
    books.put_expenses(Expense("1", receipt_url="https://r.example/1"), Expense("2", category=None))
    first = books.draft()
    assert (first.invoices_changed, first.expense_rows_added, first.expense_lines_changed) == (1, 2, 2)
    before = books.invoices()
    summary = books.draft()
    assert (summary.expense_rows_added, summary.expense_rows_closed, summary.expense_lines_changed) == (0, 0, 0)
    assert summary.invoices_changed == 0
    assert books.invoices() == before


def test_edit_and_delete_after_issue_become_linked_adjustment_and_credit(books: ExpenseBooks) -> None:
    _configure(books, expense_markup_percent=10)
    books.put_expenses(Expense("1", total=D("100.00")), Expense("2", total=D("40.00")), Expense("3", total=D("5.00")))
    books.draft()
    october = books.invoice_for("harvest:c1", OCT)
    books.freeze(october)
    frozen = books.invoices()[october]
    # after issue: 1 is edited up, 2 deleted, 3 re-priced down (a unit price change reaches us as a new amount)
    books.put_expenses(Expense("1", total=D("120.00")), Expense("3", total=D("4.00"), units=D("2"),
                                                                 unit_price=D("2.00")))  # fmt: skip
    books.delete_expense("2")
    books.draft()
    assert books.invoices()[october] == frozen, "an issued invoice never changes"
    november = books.invoice_for("harvest:c1", NOV)
    rows = {sid: expense_rows(books.conn, sid) for sid in ("1", "2", "3")}
    adjust = rows["1"][-1]
    assert (adjust["invoice_id"], adjust["kind"], adjust["cost_minor"], adjust["amount_minor"]) == (
        november, "adjustment", 2000, 2200)
    assert adjust["adjusts_invoice_id"] == october and adjust["adjusts_line_no"] == 1
    assert adjust["description"].startswith("Adjustment: expense harvest:1 of 2026-10-05 (Travel): billed cost 100")
    credit = rows["2"][-1]
    assert (credit["kind"], credit["cost_minor"], credit["amount_minor"]) == ("credit", -4000, -4400)
    assert "deleted" in credit["description"] and credit["adjusts_invoice_id"] == october
    reprice = rows["3"][-1]
    assert (reprice["kind"], reprice["amount_minor"]) == ("adjustment", -110)
    assert books.invoices()[november][5] == 2200 - 4400 - 110
    books.check_expense_invariants({"1": 13200, "2": 0, "3": 440})
    # the draft's corrections follow further edits in place; nothing is billed twice
    books.put_expenses(Expense("1", total=D("100.00")))
    books.draft()
    assert [r["kind"] for r in expense_rows(books.conn, "1")] == ["expense"]
    books.check_expense_invariants({"1": 11000, "2": 0, "3": 440})


def test_a_markup_change_after_issue_bills_the_difference_per_markup(books: ExpenseBooks) -> None:
    _configure(books, expense_markup_percent=10)
    books.put_expenses(Expense("1", total=D("50.00")))
    books.draft()
    books.freeze(books.invoice_for("harvest:c1", OCT))
    _configure(books, expense_markup_percent=20)
    books.draft()
    assert books.invoice_for("harvest:c1", NOV) is None, "an issued expense keeps the markup it was billed with"
    books.put_expenses(Expense("1", total=D("60.00")))
    books.draft()
    kinds = sorted((r["kind"], r["amount_minor"]) for r in expense_rows(books.conn, "1"))
    assert kinds == [("adjustment", -5500), ("adjustment", 7200), ("expense", 5500)]
    books.check_expense_invariants({"1": 7200})


def test_late_expenses_in_a_locked_period_go_to_the_next_unlocked_draft(books: ExpenseBooks) -> None:
    _configure(books)
    books.put_expenses(Expense("1", total=D("10.00")))
    books.draft()
    october = books.invoice_for("harvest:c1", OCT)
    lock_period(books.conn, "2026-10", locked_by="controller@example.com")
    books.put_expenses(Expense("2", total=D("7.00"), spent_date=date(2026, 10, 20)), Expense("1", total=D("11.00")))
    books.draft()
    assert [ln[5] for ln in books.expense_lines(october)] == [1000], "the locked draft is fixed"
    november = books.invoice_for("harvest:c1", NOV)
    late = expense_rows(books.conn, "2")
    assert [(r["invoice_id"], r["kind"], r["amount_minor"]) for r in late] == [(november, "adjustment", 700)]
    assert late[0]["description"] == "Late expense: harvest:2 of 2026-10-20 (Travel), its period is locked"
    books.check_expense_invariants({"1": 1100, "2": 700})


def test_a_void_releases_the_expenses_to_be_billed_again(books: ExpenseBooks) -> None:
    _configure(books)
    books.put_expenses(Expense("1", total=D("10.00")))
    books.draft()
    october = books.invoice_for("harvest:c1", OCT)
    books.freeze(october)
    books.void(october)
    books.draft()
    rebilled = [r for r in expense_rows(books.conn, "1") if r["status"] == "draft"]
    assert [(r["kind"], r["amount_minor"]) for r in rebilled] == [("adjustment", 1000)]
    assert "was voided" in rebilled[0]["description"]
    books.check_expense_invariants({"1": 1000})


def test_an_expense_moved_to_another_client_after_issue_is_credited_and_charged(books: ExpenseBooks) -> None:
    _configure(books)
    books.put_expenses(Expense("1", total=D("10.00")))
    books.draft()
    books.freeze(books.invoice_for("harvest:c1", OCT))
    books.put_expenses(Expense("1", client="c2", total=D("10.00")))
    books.draft()
    moved = {(r["kind"], r["amount_minor"], r["invoice_id"]) for r in expense_rows(books.conn, "1")
             if r["status"] == "draft"}  # fmt: skip
    assert moved == {("credit", -1000, books.invoice_for("harvest:c1", NOV)),
                     ("adjustment", 1000, books.invoice_for("harvest:c2", OCT))}  # fmt: skip
    books.check_expense_invariants({"1": 1000})
