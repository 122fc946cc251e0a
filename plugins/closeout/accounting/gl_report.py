"""The QuickBooks Online General Ledger report, exported as CSV, read into rows.

The report is not a flat table: title rows and a date-range row, then a header row (older
``,Date,Transaction Type,Num,Name,Memo/Description,Split,Amount,Balance`` or newer
``,Distribution account,Transaction date,Transaction type,Num,Name,Memo/Description,Split account,Amount,Balance``,
both with an empty first column), then per account a section row (the name alone in the first column),
a ``Beginning Balance`` row, transactions and a ``Total for <account>`` row; sub-account sections nest
inside their parent's, and a final ``TOTAL`` row ends the table (a footer such as the accounting basis
may follow). Columns are found by header name, so either form and any column order reads the same.

Each row comes out as a ``GlRow`` or a ``Bad`` (line number and reason); one bad row never stops the rest.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from closeout.accounting.amounts import ParseError, parse_date, parse_minor

_COLUMNS = {
    "date": "date", "transaction date": "date", "transaction type": "txn_type", "num": "num", "name": "name",
    "memo/description": "memo", "split": "split", "split account": "split", "amount": "amount",
    "balance": "balance", "distribution account": "distribution",
}  # fmt: skip


@dataclass(frozen=True)
class GlRow:
    line_no: int
    row_kind: str  # transaction | beginning_balance | account_total | total
    account: str | None
    txn_date: date | None = None
    txn_type: str | None = None
    num: str | None = None
    name: str | None = None
    memo: str | None = None
    split_account: str | None = None
    amount_minor: int | None = None
    balance_minor: int | None = None


@dataclass(frozen=True)
class Bad:
    line_no: int
    reason: str
    raw: str


class RawLines:
    """Feeds csv.reader and remembers the physical lines of the row it is reading (quoted fields may span
    lines), so a quarantined row keeps its original text and first line number."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.consumed = 0
        self.current: list[str] = []

    def __iter__(self) -> RawLines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.consumed += 1
        self.current.append(line)
        return line


def numbered_rows(lines: Iterable[str]) -> Iterator[tuple[int, list[str] | None, str]]:
    """(first line number, cells, raw text) per CSV row; cells is None for a row csv cannot read (the
    raw text then starts with the reader's complaint)."""
    raw = RawLines(lines)
    reader = csv.reader(raw)
    while True:
        raw.current = []
        start = raw.consumed + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, f"unreadable CSV ({exc}): " + "".join(raw.current).rstrip("\r\n")
            continue
        yield start, cells, "".join(raw.current).rstrip("\r\n")


class GeneralLedgerParser:
    def __init__(self, exponent: int, date_format: str = "%m/%d/%Y") -> None:
        self.exponent, self.date_format = exponent, date_format
        self.report_range: str | None = None
        self.title: str | None = None

    def parse(self, lines: Iterable[str]) -> Iterator[GlRow | Bad]:
        columns: dict[str, int] | None = None
        stack: list[str] = []
        finished = False
        for line_no, cells, raw in numbered_rows(lines):
            if cells is None:
                yield Bad(line_no, raw.split(": ", 1)[0], raw)
                continue
            texts = [c.strip() for c in cells]
            filled = [t for t in texts if t]
            if not filled:
                continue
            if "\ufffd" in raw:
                yield Bad(line_no, "not valid UTF-8", raw)
                continue
            if columns is None:
                columns = self._header(texts)
                if columns is None:
                    self._preamble(filled)
                continue
            if finished:
                if len(filled) > 1:
                    yield Bad(line_no, "row after the report's final TOTAL", raw)
                continue
            try:
                row = self._row(line_no, texts, filled, columns, stack)
            except ParseError as exc:
                yield Bad(line_no, str(exc), raw)
                continue
            if row is not None:
                finished = row.row_kind == "total"
                yield row
        if columns is None:
            yield Bad(0, "no header row (with Amount and Date or Transaction date) found", "")

    def _preamble(self, filled: list[str]) -> None:
        text = " ".join(filled)
        if self.title is None:
            self.title = text
        elif self.report_range is None and re.search(r"\d{4}", text):
            self.report_range = text

    @staticmethod
    def _header(texts: list[str]) -> dict[str, int] | None:
        names = {t.lower(): i for i, t in enumerate(texts) if t}
        if "amount" not in names or not ({"date", "transaction date"} & names.keys()):
            return None
        return {_COLUMNS[n]: i for n, i in names.items() if n in _COLUMNS}

    def _row(self, line_no: int, texts: list[str], filled: list[str], columns: dict[str, int],
             stack: list[str]) -> GlRow | None:  # fmt: skip
        def cell(name: str) -> str:
            i = columns.get(name)
            return texts[i] if i is not None and i < len(texts) else ""

        first = texts[0] if texts else ""
        account = ":".join(stack) or None
        if first.lower().startswith("total for "):
            name = first[len("total for ") :].removesuffix(" with sub-accounts")
            total = GlRow(line_no, "account_total", ":".join(stack) if name in stack else name,
                          amount_minor=parse_minor(cell("amount"), self.exponent),
                          balance_minor=parse_minor(cell("balance"), self.exponent))  # fmt: skip
            if name in stack:
                del stack[stack.index(name) :]
            return total
        if first.upper() == "TOTAL":
            return GlRow(line_no, "total", None, amount_minor=parse_minor(cell("amount"), self.exponent),
                         balance_minor=parse_minor(cell("balance"), self.exponent))  # fmt: skip
        if first and filled == [first]:
            stack.append(first)
            return None
        if any(t.lower() == "beginning balance" for t in texts):
            balance = parse_minor(cell("balance"), self.exponent)
            if balance is None:
                balance = parse_minor(cell("amount"), self.exponent)
            return GlRow(line_no, "beginning_balance", account or cell("distribution") or None, balance_minor=balance)
        txn_date = parse_date(cell("date"), self.date_format)
        if txn_date is None:
            raise ParseError("transaction row without a date")
        amount = parse_minor(cell("amount"), self.exponent)
        if amount is None:
            raise ParseError("transaction row without an amount")
        return GlRow(
            line_no,
            "transaction",
            account or cell("distribution") or None,
            txn_date,
            cell("txn_type") or None,
            cell("num") or None,
            cell("name") or None,
            cell("memo") or None,
            cell("split") or None,
            amount,
            parse_minor(cell("balance"), self.exponent),
        )
