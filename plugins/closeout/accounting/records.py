"""The row shapes the writers take, and the grouping both systems share.

Writers are plain functions over dicts, so they can be tested without a warehouse or a ledger:

* an invoice line row: ``invoice_id``, ``invoice_no`` (the Stripe number), ``customer``, ``email``,
  ``invoice_date``, ``due_date``, ``terms_days``, ``currency``, ``line_no``, ``kind``, ``description``,
  ``quantity``, ``unit_rate`` (Decimal), ``amount_minor`` (int), ``service_date`` (date or None);
* a journal line row: the ``closeout.ledger_lines`` contract (``journal_id``, ``line_no``, ``posted_at``,
  ``account``, ``currency``, ``debit_minor``, ``credit_minor``, ``source_ref``), plus an optional
  ``name`` (the customer or supplier of a receivable or payable line).

Rows arrive ordered by record (invoice date and number; journal date and id) and line number; a record
that shows up twice, apart, is an error rather than two records with one number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import groupby
from typing import Any

Row = Mapping[str, Any]


class ExportError(ValueError):
    """The data cannot be written as an importable file (an unbalanced journal, an unknown currency)."""


def as_date(value: date | datetime) -> date:
    """Timestamps are dated in UTC, so the same data dates the same on every worker."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return value


def exponent_of(currencies: Mapping[str, int], code: str) -> int:
    try:
        return currencies[code]
    except KeyError:
        raise ExportError(f"currency {code!r} is not in closeout_data.currencies") from None


def records(rows: Iterable[Row], key: str) -> Iterator[tuple[Any, list[Row]]]:
    """Consecutive rows sharing ``key``, each record once, lines in ``line_no`` order."""
    seen: set[Any] = set()
    for value, group in groupby(rows, key=lambda r: r[key]):
        if value in seen:
            raise ExportError(f"{key} {value!r} appears twice, apart: rows must come ordered by record")
        seen.add(value)
        yield value, sorted(group, key=lambda r: r["line_no"])


@dataclass(frozen=True)
class JournalPart:
    """The lines of one journal in one currency: what both systems import as one balanced entry."""

    journal_id: str
    currency: str
    number: str
    posted: date
    lines: list[tuple[Row, int]]  # (row, signed amount: debit positive, credit negative), zero lines dropped


def journal_parts(rows: Iterable[Row]) -> Iterator[JournalPart]:
    """Split each ledger journal by currency (a journal balances per journal and currency, and each system
    imports one currency per entry), net each line to one signed amount, and check the balance."""
    for journal_id, lines in records(rows, "journal_id"):
        currencies = sorted({r["currency"] for r in lines})
        posted = min(as_date(r["posted_at"]) for r in lines)
        for currency in currencies:
            signed = []
            for r in lines:
                if r["currency"] != currency:
                    continue
                amount = int(r["debit_minor"] or 0) - int(r["credit_minor"] or 0)
                if amount:
                    signed.append((r, amount))
            difference = sum(a for _, a in signed)
            if difference:
                raise ExportError(
                    f"journal {journal_id} ({currency}) does not balance: debits - credits = {difference}"
                )
            if signed:
                number = str(journal_id) if len(currencies) == 1 else f"{journal_id}-{currency}"
                yield JournalPart(str(journal_id), currency, number, posted, signed)
