"""QuickBooks sandbox: the TrialBalance and GeneralLedger reports, computed from what was posted.

``GET /v3/company/{realm}/reports/GeneralLedger?start_date=YYYY-MM-DD&end_date=YYYY-MM-DD`` and
``.../reports/TrialBalance?start_date=&end_date=`` answer Intuit's report shape: ``Header`` (ReportName, StartPeriod,
EndPeriod, Currency, Time, Option NoReportData), ``Columns.Column[]`` (ColType, ColTitle) and nested ``Rows.Row[]``
(``Header``/``Rows``/``Summary`` sections, ``ColData[]`` cells with ``value`` and, for accounts and transactions,
``id``).

What is posted, in the company's home currency (``ExchangeRate`` applied to foreign documents), debit positive:

* Invoice: its ``ARAccountRef`` (else the company's A/R account: "Accounts Receivable (A/R)", or the sandbox's
  ``receivable_account`` (name, id) when a harness sets it) debited with ``TotalAmt``; each line's income account
  (``SalesItemLineDetail.ItemAccountRef`` or ``AccountRef``, else its item's account from the sandbox's
  ``item_accounts`` {item id: (name, id)}, else "Services") credited; tax to "Sales Tax Payable".
* CreditMemo: the reverse of an invoice. Payment: ``DepositToAccountRef`` (else "Undeposited Funds") debited, A/R
  credited. Deposit: ``DepositToAccountRef`` debited, each line's account (else "Undeposited Funds") credited.
  JournalEntry: each line on its ``PostingType`` side. Bill: each line's account debited, Accounts Payable (A/P)
  credited. Entities the company does not hold are simply absent.

The General Ledger lists, per account, the transactions dated in the range (signed amount, running balance) and
"Total for <account>"; the Trial Balance gives each account's balance at ``end_date`` (everything dated on or before
it) in a Debit or a Credit column, and a GrandTotal row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["AR", "INCOME", "Posting", "postings", "report"]

AR = ("Accounts Receivable (A/R)", "84")
AP = ("Accounts Payable (A/P)", "33")
INCOME = ("Services", "1")
UNDEPOSITED = ("Undeposited Funds", "4")
TAX = ("Sales Tax Payable", "89")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Posting:
    account: str
    account_id: str
    txn_date: date
    txn_type: str
    txn_id: str
    num: str
    name: str
    memo: str
    amount: Decimal  # home currency, debit positive


def report(sandbox: Any, company: Any, name: str, params: dict[str, str]) -> dict[str, Any]:
    from sandbox.quickbooks.server import Fault

    try:
        start = date.fromisoformat(params["start_date"]) if params.get("start_date") else None
        end = date.fromisoformat(params["end_date"]) if params.get("end_date") else None
    except ValueError as exc:
        raise Fault(400, "2010", "Request has invalid or unsupported property",
                    "start_date and end_date are YYYY-MM-DD") from exc  # fmt: skip
    today = datetime.fromtimestamp(sandbox.now(), UTC).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise Fault(400, "2010", "Request has invalid or unsupported property", "start_date must be before end_date")
    home = home_currency(sandbox, company)
    receivable = getattr(sandbox, "receivable_account", None) or AR
    with sandbox._lock:
        posted = postings(company, home, receivable=tuple(receivable),
                          item_accounts=getattr(sandbox, "item_accounts", None) or {})  # fmt: skip
    header = {"Time": sandbox._stamp(), "ReportBasis": "Accrual", "StartPeriod": start.isoformat(),
              "EndPeriod": end.isoformat(), "Currency": home}  # fmt: skip
    if name.lower() == "generalledger":
        return _general_ledger(header, [p for p in posted if start <= p.txn_date <= end], posted, start)
    if name.lower() == "trialbalance":
        return _trial_balance(header, [p for p in posted if p.txn_date <= end])
    raise Fault(400, "2010", "Request has invalid or unsupported property", f"report {name} is not supported")


def home_currency(sandbox: Any, company: Any) -> str:
    return str(getattr(company, "home_currency", None) or getattr(sandbox, "home_currency", None) or "USD")


def _ref(ref: Any, default: tuple[str, str]) -> tuple[str, str]:
    if isinstance(ref, dict) and (ref.get("name") or ref.get("value")):
        return str(ref.get("name") or ref.get("value")), str(ref.get("value") or "")
    return default


def _amount(value: Any) -> Decimal:
    return Decimal(str(value or 0))


def postings(company: Any, home: str, *, receivable: tuple[str, str] = AR,
             item_accounts: dict[str, tuple[str, str]] | None = None) -> list[Posting]:  # fmt: skip
    """Every posting of every document the company holds (deleted documents are gone from ``objects``), in the
    home currency ``home``; ``receivable`` is the company's A/R account (name, id), ``item_accounts`` each item's
    income account (item id -> (name, id)), as the company's products and services say."""
    item_accounts = item_accounts or {}
    out: list[Posting] = []
    objects = company.objects

    def add(account: tuple[str, str], obj: dict[str, Any], txn_type: str, amount: Decimal, memo: str = "") -> None:
        currency = (obj.get("CurrencyRef") or {}).get("value") or home
        rate = _amount(obj.get("ExchangeRate") or 1) if currency != home else Decimal(1)
        created = str((obj.get("MetaData") or {}).get("CreateTime") or "")[:10]
        when = date.fromisoformat(str(obj.get("TxnDate") or created))
        name = str((obj.get("CustomerRef") or obj.get("VendorRef") or {}).get("name") or
                   (obj.get("CustomerRef") or obj.get("VendorRef") or {}).get("value") or "")  # fmt: skip
        out.append(Posting(account[0], account[1], when, txn_type, str(obj["Id"]), str(obj.get("DocNumber") or ""),
                           name, memo, (amount * rate).quantize(CENT)))  # fmt: skip

    def sales_lines(obj: dict[str, Any]) -> list[tuple[tuple[str, str], Decimal]]:
        lines = []
        for line in obj.get("Line") or []:
            if line.get("DetailType") == "SubTotalLineDetail":
                continue
            detail = line.get("SalesItemLineDetail") or line.get("DescriptionLineDetail") or {}
            item = str((detail.get("ItemRef") or {}).get("value") or "")
            account = _ref(detail.get("ItemAccountRef") or line.get("AccountRef"),
                           tuple(item_accounts.get(item) or INCOME))  # fmt: skip
            lines.append((account, _amount(line.get("Amount"))))
        return lines

    for obj in objects.get("Invoice", {}).values():
        add(_ref(obj.get("ARAccountRef"), receivable), obj, "Invoice", _amount(obj.get("TotalAmt")))
        for account, amount in sales_lines(obj):
            add(account, obj, "Invoice", -amount)
        tax = (obj.get("TxnTaxDetail") or {}).get("TotalTax")
        if tax:
            add(TAX, obj, "Invoice", -_amount(tax))
    for obj in objects.get("CreditMemo", {}).values():
        add(_ref(obj.get("ARAccountRef"), receivable), obj, "Credit Memo", -_amount(obj.get("TotalAmt")))
        for account, amount in sales_lines(obj):
            add(account, obj, "Credit Memo", amount)
        tax = (obj.get("TxnTaxDetail") or {}).get("TotalTax")
        if tax:
            add(TAX, obj, "Credit Memo", _amount(tax))
    for obj in objects.get("Payment", {}).values():
        add(_ref(obj.get("DepositToAccountRef"), UNDEPOSITED), obj, "Payment", _amount(obj.get("TotalAmt")))
        add(_ref(obj.get("ARAccountRef"), receivable), obj, "Payment", -_amount(obj.get("TotalAmt")))
    for obj in objects.get("Deposit", {}).values():
        add(_ref(obj.get("DepositToAccountRef"), UNDEPOSITED), obj, "Deposit", _amount(obj.get("TotalAmt")))
        for line in obj.get("Line") or []:
            account = _ref((line.get("DepositLineDetail") or {}).get("AccountRef"), UNDEPOSITED)
            add(account, obj, "Deposit", -_amount(line.get("Amount")))
    for obj in objects.get("JournalEntry", {}).values():
        for line in obj.get("Line") or []:
            detail = line.get("JournalEntryLineDetail") or {}
            sign = 1 if str(detail.get("PostingType", "Debit")).lower() == "debit" else -1
            add(_ref(detail.get("AccountRef"), ("Uncategorized", "0")), obj, "Journal Entry",
                sign * _amount(line.get("Amount")), str(line.get("Description") or ""))  # fmt: skip
    for obj in objects.get("Bill", {}).values():
        add(AP, obj, "Bill", -_amount(obj.get("TotalAmt")))
        for line in obj.get("Line") or []:
            detail = line.get("AccountBasedExpenseLineDetail") or {}
            expense = _ref(detail.get("AccountRef"), ("Uncategorized Expense", "0"))
            add(expense, obj, "Bill", _amount(line.get("Amount")))
    out.sort(key=lambda p: (p.account, p.txn_date, p.txn_type, p.txn_id))
    return out


def _money(value: Decimal) -> str:
    return f"{value.quantize(CENT)}"


def _general_ledger(header: dict[str, Any], in_range: list[Posting], every: list[Posting], start: date) -> dict:
    columns = [("tx_date", "Date"), ("txn_type", "Transaction Type"), ("doc_num", "Num"), ("name", "Name"),
               ("memo", "Memo/Description"), ("split_acc", "Split"), ("subt_nat_amount", "Amount"),
               ("rbal_nat_amount", "Balance")]  # fmt: skip
    opening: dict[str, Decimal] = defaultdict(Decimal)
    for p in every:
        if p.txn_date < start:
            opening[p.account] += p.amount
    by_account: dict[tuple[str, str], list[Posting]] = defaultdict(list)
    for p in in_range:
        by_account[(p.account, p.account_id)].append(p)
    splits: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p in every:
        splits[(p.txn_type, p.txn_id)].add(p.account)
    sections = []
    for (account, account_id), rows in sorted(by_account.items()):
        balance = opening[account]
        data = [{"ColData": [{"value": "Beginning Balance"}, *({"value": ""} for _ in range(6)),
                             {"value": _money(balance)}], "type": "Data"}]  # fmt: skip
        for p in rows:
            balance += p.amount
            others = sorted(splits[(p.txn_type, p.txn_id)] - {account})
            split = others[0] if len(others) == 1 else "-Split-" if others else ""
            data.append({"type": "Data", "ColData": [
                {"value": p.txn_date.isoformat()}, {"value": p.txn_type, "id": p.txn_id}, {"value": p.num},
                {"value": p.name}, {"value": p.memo}, {"value": split}, {"value": _money(p.amount)},
                {"value": _money(balance)}]})  # fmt: skip
        total = sum((p.amount for p in rows), Decimal(0))
        sections.append({
            "Header": {"ColData": [{"value": account, "id": account_id}, *({"value": ""} for _ in range(7))]},
            "Rows": {"Row": data}, "type": "Section",
            "Summary": {"ColData": [{"value": f"Total for {account}"}, *({"value": ""} for _ in range(5)),
                                    {"value": _money(total)}, {"value": ""}]}})  # fmt: skip
    return {"Header": {**header, "ReportName": "GeneralLedger",
                       "Option": [{"Name": "NoReportData", "Value": "false" if sections else "true"}]},
            "Columns": {"Column": [{"ColType": t, "ColTitle": title, "MetaData": [{"Name": "ColKey", "Value": t}]}
                                   for t, title in columns]},
            "Rows": {"Row": sections}}  # fmt: skip


def _trial_balance(header: dict[str, Any], upto: list[Posting]) -> dict:
    balances: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for p in upto:
        balances[(p.account, p.account_id)] += p.amount
    rows, debits, credits = [], Decimal(0), Decimal(0)
    for (account, account_id), balance in sorted(balances.items()):
        if not balance:
            continue
        debit, credit = (balance, None) if balance > 0 else (None, -balance)
        debits += debit or 0
        credits += credit or 0
        rows.append({"ColData": [{"value": account, "id": account_id},
                                 {"value": _money(debit) if debit is not None else ""},
                                 {"value": _money(credit) if credit is not None else ""}]})  # fmt: skip
    rows.append({"group": "GrandTotal", "type": "Section",
                 "Summary": {"ColData": [{"value": "TOTAL"}, {"value": _money(debits)}, {"value": _money(credits)}]}})
    return {"Header": {**header, "ReportName": "TrialBalance",
                       "Option": [{"Name": "NoReportData", "Value": "false" if len(rows) > 1 else "true"}]},
            "Columns": {"Column": [{"ColType": "Account", "ColTitle": ""}, {"ColType": "Money", "ColTitle": "Debit"},
                                   {"ColType": "Money", "ColTitle": "Credit"}]},
            "Rows": {"Row": rows}}  # fmt: skip
