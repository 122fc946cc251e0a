"""What happens outside closeout in the demo, played in the Stripe sandbox: customers paying (most in full,
some in part, some not yet), and someone changing an invoice in Stripe behind closeout's back.

closeout learns of both only the way it would in production: from Stripe's events, in a real run of
``closeout_stripe_events``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from demo.figures import rows


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: str
    stripe_invoice_id: str
    currency: str
    total_minor: int


def open_invoices(period_start: date) -> list[OpenInvoice]:
    return [OpenInvoice(*r) for r in rows(
        """SELECT invoice_id, stripe_invoice_id, currency, total_minor FROM closeout.invoices
           WHERE period_start = %s AND status = 'open' AND stripe_invoice_id IS NOT NULL
           ORDER BY invoice_id""", (period_start,))]  # fmt: skip


def customers_pay(stripe, invoices: list[OpenInvoice]) -> dict[str, list[OpenInvoice]]:
    """Most customers pay in full, every fourth pays half (in whole minor units), the last one has not paid
    yet; deterministic by the invoice's place in the list, so every demo run tells the same story."""
    paid: dict[str, list[OpenInvoice]] = {"in full": [], "in part": [], "not yet": []}
    for n, invoice in enumerate(invoices):
        if n == len(invoices) - 1:
            paid["not yet"].append(invoice)
        elif n % 4 == 1:
            stripe.pay_invoice(invoice.stripe_invoice_id, invoice.total_minor // 2)
            paid["in part"].append(invoice)
        else:
            stripe.pay_invoice(invoice.stripe_invoice_id)
            paid["in full"].append(invoice)
    return paid


def change_behind_our_back(stripe, invoice: OpenInvoice) -> int:
    """Someone raises an unpaid invoice's total by a tenth directly in Stripe (no event says so), then the
    customer pays part of it: the payment's event carries the changed invoice. Returns the new total."""
    new_total = invoice.total_minor + max(invoice.total_minor // 10, 1)
    stripe.tamper_invoice_total(invoice.stripe_invoice_id, new_total)
    stripe.pay_invoice(invoice.stripe_invoice_id, invoice.total_minor // 4 or 1)
    return new_total
