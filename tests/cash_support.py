"""Money moving through the Stripe sandbox for the cash tests: invoices paid by card (some presented in EUR and
settled in USD), refunds, disputes won and lost, a later Stripe fee, automatic payouts; and the cash tables
read back in a form two runs can be compared by (bookkeeping timestamps left out)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
import stripe

DAY = 86400

# what a row says about Stripe's money; first_seen_at / updated_at / observed_at are closeout's bookkeeping
TABLES = {
    "stripe_balance_transactions": "balance_transaction_id",
    "stripe_charges": "charge_id",
    "stripe_payouts": "payout_id",
    "refunds": "refund_id",
    "credit_notes": "credit_note_id",
    "disputes": "dispute_id",
    "stripe_invoice_payments": "invoice_payment_id",
    "stripe_invoice_snapshots": "stripe_invoice_id",
}
BOOKKEEPING = {"first_seen_at", "updated_at", "observed_at", "seen_at", "txns_linked_at"}


def set_stripe_extra(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_STRIPE_DEFAULT"])
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_STRIPE_DEFAULT", json.dumps(conn))


def sdk(sandbox) -> stripe.StripeClient:
    return stripe.StripeClient(sandbox.secret_key, base_addresses={"api": sandbox.url}, max_network_retries=0)


@dataclass
class Paid:
    invoice_id: str
    charge_id: str
    amount: int
    currency: str


def paid_invoice(sandbox, client: stripe.StripeClient, amount: int, currency: str = "usd",
                 metadata: dict[str, str] | None = None) -> Paid:  # fmt: skip
    """An invoice made by hand (as in the Dashboard), finalized and paid in full by card."""
    customer = client.v1.customers.create(params={"name": "Acme", "email": "ap@acme.example"})
    draft = client.v1.invoices.create(params={"customer": customer.id, "currency": currency, "metadata": metadata or {},
                                              "collection_method": "send_invoice", "days_until_due": 30})  # fmt: skip
    client.v1.invoice_items.create(params={"customer": customer.id, "invoice": draft.id, "amount": amount})
    client.v1.invoices.finalize_invoice(draft.id)
    sandbox.pay_invoice(draft.id)
    payment = client.v1.invoice_payments.list(params={"invoice": draft.id}).data[0]
    return Paid(draft.id, payment.payment.charge, amount, currency)


@dataclass
class Story:
    """What ``money_story`` did, for the assertions."""

    paid: list[Paid] = field(default_factory=list)
    fx: Paid | None = None
    refunded: Paid | None = None
    refund_ids: list[str] = field(default_factory=list)
    won: str = ""
    lost: str = ""
    payouts: list[str] = field(default_factory=list)


def money_story(sandbox, *, invoices: int = 4) -> Story:
    """USD invoices paid, one EUR invoice settled in USD at 1.10, a partial refund, a dispute won and one lost,
    a Stripe fee, then two days on: the automatic payout sweeps what is available and is paid."""
    client = sdk(sandbox)
    story = Story()
    sandbox.set_settlement("eur", "usd", "1.10")
    for i in range(invoices):
        story.paid.append(paid_invoice(sandbox, client, 10_000 + 1_000 * i))
    story.fx = paid_invoice(sandbox, client, 25_000, "eur")
    story.refunded = story.paid[0]
    story.refund_ids = [r["id"] for r in sandbox.refund(story.paid[0].invoice_id, 3_000)]
    story.won = sandbox.dispute(story.paid[1].invoice_id)["id"]
    story.lost = sandbox.dispute(story.paid[2].invoice_id)["id"]
    sandbox.win_dispute(story.won)
    sandbox.lose_dispute(story.lost)
    sandbox.add_stripe_fee(150, "usd")
    sandbox.advance_clock(3 * DAY)
    story.payouts = [p["id"] for p in sandbox.run_payouts()]
    sandbox.advance_clock(3 * DAY)
    sandbox.run_payouts()  # the payout arrives: paid, reconciliation completed
    return story


def cash_tables(warehouse) -> dict[str, dict[str, dict[str, Any]]]:
    """Every cash table as {key: row without bookkeeping columns}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for table, key in TABLES.items():
        rows = warehouse.rows(f"SELECT to_jsonb(t) FROM closeout_data.{table} t")
        out[table] = {r[0][key]: {k: v for k, v in r[0].items() if k not in BOOKKEEPING} for r in rows}
    return out


def stripe_requests(sandbox, path: str | None = None) -> int:
    stats = sandbox.stats()
    return stats["requests"] if path is None else stats["by_path"].get(path, 0)
