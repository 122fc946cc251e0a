"""Xero import files: sales invoices and manual journals (layouts in the accounting reference).

Decisions, all deterministic:

* **Headers** exactly as Xero's templates, ``*`` included.
* **Dates** ``DD/MM/YYYY`` (``date_format`` for organisations in other regions).
* **At most 500 invoices per file**: ``xero_invoices_001.csv``, ... an invoice never split.
* **Credits keep their sign**: Xero imports an invoice whose total is negative as a credit note, so
  negative lines stay on their invoice, as negative numbers.
* **Quantity and UnitAmount** are ours when quantity x rate is the line amount exactly; otherwise (the
  line was rounded once, to the minor unit) the line goes as quantity 1 at the line amount, so the total
  Xero computes is ours to the minor unit. ``Total`` and ``TaxAmount`` are left to Xero.
* **Expense lines** (docs/expense-books.md): with the pass-through mode (``expense_cost_account_code`` set) a line
  billing expenses is written as two lines, its cost to the reimbursable expenses account and its markup to the
  markup revenue account (quantity 1 each), as the ledger's invoice journal books them; the total is unchanged.
* **Manual journals** have no currency column, so there is one file set per currency,
  ``xero_journals_<CUR>_NNN.csv`` (only the organisation's base currency imports as is); at most 300
  lines per file, a journal never split (a journal over 300 lines gets a file alone and a manifest note).
  ``*Narration`` is ``closeout journal <id>`` (rows with the same narration and date form one journal),
  ``*Amount`` is signed: debit positive, credit negative.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from closeout.accounting.csv_safe import Cell, FileEntry, PartedCsv, Sink, decimal_number, major_units
from closeout.accounting.records import Row, as_date, exponent_of, journal_parts, records

INVOICE_HEADER = ("*ContactName", "EmailAddress", "POAddressLine1", "POAddressLine2", "POAddressLine3",
                  "POAddressLine4", "POCity", "PORegion", "POPostalCode", "POCountry", "*InvoiceNumber", "Reference",
                  "*InvoiceDate", "*DueDate", "Total", "InventoryItemCode", "*Description", "*Quantity",
                  "*UnitAmount", "Discount", "*AccountCode", "*TaxType", "TaxAmount", "TrackingName1",
                  "TrackingOption1", "TrackingName2", "TrackingOption2", "Currency", "BrandingTheme")  # fmt: skip
JOURNAL_HEADER = ("*Narration", "*Date", "Description", "*AccountCode", "*TaxRate", "*Amount", "TrackingName1",
                  "TrackingOption1", "TrackingName2", "TrackingOption2")  # fmt: skip


@dataclass(frozen=True)
class XeroOptions:
    date_format: str = "%d/%m/%Y"
    sales_account_code: str = "200"
    tax_type: str = "Tax Exempt"
    journal_tax_rate: str = "Tax Exempt"
    max_invoices_per_file: int = 500
    max_journal_lines_per_file: int = 300
    accounts: Mapping[str, str] = field(default_factory=dict)  # ledger account -> Xero account code
    expense_cost_account_code: str | None = None  # pass-through: expense lines' cost (reimbursable_expenses)
    expense_markup_account_code: str | None = None  # pass-through: their markup (expense_markup_revenue)


def _quantity_and_price(line: Row, exp: int) -> tuple[Cell, Cell]:
    amount = int(line["amount_minor"])
    quantity, rate = Decimal(line["quantity"]), Decimal(line["unit_rate"])
    if quantity * rate == Decimal(amount).scaleb(-exp):
        return decimal_number(quantity), decimal_number(rate)
    return decimal_number(1), major_units(amount, exp)


def _line_parts(line: Row, exp: int, options: XeroOptions) -> list[tuple[Cell, Cell, Cell, str]]:
    """(description, quantity, unit amount, account code) rows of one invoice line: one, or an expense line's cost
    and markup in pass-through mode (a zero markup is left out)."""
    description = line["description"] or line["kind"]
    cost = line.get("expense_cost_minor")
    if not options.expense_cost_account_code or cost is None:
        quantity, price = _quantity_and_price(line, exp)
        return [(description, quantity, price, options.sales_account_code)]
    markup = int(line["amount_minor"]) - int(cost)
    parts = [(f"{description} (cost)", decimal_number(1), major_units(int(cost), exp),
              options.expense_cost_account_code)]  # fmt: skip
    if markup:
        parts.append((f"{description} (markup)", decimal_number(1), major_units(markup, exp),
                      options.expense_markup_account_code or options.sales_account_code))  # fmt: skip
    return parts


def write_invoices(rows: Iterable[Row], sink: Sink, currencies: Mapping[str, int],
                   options: XeroOptions = XeroOptions()) -> list[FileEntry]:  # fmt: skip
    fmt = options.date_format
    out = PartedCsv(sink, "xero_invoices", INVOICE_HEADER, system="xero", kind="invoices",
                    max_records=options.max_invoices_per_file)  # fmt: skip
    for number, lines in records(rows, "invoice_no"):
        head = lines[0]
        exp = exponent_of(currencies, head["currency"])
        dates = (as_date(head["invoice_date"]).strftime(fmt), as_date(head["due_date"]).strftime(fmt))
        cells: list[list[Cell]] = []
        for line in lines:
            for description, quantity, price, account in _line_parts(line, exp, options):
                cells.append([head["customer"], head.get("email"), *[None] * 8, number, head["invoice_id"], *dates,
                              None, None, description, quantity, price, None, account, options.tax_type, None, None,
                              None, None, None, head["currency"], None])  # fmt: skip
        out.add_record(cells, f"invoice {number}")
    return out.close()


def write_journals(rows: Iterable[Row], sink: Sink, currencies: Mapping[str, int],
                   options: XeroOptions = XeroOptions()) -> list[FileEntry]:  # fmt: skip
    by_currency: dict[str, PartedCsv] = {}
    for part in journal_parts(rows):
        exp = exponent_of(currencies, part.currency)
        out = by_currency.get(part.currency)
        if out is None:
            out = by_currency[part.currency] = PartedCsv(
                sink, f"xero_journals_{part.currency}", JOURNAL_HEADER, system="xero", kind="journals",
                max_rows=options.max_journal_lines_per_file)  # fmt: skip
        narration = f"closeout journal {part.number}"
        date_text = part.posted.strftime(options.date_format)
        cells: list[list[Cell]] = [
            [narration, date_text, row.get("source_ref"), options.accounts.get(row["account"], row["account"]),
             options.journal_tax_rate, major_units(amount, exp), None, None, None, None]
            for row, amount in part.lines
        ]  # fmt: skip
        out.add_record(cells, f"journal {part.number}")
    return [entry for currency in sorted(by_currency) for entry in by_currency[currency].close()]
