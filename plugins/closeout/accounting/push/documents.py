"""Credit notes and Stripe payouts as the accounting systems' own documents, and Xero journals in the base currency.

Why documents rather than journals: a credit note pushed as a journal lowers receivable in the ledger there but
leaves the invoice open in the customer's statement; a QuickBooks ``CreditMemo`` / Xero ``ACCRECCREDIT`` credit note
allocated to the invoice closes it as finance expects. A Stripe payout pushed as a ``Deposit`` / ``BankTransfer``
shows in bank reconciliation as the money arriving, which a journal does not.

* credit notes (``plan_credit_notes.sql``): QuickBooks ``CreditMemo`` (one line per debit of the ledger's credit note
  journal, its account as ``ItemAccountRef``; a taxed invoice's credit note goes like its invoice: net lines under
  the client's tax code, its tax as the document's own, no tax payable line), then applied to its invoice by a
  payment of 0 linking both (``plan_credit_applications.sql``, kind ``credit_application``, linked as a payment); Xero
  ``CreditNotes`` with an ``Allocations`` entry to its invoice. Held ``invoice_not_pushed`` while the invoice is not
  there.
* deposits (``plan_deposits.sql``): QuickBooks ``Deposit`` to the account the ledger debits, its one line from the
  account it credits; Xero ``BankTransfers`` ``FromBankAccount`` -> ``ToBankAccount``.
* Xero manual journals are base-currency only: ``xero_base_journal_lines`` converts a foreign journal with the rate
  the ledger used and puts the rounding on a named FX rounding line (role ``fx_gain_loss``), so it balances.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from closeout.accounting.push.plan import Record

KINDS = ("credit_note", "credit_application", "deposit")
# the ledger role the rounding of a converted Xero journal goes to (the chart's FX gain/loss account)
FX_ROUNDING_ROLE = "fx_gain_loss"


def _invoice_there(record: Record, system: str) -> str:
    from closeout.accounting.push.books import Hold

    invoice = record.row.get("invoice_external_id")
    if not invoice:
        raise Hold("invoice_not_pushed", f"credit note {record.ref} waits for its invoice {record.row['invoice_id']}, "
                                         f"not in {system} yet")  # fmt: skip
    return str(invoice)


def quickbooks_document(books: Any, record: Record) -> dict[str, Any]:
    """The QuickBooks body of a credit note (``CreditMemo``) or a Stripe payout move (``Deposit``)."""
    from closeout.accounting.push.books import customer_of, ledger_rate, note

    rate = ledger_rate(record, books.settings.home_currency)
    if record.kind == "credit_application":  # the pushed credit memo applied to its invoice: a payment of 0
        amount = record.major(int(record.row["amount_minor"]))
        body: dict[str, Any] = {
            "CustomerRef": {"value": customer_of(record)}, "TotalAmt": Decimal(0),
            "TxnDate": record.txn_date.isoformat(), "CurrencyRef": {"value": record.currency},
            "PrivateNote": note(record),
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": str(record.row["invoice_external_id"]),
                                                       "TxnType": "Invoice"}]},
                     {"Amount": amount, "LinkedTxn": [{"TxnId": str(record.row["credit_memo_external_id"]),
                                                       "TxnType": "CreditMemo"}]}]}  # fmt: skip
    elif record.kind == "credit_note" and record.row.get("taxed"):
        _invoice_there(record, "QuickBooks")
        body = _quickbooks_taxed_credit_note(books, record)
    elif record.kind == "credit_note":
        _invoice_there(record, "QuickBooks")
        lines = []
        for n, line in enumerate(record.row["lines"], 1):
            amount = record.major(int(line["amount_minor"]))
            lines.append({"LineNum": n, "Amount": amount, "DetailType": "SalesItemLineDetail",
                          "Description": f"Credit note {record.row.get('doc_number') or record.ref} on invoice "
                                         f"{record.row.get('invoice_number') or record.row['invoice_id']}",
                          "SalesItemLineDetail": {
                              "ItemRef": {"value": books.settings.item_id}, "Qty": Decimal(1), "UnitPrice": amount,
                              "ItemAccountRef": {"value": books._account(line["role"], line["account"])}}})  # fmt: skip
        body = {"TxnDate": record.txn_date.isoformat(), "CustomerRef": {"value": customer_of(record)},
                                "CurrencyRef": {"value": record.currency}, "PrivateNote": note(record),
                                "Line": lines}  # fmt: skip
        if record.row.get("doc_number"):
            body["DocNumber"] = str(record.row["doc_number"])[:21]
    else:
        amount = record.major(record.total_minor)
        source = books._account(record.row["from_role"], record.row["from_account"])
        body = {"TxnDate": record.txn_date.isoformat(), "CurrencyRef": {"value": record.currency},
                "PrivateNote": note(record),
                "DepositToAccountRef": {"value": books._account(record.row["to_role"], record.row["to_account"])},
                "Line": [{"Amount": amount, "DetailType": "DepositLineDetail", "Description": record.row["description"],
                          "DepositLineDetail": {"AccountRef": {"value": source}}}]}  # fmt: skip
    if rate is not None:
        body["ExchangeRate"] = rate
    return body


def xero_document(books: Any, record: Record) -> dict[str, Any]:
    """The Xero body of a credit note (``CreditNotes``, allocated to its invoice) or a payout move
    (``BankTransfers``)."""
    from closeout.accounting.push.books import customer_of, note

    rate = books._rate(record)
    if record.kind == "credit_note":
        invoice = _invoice_there(record, "Xero")
        if record.row.get("taxed"):  # as its invoice: the lines under the client's code, Xero computes the tax
            amounts, items = _xero_taxed_credit_note_lines(books, record)
        else:
            amounts = "NoTax"
            items = [{"Description": _description(record), "Quantity": Decimal(1),
                      "UnitAmount": record.major(int(line["amount_minor"])),
                      "AccountCode": books._account(line["role"], line["account"])}
                     for line in record.row["lines"]]  # fmt: skip
        body: dict[str, Any] = {
            "Type": "ACCRECCREDIT", "Contact": {"ContactID": customer_of(record)}, "Reference": note(record),
            "Date": record.txn_date.isoformat(), "CurrencyCode": record.currency, "Status": "AUTHORISED",
            "LineAmountTypes": amounts, "LineItems": items,
            "Allocations": [{"Invoice": {"InvoiceID": invoice}, "Amount": record.major(record.total_minor),
                             "Date": record.txn_date.isoformat()}]}  # fmt: skip
        if record.row.get("doc_number"):
            body["CreditNoteNumber"] = str(record.row["doc_number"])
    else:
        body = {"FromBankAccount": {"Code": books._account(record.row["from_role"], record.row["from_account"])},
                "ToBankAccount": {"Code": books._account(record.row["to_role"], record.row["to_account"])},
                "Amount": record.major(record.total_minor), "Date": record.txn_date.isoformat(),
                "CurrencyCode": record.currency, "Reference": note(record)}  # fmt: skip
    if rate is not None:
        body["CurrencyRate"] = rate
    return body


def _credit_note_taxes(books: Any, record: Record) -> Any:
    """A taxed credit note's net lines with their share of its tax and the client's code for ``books.system``
    (``invoice_tax.credit_note_as_invoice``), through the invoice push's own ``invoice_taxes``: the same holds (no
    code: ``tax_code``) and the same check of the system's computed total (``tax_mismatch``)."""
    from closeout.accounting.push.books import invoice_taxes
    from closeout.accounting.push.invoice_tax import credit_note_as_invoice

    return invoice_taxes(books, credit_note_as_invoice(record))


def _description(record: Record) -> str:
    return (f"Credit note {record.row.get('doc_number') or record.ref} on invoice "
            f"{record.row.get('invoice_number') or record.row['invoice_id']}")  # fmt: skip


def _quickbooks_taxed_credit_note(books: Any, record: Record) -> dict[str, Any]:
    """A ``CreditMemo`` like its taxed invoice: lines net of tax with the client's ``TaxCodeRef`` (and the gross as
    ``TaxInclusiveAmt`` when inclusive), the credit note's tax as ``TxnTaxDetail.TotalTax`` (QuickBooks keeps a
    given total) and the invoice's ``GlobalTaxCalculation``; no line on tax payable."""
    from closeout.accounting.push.books import customer_of, note

    taxes = _credit_note_taxes(books, record)
    lines = []
    for n, taxed in enumerate(taxes.lines, 1):
        net = record.major(taxed.taxable_minor)
        detail: dict[str, Any] = {"ItemRef": {"value": books.settings.item_id}, "Qty": Decimal(1), "UnitPrice": net,
                                  "ItemAccountRef": {"value": books._account(taxed.line["role"],
                                                                             taxed.line["account"])}}  # fmt: skip
        if taxed.code:
            detail["TaxCodeRef"] = {"value": taxed.code}
        if taxes.inclusive:
            detail["TaxInclusiveAmt"] = record.major(taxed.amount_minor)
        lines.append({"LineNum": n, "Amount": net, "DetailType": "SalesItemLineDetail",
                      "Description": _description(record), "SalesItemLineDetail": detail})  # fmt: skip
    body: dict[str, Any] = {"TxnDate": record.txn_date.isoformat(), "CustomerRef": {"value": customer_of(record)},
                            "CurrencyRef": {"value": record.currency}, "PrivateNote": note(record), "Line": lines,
                            "GlobalTaxCalculation": "TaxInclusive" if taxes.inclusive else "TaxExcluded",
                            "TxnTaxDetail": {"TotalTax": record.major(taxes.tax_minor)}}  # fmt: skip
    if record.row.get("doc_number"):
        body["DocNumber"] = str(record.row["doc_number"])[:21]
    return body


def _xero_taxed_credit_note_lines(books: Any, record: Record) -> tuple[str, list[dict[str, Any]]]:
    """(``LineAmountTypes``, ``LineItems``) of a taxed credit note, as its invoice goes: each line net (Exclusive) or
    with its tax (Inclusive) under the client's ``TaxType``; Xero computes the tax and its Total is checked."""
    from closeout.accounting.push.invoice_tax import xero_line_amount_types

    taxes = _credit_note_taxes(books, record)
    items = []
    for taxed in taxes.lines:
        item: dict[str, Any] = {"Description": _description(record), "Quantity": Decimal(1),
                                "UnitAmount": record.major(taxed.amount_minor),
                                "AccountCode": books._account(taxed.line["role"], taxed.line["account"])}  # fmt: skip
        if taxed.code:
            item["TaxType"] = taxed.code
        items.append(item)
    return xero_line_amount_types(taxes), items


def xero_base_journal_lines(books: Any, record: Record) -> list[dict[str, Any]]:
    """A foreign-currency journal's lines in the organisation's base currency (Xero keeps manual journals in it).

    Each line is its amount times the rate the ledger used (home units per foreign unit), rounded half up to the base
    currency's minor unit; what the rounding leaves between debits and credits goes on one line named "FX rounding"
    on the FX gain/loss account, so the journal sums to zero as Xero requires. A journal with no ledger rate is held
    (``no_ledger_rate``), never converted at a rate nobody used."""
    from closeout.accounting.push.books import ledger_rate

    rate = ledger_rate(record, books.settings.home_currency)
    assert rate is not None  # a foreign journal: ledger_rate holds one without a rate
    exponent = int(record.row.get("home_exponent") if record.row.get("home_exponent") is not None else 2)
    unit = Decimal(1).scaleb(-exponent)
    description = f"{record.row['kind']} {record.row.get('source_ref') or ''}".strip()
    lines, total = [], Decimal(0)
    for line in record.row["lines"]:
        foreign = record.major(int(line["debit_minor"]) - int(line["credit_minor"]))
        amount = (foreign * rate).quantize(unit, rounding=ROUND_HALF_UP)
        total += amount
        lines.append({"LineAmount": amount, "AccountCode": books._account(line["role"], line["account"]),
                      "Description": f"{description} ({foreign} {record.currency} at {rate})"})  # fmt: skip
    if total:
        lines.append({"LineAmount": -total, "AccountCode": books._account(FX_ROUNDING_ROLE),
                      "Description": f"FX rounding of {record.currency} {description} at {rate}"})  # fmt: skip
    return lines


def base_total(lines: list[dict[str, Any]], exponent: int) -> int:
    """The debits of converted journal lines in base-currency minor units (what the link records: the journal as
    Xero holds it)."""
    return int(sum((Decimal(str(x["LineAmount"])) for x in lines if Decimal(str(x["LineAmount"])) > 0),
                   Decimal(0)).scaleb(exponent))  # fmt: skip
