"""Planning: payout items for work on paid invoices, grouped into bounded batches with deterministic ids.

An item is one payee's work on one paid invoice, in the payee's currency (unique per payee, invoice and
currency: the same work is never planned twice). Its amount is the hours of the invoice's current entry
rows times the payee's cost rate, rounded once, half-up, to the currency's minor unit. Its id, its
idempotency key and its transfer request are fixed here, from its identity, and never change.

Batches: the items planned in one run, ordered by payout id, cut into groups of at most ``batch_size``
(hard cap 15,000); a batch id is a hash of its items' ids, so the same items make the same batches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from closeout.paths import load_sql
from closeout.payments.keys import _bounded
from closeout.payouts import config

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 15_000


@dataclass
class PlanSummary:
    payees: int = 0
    work_rows: int = 0
    items_planned: int = 0
    batches_planned: list[str] = field(default_factory=list)
    awaiting_approval: list[str] = field(default_factory=list)
    exceptions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def payout_id(payee_key: str, invoice_id: str, currency: str) -> str:
    return "po_" + hashlib.sha256(f"{payee_key}|{invoice_id}|{currency}".encode()).hexdigest()[:24]


def batch_id(payout_ids: list[str]) -> str:
    return "pb_" + hashlib.sha256(",".join(sorted(payout_ids)).encode()).hexdigest()[:24]


def transfer_key(prefix: str, pid: str) -> str:
    return _bounded(f"{prefix}/payout/{pid}/transfer")


def bounded_size(batch_size: int | None) -> int:
    size = int(batch_size or DEFAULT_BATCH_SIZE)
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    return min(size, MAX_BATCH_SIZE)


def plan(
    conn: psycopg.Connection,
    *,
    key_prefix: str,
    batch_size: int | None = None,
    payees: list[config.Payee] | None = None,
    planned_by: str | None = None,
) -> PlanSummary:
    """Mirror the payees, plan new items into batches, refresh the exceptions. One transaction, committed."""
    size = bounded_size(batch_size)
    summary = PlanSummary()
    payees = config.load() if payees is None else payees
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('closeout_payouts_plan', 8))")
        summary.payees = config.mirror(conn, payees)
        conn.execute(
            """CREATE TEMP TABLE payout_work (invoice_id text, payee_key text, hours numeric, entry_count integer)
               ON COMMIT DROP"""
        )
        summary.work_rows = conn.execute(load_sql("payouts/10_work.sql")).rowcount
        rows = conn.execute(load_sql("payouts/20_new_items.sql")).fetchall()
        items = []
        for invoice_id, payee_key, currency, hours, rate, entries, account, amount in rows:
            pid = payout_id(payee_key, invoice_id, currency)
            items.append((pid, invoice_id, payee_key, currency, hours, rate, entries, account, amount))
        items.sort(key=lambda i: i[0])
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            bid = batch_id([i[0] for i in chunk])
            conn.execute(
                """INSERT INTO closeout_data.payout_batches (batch_id, planned_by, item_count, size_limit)
                   VALUES (%s, %s, %s, %s)""",
                (bid, planned_by, len(chunk), size),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO closeout_data.payout_items (payout_id, batch_id, payee_key, invoice_id, currency,
                           hours, cost_rate, amount_minor, entry_count, destination, idempotency_key, request)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                    [
                        (pid, bid, payee, inv, cur_, hours, rate, amount, entries, account,
                         transfer_key(key_prefix, pid),
                         Jsonb(_request(pid, bid, payee, inv, cur_, amount, account)))
                        for pid, inv, payee, cur_, hours, rate, entries, account, amount in chunk
                    ],
                )  # fmt: skip
            summary.batches_planned.append(bid)
            summary.items_planned += len(chunk)
        conn.execute(load_sql("payouts/30_exceptions.sql"))
        # Two statements, not one with "NOT EXISTS ... OR EXISTS": an OR of sublinks cannot become a join, so
        # Postgres ran both per exception row against the unindexed work table (minutes at 500k exceptions).
        conn.execute(
            """DELETE FROM closeout_data.payout_exceptions x
               WHERE NOT EXISTS (
                   SELECT 1 FROM payout_work w
                   LEFT JOIN closeout_data.payout_payees p ON p.payee_key = w.payee_key AND p.active
                   WHERE w.invoice_id = x.invoice_id AND w.payee_key = x.payee_key
                     AND (CASE WHEN p.payee_key IS NULL THEN 'no_payee_config' ELSE 'non_positive_amount' END)
                         = x.reason)"""
        )
        conn.execute(
            """DELETE FROM closeout_data.payout_exceptions x USING closeout_data.payout_items i
               WHERE i.invoice_id = x.invoice_id AND i.payee_key = x.payee_key"""
        )
        summary.exceptions = dict(
            conn.execute("SELECT reason, count(*) FROM closeout_data.payout_exceptions GROUP BY reason").fetchall()
        )
        summary.awaiting_approval = awaiting_approval(conn)
    return summary


def awaiting_approval(conn: psycopg.Connection) -> list[str]:
    """Batches not yet approved that still have items to release."""
    return [
        b
        for (b,) in conn.execute(
            """SELECT b.batch_id FROM closeout_data.payout_batches b
               WHERE b.approved_at IS NULL
                 AND EXISTS (SELECT 1 FROM closeout_data.payout_items i
                             WHERE i.batch_id = b.batch_id AND i.status = 'pending')
               ORDER BY b.batch_id"""
        ).fetchall()
    ]


def _request(pid: str, bid: str, payee: str, invoice_id: str, currency: str, amount: int, account: str) -> dict:
    """The transfer as it will be sent, every time: same key, same parameters."""
    return {
        "amount": int(amount),
        "currency": currency.lower(),
        "destination": account,
        "transfer_group": bid,
        "description": f"closeout payout {pid}: {payee} for invoice {invoice_id}",
        "metadata": {
            "closeout_payout_id": pid,
            "closeout_batch_id": bid,
            "closeout_invoice_id": invoice_id,
            "closeout_payee": payee,
        },
    }
