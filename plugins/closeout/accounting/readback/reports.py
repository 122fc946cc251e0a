"""The accounting systems' reports as rows: QuickBooks GeneralLedger and TrialBalance (``Header``, ``Columns``,
nested ``Rows``/``ColData``), Xero Reports/TrialBalance (``Rows`` of ``Cells``).

The General Ledger becomes the rows the file ingest writes from the downloaded CSV (``closeout_data.
accounting_gl_rows``: transactions, beginning balances, account totals, signed debit positive), so the
``accounting_ledger`` check reads API data exactly as it reads a file. Sub-accounts nest as sections; their rows
carry the account path ``Parent:Sub`` as the QuickBooks export does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from closeout.accounting.amounts import parse_decimal
from closeout.accounting.readback.objects import to_minor

_CODE = re.compile(r"^(?P<name>.*?)\s*\((?P<code>[^()]+)\)\s*$")


@dataclass(frozen=True)
class LedgerRow:
    """One row of ``closeout_data.accounting_gl_rows`` (without its ingest id and line number)."""

    row_kind: str  # transaction | beginning_balance | account_total
    account: str
    txn_date: date | None
    txn_type: str | None
    num: str | None
    name: str | None
    memo: str | None
    split_account: str | None
    amount_minor: int | None
    balance_minor: int | None


@dataclass(frozen=True)
class TrialBalanceRow:
    account: str
    account_id: str | None
    debit_minor: int
    credit_minor: int


def _amount(text: Any) -> Decimal | None:
    """A report cell's amount in any notation the reports use (``-2,562.45``, ``(420.81)``, ``$(250.00)``); a cell
    that is not a number fails the read-back (``ParseError``) rather than be read as zero."""
    if isinstance(text, Decimal | int):
        return Decimal(text)
    return parse_decimal(str(text or ""))


def quickbooks_general_ledger(report: Mapping[str, Any], exponents: Mapping[str, int]) -> Iterator[LedgerRow]:
    """Rows of a QuickBooks GeneralLedger report, in report order."""
    currency = str(report.get("Header", {}).get("Currency") or "")
    columns = [c.get("ColType") for c in (report.get("Columns") or {}).get("Column") or []]
    at = {name: i for i, name in enumerate(columns)}

    def cell(data: list[dict[str, Any]], name: str) -> str | None:
        i = at.get(name)
        value = data[i].get("value") if i is not None and i < len(data) else None
        return str(value) if value not in (None, "") else None

    def minor(value: str | None) -> int | None:
        amount = _amount(value)
        return to_minor(amount, currency, exponents) if amount is not None else None

    def walk(rows: list[dict[str, Any]], path: list[str]) -> Iterator[LedgerRow]:
        for row in rows:
            if "Header" in row:  # an account section (maybe a sub-account inside its parent)
                name = str((row["Header"].get("ColData") or [{}])[0].get("value") or "")
                inner = [*path, name]
                yield from walk((row.get("Rows") or {}).get("Row") or [], inner)
                summary = (row.get("Summary") or {}).get("ColData") or []
                if summary:
                    yield LedgerRow("account_total", ":".join(inner), None, None, None, None, None, None,
                                    minor(cell(summary, "subt_nat_amount")), None)  # fmt: skip
                continue
            data = row.get("ColData") or []
            if not data or not path:
                continue
            first = str(data[0].get("value") or "")
            account = ":".join(path)
            if first.lower() == "beginning balance":
                yield LedgerRow("beginning_balance", account, None, None, None, None, None, None, None,
                                minor(cell(data, "rbal_nat_amount")))  # fmt: skip
                continue
            day = cell(data, "tx_date")
            yield LedgerRow("transaction", account, date.fromisoformat(day) if day else None, cell(data, "txn_type"),
                            cell(data, "doc_num"), cell(data, "name"), cell(data, "memo"), cell(data, "split_acc"),
                            minor(cell(data, "subt_nat_amount")), minor(cell(data, "rbal_nat_amount")))  # fmt: skip

    yield from walk((report.get("Rows") or {}).get("Row") or [], [])


def quickbooks_trial_balance(report: Mapping[str, Any], exponents: Mapping[str, int]) -> list[TrialBalanceRow]:
    currency = str(report.get("Header", {}).get("Currency") or "")
    out = []
    for row in (report.get("Rows") or {}).get("Row") or []:
        data = row.get("ColData")
        if not data or row.get("group") == "GrandTotal":
            continue
        debit, credit = _amount(data[1].get("value")), _amount(data[2].get("value"))
        out.append(TrialBalanceRow(str(data[0].get("value")), data[0].get("id"),
                                   to_minor(debit or 0, currency, exponents) or 0,
                                   to_minor(credit or 0, currency, exponents) or 0))  # fmt: skip
    return out


def xero_trial_balance(report: Mapping[str, Any], currency: str,
                       exponents: Mapping[str, int]) -> list[tuple[TrialBalanceRow, TrialBalanceRow]]:  # fmt: skip
    """Per account: (the month's movement, the balance to date) from Xero's Debit/Credit and YTD columns. The account
    is its code (``"Sales (200)"`` -> ``200``), which is how closeout's chart names Xero accounts."""
    header: list[str] = []
    out = []

    def rows(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            if item.get("RowType") == "Header":
                header[:] = [str(c.get("Value") or "") for c in item.get("Cells") or []]
            if item.get("RowType") == "Row":
                yield item
            yield from rows(item.get("Rows") or [])

    for row in rows(report.get("Rows") or []):
        cells = row.get("Cells") or []
        values = {header[i] if i < len(header) else str(i): c.get("Value") for i, c in enumerate(cells)}
        label = str(cells[0].get("Value") or "")
        found = _CODE.match(label)
        code = found.group("code") if found else label

        def money(column: str, values: dict[str, Any] = values) -> int:
            return to_minor(_amount(values.get(column)) or 0, currency, exponents) or 0

        account_id = next((a.get("Value") for a in cells[0].get("Attributes") or [] if a.get("Id") == "account"), None)
        out.append((TrialBalanceRow(code, account_id, money("Debit"), money("Credit")),
                    TrialBalanceRow(code, account_id, money("YTD Debit"), money("YTD Credit"))))  # fmt: skip
    return out
