"""Xero's invoice export (CSV) read into one row per invoice line.

The export is the import layout plus ``SAAddress*``, ``PlannedDate``, ``TaxTotal``, ``InvoiceAmountPaid``,
``InvoiceAmountDue``, ``LineAmount``, ``Type`` and ``Status``; invoice-level amounts repeat on every line.
Columns are found by name (a leading ``*`` and case ignored). Each row's amounts are read in its own
``Currency`` (the file's default when the column is absent or empty), to exact minor units.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from closeout.accounting.amounts import ParseError, parse_date, parse_decimal, parse_minor
from closeout.accounting.gl_report import Bad, numbered_rows

_AMOUNTS = {"lineamount": "line_amount_minor", "total": "total_minor", "taxtotal": "tax_total_minor",
            "invoiceamountpaid": "amount_paid_minor", "invoiceamountdue": "amount_due_minor"}  # fmt: skip


@dataclass(frozen=True)
class XeroInvoiceLine:
    line_no: int
    invoice_number: str
    contact_name: str | None
    reference: str | None
    invoice_type: str | None
    status: str | None
    invoice_date: date | None
    due_date: date | None
    currency: str
    description: str | None
    quantity: Decimal | None
    unit_amount: Decimal | None
    line_amount_minor: int | None
    total_minor: int | None
    tax_total_minor: int | None
    amount_paid_minor: int | None
    amount_due_minor: int | None


class XeroInvoiceParser:
    def __init__(self, currencies: Mapping[str, int], default_currency: str | None = None,
                 date_format: str = "%d/%m/%Y") -> None:  # fmt: skip
        self.currencies, self.default_currency, self.date_format = currencies, default_currency, date_format

    def parse(self, lines: Iterable[str]) -> Iterator[XeroInvoiceLine | Bad]:
        columns: dict[str, int] | None = None
        for line_no, cells, raw in numbered_rows(lines):
            if cells is None:
                yield Bad(line_no, raw.split(": ", 1)[0], raw)
                continue
            if not any(c.strip() for c in cells):
                continue
            if columns is None:
                columns = {c.strip().lstrip("*").strip().lower(): i for i, c in enumerate(cells) if c.strip()}
                if "invoicenumber" not in columns:
                    yield Bad(line_no, "no header row with InvoiceNumber", raw)
                    return
                continue
            if "\ufffd" in raw:
                yield Bad(line_no, "not valid UTF-8", raw)
                continue
            try:
                yield self._line(line_no, cells, columns)
            except ParseError as exc:
                yield Bad(line_no, str(exc), raw)
        if columns is None:
            yield Bad(0, "empty file: no header row", "")

    def _line(self, line_no: int, cells: list[str], columns: dict[str, int]) -> XeroInvoiceLine:
        def cell(name: str) -> str:
            i = columns.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        number = cell("invoicenumber")
        if not number:
            raise ParseError("row without an InvoiceNumber")
        currency = cell("currency").upper() or self.default_currency
        if not currency:
            raise ParseError("no Currency on the row and no default currency for the file")
        if currency not in self.currencies:
            raise ParseError(f"currency {currency!r} is not in closeout_data.currencies")
        exp = self.currencies[currency]
        amounts = {field: parse_minor(cell(name), exp) for name, field in _AMOUNTS.items()}
        if amounts["line_amount_minor"] is None and amounts["total_minor"] is None:
            raise ParseError("row with neither LineAmount nor Total")
        return XeroInvoiceLine(
            line_no=line_no, invoice_number=number, contact_name=cell("contactname") or None,
            reference=cell("reference") or None, invoice_type=cell("type") or None, status=cell("status") or None,
            invoice_date=parse_date(cell("invoicedate"), self.date_format),
            due_date=parse_date(cell("duedate"), self.date_format), currency=currency,
            description=cell("description") or None, quantity=parse_decimal(cell("quantity")),
            unit_amount=parse_decimal(cell("unitamount")), **amounts,
        )  # fmt: skip
