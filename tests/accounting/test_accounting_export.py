"""The writers, byte for byte: golden files for each system and file kind, determinism, formula
injection neutralised in text cells only, amounts as plain numbers in the currency's minor unit, balanced
journals, and the per-file import limits. Set CLOSEOUT_UPDATE_GOLDEN=1 to rewrite the golden files (then
read the diff: they are the specification)."""

from __future__ import annotations

import copy
import csv
import io
import os
from collections import defaultdict
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
from accounting_samples import CURRENCIES, INVOICES, JOURNALS
from closeout.accounting import quickbooks, xero
from closeout.accounting.csv_safe import MemorySink, Number, encode_row, major_units, neutralise
from closeout.accounting.records import ExportError

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "accounting" / "golden"
WRITERS = {
    "quickbooks_invoices": (quickbooks.write_invoices, INVOICES),
    "quickbooks_journals": (quickbooks.write_journals, JOURNALS),
    "xero_invoices": (xero.write_invoices, INVOICES),
    "xero_journals": (xero.write_journals, JOURNALS),
}
FILES = {
    "quickbooks_invoices": {"quickbooks_invoices_001.csv", "quickbooks_credit_journals_001.csv"},
    "quickbooks_journals": {"quickbooks_journals_001.csv"},
    "xero_invoices": {"xero_invoices_001.csv"},
    "xero_journals": {"xero_journals_JPY_001.csv", "xero_journals_KWD_001.csv", "xero_journals_USD_001.csv"},
}


def _run(name: str) -> dict[str, bytes]:
    writer, rows = WRITERS[name]
    sink = MemorySink()
    writer(copy.deepcopy(rows), sink, CURRENCIES)
    return sink.files


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_writer_matches_its_golden_files(name: str) -> None:
    files = _run(name)
    if os.environ.get("CLOSEOUT_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for file_name, data in files.items():
            (GOLDEN / file_name).write_bytes(data)
    assert set(files) == FILES[name]
    for file_name, data in files.items():
        assert data == (GOLDEN / file_name).read_bytes(), file_name


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_same_rows_give_byte_identical_files(name: str) -> None:
    assert _run(name) == _run(name)


def test_files_are_utf8_crlf_without_bom_or_timestamps() -> None:
    for name in WRITERS:
        for data in _run(name).values():
            assert not data.startswith(b"\xef\xbb\xbf")
            assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"").replace(b"\r", b"")
            assert b"2025" not in data and str(date.today().year + 1).encode() not in data


@pytest.mark.parametrize(
    "text, cell",
    [
        ('=HYPERLINK("http://x","y")', '"\'=HYPERLINK(""http://x"",""y"")"'),
        ("+1", '"\'+1"'),
        ("-x", '"\'-x"'),
        ("@SUM(A1)", '"\'@SUM(A1)"'),
        ("\tTab", '"\'\tTab"'),
        ("\rCR", '"\'\rCR"'),
        ("\nLF", '"\'\nLF"'),
        ("Plain, with comma", '"Plain, with comma"'),
        ("a=b", '"a=b"'),
        ("", ""),
    ],
)
def test_text_cells_are_neutralised_only_when_they_would_start_a_formula(text: str, cell: str) -> None:
    assert encode_row([text]) == cell.encode() + b"\r\n"


def test_neutralised_cells_read_back_as_one_cell_each() -> None:
    row = ['=1+2,"x"', "-5", "a\r\nb", Number(D("-150.00"))]
    [parsed] = list(csv.reader(io.StringIO(encode_row(row).decode(), newline="")))
    assert parsed == ['\'=1+2,"x"', "'-5", "a\r\nb", "-150.00"]


@pytest.mark.parametrize(
    "minor, exponent, text",
    [(15000, 2, "150.00"), (-15000, 2, "-150.00"), (-5, 2, "-0.05"), (0, 2, "0.00"), (2833, 0, "2833"),
     (-2833, 0, "-2833"), (24690, 3, "24.690"), (-1, 3, "-0.001"), (123456789012345678, 2, "1234567890123456.78")],
)  # fmt: skip
def test_amounts_are_plain_decimal_numbers_in_major_units(minor: int, exponent: int, text: str) -> None:
    number = major_units(minor, exponent)
    assert number.text == text
    assert encode_row([number]) == text.encode() + b"\r\n", "a negative amount is a number, never text"


def test_amounts_refuse_floats_and_text() -> None:
    with pytest.raises(TypeError):
        major_units(1.5, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Number("12")  # type: ignore[arg-type]
    assert neutralise("-12") == "'-12", "text that looks like a number is still text"


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


def test_quickbooks_journal_entries_balance_per_journal_no_with_positive_separate_columns() -> None:
    sink = MemorySink()
    quickbooks.write_journals(JOURNALS, sink, CURRENCIES)
    quickbooks.write_invoices(INVOICES, sink, CURRENCIES)
    files = [n for n in sink.files if "journals" in n]
    assert files == ["quickbooks_journals_001.csv", "quickbooks_credit_journals_001.csv"]
    for name in files:
        totals: dict[str, list[D]] = defaultdict(lambda: [D(0), D(0)])
        for row in _rows(sink.files[name]):
            debit, credit = row["Debits"], row["Credits"]
            assert bool(debit) != bool(credit), row
            for i, value in enumerate((debit, credit)):
                if value:
                    assert D(value) > 0, row
                    totals[row["JournalNo"]][i] += D(value)
        assert totals and all(d == c for d, c in totals.values()), totals


def test_quickbooks_invoices_carry_no_negative_amounts_and_credits_keep_the_receivable() -> None:
    sink = MemorySink()
    quickbooks.write_invoices(INVOICES, sink, CURRENCIES)
    lines = _rows(sink.files["quickbooks_invoices_001.csv"])
    assert all(D(r["ItemAmount"]) >= 0 for r in lines)
    assert "INV-0004" not in {r["InvoiceNo"] for r in lines}, "a credit-only invoice is only a credit journal"
    credits = _rows(sink.files["quickbooks_credit_journals_001.csv"])
    receivable: dict[str, D] = defaultdict(D)
    for r in lines:
        receivable[r["InvoiceNo"]] += D(r["ItemAmount"])
    for r in credits:
        if r["AccountName"] == "Accounts Receivable (A/R)":
            receivable[r["JournalNo"].removeprefix("CR-")] -= D(r["Credits"])
    ours = defaultdict(int)
    for r in INVOICES:
        ours[r["invoice_no"]] += r["amount_minor"]
    exps = {r["invoice_no"]: CURRENCIES[r["currency"]] for r in INVOICES}
    assert {k: v.scaleb(exps[k]) for k, v in receivable.items()} == {k: D(v) for k, v in ours.items()}


def test_xero_invoice_totals_equal_ours_to_the_minor_unit() -> None:
    sink = MemorySink()
    xero.write_invoices(INVOICES, sink, CURRENCIES)
    totals: dict[str, D] = defaultdict(D)
    for r in _rows(sink.files["xero_invoices_001.csv"]):
        exp = CURRENCIES[r["Currency"]]
        line = (D(r["*Quantity"]) * D(r["*UnitAmount"])).quantize(D(1).scaleb(-exp))
        totals[r["*InvoiceNumber"]] += line.scaleb(exp)
    ours = defaultdict(int)
    for r in INVOICES:
        ours[r["invoice_no"]] += r["amount_minor"]
    assert totals == {k: D(v) for k, v in ours.items()}
    assert totals["INV-0004"] < 0, "a negative invoice is what Xero imports as a credit note"


def _many_invoices(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        rows += [{**INVOICES[0], "invoice_id": f"inv_{i:04d}", "invoice_no": f"N-{i:04d}", "line_no": k,
                  "amount_minor": 100 * k, "quantity": D(k), "unit_rate": D(1)} for k in (1, 2)]  # fmt: skip
    return rows


def test_quickbooks_splits_at_100_invoices_per_file_without_splitting_an_invoice() -> None:
    sink = MemorySink()
    entries = quickbooks.write_invoices(_many_invoices(250), sink, CURRENCIES)
    assert [(e.name, e.records, e.rows) for e in entries] == [
        ("quickbooks_invoices_001.csv", 100, 200),
        ("quickbooks_invoices_002.csv", 100, 200),
        ("quickbooks_invoices_003.csv", 50, 100),
    ]
    numbers = [[r["InvoiceNo"] for r in _rows(sink.files[e.name])] for e in entries]
    assert numbers[0][0] == "N-0000" and numbers[1][0] == "N-0100" and numbers[2][-1] == "N-0249"
    assert not set(numbers[0]) & set(numbers[1])
    again = MemorySink()
    quickbooks.write_invoices(_many_invoices(250), again, CURRENCIES)
    assert again.files == sink.files
    xero_sink = MemorySink()
    assert [e.records for e in xero.write_invoices(_many_invoices(1001), xero_sink, CURRENCIES)] == [500, 500, 1]


def test_xero_journals_split_at_300_lines_and_an_oversized_journal_goes_alone_with_a_note() -> None:
    rows = []
    for j, size in enumerate([2] * 160 + [302, 2]):
        for k in range(size):
            debit = 100 if k % 2 == 0 else 0
            rows.append({**JOURNALS[0], "journal_id": f"J{j:04d}", "line_no": k, "debit_minor": debit,
                         "credit_minor": 100 - debit})  # fmt: skip
    entries = xero.write_journals(rows, MemorySink(), CURRENCIES)
    assert [(e.rows, e.records) for e in entries] == [(300, 150), (20, 10), (302, 1), (2, 1)]
    assert entries[2].notes == ["journal J0160 has 302 rows, over the 300-row limit"]


def test_an_unbalanced_journal_is_refused() -> None:
    rows = copy.deepcopy(JOURNALS[:2])
    rows[1]["credit_minor"] -= 1
    for writer in (quickbooks.write_journals, xero.write_journals):
        with pytest.raises(ExportError, match=r"J-0001 \(USD\) does not balance"):
            writer(rows, MemorySink(), CURRENCIES)


def test_a_record_that_comes_back_later_is_refused_rather_than_written_twice() -> None:
    rows = [INVOICES[0], INVOICES[2], INVOICES[1]]
    with pytest.raises(ExportError, match="INV-0001"):
        quickbooks.write_invoices(rows, MemorySink(), CURRENCIES)


def test_a_whole_number_cell_is_written_exactly_however_large() -> None:
    """``format(int, "f")`` would go through a float: 2**62 + 1 must not come out as ...904.000000."""
    from closeout.accounting.csv_safe import Number

    assert Number(2**62 + 1).text == "4611686018427387905"
    assert Number(-(2**63)).text == "-9223372036854775808"
    assert Number(0).text == "0"
