"""Drafting applies each client's tax: exclusive (on top), inclusive (inside the amount) and exempt, each
line's tax rounded once, half-up, in the currency's minor unit (USD cents, JPY yen, KWD fils), the invoice's
tax their sum; a config change rebuilds open drafts' tax; a frozen invoice keeps its tax; untaxed clients'
invoices are exactly as before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal as D

import psycopg
import pytest
from billing_support import Books, Entry, check_invariants
from closeout.warehouse.db import connect
from tax_support import EXEMPT, VAT20, check_tax_invariant, client, line_tax

OCT = date(2026, 10, 1)


@pytest.fixture
def books(warehouse) -> Iterator[Books]:
    with connect() as conn:
        yield Books(conn)
        conn.rollback()


def _invoice(books: Books, key: str, currency: str) -> tuple:
    invoice_id = books.invoice_for(key, OCT, currency)
    assert invoice_id
    return books.rows(
        """SELECT invoice_id, total_minor, tax_minor, tax_inclusive, tax_rate_percent, tax_exempt
           FROM closeout.invoices WHERE invoice_id = %s""",
        (invoice_id,),
    )[0]


def test_exclusive_vat_on_top_of_each_line(books: Books) -> None:
    books.configure({"defaults": {"require_approval": False}, "clients": [client("harvest:c1", "USD", VAT20)]})
    # 1.01 h x 100.125 = 101.12625 -> 10113 cents; tax 2022.6 -> 2023. 0.5 h x 0.25 = 13 cents (12.5), tax 2.6 -> 3
    books.put(Entry("1", hours=D("1.01"), rate=D("100.125")), Entry("2", hours=D("0.5"), rate=D("0.25")))
    books.draft()
    invoice_id, total, tax, inclusive, rate, exempt = _invoice(books, "harvest:c1", "USD")
    assert (inclusive, rate, exempt) == (False, D("20"), False)
    assert [r[5] for r in books.lines(invoice_id)] == [10113, 13]
    assert tax == 2023 + 3
    assert total == 10113 + 13 + 2026
    codes = books.rows("SELECT DISTINCT quickbooks_tax_code, xero_tax_type FROM closeout.invoice_line_taxes")
    assert codes == [("TAX20", "OUTPUT2")]
    check_tax_invariant(books.conn)


def test_inclusive_tax_is_inside_the_amount(books: Books) -> None:
    tax = {**VAT20, "inclusive": True}
    books.configure({"defaults": {"require_approval": False}, "clients": [client("harvest:c1", "USD", tax)]})
    books.put(Entry("1", hours=D("1"), rate=D("100")), Entry("2", hours=D("1"), rate=D("0.07")))
    books.draft()
    invoice_id, total, tax_minor, inclusive, _, _ = _invoice(books, "harvest:c1", "USD")
    # 10000 x 20/120 = 1666.67 -> 1667; 7 x 20/120 = 1.17 -> 1
    assert inclusive is True and tax_minor == 1667 + 1 and total == 10007
    taxable = books.rows("SELECT taxable_minor FROM closeout.invoice_line_taxes WHERE invoice_id = %s "
                         "ORDER BY line_no", (invoice_id,))  # fmt: skip
    assert [t for (t,) in taxable] == [10000 - 1667, 7 - 1]
    check_tax_invariant(books.conn)


@pytest.mark.parametrize(
    ("currency", "rate", "hours", "percent", "inclusive"),
    [
        ("JPY", D("1234"), D("1.25"), "10", False),    # 1542.5 -> 1543 yen; tax 154.3 -> 154
        ("JPY", D("1005"), D("1"), "10", True),        # 1005 x 10/110 = 91.36 -> 91
        ("JPY", D("25"), D("1"), "10", False),         # tax 2.5 -> 3: half-up in yen
        ("KWD", D("12.345"), D("1.5"), "5", False),    # 18.5175 -> 18.518 KWD; tax 925.9 -> 926 fils
        ("KWD", D("0.010"), D("1"), "5", False),       # 10 fils; tax 0.5 -> 1 fil
        ("KWD", D("1.100"), D("1"), "15", True),       # 1100 x 15/115 = 143.48 -> 143 fils
    ],
)
def test_rounding_in_the_minor_unit(books: Books, currency: str, rate: D, hours: D, percent: str,
                                    inclusive: bool) -> None:  # fmt: skip
    tax = {"rate_percent": percent, "inclusive": inclusive, "name": "VAT"}
    books.configure({"defaults": {"require_approval": False}, "clients": [client("harvest:c1", currency, tax)]})
    books.put(Entry("1", hours=hours, rate=rate, currency=currency))
    books.draft()
    invoice_id, total, tax_minor, _, _, _ = _invoice(books, "harvest:c1", currency)
    [(amount,)] = books.rows("SELECT amount_minor FROM closeout.invoice_lines WHERE invoice_id = %s", (invoice_id,))
    assert tax_minor == line_tax(amount, D(percent), inclusive)
    assert total == amount + (0 if inclusive else tax_minor)
    check_tax_invariant(books.conn)


def test_exempt_client_has_zero_tax_rows_with_codes(books: Books) -> None:
    books.configure({"defaults": {"require_approval": False}, "clients": [client("harvest:c1", "USD", EXEMPT)]})
    books.put(Entry("1", hours=D("2"), rate=D("50")))
    books.draft()
    invoice_id, total, tax, inclusive, rate, exempt = _invoice(books, "harvest:c1", "USD")
    assert (total, tax, inclusive, rate, exempt) == (10000, 0, None, None, True)
    rows = books.rows("SELECT taxable_minor, tax_minor, exempt, quickbooks_tax_code, xero_tax_type "
                      "FROM closeout.invoice_line_taxes WHERE invoice_id = %s", (invoice_id,))  # fmt: skip
    assert rows == [(10000, 0, True, "NON", "EXEMPTOUTPUT")]
    check_tax_invariant(books.conn)


def test_untaxed_clients_unchanged_and_config_change_rebuilds_tax(books: Books) -> None:
    books.configure({"defaults": {"require_approval": False},
                     "clients": [client("harvest:c1", "USD", None), client("harvest:c2", "USD", None)]})  # fmt: skip
    books.put(Entry("1", hours=D("1.5")), Entry("2", client="c2", hours=D("3")))
    books.draft()
    untaxed = {k: _invoice(books, k, "USD") for k in ("harvest:c1", "harvest:c2")}
    assert [v[1:] for v in untaxed.values()] == [(15000, 0, None, None, False), (30000, 0, None, None, False)]
    assert books.rows("SELECT count(*) FROM closeout.invoice_line_taxes") == [(0,)]
    check_invariants(books.conn)  # the billing invariants, untouched for untaxed invoices
    # c2 becomes taxed: its open draft takes the tax on the next run, c1 is not touched
    books.configure({"defaults": {"require_approval": False},
                     "clients": [client("harvest:c1", "USD", None), client("harvest:c2", "USD", VAT20)]})  # fmt: skip
    c2 = untaxed["harvest:c2"][0]
    (version,) = books.rows("SELECT version FROM closeout.invoices WHERE invoice_id = %s", (c2,))[0]
    books.draft()
    assert _invoice(books, "harvest:c2", "USD")[1:3] == (36000, 6000)
    assert _invoice(books, "harvest:c1", "USD") == untaxed["harvest:c1"]
    # a new version (its lines carried over), so an approval of the untaxed version does not cover it
    assert books.rows("SELECT version, total_minor, tax_minor FROM closeout.invoice_versions WHERE invoice_id = %s "
                      "AND version >= %s ORDER BY version", (c2, version)) == [(version, 30000, 0),
                                                                            (version + 1, 36000, 6000)]  # fmt: skip
    assert books.rows("SELECT count(*) FROM closeout.invoice_line_versions WHERE invoice_id = %s AND version = %s",
                      (c2, version + 1)) == [(1,)]  # fmt: skip
    check_tax_invariant(books.conn)
    books.draft()  # nothing changed: nothing written
    assert books.rows("SELECT max(version) FROM closeout.invoice_versions WHERE invoice_id = %s", (c2,)) == [
        (version + 1,)]
    # and back to untaxed
    books.configure({"defaults": {"require_approval": False},
                     "clients": [client("harvest:c1", "USD", None), client("harvest:c2", "USD", None)]})  # fmt: skip
    books.draft()
    assert _invoice(books, "harvest:c2", "USD")[1:] == (30000, 0, None, None, False)
    check_tax_invariant(books.conn)


def test_defaults_tax_and_a_frozen_invoice_keeps_its_tax(books: Books) -> None:
    books.configure({"defaults": {"require_approval": False, "tax": VAT20},
                     "clients": [client("harvest:c1", "USD", None)]})  # fmt: skip
    books.put(Entry("1", hours=D("1")), Entry("2", client="c9", hours=D("1")))
    books.draft()
    # c1 inherits the defaults' tax; c9 (no client row) is billed with the defaults (no currency: USD entry)
    assert _invoice(books, "harvest:c1", "USD")[1:3] == (12000, 2000)
    assert _invoice(books, "harvest:c9", "USD")[1:3] == (12000, 2000)
    invoice_id = _invoice(books, "harvest:c1", "USD")[0]
    books.freeze(invoice_id)
    books.configure({"defaults": {"require_approval": False, "tax": {**VAT20, "rate_percent": "5"}},
                     "clients": [client("harvest:c1", "USD", None)]})  # fmt: skip
    books.draft()
    assert _invoice(books, "harvest:c1", "USD")[1:3] == (12000, 2000)   # frozen: unchanged
    assert _invoice(books, "harvest:c9", "USD")[1:3] == (10500, 500)    # draft: rebuilt
    with pytest.raises(psycopg.errors.CheckViolation, match="its tax is final"):
        books.conn.execute("UPDATE closeout_data.invoices SET tax_minor = 1 WHERE invoice_id = %s", (invoice_id,))


def test_credit_lines_carry_negative_tax(books: Books) -> None:
    books.configure({"defaults": {"require_approval": False}, "clients": [client("harvest:c1", "USD", VAT20)]})
    books.put(Entry("1", hours=D("2")))
    books.draft()
    first = _invoice(books, "harvest:c1", "USD")[0]
    books.freeze(first)
    books.put(Entry("1", hours=D("1.5")))   # lowered after freezing: a credit on the next draft
    books.put(Entry("2", hours=D("1"), spent_date=date(2026, 11, 3)))
    books.draft()
    nov = books.invoice_for("harvest:c1", date(2026, 11, 1), "USD")
    amounts = [r[5] for r in books.lines(nov)]
    assert sorted(amounts) == [-5000, 10000]
    assert books.rows("SELECT tax_minor, total_minor FROM closeout.invoices WHERE invoice_id = %s", (nov,)) == [
        (1000, 6000)]
    check_tax_invariant(books.conn)


def test_an_approval_does_not_cover_a_tax_change(books: Books) -> None:
    from closeout.billing import lifecycle

    held = client("harvest:c1", "USD", None, publish_policy="hold")
    books.configure({"defaults": {"require_approval": False}, "clients": [held]})
    books.put(Entry("1", hours=D("1")))
    books.draft()
    invoice_id = _invoice(books, "harvest:c1", "USD")[0]
    (version,) = books.rows("SELECT version FROM closeout.invoices WHERE invoice_id = %s", (invoice_id,))[0]
    lifecycle.approve(books.conn, invoice_id, version=version, approved_by="finance@example.com")
    assert lifecycle.publishable(books.conn, date(2026, 12, 1)) == [invoice_id]
    books.configure({"defaults": {"require_approval": False}, "clients": [{**held, "tax": VAT20}]})
    books.draft()
    assert _invoice(books, "harvest:c1", "USD")[1:3] == (12000, 2000)
    assert lifecycle.publishable(books.conn, date(2026, 12, 1)) == [], "approved untaxed, now taxed: approve again"
