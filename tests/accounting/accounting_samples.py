"""A small hand-made set of invoices and ledger journals for the writers' golden files: formula-looking
customer names and descriptions, USD, JPY (no decimals), KWD (three), credit lines, a credit-only invoice,
a journal across two currencies, a line with both a debit and a credit, and a zero line."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

CURRENCIES = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}


def _inv(invoice_id, number, customer, currency, day, lines, email=None, terms=30):
    invoice_date = date(2026, 11, day)
    return [
        {"invoice_id": invoice_id, "invoice_no": number, "customer": customer, "email": email,
         "invoice_date": invoice_date, "due_date": date(2026, 12, day), "terms_days": terms, "currency": currency,
         "line_no": n, "kind": kind, "description": desc, "quantity": D(q), "unit_rate": D(r),
         "amount_minor": amount, "service_date": date(2026, 10, n)}
        for n, (kind, desc, q, r, amount) in enumerate(lines, start=1)
    ]  # fmt: skip


INVOICES = [
    *_inv(
        "inv_a",
        "INV-0001",
        '=HYPERLINK("http://evil.example","x")',
        "USD",
        2,
        [("time", "Consulting", "1.50", "100.00", 15000), ("credit", "-x credit", "-1", "20.00", -2000)],
        email="ap@a.example",
    ),
    *_inv(
        "inv_b",
        "INV-0002",
        "+1 Consulting",
        "JPY",
        3,
        [("time", "Design", "2.50", "1000", 2500), ("time", "Review", "0.3333", "1000", 333)],
    ),
    *_inv(
        "inv_c",
        "INV-0003",
        "@SUM(A1)",
        "KWD",
        4,
        [
            ("time", 'Design, "phase 2"', "2", "12.345", 24690),
            ("adjustment", "\tTabbed", "1", "0.010", 10),
            ("adjustment", "\rCarriage", "-0.5", "1.000", -500),
        ],
        terms=0,
    ),
    *_inv("inv_d", "INV-0004", "Plain Co", "EUR", 5, [("credit", "Goodwill", "-1", "50.00", -5000)]),
]


def _ts(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, 30, tzinfo=UTC)


JOURNALS = [
    {"journal_id": "J-0001", "line_no": 1, "posted_at": _ts(2, 23), "account": "Accounts Receivable", "currency": "USD",
     "debit_minor": 13000, "credit_minor": 0, "source_ref": "inv_a", "name": '=HYPERLINK("http://evil.example","x")'},
    {"journal_id": "J-0001", "line_no": 2, "posted_at": _ts(2, 23), "account": "Revenue", "currency": "USD",
     "debit_minor": 0, "credit_minor": 13000, "source_ref": "inv_a", "name": None},
    {"journal_id": "J-0002", "line_no": 1, "posted_at": _ts(3), "account": "Accounts Receivable", "currency": "JPY",
     "debit_minor": 2833, "credit_minor": 0, "source_ref": "inv_b", "name": "+1 Consulting"},
    {"journal_id": "J-0002", "line_no": 2, "posted_at": _ts(3), "account": "Revenue", "currency": "JPY",
     "debit_minor": 0, "credit_minor": 2833, "source_ref": "inv_b", "name": None},
    {"journal_id": "J-0002", "line_no": 3, "posted_at": _ts(3), "account": "Accounts Receivable", "currency": "KWD",
     "debit_minor": 24200, "credit_minor": 0, "source_ref": "-x", "name": "@SUM(A1)"},
    {"journal_id": "J-0002", "line_no": 4, "posted_at": _ts(3), "account": "Revenue", "currency": "KWD",
     "debit_minor": 0, "credit_minor": 24200, "source_ref": "-x", "name": None},
    {"journal_id": "J-0003", "line_no": 1, "posted_at": _ts(5), "account": "Stripe Clearing", "currency": "USD",
     "debit_minor": 10000, "credit_minor": 3000, "source_ref": "po_1", "name": None},
    {"journal_id": "J-0003", "line_no": 2, "posted_at": _ts(5), "account": "Bank Fees", "currency": "USD",
     "debit_minor": 0, "credit_minor": 0, "source_ref": "po_1", "name": None},
    {"journal_id": "J-0003", "line_no": 3, "posted_at": _ts(5), "account": "Checking", "currency": "USD",
     "debit_minor": 0, "credit_minor": 7000, "source_ref": "po_1", "name": None},
]  # fmt: skip
