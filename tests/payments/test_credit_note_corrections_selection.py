"""Which draft rows become corrections, on the real warehouse through the real drafting (no Stripe calls:
issuing is tested in test_credit_note_corrections.py). An invoice is issued here by freezing it and
recording it open with a Stripe id, as publishing does; everything else is closeout's own code.

Decreases of an issued invoice leave the draft for a credit note against that invoice, increases stay;
a draft whose period is over and that nets negative becomes a customer balance credit; the drafting counts
corrections as billed when the entry changes again; invariants 1 and 2 hold throughout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal as D

import pytest
from billing_support import Books, Entry
from closeout.payments.corrections import record_corrections
from closeout.warehouse.db import connect

OCT = date(2026, 10, 1)
NOV = date(2026, 11, 1)
DEC_5 = date(2026, 12, 5)  # November is over: its draft may be published
NOV_10 = date(2026, 11, 10)  # November is not over yet


@pytest.fixture
def books(warehouse) -> Iterator[Books]:
    with connect() as conn:
        books = Books(conn)
        books.configure({"defaults": {"require_approval": False, "grouping": "entry", "currency": "USD"}})
        yield books
        conn.rollback()


def _issue(books: Books, start: date = OCT, client: str = "harvest:c1", status: str = "open") -> str:
    """Freeze the client's draft for ``start`` and record it issued in Stripe, as publishing would."""
    invoice_id = books.invoice_for(client, start)
    assert invoice_id
    books.freeze(invoice_id)
    books.conn.execute(
        "UPDATE closeout_data.invoices SET status = 'open', stripe_invoice_id = %s WHERE invoice_id = %s",
        (f"in_test_{invoice_id[-12:]}", invoice_id),
    )
    if status != "open":
        books.conn.execute("UPDATE closeout_data.invoices SET status = %s WHERE invoice_id = %s", (status, invoice_id))
    return invoice_id


def _corrections(books: Books) -> list[tuple]:
    return books.rows(
        """SELECT kind, invoice_id, amount_minor, state, seq FROM closeout.corrections ORDER BY correction_id"""
    )


def _lines(books: Books) -> list[tuple]:
    return books.rows(
        """SELECT source_id, amount_minor, version FROM closeout.credit_note_lines ORDER BY correction_id, source_id"""
    )


def test_an_edit_down_and_a_deletion_leave_the_draft_for_one_credit_note_against_the_issued_invoice(
    books: Books,
) -> None:
    books.put(Entry("1", hours=D("10")), Entry("2", hours=D("3")), Entry("3", hours=D("1")))
    books.draft()
    october = _issue(books)
    # after issue: entry 1 edited down 10 -> 6 h, entry 2 deleted, entry 3 edited up 1 -> 2 h, new November time
    books.put(Entry("1", hours=D("6")), Entry("3", hours=D("2")), Entry("4", hours=D("5"), spent_date=NOV_10))
    books.delete("2")
    books.draft()
    november = books.invoice_for("harvest:c1", NOV)
    assert november and books.invoices()[november][5] == -40000 - 30000 + 10000 + 50000
    books.check_invariants()

    summary = record_corrections(books.conn, as_of=NOV_10)
    assert (summary.credit_notes, summary.customer_balance_credits, summary.entries) == (1, 0, 2)
    assert summary.amount_minor_by_currency == {"USD": 70000}
    assert _corrections(books) == [("credit_note", october, 70000, "pending", 1)]
    assert _lines(books) == [("1", -40000, 2), ("2", -30000, 2)]
    # the draft keeps the increase and the new time, nothing else; a new version, recorded
    kinds = books.rows("SELECT kind, amount_minor FROM closeout.invoice_lines WHERE invoice_id = %s ORDER BY line_no",
                       (november,))  # fmt: skip
    assert kinds == [("time", 50000), ("adjustment", 10000)]
    invoice = books.invoices()[november]
    assert invoice[5] == 60000 and invoice[7] == 2
    books.check_invariants()
    assert books.billed("1") == 60000 and books.billed("2") == 0 and books.billed("3") == 20000

    # nothing new: nothing recorded, no new draft version
    version = invoice[6]
    again = record_corrections(books.conn, as_of=NOV_10)
    assert (again.credit_notes, again.entries) == (0, 0)
    assert books.invoices()[november][6] == version

    # the entry changes again: the drafting counts the credit note as billed, so only the new difference moves
    books.put(Entry("1", hours=D("5")))
    books.draft()
    books.check_invariants()
    on_draft = "SELECT amount_minor FROM closeout.invoice_line_entries WHERE invoice_id = %s AND source_id = '1'"
    assert books.rows(on_draft, (november,)) == [(-10000,)]
    record_corrections(books.conn, as_of=NOV_10)
    assert _corrections(books)[-1] == ("credit_note", october, 10000, "pending", 2)
    books.check_invariants()
    assert books.billed("1") == 50000

    # and back up above what the credit notes left: an increase, on the draft
    books.put(Entry("1", hours=D("8")))
    books.draft()
    record_corrections(books.conn, as_of=NOV_10)
    assert len(_corrections(books)) == 2
    assert books.billed("1") == 80000
    books.check_invariants()


def test_a_paid_or_uncollectible_invoice_is_credited_too_but_not_one_still_publishing(books: Books) -> None:
    books.put(Entry("1", client="c1", hours=D("4")), Entry("2", client="c2", hours=D("4")),
              Entry("3", client="c3", hours=D("4")))  # fmt: skip
    books.draft()
    paid = _issue(books, client="harvest:c1", status="paid")
    written_off = _issue(books, client="harvest:c2", status="uncollectible")
    publishing = books.invoice_for("harvest:c3", OCT)
    assert publishing
    books.freeze(publishing)
    books.put(Entry("1", client="c1", hours=D("1")), Entry("2", client="c2", hours=D("1")),
              Entry("3", client="c3", hours=D("1")))  # fmt: skip
    books.draft()
    record_corrections(books.conn, as_of=NOV_10)
    assert sorted((k, i, a) for k, i, a, *_ in _corrections(books)) == sorted(
        [("credit_note", paid, 30000), ("credit_note", written_off, 30000)]
    )
    # the invoice still on its way to Stripe cannot be credited yet: its decrease waits on the draft
    assert books.rows("SELECT kind, amount_minor FROM closeout.invoice_lines WHERE invoice_id = %s",
                      (books.invoice_for("harvest:c3", NOV),)) == [("credit", -30000)] or books.rows(
        "SELECT kind, amount_minor FROM closeout.invoice_lines WHERE invoice_id = %s",
        (books.invoice_for("harvest:c3", NOV),)) == [("adjustment", -30000)]  # fmt: skip
    books.check_invariants()


def test_a_decrease_no_single_invoice_covers_is_split_across_the_invoices_that_billed_it(books: Books) -> None:
    books.put(Entry("1", hours=D("10")), Entry("2", hours=D("3")))
    books.draft()
    october = _issue(books)
    books.put(Entry("1", hours=D("12.5")))  # +2.5 h, billed on November's draft, which is then issued
    books.draft()
    november = _issue(books, start=NOV)
    books.delete("1")  # -12.5 h: October billed 10, November 2.5; neither covers it alone
    books.draft()
    december = books.invoice_for("harvest:c1", date(2026, 12, 1))
    assert december and books.invoices()[december][5] == -125000

    summary = record_corrections(books.conn, as_of=date(2026, 12, 20))
    assert (summary.credit_notes, summary.customer_balance_credits, summary.entries) == (2, 0, 1)
    # newest first: November takes back its 2.5 h, October the rest
    assert [(k, i, a) for k, i, a, *_ in _corrections(books)] == sorted(
        [("credit_note", october, 100000), ("credit_note", november, 25000)], key=lambda c: f"cn/{c[1]}/1")
    parts = books.rows("""SELECT invoice_id, quantity, amount_minor FROM closeout.credit_note_lines
                          ORDER BY amount_minor""")  # fmt: skip
    assert parts == [(october, D("-10"), -100000), (november, D("-2.5"), -25000)]
    assert books.invoices()[december][5] == 0 and books.invoices()[december][7] == 0
    assert books.billed("1") == 0
    books.check_invariants()


def test_a_negative_draft_whose_period_is_over_becomes_a_customer_balance_credit(books: Books) -> None:
    books.put(Entry("1", hours=D("10")))
    books.draft()
    _issue(books)
    books.put(Entry("1", hours=D("12")))
    books.draft()
    _issue(books, start=NOV)
    # 12 h at 100 -> 1 h at 50: two rows (one per rate) netting -1,150.00, more than either invoice billed;
    # a decrease over two rates is not split, so it waits on December's draft
    books.put(Entry("1", hours=D("1"), rate=D("50")))
    books.draft()
    december = books.invoice_for("harvest:c1", date(2026, 12, 1))
    assert december and books.invoices()[december][5] == -115000

    during = record_corrections(books.conn, as_of=date(2026, 12, 20))
    assert (during.credit_notes, during.customer_balance_credits) == (0, 0), "December is not over: it waits"
    books.check_invariants()

    after = record_corrections(books.conn, as_of=date(2027, 1, 2))
    assert (after.credit_notes, after.customer_balance_credits) == (0, 1)
    assert _corrections(books) == [("customer_balance", None, 115000, "pending", 1)]
    assert sorted(a for _, a, _ in _lines(books)) == [-120000, 5000]
    assert books.invoices()[december][5] == 0 and books.invoices()[december][7] == 0
    assert books.billed("1") == 5000
    books.check_invariants()


def test_a_void_credit_note_bills_its_entries_again(books: Books) -> None:
    books.put(Entry("1", hours=D("10")))
    books.draft()
    _issue(books)
    books.put(Entry("1", hours=D("4")))
    books.draft()
    record_corrections(books.conn, as_of=NOV_10)
    books.conn.execute("UPDATE closeout_data.corrections SET state = 'issued', stripe_object_id = 'cn_test_1'")
    books.conn.execute(
        """INSERT INTO closeout_data.credit_notes (credit_note_id, stripe_invoice_id, currency, amount_minor, status,
               created_at, observed_at) VALUES ('cn_test_1', 'in_x', 'USD', 60000, 'void', now(), now())"""
    )
    summary = record_corrections(books.conn, as_of=NOV_10)
    assert summary.voided == 1
    books.draft()
    # the void credit note no longer counts: the decrease is drafted again, and credited again
    record_corrections(books.conn, as_of=NOV_10)
    assert [(k, a, s, n) for k, _, a, s, n in _corrections(books)] == [
        ("credit_note", 60000, "void", 1), ("credit_note", 60000, "pending", 2)]  # fmt: skip
    assert books.billed("1") == 40000
    books.check_invariants()
