"""Stripe objects -> stage rows, one function per object kind, the same for list reads and events.

Every row ends with ``observed_at``: when Stripe's state was as the row says (the event's ``created`` for an
event, the read time for a list page). Currencies become UPPER case here; amounts stay integers as Stripe
sent them (minor units), signs as Stripe gives them. ``created`` and other Stripe times stay unix seconds:
the upsert SQL turns them into timestamptz, set-based.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

Row = tuple[Any, ...]

# stage columns per kind, in COPY order (the upsert SQL in include/sql/cash/ reads them by these names)
COLUMNS: dict[str, tuple[str, ...]] = {
    "balance_transaction": ("balance_transaction_id", "type", "reporting_category", "currency", "amount_minor",
                            "fee_minor", "net_minor", "fee_details", "exchange_rate", "source_id", "status",
                            "description", "created", "available_on", "payout_id", "observed_at"),
    "charge": ("charge_id", "payment_intent_id", "stripe_invoice_id", "customer_id", "currency", "amount_minor",
               "amount_refunded_minor", "balance_transaction_id", "status", "disputed", "created", "observed_at"),
    "payout": ("payout_id", "currency", "amount_minor", "status", "automatic", "arrival_date", "created",
               "balance_transaction_id", "failure_balance_transaction_id", "failure_code", "failure_message",
               "method", "type", "reconciliation_status", "observed_at"),
    "refund": ("refund_id", "charge_id", "payment_intent_id", "currency", "amount_minor", "status", "reason",
               "failure_reason", "balance_transaction_id", "failure_balance_transaction_id", "metadata", "created",
               "observed_at"),
    "credit_note": ("credit_note_id", "stripe_invoice_id", "customer_id", "number", "currency", "amount_minor",
                    "pre_payment_amount_minor", "post_payment_amount_minor", "refund_amount_minor",
                    "credit_amount_minor", "out_of_band_amount_minor", "refund_ids", "type", "status", "reason",
                    "memo", "metadata", "created", "voided_at", "observed_at", "tax_minor"),
    "dispute": ("dispute_id", "charge_id", "payment_intent_id", "currency", "amount_minor", "status", "reason",
                "created", "closed_at", "observed_at"),
    "invoice_payment": ("invoice_payment_id", "stripe_invoice_id", "payment_type", "payment_intent_id", "charge_id",
                        "currency", "amount_paid_minor", "status", "paid_at", "created", "observed_at"),
    "invoice": ("stripe_invoice_id", "customer_id", "number", "currency", "status", "total_minor", "amount_due_minor",
                "amount_paid_minor", "amount_remaining_minor", "pre_payment_credit_notes_amount_minor",
                "post_payment_credit_notes_amount_minor", "created", "metadata", "starting_balance_minor",
                "ending_balance_minor", "observed_at"),
}  # fmt: skip

FINAL_DISPUTE = frozenset(("won", "lost", "warning_closed", "prevented"))


def _id(value: Any) -> str | None:
    """An expandable field: the id whether Stripe sent the id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    return value.get("id")


def _upper(code: str | None) -> str | None:
    return code.upper() if code else code


def balance_transaction(o: dict[str, Any], observed_at: datetime, payout_id: str | None = None) -> Row:
    """The hot path (a million of these in the benchmark): plain lookups, nothing clever."""
    source = o.get("source")
    rate = o.get("exchange_rate")
    return (
        o["id"], o["type"], o.get("reporting_category"), o["currency"].upper(), o["amount"], o.get("fee") or 0,
        o["net"], json.dumps(o.get("fee_details") or []), None if rate is None else repr(rate),
        source if source is None or source.__class__ is str else source.get("id"), o["status"],
        o.get("description"), o["created"], o.get("available_on"), payout_id, observed_at,
    )  # fmt: skip


def charge(o: dict[str, Any], observed_at: datetime) -> Row:
    return (o["id"], _id(o.get("payment_intent")), _id(o.get("invoice")), _id(o.get("customer")),
            _upper(o["currency"]), o["amount"], o.get("amount_refunded") or 0, _id(o.get("balance_transaction")),
            o.get("status") or "succeeded", bool(o.get("disputed")), o["created"], observed_at)  # fmt: skip


def payout(o: dict[str, Any], observed_at: datetime) -> Row:
    return (o["id"], _upper(o["currency"]), o["amount"], o["status"], bool(o.get("automatic")), o.get("arrival_date"),
            o["created"], _id(o.get("balance_transaction")), _id(o.get("failure_balance_transaction")),
            o.get("failure_code"), o.get("failure_message"), o.get("method"), o.get("type"),
            o.get("reconciliation_status"), observed_at)  # fmt: skip


def refund(o: dict[str, Any], observed_at: datetime) -> Row:
    return (o["id"], _id(o.get("charge")), _id(o.get("payment_intent")), _upper(o["currency"]), o["amount"],
            o.get("status") or "succeeded", o.get("reason"), o.get("failure_reason"),
            _id(o.get("balance_transaction")), _id(o.get("failure_balance_transaction")),
            json.dumps(o.get("metadata") or {}), o["created"], observed_at)  # fmt: skip


def credit_note(o: dict[str, Any], observed_at: datetime) -> Row:
    """Post-payment credit splits into refund + customer balance credit + out of band (they sum to it); Stripe
    lists the refunds, so the balance credit is what remains."""
    refunds = o.get("refunds") or []
    if isinstance(refunds, dict):  # an older API version's list object
        refunds = refunds.get("data") or []
    refund_ids = [r for r in (_id(x.get("refund")) if isinstance(x, dict) else x for x in refunds) if r]
    refunded = sum(int(x.get("amount_refunded") or 0) for x in refunds if isinstance(x, dict))
    post = int(o.get("post_payment_amount") or 0)
    out_of_band = int(o.get("out_of_band_amount") or 0)
    credited = max(post - refunded - out_of_band, 0)
    return (o["id"], _id(o.get("invoice")), _id(o.get("customer")), o.get("number"), _upper(o["currency"]),
            int(o.get("amount", o.get("total")) or 0), int(o.get("pre_payment_amount") or 0), post, refunded,
            credited, out_of_band, refund_ids, o.get("type"), o.get("status") or "issued", o.get("reason"),
            o.get("memo"), json.dumps(o.get("metadata") or {}), o["created"], o.get("voided_at"),
            observed_at, sum(int(t.get("amount") or 0) for t in o.get("total_taxes") or []))  # fmt: skip


def dispute(o: dict[str, Any], observed_at: datetime, closed_at: int | None = None) -> Row:
    """``closed_at``: the close event's time when known; for a list read of a closed dispute, the newest of its
    balance transactions (a won dispute's reinstatement), else the read time. The upsert keeps the earliest."""
    if closed_at is None and o.get("status") in FINAL_DISPUTE:
        txns = [t.get("created") for t in (o.get("balance_transactions") or []) if isinstance(t, dict)]
        closed_at = max(txns) if len(txns) > 1 else max(int(observed_at.timestamp()), o["created"])
    return (o["id"], _id(o.get("charge")), _id(o.get("payment_intent")), _upper(o["currency"]), o["amount"],
            o["status"], o.get("reason"), o["created"], closed_at, observed_at)  # fmt: skip


def invoice_payment(o: dict[str, Any], observed_at: datetime) -> Row:
    payment = o.get("payment") or {}
    paid_at = (o.get("status_transitions") or {}).get("paid_at")
    return (o["id"], _id(o.get("invoice")), payment.get("type"), _id(payment.get("payment_intent")),
            _id(payment.get("charge")), _upper(o["currency"]), o.get("amount_paid"), o.get("status") or "paid",
            paid_at, o["created"], observed_at)  # fmt: skip


def invoice(o: dict[str, Any], observed_at: datetime) -> Row:
    return (o["id"], _id(o.get("customer")), o.get("number"), _upper(o["currency"]), o.get("status"), o.get("total"),
            o.get("amount_due"), o.get("amount_paid"), o.get("amount_remaining"),
            o.get("pre_payment_credit_notes_amount"), o.get("post_payment_credit_notes_amount"), o["created"],
            json.dumps(o.get("metadata") or {}), o.get("starting_balance"), o.get("ending_balance"),
            observed_at)  # fmt: skip


NORMALIZERS: dict[str, Callable[..., Row]] = {
    "balance_transaction": balance_transaction, "charge": charge, "payout": payout, "refund": refund,
    "credit_note": credit_note, "dispute": dispute, "invoice_payment": invoice_payment, "invoice": invoice,
}  # fmt: skip
