"""Following published invoices through Stripe's events: inbox, backfill, apply, hosted URLs.

Events arrive two ways: the webhook receiver stores them raw in the inbox, and ``backfill`` lists
``/v1/events`` from a cursor (with an overlap, inside Stripe's 30-day window) to catch what was never
delivered. Both land in ``stripe_events``, one row per event id, so a duplicate is a no-op.

``apply`` takes the unprocessed events (and the parked ones, again) in the order Stripe created them and
decides each against the invoice's current state (``transitions``), so late, duplicated or shuffled
deliveries end where in-order delivery would. Payments, refunds and disputes go to the payment history
once each. An event that matches nothing closeout published is parked with the reason and looked at again
on later runs; nothing is guessed. Only these events make an invoice paid.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout.billing import lifecycle
from closeout.payments import exceptions, transitions
from closeout.payments.collections import fresh_link_expiry
from closeout.payments.hook import StripeHook
from closeout.sanitize.events import ingest_stripe_inbox, store_backfill_page

log = logging.getLogger(__name__)

APPLY_BATCH = 5000
EVENT_WINDOW = timedelta(days=30)
WINDOW_MARGIN = timedelta(hours=1)
PAYMENT_TYPES = ("invoice_payment.paid",)
REFUND_TYPES = ("charge.refunded",)
DISPUTE_TYPES = ("charge.dispute.created",)


# -- arrival ----------------------------------------------------------------------------------------
def ingest_webhooks(conn: psycopg.Connection) -> dict[str, int]:
    """Move the Stripe events the receiver stored into ``stripe_events`` (set-based; duplicates vanish). An
    event Postgres or closeout cannot take is quarantined by itself (``closeout.sanitize.events``)."""
    return ingest_stripe_inbox(conn)


def backfill(conn: psycopg.Connection, hook: StripeHook, *, account: str = "stripe_default") -> dict[str, int]:
    """List ``/v1/events`` since the cursor minus the overlap (never beyond the 30-day window), storing each
    page as it comes. The cursor moves only once the whole listing is stored."""
    now = datetime.now(UTC)
    floor = int((now - EVENT_WINDOW + WINDOW_MARGIN).timestamp())
    row = conn.execute(
        "SELECT last_created FROM closeout_data.stripe_event_cursor WHERE account = %s", (account,)
    ).fetchone()
    since = floor if row is None else max(row[0] - hook.settings.backfill_overlap_seconds, floor)
    requests_before = hook.requests
    seen = new = 0
    newest = row[0] if row else since
    quarantined = duplicates = 0
    for page in hook.iter_events(since):
        seen += len(page.events)
        stored = store_backfill_page(conn, page.body)  # a poisoned event is quarantined, the page goes on
        new, quarantined = new + stored.new, quarantined + stored.quarantined
        duplicates += stored.duplicates
        newest = max(newest, stored.newest or newest)
    conn.execute(
        """INSERT INTO closeout_data.stripe_event_cursor (account, last_created) VALUES (%s, %s)
           ON CONFLICT (account) DO UPDATE SET last_created = greatest(stripe_event_cursor.last_created,
               excluded.last_created), updated_at = clock_timestamp()""",
        (account, newest),
    )
    conn.commit()
    return {"since": since, "seen": seen, "new": new, "quarantined": quarantined, "duplicates": duplicates,
            "requests": hook.requests - requests_before}


# -- applying ---------------------------------------------------------------------------------------
@dataclass
class Invoice:
    invoice_id: str
    stripe_invoice_id: str
    status: str
    amount_paid: int
    total: int
    currency: str
    payments_sum: int
    original_status: str = ""
    original_paid: int = 0
    original_number: str | None = None
    original_url: str | None = None
    number: str | None = None
    hosted_url: str | None = None

    def changed(self) -> bool:
        """Anything to write: a status or amount step, or a number or hosted link Stripe changed."""
        return (
            (self.status, self.amount_paid) != (self.original_status, self.original_paid)
            or self.number not in (None, self.original_number)
            or self.hosted_url not in (None, self.original_url)
        )

    history: list[tuple[str, str, int, int, str, str | None]] = field(default_factory=list)


@dataclass
class Result:
    event_id: str
    outcome: str
    reason: str
    invoice_id: str | None = None


class _Batch:
    """One batch of events and the state they act on, loaded in a few set-wise queries."""

    def __init__(self, conn: psycopg.Connection, events: list[dict[str, Any]]) -> None:
        self.events = events
        stripe_ids = {self._invoice_ref(e) for e in events} - {None}
        charge_ids = {self._charge_ref(e) for e in events} - {None}
        with conn.cursor(row_factory=dict_row) as cur:
            # charges first: a refund or dispute names a charge, whose invoice may have no event in this batch
            charge_rows = cur.execute(
                """SELECT charge_id, invoice_id FROM closeout_data.invoice_payments
                   WHERE charge_id = ANY(%s) AND kind = 'payment'""",
                (list(charge_ids),),
            ).fetchall()
            self.charges: dict[str, str] = {r["charge_id"]: r["invoice_id"] for r in charge_rows}
            rows = cur.execute(
                """SELECT i.invoice_id, i.stripe_invoice_id, i.status, i.amount_paid_minor, i.total_minor, i.currency,
                          i.stripe_number, i.hosted_invoice_url,
                          coalesce((SELECT sum(amount_minor) FROM closeout_data.invoice_payments p
                                    WHERE p.invoice_id = i.invoice_id AND p.kind = 'payment'), 0) AS payments_sum
                   FROM closeout_data.invoices i
                   WHERE i.stripe_invoice_id = ANY(%s) OR i.invoice_id = ANY(%s)""",
                (list(stripe_ids), list(self.charges.values())),
            ).fetchall()
        self.invoices = {
            r["stripe_invoice_id"]: Invoice(r["invoice_id"], r["stripe_invoice_id"], r["status"],
                                            r["amount_paid_minor"], r["total_minor"], r["currency"],
                                            int(r["payments_sum"]), r["status"], r["amount_paid_minor"],
                                            r["stripe_number"], r["hosted_invoice_url"])
            for r in rows
        }  # fmt: skip
        self.by_id = {inv.invoice_id: inv for inv in self.invoices.values()}
        self.payments: list[tuple[Any, ...]] = []
        self.exceptions: list[dict[str, Any]] = []
        self.refetch: list[tuple[dict[str, Any], Invoice]] = []

    @staticmethod
    def _invoice_ref(event: dict[str, Any]) -> str | None:
        obj = event["body"]["data"]["object"]
        if event["event_type"].startswith("invoice."):
            return obj.get("id")
        if event["event_type"].startswith("invoice_payment."):
            return obj.get("invoice")
        return None

    @staticmethod
    def _charge_ref(event: dict[str, Any]) -> str | None:
        obj = event["body"]["data"]["object"]
        if event["event_type"] in REFUND_TYPES:
            return obj.get("id")
        if event["event_type"].startswith("charge.dispute."):
            return obj.get("charge")
        return None


def apply(conn: psycopg.Connection, hook: StripeHook | None) -> dict[str, int]:
    """Process every unprocessed or parked event, oldest first, in batches; returns outcome counts."""
    counts: Counter[str] = Counter()
    after: tuple[datetime, str] | None = None
    while True:
        with conn.cursor(row_factory=dict_row) as cur:
            events = cur.execute(
                """SELECT event_id, event_type, created_at, object_id, body, outcome FROM closeout_data.stripe_events
                   WHERE (processed_at IS NULL OR outcome = 'parked')
                     AND (%(after)s::timestamptz IS NULL OR (created_at, event_id) > (%(after)s, %(after_id)s))
                   ORDER BY created_at, event_id LIMIT %(limit)s""",
                {"after": after[0] if after else None, "after_id": after[1] if after else None, "limit": APPLY_BATCH},
            ).fetchall()
        if not events:
            break
        after = (events[-1]["created_at"], events[-1]["event_id"])
        results = _apply_batch(conn, hook, events)
        counts.update(r.outcome for r in results)
        conn.commit()
    return dict(counts)


def _apply_batch(conn: psycopg.Connection, hook: StripeHook | None, events: list[dict[str, Any]]) -> list[Result]:
    batch = _Batch(conn, events)
    results = [_decide_alone(batch, event) for event in events]
    for event, invoice in batch.refetch:
        results = [r for r in results if r.event_id != event["event_id"]]
        results.append(_resolve_conflict(batch, hook, event, invoice))
    _write(conn, batch, results)
    return results


def _decide_alone(batch: _Batch, event: dict[str, Any]) -> Result:
    """``_decide``, but an event whose own data breaks it is quarantined and undone, not the batch's end."""
    marks = (len(batch.payments), len(batch.exceptions), len(batch.refetch))
    try:
        result = _decide(batch, event)
        if any(not -(2**63) <= p[3] < 2**63 for p in batch.payments[marks[0]:]):
            raise OverflowError("amount beyond bigint")
        return result
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, ArithmeticError) as exc:
        del batch.payments[marks[0]:], batch.exceptions[marks[1]:], batch.refetch[marks[2]:]
        return Result(event["event_id"], "quarantined", f"cannot be applied: {type(exc).__name__}: {exc}"[:500])


def _decide(batch: _Batch, event: dict[str, Any]) -> Result:
    etype, eid, obj = event["event_type"], event["event_id"], event["body"]["data"]["object"]
    if etype.startswith("invoice."):
        invoice = batch.invoices.get(obj.get("id"))
        if invoice is None:
            return Result(eid, "parked", f"Stripe invoice {obj.get('id')} matches no invoice closeout published")
        return _invoice_snapshot(batch, event, invoice, obj)
    if etype in PAYMENT_TYPES:
        invoice = batch.invoices.get(obj.get("invoice"))
        if invoice is None:
            return Result(eid, "parked", f"payment {obj.get('id')} is for Stripe invoice {obj.get('invoice')}, "
                          "which matches no invoice closeout published")  # fmt: skip
        return _payment(batch, event, invoice, obj)
    if etype in REFUND_TYPES or etype in DISPUTE_TYPES:
        charge = obj.get("id") if etype in REFUND_TYPES else obj.get("charge")
        invoice_id = batch.charges.get(charge)
        if invoice_id is None or invoice_id not in batch.by_id:
            return Result(eid, "parked", f"charge {charge} matches no recorded payment of a closeout invoice")
        return _refund_or_dispute(batch, event, batch.by_id[invoice_id], obj)
    return Result(eid, "ignored", f"{etype} does not change an invoice closeout follows")


def _invoice_snapshot(batch: _Batch, event: dict[str, Any], invoice: Invoice, obj: dict[str, Any]) -> Result:
    eid, etype = event["event_id"], event["event_type"]
    if etype == "invoice.deleted":
        batch.exceptions.append({"kind": "stripe_draft_deleted", "invoice_id": invoice.invoice_id,
                                 "stripe_object_id": obj.get("id"),
                                 "message": f"invoice {invoice.invoice_id}: its Stripe draft {obj.get('id')} was "
                                            "deleted in Stripe before it was finalized"})  # fmt: skip
        return Result(eid, "no_change", "Stripe draft deleted: exception opened", invoice.invoice_id)
    if etype == "invoice.payment_failed":
        batch.payments.append((f"failed:{eid}", invoice.invoice_id, "payment_failed", 0, invoice.currency,
                               event["created_at"], obj.get("id"), None, eid))  # fmt: skip
    if obj.get("status") != "draft" and obj.get("total") is not None and obj["total"] != invoice.total:
        message = (f"invoice {invoice.invoice_id}: Stripe invoice {obj.get('id')} now totals {obj['total']} "
                   f"{invoice.currency} minor units, ours {invoice.total}")  # fmt: skip
        batch.exceptions.append({"kind": "total_mismatch", "invoice_id": invoice.invoice_id,
                                 "stripe_object_id": obj.get("id"), "our_total_minor": invoice.total,
                                 "stripe_total_minor": obj["total"], "currency": invoice.currency,
                                 "message": message})  # fmt: skip
    paid = max(int(obj.get("amount_paid") or 0), invoice.payments_sum)
    decision = transitions.decide(invoice.status, invoice.amount_paid, obj.get("status", ""), paid)
    if decision.outcome == "conflict":
        batch.refetch.append((event, invoice))
        return Result(eid, "parked", decision.reason, invoice.invoice_id)
    if obj.get("number"):
        invoice.number = obj["number"]
    if obj.get("hosted_invoice_url"):
        invoice.hosted_url = obj["hosted_invoice_url"]
    return _move(invoice, decision, eid, "event")


def _move(invoice: Invoice, decision: transitions.Decision, eid: str, via: str) -> Result:
    if decision.outcome == "applied":
        invoice.history.append((invoice.status, decision.status, invoice.amount_paid, decision.amount_paid, via, eid))
        invoice.status, invoice.amount_paid = decision.status, decision.amount_paid
    return Result(eid, decision.outcome, decision.reason, invoice.invoice_id)


def _payment(batch: _Batch, event: dict[str, Any], invoice: Invoice, obj: dict[str, Any]) -> Result:
    charge = (obj.get("payment") or {}).get("charge")
    amount = int(obj.get("amount_paid") or 0)
    paid_at = datetime.fromtimestamp((obj.get("status_transitions") or {}).get("paid_at") or obj["created"], UTC)
    batch.payments.append((obj["id"], invoice.invoice_id, "payment", amount, invoice.currency, paid_at, obj["id"],
                           charge, event["event_id"]))  # fmt: skip
    if charge:
        batch.charges[charge] = invoice.invoice_id
    return Result(event["event_id"], "applied", f"payment {obj['id']} of {amount}", invoice.invoice_id)


def _refund_or_dispute(batch: _Batch, event: dict[str, Any], invoice: Invoice, obj: dict[str, Any]) -> Result:
    eid, etype = event["event_id"], event["event_type"]
    at = event["created_at"]
    if etype in REFUND_TYPES:
        previous = (event["body"]["data"].get("previous_attributes") or {}).get("amount_refunded", 0)
        refunded = int(obj.get("amount_refunded") or 0)
        amount = refunded - int(previous or 0)
        batch.payments.append((f"refund:{obj['id']}:{refunded}", invoice.invoice_id, "refund", max(amount, 0),
                               invoice.currency, at, obj["id"], obj["id"], eid))  # fmt: skip
        return Result(eid, "applied", f"refund of {amount} on charge {obj['id']}", invoice.invoice_id)
    batch.payments.append((obj["id"], invoice.invoice_id, "dispute", int(obj.get("amount") or 0), invoice.currency,
                           at, obj["id"], obj.get("charge"), eid))  # fmt: skip
    batch.exceptions.append({"kind": "dispute", "invoice_id": invoice.invoice_id, "stripe_object_id": obj["id"],
                             "currency": invoice.currency, "stripe_total_minor": obj.get("amount"),
                             "message": f"invoice {invoice.invoice_id}: dispute {obj['id']} of {obj.get('amount')} "
                                        f"{invoice.currency} minor units ({obj.get('reason')})"})  # fmt: skip
    return Result(eid, "applied", f"dispute {obj['id']}", invoice.invoice_id)


def _resolve_conflict(batch: _Batch, hook: StripeHook | None, event: dict[str, Any], invoice: Invoice) -> Result:
    """Two final states disagree: Stripe's current invoice decides."""
    eid = event["event_id"]
    if hook is None:
        return Result(eid, "parked", "conflicting final states; needs a re-read from Stripe", invoice.invoice_id)
    current = hook.retrieve_invoice(invoice.stripe_invoice_id)
    if transitions.FROM_STRIPE.get(current["status"]) == invoice.status:
        return Result(eid, "stale", f"re-read from Stripe: still {invoice.status}", invoice.invoice_id)
    message = (f"invoice {invoice.invoice_id}: closeout has {invoice.status}, Stripe now says {current['status']}; "
               "final states are never rewritten, a person decides")  # fmt: skip
    batch.exceptions.append({"kind": "status_conflict", "invoice_id": invoice.invoice_id,
                             "stripe_object_id": invoice.stripe_invoice_id, "message": message})  # fmt: skip
    return Result(eid, "parked", f"Stripe says {current['status']}, closeout has {invoice.status}", invoice.invoice_id)


def _write(conn: psycopg.Connection, batch: _Batch, results: list[Result]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO closeout_data.invoice_payments (payment_ref, invoice_id, kind, amount_minor, currency,
                   occurred_at, stripe_object_id, charge_id, event_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (payment_ref) DO NOTHING""",
            batch.payments,
        )
        _write_invoices(conn, cur, list(batch.invoices.values()))
        for exc in batch.exceptions:
            exceptions.open_exception(cur, **exc)
        cur.executemany(
            """UPDATE closeout_data.stripe_events SET processed_at = clock_timestamp(), outcome = %s, reason = %s,
                   invoice_id = coalesce(%s, invoice_id), attempts = attempts + 1 WHERE event_id = %s""",
            [(r.outcome, r.reason, r.invoice_id, r.event_id) for r in results],
        )


def _write_invoices(conn: psycopg.Connection, cur: psycopg.Cursor, invoices: list[Invoice]) -> None:
    """All of a batch's invoice changes in two pipelined statements (voids go through billing.lifecycle,
    which also releases the invoice's entries to be billed again)."""
    for invoice in invoices:
        if invoice.status == "void" and invoice.original_status != "void":
            lifecycle.void(conn, invoice.invoice_id)
    changed = [i for i in invoices if i.changed()]
    cur.executemany(
        """UPDATE closeout_data.invoices SET status = %(status)s, amount_paid_minor = %(paid)s,
               stripe_number = coalesce(%(number)s, stripe_number),
               hosted_invoice_url = coalesce(%(url)s, hosted_invoice_url), updated_at = clock_timestamp()
           WHERE invoice_id = %(id)s
             AND (status, amount_paid_minor, stripe_number, hosted_invoice_url) IS DISTINCT FROM
                 (%(status)s, %(paid)s, coalesce(%(number)s, stripe_number), coalesce(%(url)s, hosted_invoice_url))""",
        [{"status": i.status, "paid": i.amount_paid, "number": i.number, "url": i.hosted_url, "id": i.invoice_id}
         for i in changed],
    )  # fmt: skip
    cur.executemany(
        """INSERT INTO closeout_data.invoice_status_history (invoice_id, from_status, to_status, amount_paid_before,
               amount_paid_after, via, event_id) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        [(i.invoice_id, *h) for i in invoices for h in i.history],
    )


# -- hosted invoice URLs ------------------------------------------------------------------------------
def refresh_hosted_urls(conn: psycopg.Connection, hook: StripeHook) -> int:
    """Re-read the hosted invoice page of unpaid invoices whose link expires within ``url_refresh_days``."""
    rows = conn.execute(
        """SELECT i.invoice_id, i.stripe_invoice_id FROM closeout_data.invoices i
           WHERE i.status IN ('open', 'uncollectible') AND i.stripe_invoice_id IS NOT NULL
             AND (i.hosted_invoice_url_expires_at IS NULL
                  OR i.hosted_invoice_url_expires_at < clock_timestamp() + make_interval(days => %s))
           ORDER BY i.hosted_invoice_url_expires_at NULLS FIRST LIMIT 1000""",
        (hook.settings.url_refresh_days,),
    ).fetchall()
    refreshed = 0
    for invoice_id, stripe_id in rows:
        current = hook.retrieve_invoice(stripe_id)
        # a link the API returns lives until the invoice's own expiry, and 10 days at least (Stripe's docs)
        expires = fresh_link_expiry(current, datetime.now(UTC))
        conn.execute(
            """UPDATE closeout_data.invoices SET hosted_invoice_url = coalesce(%s, hosted_invoice_url),
                   hosted_invoice_url_expires_at = %s, updated_at = clock_timestamp() WHERE invoice_id = %s""",
            (current.get("hosted_invoice_url"), expires, invoice_id),
        )
        refreshed += 1
    conn.commit()
    return refreshed
