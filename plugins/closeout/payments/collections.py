"""Collections: no customer is left holding a dead payment link.

Stripe's hosted invoice page link expires 30 days after the due date, never more than 120 days after
finalization, and an open invoice's due date cannot be changed (the API edits ``due_date`` on drafts only).
Two different links matter:

* closeout's own copy (``closeout.invoices.hosted_invoice_url``): ``events.refresh_hosted_urls`` re-reads it
  from the API ahead of expiry; any link the API returns is valid for at least 10 more days. That keeps the
  link finance and the close report hand out live, but puts nothing in the customer's hands.
* the link the customer holds (``closeout_data.customer_payment_links``): the one issued at finalization,
  then each one a send e-mailed them. When it has expired on an invoice still owed, the customer holds a
  dead link (``closeout.dead_payment_links``).

For each such invoice and expired link, one decision is recorded in ``closeout_data.collection_actions`` by
the client's ``collections_policy`` (billing configuration):

* ``resend`` (default): ``POST /v1/invoices/{id}/send`` e-mails the invoice with a fresh link. The call goes
  through the Stripe outbox with a deterministic key (invoice id + the expiry of the dead link) recorded
  before the call, so a timeout after Stripe sent it replays instead of e-mailing twice; a key older than
  Stripe keeps is first looked up in Stripe's ``invoice.sent`` events. The fresh link becomes the customer's
  link and closeout's copy.
* ``notify_finance``: finance is told once per invoice and expired link through the alert path
  (``closeout_data.alert_causes``/``alert_deliveries``, the finance e-mail and webhook); the cause resolves
  itself once the customer no longer holds that dead link.

Checking links is done through the API (the re-read), not by fetching the customer's URL: Stripe documents
the expiry rule, the hosted page is for people (an expired link redirects to a page that says so) and is
no API contract.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout.alerts import record, routing
from closeout.alerts.compose import FinanceAlert, major_units, mask_text
from closeout.paths import load_sql
from closeout.payments import exceptions
from closeout.payments.hook import StripeHook
from closeout.payments.publish import (
    Operation,
    Outcome,
    PublishSummary,
    _complete,
    _guarded,
    _key_may_be_gone,
    _record,
    hosted_url_expiry,
)

log = logging.getLogger(__name__)

# Any link the API hands out is valid for at least this long (docs.stripe.com/invoicing/hosted-invoice-page).
SHOWN_LINK_DAYS = 10
ALERT_DAG_ID = "closeout_stripe_events"
ALERT_TASK_ID = "dead_payment_link"  # no task has this id: a task's success never resolves these causes
SEND_OPERATION = "invoice.send"

Sender = Callable[[FinanceAlert, str], object]  # (alert, delivery identity: Message-ID / Idempotency-Key)


class CollectionsIncomplete(RuntimeError):
    """Some sends or notices failed transiently; they stay pending and the next run (or retry) resumes them."""


@dataclass
class CollectionsSummary:
    dead_links: int = 0
    decided_resend: int = 0
    decided_notify: int = 0
    sent: int = 0
    replays: int = 0
    found_sent: int = 0
    notified: int = 0
    skipped: int = 0
    refused: int = 0
    transient_errors: int = 0
    causes_resolved: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {"errors": self.errors[:20]}


# -- the customer's link ------------------------------------------------------------------------------
def record_customer_links(conn: psycopg.Connection) -> int:
    """Record the link each newly issued invoice's customer holds (the finalization link, as closeout first
    saw it; later, the link of the latest ``invoice.sent`` event, whoever sent it). Runs before
    ``events.refresh_hosted_urls`` replaces closeout's copy. Committed."""
    count = conn.execute(load_sql("collections/10_customer_links.sql")).rowcount
    conn.execute(load_sql("collections/15_sent_links.sql"))  # sends made outside closeout (the Dashboard)
    conn.commit()
    return count


def fresh_link_expiry(invoice: Mapping[str, Any], at: datetime) -> datetime:
    """Until when a link the API returned at ``at`` lives: the invoice's own expiry, and 10 days at least."""
    transitions = invoice.get("status_transitions") or {}
    finalized = _ts(transitions.get("finalized_at")) or at
    natural = hosted_url_expiry(finalized, _ts(invoice.get("due_date")))
    return max(natural, at + timedelta(days=SHOWN_LINK_DAYS))


# -- entry point ------------------------------------------------------------------------------------
def collect(
    conn: psycopg.Connection,
    hook: StripeHook,
    *,
    senders: Mapping[str, Sender] | None = None,
    run_id: str | None = None,
) -> CollectionsSummary:
    """Decide for every dead link, carry out what was decided (resend or tell finance), resolve the notices
    whose dead link is gone. ``senders`` maps finance channels to senders (default: the finance e-mail and
    webhook connections). Raises ``CollectionsIncomplete`` at the end if anything must be retried."""
    summary = CollectionsSummary()
    record_customer_links(conn)
    for _invoice_id, action in conn.execute(load_sql("collections/20_decide.sql"),
                                            {"prefix": hook.settings.key_prefix}).fetchall():  # fmt: skip
        summary.decided_resend += action == "resend"
        summary.decided_notify += action == "notify_finance"
    summary.skipped = len(conn.execute(load_sql("collections/30_skip_settled.sql")).fetchall())
    conn.commit()
    _resend(conn, hook, summary)
    _notify(conn, senders or default_senders(), summary, run_id)
    summary.causes_resolved = conn.execute(load_sql("collections/60_resolve_notices.sql")).rowcount
    (summary.dead_links,) = conn.execute("SELECT count(*) FROM closeout.dead_payment_links").fetchone()
    conn.commit()
    if summary.transient_errors:
        raise CollectionsIncomplete(
            f"{summary.transient_errors} collections actions failed transiently and stay pending for the retry; "
            f"first errors: {'; '.join(summary.errors[:3])}"
        )
    return summary


# -- resend through the outbox --------------------------------------------------------------------------
def _resend(conn: psycopg.Connection, hook: StripeHook, summary: CollectionsSummary) -> None:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(load_sql("collections/40_pending_resends.sql")).fetchall()
    if not rows:
        return
    ops = [Operation(r["idempotency_key"], SEND_OPERATION, r["client_key"], r["recorded_request"] or {},
                     r["invoice_id"], context={"stripe_invoice_id": r["stripe_invoice_id"],
                                               "link_expired_at": r["link_expired_at"]})
           for r in rows]  # fmt: skip
    batch = _record(conn, ops)  # committed: from here a send under these keys may have happened

    def execute(op: Operation) -> Outcome:
        sid = op.context["stripe_invoice_id"]
        if _key_may_be_gone(op, hook):
            sent = _sent_since(hook, sid, op.created_at)
            if sent is not None:
                return Outcome(op, sent, "metadata_lookup")
        result = hook.send_invoice(sid, op.key)
        return Outcome(op, result.obj, "replay" if result.replayed else "response")

    with ThreadPoolExecutor(max_workers=hook.settings.concurrency) as pool:
        outcomes = list(pool.map(lambda op: _guarded(execute, op), batch))
    publish_summary = PublishSummary()
    now = datetime.now(UTC)
    with conn.cursor() as cur:
        _complete(cur, outcomes, publish_summary)
        for o in outcomes:
            if o.obj:
                _record_sent(cur, o, now)
                summary.sent += o.resolved_by == "response"
                summary.replays += o.resolved_by == "replay"
                summary.found_sent += o.resolved_by == "metadata_lookup"
            elif o.error and o.error.retryable:
                summary.transient_errors += 1
                summary.errors.append(f"{o.op.key}: {o.error}")
                cur.execute(
                    """UPDATE closeout_data.collection_actions SET attempts = attempts + 1, detail = %s
                       WHERE invoice_id = %s AND link_expired_at = %s AND state = 'pending'""",
                    (str(o.error)[:1000], o.op.invoice_id, o.op.context["link_expired_at"]),
                )
            else:
                summary.refused += 1
                message = (f"invoice {o.op.invoice_id}: Stripe refused to send it again with a fresh link "
                           f"(the customer's link expired {o.op.context['link_expired_at']:%Y-%m-%d}): {o.error}")
                cur.execute(
                    """UPDATE closeout_data.collection_actions SET state = 'failed', attempts = attempts + 1,
                           detail = %s, completed_at = clock_timestamp()
                       WHERE invoice_id = %s AND link_expired_at = %s AND state = 'pending'""",
                    (message[:1000], o.op.invoice_id, o.op.context["link_expired_at"]),
                )
                exceptions.open_exception(cur, kind="collections_send_refused", message=message,
                                          invoice_id=o.op.invoice_id,
                                          stripe_object_id=o.op.context["stripe_invoice_id"])  # fmt: skip
    conn.commit()


def _record_sent(cur: psycopg.Cursor, outcome: Outcome, now: datetime) -> None:
    """The fresh link the send put in the customer's hands: theirs now, and closeout's copy if newer."""
    obj = outcome.obj or {}
    # the send happened at the first attempt or later: counting from the first attempt never overstates the link
    sent_at = _ts(obj.get("_sent_at")) or outcome.op.created_at or now
    url, expires = obj.get("hosted_invoice_url"), fresh_link_expiry(obj, sent_at)
    key = (outcome.op.invoice_id, outcome.op.context["link_expired_at"])
    cur.execute(
        """UPDATE closeout_data.collection_actions SET state = 'done', attempts = attempts + 1,
               new_hosted_invoice_url = %s, new_link_expires_at = %s, completed_at = clock_timestamp(),
               detail = %s
           WHERE invoice_id = %s AND link_expired_at = %s AND state = 'pending'""",
        (url, expires, f"sent ({outcome.resolved_by})", *key),
    )
    cur.execute(
        """UPDATE closeout_data.customer_payment_links SET hosted_invoice_url = %s, expires_at = %s,
               delivered_via = 'send', delivered_at = clock_timestamp(), updated_at = clock_timestamp()
           WHERE invoice_id = %s AND expires_at = %s""",
        (url, expires, *key),
    )
    cur.execute(
        """UPDATE closeout_data.invoices SET hosted_invoice_url = %s, hosted_invoice_url_expires_at = %s,
               updated_at = clock_timestamp()
           WHERE invoice_id = %s AND %s::text IS NOT NULL
             AND (hosted_invoice_url_expires_at IS NULL OR hosted_invoice_url_expires_at <= %s)""",
        (url, expires, outcome.op.invoice_id, url, expires),
    )


def _sent_since(hook: StripeHook, stripe_invoice_id: str, since: datetime | None) -> dict[str, Any] | None:
    """The invoice as an ``invoice.sent`` event after ``since`` shows it (our key may be gone: did the send
    happen?). Events go back 30 days; a key is trusted for 24 h, so a send that happened is still listed."""
    start = int((since or datetime.now(UTC) - timedelta(days=1)).timestamp()) - 60
    for page in hook.iter_events(start):
        for event in page.events:
            obj = event.get("data", {}).get("object", {})
            if event.get("type") == "invoice.sent" and obj.get("id") == stripe_invoice_id:
                return {**obj, "_sent_at": event.get("created")}
    return None


# -- tell finance ---------------------------------------------------------------------------------------
def default_senders() -> dict[str, Sender]:
    """The finance e-mail and webhook, as every finance alert uses them, each send carrying the delivery's
    identity (``closeout.alerts.notify.delivery_id``), so a resend after a worker died between the send and its
    record is recognisably the same notice."""
    from closeout.alerts.mail import send_email
    from closeout.alerts.webhook import post_webhook

    return {routing.FINANCE_SMTP: lambda alert, d: send_email(alert, routing.FINANCE_SMTP, message_id=d),
            routing.FINANCE_WEBHOOK: lambda alert, d: post_webhook(alert, routing.FINANCE_WEBHOOK,
                                                                 idempotency_key=d)}  # fmt: skip


def _notify(conn: psycopg.Connection, senders: Mapping[str, Sender], summary: CollectionsSummary,
            run_id: str | None) -> None:  # fmt: skip
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(load_sql("collections/50_pending_notices.sql")).fetchall()
    if not rows:
        return
    from closeout.alerts.notify import delivery_id, known_secrets

    secrets = known_secrets()
    for row in rows:
        key = (row["invoice_id"], row["link_expired_at"])
        alert = compose_dead_link_alert(row, secrets)
        cause_id = row["alert_cause_id"]
        if cause_id is None:
            cause_id, _ = record.record_failure(conn, _cause(row, alert), run_id)
            conn.execute(
                "UPDATE closeout_data.collection_actions SET alert_cause_id = %s WHERE invoice_id = %s "
                "AND link_expired_at = %s",
                (cause_id, *key),
            )
            conn.commit()
        problems = []
        for channel, send in senders.items():
            identity = delivery_id(cause_id, _cause(row, alert).fingerprint, channel)
            status, error = record.deliver_once(conn, cause_id, channel, alert.subject,
                                                lambda s=send, a=alert, d=identity: s(a, d))  # fmt: skip
            if status == "failed":
                problems.append(f"{channel}: {error}")
        if problems:
            summary.transient_errors += 1
            summary.errors.append(f"notice for invoice {row['invoice_id']}: {'; '.join(problems)}")
            conn.execute(
                """UPDATE closeout_data.collection_actions SET attempts = attempts + 1, detail = %s
                   WHERE invoice_id = %s AND link_expired_at = %s""",
                ("; ".join(problems)[:1000], *key),
            )
        else:
            summary.notified += 1
            conn.execute(
                """UPDATE closeout_data.collection_actions SET state = 'done', attempts = attempts + 1,
                       completed_at = clock_timestamp(), detail = %s
                   WHERE invoice_id = %s AND link_expired_at = %s AND state = 'pending'""",
                (f"finance told ({', '.join(senders)})", *key),
            )
        conn.commit()


def compose_dead_link_alert(row: Mapping[str, Any], secrets: list[str] | None = None) -> FinanceAlert:
    """What finance needs to chase the payment: who, which invoice, how much, since when the link is dead,
    and how to get the customer a live one."""
    amount = major_units(int(row["amount_remaining_minor"]), row["currency"],
                         {row["currency"]: row["exponent"]} if row.get("exponent") is not None else None)  # fmt: skip
    number = row.get("stripe_number") or row["stripe_invoice_id"]
    expired = row["link_expired_at"]
    due = f", due {row['due_date']:%Y-%m-%d}" if row.get("due_date") else ""
    subject = f"closeout: {row['client_name']} holds an expired payment link for invoice {number} ({amount} owed)"
    text = "\n".join([
        f"The payment link {row['client_name']} ({row['client_key']}) holds for invoice {number} expired on "
        f"{expired:%Y-%m-%d %H:%M} UTC. The invoice is still owed: {amount}"
        f"{due}.",
        "",
        f"closeout invoice: {row['invoice_id']}",
        f"Stripe invoice:   {row['stripe_invoice_id']}",
        "",
        "This client's collections_policy is notify_finance, so closeout did not e-mail the customer. To give them",
        "a live link, send the invoice again from the Stripe Dashboard (or set collections_policy: resend).",
        "Evidence: closeout.dead_payment_links, closeout.collection_actions.",
    ])  # fmt: skip
    payload = {"kind": "dead_payment_link", "invoice_id": row["invoice_id"],
               "stripe_invoice_id": row["stripe_invoice_id"], "stripe_number": row.get("stripe_number"),
               "client_key": row["client_key"], "client_name": row["client_name"], "currency": row["currency"],
               "amount_remaining_minor": int(row["amount_remaining_minor"]), "link_expired_at": expired.isoformat(),
               "due_date": row["due_date"].isoformat() if row.get("due_date") else None, "text": text}  # fmt: skip
    if secrets:
        subject, text = mask_text(subject, secrets), mask_text(text, secrets)
        payload["text"] = text
    return FinanceAlert(subject, text, payload)


def _cause(row: Mapping[str, Any], alert: FinanceAlert) -> record.Cause:
    """One cause per invoice and expired link: the alert path sends it once per channel."""
    identity = f"dead_payment_link/{row['invoice_id']}/{int(row['link_expired_at'].timestamp())}"
    return record.Cause(hashlib.sha256(identity.encode()).hexdigest(), ALERT_DAG_ID, ALERT_TASK_ID,
                        "DeadPaymentLink", identity, alert.subject[:4000], True)  # fmt: skip


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


