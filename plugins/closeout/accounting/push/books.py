"""One accounting system as the push sees it: how a record is shaped there, sent in batches, and found again.

``QuickBooksBooks`` sends ``POST /batch`` of up to 30 creates (Invoice, Payment applied through ``LinkedTxn``,
JournalEntry) and finds objects by ``DocNumber`` (invoices: the Stripe number; journals: one closeout derives from the
ref) or, where the entity has none, by TxnDate and the ``PrivateNote`` read back (``quickbooks_lookup_query``).
``XeroBooks`` sends ``PUT`` arrays of up to 50 with ``summarizeErrors=false``
(Invoices, Payments, ManualJournals) and finds objects by ``InvoiceNumber``, ``Reference`` or ``Narration``.

A record that cannot go is a ``Hold`` before it is sent (no customer link, no ledger rate for a foreign currency,
an unmapped account, its invoice not there yet); one the vendor refuses comes back as an ``Answer`` with the reason
read from the vendor's error (closing/lock date, currency not enabled, tax code). Foreign-currency documents carry
the rate the ledger used (QuickBooks ``ExchangeRate``: home units per foreign unit; Xero ``CurrencyRate``: foreign
units per base unit), never 1.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from closeout.accounting.links import projects_enabled
from closeout.accounting.push import documents
from closeout.accounting.push.plan import Record
from closeout.accounting.push.settings import PushSettings


class Hold(Exception):
    """This record cannot go now; ``reason`` is one of the exception view's reasons."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Answer:
    """What the system said about one element: its id there, or why it refused it."""

    ref: str
    external_id: str | None = None
    version: str | None = None
    reason: str | None = None
    detail: str | None = None


def note(record: Record) -> str:
    """The reference closeout writes on every object (and looks it up by): ``closeout <kind> <ref>``."""
    return f"closeout {record.kind} {record.ref}"


def customer_of(record: Record) -> str:
    customer = record.row.get("customer_id")
    if customer:
        return str(customer)
    review = record.row.get("review_id")
    if review:
        raise Hold("customer_link", f"client {record.client_key} waits for finance: customer link review {review} "
                                    "is open (python -m closeout.accounting links review)")  # fmt: skip
    raise Hold("customer_link", f"client {record.client_key} has no customer link yet (the customers task links it)")


def ledger_rate(record: Record, home: str) -> Decimal | None:
    """The rate the ledger used (home units per foreign unit), None for the home currency; never 1 for a foreign
    one: a record without a rate is held rather than booked at a rate nobody used."""
    if record.currency == home:
        return None
    rate = record.ledger_rate
    if rate is None or rate <= 0 or rate == 1:
        raise Hold("no_ledger_rate", f"{record.currency} {record.kind} {record.ref}: the ledger has no "
                                     f"{record.currency}->{home} rate for it yet (a Stripe settlement of that "
                                     "currency); it goes once there is one")  # fmt: skip
    return rate


def _lines_total(record: Record) -> None:
    total = sum(int(line["amount_minor"]) for line in record.row.get("lines") or [])
    if total != record.total_minor:
        raise Hold("refused", f"invoice {record.ref}: its lines sum to {total}, its total is {record.total_minor}")


def _quantity_and_price(record: Record, line: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """Ours when quantity x rate is the line amount exactly; else 1 at the line amount (the total stays ours)."""
    amount = record.major(int(line["amount_minor"]))
    quantity = Decimal(str(line.get("quantity") or 0))
    rate = Decimal(str(line.get("unit_rate") or 0))
    if quantity and quantity * rate == amount:
        return quantity.normalize(), rate.normalize()
    return Decimal(1), amount


def quickbooks_invoice_customer(record: Record, projects: bool) -> str:
    """The CustomerRef of an invoice in QuickBooks. With projects as sub-customers (connection extra
    ``projects_as_sub_customers``), an invoice whose lines all belong to one project goes to that project's
    sub-customer (``Job: true``, ``ParentRef`` = the client's customer); an invoice of several projects, or with a
    line of none, goes to the client's customer. A one-project invoice whose sub-customer is not linked yet (its
    review is open) waits rather than going to the parent, so its payment can follow it."""
    parent = customer_of(record)
    project = record.row.get("project_ref")
    if not projects or not project:
        return parent
    if record.row.get("project_customer_id"):
        return str(record.row["project_customer_id"])
    review = record.row.get("project_review_id")
    if review:
        raise Hold("customer_link", f"project {project} waits for finance: sub-customer link review {review} is "
                                    "open (python -m closeout.accounting links review)")  # fmt: skip
    raise Hold("customer_link", f"project {project} has no sub-customer yet (the customers task links it)")


class QuickBooksBooks:
    """One QuickBooks company through ``QuickBooksHook``."""

    system = "quickbooks"
    batch_size = 30
    entities: ClassVar[dict[str, str]] = {"invoice": "Invoice", "payment": "Payment", "journal": "JournalEntry",
                                          "credit_note": "CreditMemo", "deposit": "Deposit"}  # fmt: skip

    def __init__(self, hook: Any, settings: PushSettings, chart: dict[str, str]) -> None:
        self.hook = hook
        self.settings = settings
        self.chart = chart  # role -> ledger account code
        self.company_id = hook.realm_id
        # projects as sub-customers (connection extra, closeout.accounting.links): an invoice of one project goes there
        self.projects_as_sub_customers = projects_enabled(getattr(hook, "quickbooks_conn_id", None))

    def lookup_value(self, record: Record) -> str:
        """What the object is found by again (see ``quickbooks_lookup_query``): the invoice's Stripe number, a
        journal's DocNumber derived from its ref, a payment's PrivateNote (read back and compared here)."""
        if record.kind == "invoice":
            return str(record.row["doc_number"])[:21]
        if record.kind == "journal":
            return closeout_doc_number(record.kind, record.ref)
        return note(record)

    def _account(self, role: str, code: str | None = None) -> str:
        code = code or self.chart.get(role) or role
        account = self.settings.account(role, code)
        if account is None:
            raise Hold("account_mapping", f"no QuickBooks account mapped for the ledger role {role} ({code}) in the "
                                          "connection extra push.accounts")  # fmt: skip
        return account

    def shape(self, record: Record) -> dict[str, Any]:
        if record.kind in documents.KINDS:  # credit notes and deposits: push/documents.py
            return documents.quickbooks_document(self, record)
        home = self.settings.home_currency
        if record.kind == "invoice":
            taxes = invoice_taxes(self, record)  # closeout's tax per line and the client's code (invoice_tax.py)
            customer = quickbooks_invoice_customer(record, self.projects_as_sub_customers)
            rate = ledger_rate(record, home)
            lines = []
            for taxed in taxes.lines:
                line = {**taxed.line, "amount_minor": taxed.taxable_minor}  # QuickBooks lines are net of tax
                quantity, price = _quantity_and_price(record, line)
                detail: dict[str, Any] = {"ItemRef": {"value": self.settings.item_id}, "Qty": quantity,
                                          "UnitPrice": price}  # fmt: skip
                if taxed.code:
                    detail["TaxCodeRef"] = {"value": taxed.code}
                if taxes.inclusive:
                    detail["TaxInclusiveAmt"] = record.major(taxed.amount_minor)
                lines.append({"LineNum": int(line["line_no"]), "Amount": record.major(taxed.taxable_minor),
                              "Description": str(line.get("description") or line.get("kind") or ""),
                              "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail})  # fmt: skip
            body: dict[str, Any] = {"DocNumber": self.lookup_value(record), "TxnDate": record.txn_date.isoformat(),
                                    "DueDate": record.row["due_date"].isoformat(), "CustomerRef": {"value": customer},
                                    "CurrencyRef": {"value": record.currency}, "PrivateNote": note(record),
                                    "Line": lines}  # fmt: skip
            if taxes.taxed:  # closeout's tax stands: QuickBooks keeps a given TotalTax instead of recalculating
                body["GlobalTaxCalculation"] = "TaxInclusive" if taxes.inclusive else "TaxExcluded"
                body["TxnTaxDetail"] = {"TotalTax": record.major(taxes.tax_minor)}
        elif record.kind == "payment":
            invoice = record.row.get("invoice_external_id")
            if not invoice:
                raise Hold("invoice_not_pushed", f"payment {record.ref} waits for its invoice "
                                                 f"{record.row['invoice_id']}, not in QuickBooks yet")  # fmt: skip
            customer = str(record.row.get("invoice_customer_id") or customer_of(record))  # its invoice's
            rate = ledger_rate(record, home)
            amount = record.major(record.total_minor)
            body = {"CustomerRef": {"value": customer}, "TotalAmt": amount, "TxnDate": record.txn_date.isoformat(),
                    "CurrencyRef": {"value": record.currency}, "PrivateNote": note(record),
                    "DepositToAccountRef": {"value": self._account("cash_clearing")},
                    "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": str(invoice), "TxnType": "Invoice"}]}]}
        else:
            rate = ledger_rate(record, home)
            lines = []
            for line in record.row["lines"]:
                debit = int(line["debit_minor"])
                detail = {"PostingType": "Debit" if debit else "Credit",
                          "AccountRef": {"value": self._account(line["role"], line["account"])}}  # fmt: skip
                if line["role"] == "receivable":  # QuickBooks wants the customer on receivable lines
                    detail["Entity"] = {"Type": "Customer", "EntityRef": {"value": customer_of(record)}}
                lines.append({"Amount": record.major(debit or int(line["credit_minor"])),
                              "Description": f"{record.row['kind']} {record.row.get('source_ref') or ''}".strip(),
                              "DetailType": "JournalEntryLineDetail", "JournalEntryLineDetail": detail})  # fmt: skip
            body = {"TxnDate": record.txn_date.isoformat(), "CurrencyRef": {"value": record.currency},
                    "DocNumber": self.lookup_value(record), "PrivateNote": note(record), "Line": lines}  # fmt: skip
        if rate is not None:
            body["ExchangeRate"] = rate
        return body

    def send(self, kind: str, business_ref: str, refs: list[str], elements: list[dict[str, Any]]) -> list[Answer]:
        entity = self.entities[kind]
        items = [{"bId": str(n), "operation": "create", entity: element} for n, element in enumerate(elements, 1)]
        result = self.hook.batch(items, business_ref)
        by_bid = {str(a.get("bId")): a for a in result.body.get("BatchItemResponse") or []}
        answers = []
        for n, ref in enumerate(refs, 1):
            answer = by_bid.get(str(n)) or {}
            obj = answer.get(entity)
            if obj:
                tax = (obj.get("TxnTaxDetail") or {}).get("TotalTax")
                answers.append(Answer(ref, str(obj["Id"]), str(obj.get("SyncToken")),
                                      *answered_tax(self, kind, ref, obj.get("TotalAmt"), tax)))  # fmt: skip
                continue
            errors = (answer.get("Fault") or {}).get("Error") or [{"Message": "no answer for this item"}]
            answers.append(Answer(ref, reason=quickbooks_reason(errors), detail="; ".join(
                f"{e.get('code')} {e.get('Message')}: {e.get('Detail')}" for e in errors)))  # fmt: skip
        return answers

    def find(self, kind: str, records: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
        """Objects already there, by the reference closeout wrote on them: ref -> (id, SyncToken)."""
        return quickbooks_find(self.hook, self.entities[kind], records)


# -- finding objects again in QuickBooks -----------------------------------------------------------------------------
# QuickBooks' query language filters only on attributes Intuit's entity reference marks "filterable"; any other WHERE
# is refused: 400, code 4001, "QueryValidationError: property 'PrivateNote' is not queryable" (ruckus/quickbooks-ruby
# issue 403; intuit/QuickBooks-V3-DotNET-SDK issue 163: "the properties which are mentioned as filterable are only
# queryable"). PrivateNote is filterable on no transaction (Intuit's reference, mirrored in CData's and GravityData's
# QuickBooks Online tables): DocNumber is, on Invoice, CreditMemo and JournalEntry (at most 21 characters, duplicates
# allowed); Payment and Deposit have no DocNumber to filter on, only TxnDate (and CustomerRef / TotalAmt). So:
# * entities with a DocNumber closeout sets are found by ``DocNumber IN (...)`` (50 values a query);
# * the others by the TxnDate range of the records sought, paged with STARTPOSITION / MAXRESULTS by the hook, and
#   matched on their PrivateNote here (records sent before their date was recorded: every object of the entity).
DOC_NUMBER_ENTITIES = frozenset({"Invoice", "CreditMemo", "JournalEntry"})
DOC_NUMBER_MAX = 21
_LOOKUP_CHUNK = 50


def closeout_doc_number(kind: str, ref: str) -> str:
    """A DocNumber closeout controls for a document that has none of its own (a journal): ``C`` + the kind's initial
    + 19 base-32 characters of the SHA-256 of the ref, 21 characters in all (QuickBooks' limit). Deterministic, so
    the number recorded with the batch is the number written on the object; 95 bits make a collision between two
    closeout objects negligible."""
    digest = base64.b32encode(hashlib.sha256(f"{kind}:{ref}".encode()).digest()).decode().rstrip("=")
    return ("C" + kind[:1].upper() + digest)[:DOC_NUMBER_MAX]


@dataclass(frozen=True)
class LookupQuery:
    """One query of a lookup: its WHERE (None: every object of the entity) and the attribute whose value, read back,
    names the closeout ref (``wanted``: value -> ref)."""

    where: str | None
    field: str
    wanted: dict[str, str]


def quickbooks_lookup_query(entity: str, records: list[dict[str, Any]]) -> list[LookupQuery]:
    """The queries that find ``records`` (each ``{"ref", "lookup", "txn_date"?}``: ``lookup`` is the DocNumber or
    PrivateNote closeout wrote, ``txn_date`` the ISO date it sent) among ``entity``'s objects using only filterable
    attributes. A ``lookup`` that is a PrivateNote (``closeout <kind> <ref>``, as batches sent before closeout set
    DocNumbers on journals recorded it) is matched client-side even on a DocNumber entity."""
    from closeout.accounting.api.quickbooks import quote_value

    by_doc = {str(r["lookup"]): str(r["ref"]) for r in records
              if entity in DOC_NUMBER_ENTITIES and not str(r["lookup"]).startswith("closeout ")}  # fmt: skip
    by_note = [r for r in records if str(r["ref"]) not in by_doc.values()]
    queries = []
    values = sorted(by_doc)
    for start in range(0, len(values), _LOOKUP_CHUNK):
        chunk = values[start : start + _LOOKUP_CHUNK]
        queries.append(LookupQuery(f"DocNumber IN ({', '.join(quote_value(v) for v in chunk)})", "DocNumber",
                                   {v: by_doc[v] for v in chunk}))  # fmt: skip
    if by_note:
        wanted = {str(r["lookup"]): str(r["ref"]) for r in by_note}
        dates = [str(r.get("txn_date") or "") for r in by_note]
        where = None
        if all(dates):
            where = f"TxnDate >= {quote_value(min(dates))} AND TxnDate <= {quote_value(max(dates))}"
        queries.append(LookupQuery(where, "PrivateNote", wanted))
    return queries


def quickbooks_find(hook: Any, entity: str, records: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """ref -> (Id, SyncToken) of the ``records`` already in QuickBooks as ``entity`` (see
    ``quickbooks_lookup_query``); the first object carrying a record's reference wins."""
    found: dict[str, tuple[str, str | None]] = {}
    for query in quickbooks_lookup_query(entity, records):
        for obj in hook.query(entity, query.where):
            ref = query.wanted.get(str(obj.get(query.field) or ""))
            if ref is not None and ref not in found:
                found[ref] = (str(obj["Id"]), str(obj.get("SyncToken")))
    return found


def quickbooks_reason(errors: list[dict[str, Any]]) -> str:
    """The exception reason of a QuickBooks refusal, from Intuit's code and the element it names."""
    for error in errors:
        code, element = str(error.get("code") or ""), str(error.get("element") or "")
        text = f"{error.get('Message')} {error.get('Detail')}".lower()
        if code == "6210" or "period closed" in text or "closing date" in text:
            return "closed_period"
        if element == "CurrencyRef" or "currency list" in text or "multicurrency" in text:
            return "currency_not_enabled"
        if element == "TaxCodeRef" or "tax code" in text:
            return "tax_code"
    return "refused"


class XeroBooks:
    """One Xero organisation through ``XeroHook``."""

    system = "xero"
    batch_size = 50
    endpoints: ClassVar[dict[str, tuple[str, str, str]]] = {
        "invoice": ("Invoices", "InvoiceID", "InvoiceNumber"), "payment": ("Payments", "PaymentID", "Reference"),
        "journal": ("ManualJournals", "ManualJournalID", "Narration"),
        "credit_note": ("CreditNotes", "CreditNoteID", "Reference"),
        "deposit": ("BankTransfers", "BankTransferID", "Reference")}  # fmt: skip

    def __init__(self, hook: Any, settings: PushSettings, chart: dict[str, str]) -> None:
        self.hook = hook
        self.settings = settings
        self.chart = chart
        self.company_id = hook.tenant_id
        self.batch_size = min(self.batch_size, hook.settings.batch_size)

    def lookup_value(self, record: Record) -> str:
        return str(record.row["doc_number"]) if record.kind == "invoice" else note(record)

    def _account(self, role: str, code: str | None = None) -> str:
        code = code or self.chart.get(role) or role
        account = self.settings.account(role, code)
        if account is None:
            raise Hold("account_mapping", f"no Xero account code mapped for the ledger role {role} ({code}) in the "
                                          "connection extra push.accounts")  # fmt: skip
        return account

    def _rate(self, record: Record) -> Decimal | None:
        rate = ledger_rate(record, self.settings.home_currency)
        # Xero writes foreign units per base unit: the inverse of the ledger's (home per foreign)
        return None if rate is None else (Decimal(1) / rate).quantize(Decimal("0.000001"))

    def shape(self, record: Record) -> dict[str, Any]:
        if record.kind in documents.KINDS:  # credit notes and deposits: push/documents.py
            return documents.xero_document(self, record)
        if record.kind == "invoice":
            taxes = invoice_taxes(self, record)  # closeout's tax per line and the client's code (invoice_tax.py)
            contact = customer_of(record)
            rate = self._rate(record)
            items = []
            for taxed in taxes.lines:  # closeout's line amounts: net (Exclusive) or with their tax (Inclusive)
                line = taxed.line
                quantity, price = _quantity_and_price(record, line)
                item: dict[str, Any] = {"Description": str(line.get("description") or line.get("kind") or "-"),
                                        "Quantity": quantity, "UnitAmount": price,
                                        "AccountCode": self._account("revenue")}  # fmt: skip
                if taxed.code:
                    item["TaxType"] = taxed.code
                items.append(item)
            amounts = "Inclusive" if taxes.taxed and taxes.inclusive else \
                "Exclusive" if taxes.taxed or any(t.code for t in taxes.lines) else "NoTax"  # fmt: skip
            body: dict[str, Any] = {"Type": "ACCREC", "Contact": {"ContactID": contact},
                                    "InvoiceNumber": self.lookup_value(record), "Reference": note(record),
                                    "Date": record.txn_date.isoformat(), "DueDate": record.row["due_date"].isoformat(),
                                    "CurrencyCode": record.currency, "Status": "AUTHORISED",
                                    "LineAmountTypes": amounts, "LineItems": items}  # fmt: skip
        elif record.kind == "payment":
            invoice = record.row.get("invoice_external_id")
            if not invoice:
                raise Hold("invoice_not_pushed", f"payment {record.ref} waits for its invoice "
                                                 f"{record.row['invoice_id']}, not in Xero yet")  # fmt: skip
            rate = self._rate(record)
            body = {"Invoice": {"InvoiceID": str(invoice)}, "Account": {"Code": self._account("cash_clearing")},
                    "Date": record.txn_date.isoformat(), "Amount": record.major(record.total_minor),
                    "Reference": note(record)}  # fmt: skip
        else:
            rate = None  # Xero keeps manual journals in the base currency: a foreign one is converted
            if record.currency != self.settings.home_currency:
                lines = documents.xero_base_journal_lines(self, record)
            else:
                lines = [{"LineAmount": record.major(int(line["debit_minor"]) - int(line["credit_minor"])),
                          "AccountCode": self._account(line["role"], line["account"]),
                          "Description": f"{record.row['kind']} {record.row.get('source_ref') or ''}".strip()}
                         for line in record.row["lines"]]  # fmt: skip
            body = {"Narration": note(record), "Date": record.txn_date.isoformat(), "Status": "POSTED",
                    "JournalLines": lines}  # fmt: skip
        if rate is not None:
            body["CurrencyRate"] = rate
        return body

    def send(self, kind: str, business_ref: str, refs: list[str], elements: list[dict[str, Any]]) -> list[Answer]:
        endpoint, id_field, _ = self.endpoints[kind]
        result = self.hook.write(f"{endpoint.lower()}.create", business_ref, "PUT", endpoint, elements)
        answers = []
        for n, ref in enumerate(refs):
            element = result.elements[n] if n < len(result.elements) else {}
            if element.get("StatusAttributeString") != "ERROR" and element.get(id_field):
                answers.append(Answer(ref, str(element[id_field]), str(element.get("UpdatedDateUTC") or "") or None,
                                      *answered_tax(self, kind, ref, element.get("Total"), element.get("TotalTax"))))
                continue
            messages = [str(e.get("Message")) for e in element.get("ValidationErrors") or []] or ["no answer"]
            answers.append(Answer(ref, reason=xero_reason(messages), detail="; ".join(messages)))
        return answers

    def find(self, kind: str, records: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
        endpoint, id_field, field = self.endpoints[kind]
        found: dict[str, tuple[str, str | None]] = {}
        for record in records:
            value = str(record["lookup"]).replace('"', "")
            rows = self.hook.get(endpoint, {"where": f'{field}=="{value}"'}).get(endpoint) or []
            if rows:
                found[str(record["ref"])] = (str(rows[0][id_field]), str(rows[0].get("UpdatedDateUTC") or "") or None)
        return found


_XERO_REASONS = ((re.compile(r"lock date", re.I), "closed_period"),
                 (re.compile(r"not subscribed to currency|currency .* not enabled", re.I), "currency_not_enabled"),
                 (re.compile(r"taxtype|tax rate|tax type", re.I), "tax_code"))  # fmt: skip


def xero_reason(messages: list[str]) -> str:
    for message in messages:
        for pattern, reason in _XERO_REASONS:
            if pattern.search(message):
                return reason
    return "refused"


# -- invoice tax (push/invoice_tax.py): what is sent, and what the system answered ------------------------------------
def invoice_taxes(books: Any, record: Record) -> Any:
    """The invoice's lines with closeout's tax and the client's code for ``books.system`` (a missing code or figures
    that do not add up: a ``Hold``); remembers closeout's total to check the system's answer against."""
    from closeout.accounting.push.invoice_tax import TaxHold, invoice_tax

    try:
        taxes = invoice_tax(record, books.system, books.settings.tax_code_for(record.client_key))
    except TaxHold as hold:
        raise Hold(hold.reason, hold.detail) from None
    books.__dict__.setdefault("_expected_totals", {})[record.ref] = (record.total_minor, record.exponent)
    return taxes


def answered_tax(books: Any, kind: str, ref: str, total: Any, tax: Any) -> tuple[str | None, str | None]:
    """(reason, detail) when the invoice the system made has another total than closeout's (its tax computed at
    another rate): linked, since it exists there, and held as ``tax_mismatch`` for finance; else (None, None)."""
    from closeout.accounting.push.invoice_tax import tax_mismatch

    # a taxed credit note registers its total too (push/documents.py, through invoice_taxes)
    expected = books.__dict__.get("_expected_totals", {}).get(ref) if kind in ("invoice", "credit_note") else None
    if expected is None:
        return None, None
    detail = tax_mismatch(ref, expected[0], total, tax, expected[1], kind.replace("_", " "))
    return ("tax_mismatch", detail) if detail else (None, None)
