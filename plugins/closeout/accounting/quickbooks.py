"""QuickBooks Online import files: invoices and journal entries (layouts in the accounting reference).

Decisions, all deterministic:

* **Headers** are the wizard's field names without the ``*`` the help pages use to mark mandatory ones.
* **Dates** ``MM/DD/YYYY`` (the US default; the wizard lets the user pick, ``date_format`` follows it).
* **At most 100 invoices per file** (third-party guides): ``quickbooks_invoices_001.csv``, ``_002``, ...
  in invoice date and number order; an invoice is never split across files.
* **No negative amounts in the invoice import**: credit and negative adjustment lines are left off the
  invoice and written as a journal entry in ``quickbooks_credit_journals_NNN.csv`` instead (JournalNo
  ``CR-<invoice number>``): the income account is debited with each negative line, receivables credited
  with their sum, ``Name`` the customer. Invoice plus credit journal leave receivables at our total.
  An invoice with only negative lines is only a credit journal.
* **Expense lines** (docs/expense-books.md): QuickBooks books an imported invoice line to its item's income
  account, so with the pass-through mode (``expense_cost_account`` set) each invoice billing expenses gets a
  journal entry ``EX-<invoice number>`` in the credit journal files that moves the expense lines' cost to the
  reimbursable expenses account and their markup to the markup revenue account, as the ledger's invoice journal
  books them; without it those lines stay services income.
* **Journal entries** from the ledger: one JournalNo per journal (``<journal_id>-<currency>`` when a journal
  spans currencies), dated its earliest ``posted_at`` (UTC); Debits and Credits are separate positive
  columns, one per row (a line with both is netted; zero lines are dropped); each entry is checked to
  balance before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from closeout.accounting.csv_safe import Cell, FileEntry, PartedCsv, Sink, decimal_number, major_units
from closeout.accounting.records import Row, as_date, exponent_of, journal_parts, records

INVOICE_HEADER = ("InvoiceNo", "Customer", "InvoiceDate", "DueDate", "Terms", "Memo", "Item(Product/Service)",
                  "ItemDescription", "ItemQuantity", "ItemRate", "ItemAmount", "Service Date", "Currency")  # fmt: skip
JOURNAL_HEADER = ("JournalNo", "JournalDate", "AccountName", "Debits", "Credits", "Description", "Name", "Currency")


@dataclass(frozen=True)
class QuickBooksOptions:
    date_format: str = "%m/%d/%Y"
    item: str = "Services"
    income_account: str = "Services"
    receivable_account: str = "Accounts Receivable (A/R)"
    max_invoices_per_file: int = 100
    max_journal_rows_per_file: int | None = None
    accounts: Mapping[str, str] = field(default_factory=dict)  # ledger account -> QuickBooks account name
    expense_cost_account: str | None = None  # pass-through: expense lines' cost (reimbursable_expenses)
    expense_markup_account: str | None = None  # pass-through: expense lines' markup (expense_markup_revenue)


def terms(days: int | None) -> str:
    if days is None:
        return ""
    return "Due on receipt" if days == 0 else f"Net {days}"


def write_invoices(rows: Iterable[Row], sink: Sink, currencies: Mapping[str, int],
                   options: QuickBooksOptions = QuickBooksOptions()) -> list[FileEntry]:  # fmt: skip
    """Invoice import files plus the credit journals for their negative lines."""
    fmt = options.date_format
    invoices = PartedCsv(sink, "quickbooks_invoices", INVOICE_HEADER, system="quickbooks", kind="invoices",
                         max_records=options.max_invoices_per_file)  # fmt: skip
    credits = PartedCsv(sink, "quickbooks_credit_journals", JOURNAL_HEADER, system="quickbooks",
                        kind="credit_journals", max_rows=options.max_journal_rows_per_file)  # fmt: skip
    for number, lines in records(rows, "invoice_no"):
        head = lines[0]
        exp = exponent_of(currencies, head["currency"])
        invoice_date = as_date(head["invoice_date"]).strftime(fmt)
        positive: list[list[Cell]] = []
        negative: list[list[Cell]] = []
        owed = 0
        expense_cost = expense_markup = 0
        for line in lines:
            amount = int(line["amount_minor"])
            if options.expense_cost_account and line.get("expense_cost_minor") is not None:
                expense_cost += int(line["expense_cost_minor"])
                expense_markup += amount - int(line["expense_cost_minor"])
            if amount >= 0:
                service = line.get("service_date")
                positive.append([
                    number, head["customer"], invoice_date, as_date(head["due_date"]).strftime(fmt),
                    terms(head.get("terms_days")), head["invoice_id"], options.item, line["description"],
                    decimal_number(line["quantity"]), decimal_number(line["unit_rate"]), major_units(amount, exp),
                    as_date(service).strftime(fmt) if service else None, head["currency"],
                ])  # fmt: skip
            else:
                owed += amount
                negative.append([f"CR-{number}", invoice_date, options.income_account, major_units(-amount, exp),
                                 None, line["description"], head["customer"], head["currency"]])  # fmt: skip
        invoices.add_record(positive, f"invoice {number}")
        if negative:
            negative.append([f"CR-{number}", invoice_date, options.receivable_account, None, major_units(-owed, exp),
                             f"Credit on invoice {number}", head["customer"], head["currency"]])  # fmt: skip
            credits.add_record(negative, f"credit journal CR-{number}")
        if expense_cost or expense_markup:
            credits.add_record(_expense_journal(f"EX-{number}", invoice_date, head, expense_cost, expense_markup, exp,
                                                options), f"expense journal EX-{number}")  # fmt: skip
    return invoices.close() + credits.close()


def _expense_journal(number: str, day: str, head: Row, cost: int, markup: int, exp: int,
                     options: QuickBooksOptions) -> list[list[Cell]]:  # fmt: skip
    """Income (where the invoice import put the expense lines) debited with their amount, the expense cost and
    markup accounts credited with their parts; a part that nets negative goes to the other column."""
    rows: list[list[Cell]] = []
    parts = ((options.income_account, -(cost + markup)), (options.expense_cost_account, cost),
             (options.expense_markup_account or options.income_account, markup))
    for account, signed_credit in parts:
        if signed_credit == 0:
            continue
        debit = major_units(-signed_credit, exp) if signed_credit < 0 else None
        credit = major_units(signed_credit, exp) if signed_credit > 0 else None
        rows.append([number, day, account, debit, credit, f"Expenses billed on invoice {number[3:]}: cost and markup",
                     head["customer"], head["currency"]])  # fmt: skip
    return rows


def write_journals(rows: Iterable[Row], sink: Sink, currencies: Mapping[str, int],
                   options: QuickBooksOptions = QuickBooksOptions()) -> list[FileEntry]:  # fmt: skip
    """Journal entry import files from ledger lines (ordered by journal, then line)."""
    out = PartedCsv(sink, "quickbooks_journals", JOURNAL_HEADER, system="quickbooks", kind="journals",
                    max_rows=options.max_journal_rows_per_file)  # fmt: skip
    for part in journal_parts(rows):
        exp = exponent_of(currencies, part.currency)
        date_text = part.posted.strftime(options.date_format)
        cells: list[list[Cell]] = []
        for row, amount in part.lines:
            account = options.accounts.get(row["account"], row["account"])
            debit = major_units(amount, exp) if amount > 0 else None
            credit = major_units(-amount, exp) if amount < 0 else None
            cells.append([part.number, date_text, account, debit, credit, row.get("source_ref"), row.get("name"),
                          part.currency])  # fmt: skip
        out.add_record(cells, f"journal {part.number}")
    return out.close()
