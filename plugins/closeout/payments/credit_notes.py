"""Issuing recorded corrections to Stripe exactly once: credit notes and customer balance credits.

A correction (``closeout.payments.corrections``) is issued by one mutating call:

* ``credit_note.create``: ``POST /v1/credit_notes`` against the Stripe invoice it corrects, one custom line
  per entry. Stripe's rule splits it: what is still due on the invoice is reduced first
  (``pre_payment_amount``); the rest (``post_payment_amount``: the invoice is paid or partly paid) goes where
  the client's ``credit_note_policy`` says: ``refund_amount`` (a refund to the card), ``credit_amount`` (the
  customer's Stripe balance, applied to the next invoice) or ``out_of_band_amount`` (settled outside
  Stripe). The split is worked out from the invoice as Stripe holds it and confirmed with
  ``GET /v1/credit_notes/preview`` before the request is recorded. An invoice paid outside Stripe has no
  payment to refund: a refund policy records its post-payment part out of band.
* ``customer_balance.credit``: ``POST /v1/customers/{id}/balance_transactions`` with a negative amount,
  for a draft that netted negative with no single invoice to credit.

Exactly once, as every Stripe call of closeout: the key is the correction's business identity (the invoice,
or client and currency, and the correction's number), recorded in the outbox with its request and committed
before the call; a retry sends the recorded request under the same key and Stripe replays it. A key older
than Stripe keeps keys is first looked up: the invoice's credit notes (or the customer's balance
transactions) carrying the correction's metadata; only when none exists is it created, from a fresh preview.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from closeout import faults
from closeout.payments import exceptions, keys, tax_rates
from closeout.payments.corrections import record_corrections
from closeout.payments.hook import StripeCallError, StripeHook
from closeout.payments.publish import (
    Operation,
    Outcome,
    PublishSummary,
    _complete,
    _guarded,
    _key_may_be_gone,
    _record,
    stripe_tax,
)
from closeout.payments.runs import finish, start
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)

POLICY_FIELDS = {"refund": "refund_amount", "customer_balance": "credit_amount", "out_of_band": "out_of_band_amount"}


class CorrectionsIncomplete(RuntimeError):
    """Some Stripe calls failed transiently; their corrections stay pending and the retry resumes them."""


class CorrectionsStopped(RuntimeError):
    """Stripe refused corrections; they wait for a person (closeout.payment_exceptions)."""


@dataclass
class IssueSummary:
    credit_notes_issued: int = 0
    customer_balance_credits: int = 0
    found_by_metadata: int = 0
    replays: int = 0
    stopped: int = 0
    transient_errors: int = 0
    refunded_minor: int = 0
    credited_to_balance_minor: int = 0
    out_of_band_minor: int = 0
    pre_payment_minor: int = 0
    resumed: int = 0
    errors: list[str] = field(default_factory=list)


def correction_key(prefix: str, correction: dict[str, Any], resumption: int = 0) -> str:
    """From the business identity only: the invoice (or client and currency) and the correction's number, and
    the resumption after a refusal a person resolved (Stripe keeps a refusal under its key: a resumed
    correction needs a key of its own)."""
    resumed = f"/r{resumption}" if resumption else ""
    if correction["kind"] == "credit_note":
        return keys._bounded(f"{prefix}/credit_note/{correction['invoice_id']}/c{correction['seq']}/create{resumed}")
    return keys._bounded(f"{prefix}/customer_balance/{correction['client_key']}/{correction['currency']}/"
                         f"c{correction['seq']}/credit{resumed}")  # fmt: skip


def resume_resolved(conn: psycopg.Connection) -> int:
    """Stopped corrections whose refusal a person resolved (``closeout.payments.exceptions.resolve``) are issued
    again on the next run, once no refusal on their invoice is open any more."""
    cur = conn.execute(
        """UPDATE closeout_data.corrections c
           SET state = 'pending', stop_reason = NULL, updated_at = clock_timestamp()
           WHERE c.state = 'stopped'
             AND EXISTS (SELECT 1 FROM closeout_data.payment_exceptions e
                         WHERE e.kind IN ('correction_refused', 'tax_mismatch') AND e.resolved_at IS NOT NULL
                           AND e.invoice_id = coalesce(c.invoice_id, c.from_invoice_id)
                           AND e.opened_at >= c.created_at)
             AND NOT EXISTS (SELECT 1 FROM closeout_data.payment_exceptions e
                             WHERE e.kind IN ('correction_refused', 'tax_mismatch') AND e.resolved_at IS NULL
                               AND e.invoice_id = coalesce(c.invoice_id, c.from_invoice_id))"""
    )
    conn.commit()
    return cur.rowcount


def issue(conn: psycopg.Connection, hook: StripeHook) -> IssueSummary:
    """Issue every pending correction, one at a time: outbox row committed, call, answer committed."""
    summary = IssueSummary()
    summary.resumed = resume_resolved(conn)
    counts = PublishSummary()  # the outbox bookkeeping counts replays and transient errors here
    for correction in _pending(conn):
        try:
            op = _operation(conn, hook, correction)
        except StripeCallError as exc:  # the preview, before anything is recorded
            conn.rollback()  # nothing of this correction is recorded (not even what it expected)
            if exc.retryable:
                summary.transient_errors += 1
                summary.errors.append(f"{correction['correction_id']}: {exc}")
            else:
                with conn.cursor() as cur:
                    if exc.code == "tax_mismatch":  # Stripe would credit a different tax: never accepted
                        _stop(cur, correction, str(exc), kind="tax_mismatch")
                    else:
                        _stop(cur, correction, f"Stripe refused the credit note preview: {exc}")
                conn.commit()
                summary.stopped += 1
                summary.errors.append(f"{correction['correction_id']}: {exc}")
            continue
        if op is None:
            continue
        (op,) = _record(conn, [op])
        faults.point(f"stripe.{op.operation}.before_call")
        outcome = _guarded(lambda o, c=correction: _execute(conn, hook, o, c), op)
        faults.point(f"stripe.{op.operation}.after_call")
        with conn.cursor() as cur:
            _complete(cur, [outcome], counts)
            if outcome.obj:
                _apply(cur, correction, outcome, summary)
            elif outcome.stop:
                _stop(cur, correction, outcome.stop[1])
                summary.stopped += 1
        conn.commit()
    summary.replays = counts.replays
    summary.transient_errors += counts.transient_errors
    summary.errors += counts.errors
    return summary


# -- what to issue ----------------------------------------------------------------------------------------
def _pending(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT c.correction_id, c.kind, c.invoice_id, c.client_key, c.currency, c.seq, c.amount_minor,
                      c.policy, c.from_invoice_id, c.tax_minor, c.credit_total_minor, i.stripe_invoice_id,
                      i.stripe_number, s.stripe_customer_id,
                      (SELECT json_agg(json_build_object('source', x.source, 'source_id', x.source_id,
                                                         'quantity', x.quantity, 'amount_minor', x.amount_minor,
                                                         'rates', x.rates, 'spent_date', x.spent_date)
                                       ORDER BY x.source, x.source_id)
                       FROM (SELECT e.source, e.source_id, sum(e.quantity) AS quantity,
                                    sum(e.amount_minor) AS amount_minor,
                                    array_agg(DISTINCT trim_scale(e.unit_rate)::text) AS rates,
                                    min(b.spent_date) AS spent_date
                             FROM closeout_data.correction_entries e
                             LEFT JOIN closeout_data.billing_entries b
                                    ON b.source = e.source AND b.source_id = e.source_id
                             WHERE e.correction_id = c.correction_id
                             GROUP BY e.source, e.source_id) x) AS entries,
                      (SELECT json_agg(json_build_object('source', x.source, 'source_id', x.source_id,
                                                         'amount_minor', x.amount_minor, 'cost_minor', x.cost_minor,
                                                         'spent_date', h.spent_date)
                                       ORDER BY x.source, x.source_id)
                       FROM (SELECT e.source, e.source_id, sum(e.amount_minor) AS amount_minor,
                                    sum(e.cost_minor) AS cost_minor
                             FROM closeout_data.correction_expenses e
                             WHERE e.correction_id = c.correction_id
                             GROUP BY e.source, e.source_id) x
                       LEFT JOIN closeout_data.expense_heads h
                              ON h.source = x.source AND h.source_id = x.source_id) AS expenses,
                      coalesce(i.tax_rate_percent, f.tax_rate_percent) AS tax_rate_percent,
                      CASE WHEN i.invoice_id IS NOT NULL THEN i.tax_inclusive ELSE f.tax_inclusive END
                          AS tax_inclusive,
                      coalesce(c.invoice_id, c.from_invoice_id) AS taxed_invoice_id
               FROM closeout_data.corrections c
               LEFT JOIN closeout_data.invoices i ON i.invoice_id = c.invoice_id
               LEFT JOIN closeout_data.invoices f ON f.invoice_id = c.from_invoice_id
               LEFT JOIN closeout_data.stripe_customers s ON s.client_key = c.client_key
               WHERE c.state = 'pending'
               ORDER BY c.created_at, c.correction_id"""
        ).fetchall()


def _operation(conn: psycopg.Connection, hook: StripeHook, correction: dict[str, Any]) -> Operation | None:
    # the first key of this correction Stripe has not refused (a refusal is final under its key; a pending
    # key may have reached Stripe and is kept, whatever happened to other corrections)
    resumption = 0
    while True:
        key = correction_key(hook.settings.key_prefix, correction, resumption)
        row = conn.execute(
            "SELECT request, status FROM closeout_data.stripe_outbox WHERE idempotency_key = %s", (key,)
        ).fetchone()
        if row is None or row[1] != "failed":
            break
        resumption += 1
    if correction["kind"] == "credit_note":
        if not correction["stripe_invoice_id"]:
            return None
        request = row[0] if row else _credit_note_request(conn, hook, correction)
        return Operation(key, "credit_note.create", correction["client_key"], request, correction["invoice_id"],
                         correction["seq"], context={"stripe_invoice_id": correction["stripe_invoice_id"]})  # fmt: skip
    if not correction["stripe_customer_id"]:
        log.warning("correction %s waits: client %s has no Stripe customer yet", correction["correction_id"],
                    correction["client_key"])  # fmt: skip
        return None
    request = row[0] if row else _balance_request(conn, correction)
    return Operation(key, "customer_balance.credit", correction["client_key"], request, None, correction["seq"],
                     context={"stripe_customer_id": correction["stripe_customer_id"]})  # fmt: skip


def _metadata(correction: dict[str, Any]) -> dict[str, str]:
    return {
        "closeout_correction_id": correction["correction_id"][:500],
        "closeout_invoice_id": correction["invoice_id"] or "",
        "closeout_client": correction["client_key"][:500],
        "closeout_from_invoice_id": correction["from_invoice_id"],
        "closeout_amount_minor": str(correction["amount_minor"]),
    }


def _entry_description(entry: dict[str, Any], currency: str) -> str:
    hours = Decimal(str(entry["quantity"])).normalize()
    rate = "/".join(entry["rates"])
    when = f" of {entry['spent_date']}" if entry.get("spent_date") else ""
    entry_ref = f"{entry['source']}:{entry['source_id']}"
    return f"Correction: entry {entry_ref}{when}, {format(hours, 'f')} h at {rate} {currency}"


def _expense_description(expense: dict[str, Any]) -> str:
    when = f" of {expense['spent_date']}" if expense.get("spent_date") else ""
    return f"Correction: expense {expense['source']}:{expense['source_id']}{when}"


def _credit_lines(correction: dict[str, Any]) -> list[tuple[int, str]]:
    """(amount, description) per entry, then per expense (issue 16 item 2: an expense credited after issue)."""
    currency = correction["currency"]
    return [(int(e["amount_minor"]), _entry_description(e, currency)) for e in correction["entries"] or []] + [
        (int(x["amount_minor"]), _expense_description(x)) for x in correction.get("expenses") or []
    ]


def _credits(correction: dict[str, Any]) -> list[tuple[int, str]]:
    """The credit per line (positive), as the credit note's custom lines carry it."""
    credits = _credit_lines(correction)
    lines = [(-amount, text) for amount, text in credits if amount < 0]
    # an entry whose rows net up (a rate change on another entry's correction) lowers the last line instead
    surplus = sum(amount for amount, _ in credits if amount >= 0)
    if surplus and lines:
        lines[-1] = (lines[-1][0] - surplus, lines[-1][1])
    return lines


def _expected_tax(conn: psycopg.Connection, correction: dict[str, Any], credits: list[int]) -> list[int]:
    """Each credit line's tax, worked out by closeout's own rounding (closeout_data.line_tax_minor: per line, once,
    half-up in the minor unit), exactly as the invoice's lines were taxed; zeros when untaxed or exempt."""
    if correction["tax_rate_percent"] is None:
        return [0] * len(credits)
    (taxes,) = conn.execute(
        """SELECT coalesce(array_agg(closeout_data.line_tax_minor(u.amount, %s, %s) ORDER BY u.n), '{}')
           FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(amount, n)""",
        (correction["tax_rate_percent"], correction["tax_inclusive"], credits),
    ).fetchone()
    return [int(t) for t in taxes]


def _record_expected(conn: psycopg.Connection, correction: dict[str, Any], tax: int) -> int:
    """Write what closeout expects Stripe to credit (the net, the tax, the total) onto the correction, in the
    transaction that records the outbox row, so it is on record before the call; returns the total."""
    total = int(correction["amount_minor"]) + (0 if correction["tax_inclusive"] else tax)
    conn.execute(
        """UPDATE closeout_data.corrections SET tax_minor = %s, credit_total_minor = %s,
               updated_at = clock_timestamp()
           WHERE correction_id = %s""",
        (tax, total, correction["correction_id"]),
    )
    correction["tax_minor"], correction["credit_total_minor"] = tax, total
    return total


def _tax_rate_id(conn: psycopg.Connection, correction: dict[str, Any]) -> str | None:
    """The Stripe Tax Rate the corrected invoice's lines carry (None untaxed or exempt)."""
    if correction["tax_rate_percent"] is None:
        return None
    rid = tax_rates.tax_rate_ids(conn, [correction["taxed_invoice_id"]]).get(correction["taxed_invoice_id"])
    if rid is None:
        raise StripeCallError(f"invoice {correction['taxed_invoice_id']} is taxed but its Stripe Tax Rate is not "
                              "recorded (closeout.stripe_tax_rates)", status=None, code="tax_rate_missing",
                              retryable=False)  # fmt: skip
    return rid


def _credit_note_request(conn: psycopg.Connection, hook: StripeHook, correction: dict[str, Any]) -> dict[str, Any]:
    """The credit note as Stripe will take it: lines per entry and expense, and the post-payment part per policy, split
    by Stripe's rule from the invoice as it stands now, and confirmed by Stripe's own preview (both asked just
    before the request is recorded). A taxed invoice's credit lines carry its Tax Rate, so Stripe credits each
    line's tax with it (exclusive: on top of the line; inclusive: inside it); closeout works out that tax itself
    first, records it with the request, and stops the correction (tax_mismatch) if Stripe's preview differs."""
    credits = _credits(correction)
    rate_id = _tax_rate_id(conn, correction)
    lines = [{"type": "custom_line_item", "quantity": 1, "unit_amount": amount, "description": text[:500],
              **({"tax_rates": [rate_id]} if rate_id else {})} for amount, text in credits]  # fmt: skip
    tax = sum(_expected_tax(conn, correction, [amount for amount, _ in credits]))
    params: dict[str, Any] = {
        "invoice": correction["stripe_invoice_id"],
        "lines": lines,
        "reason": "order_change",
        "memo": (f"Correction {correction['correction_id']} of invoice {correction['invoice_id']}: "
                 "time or expenses billed there were edited or deleted after it was issued")[:500],
        "metadata": _metadata(correction),
    }
    # Stripe's rule: what is still due on an open (or uncollectible) invoice is reduced first; the rest must be
    # split, exactly, between refund, customer balance and out of band; the preview confirms the split
    invoice = hook.retrieve_invoice(correction["stripe_invoice_id"])
    amount = _record_expected(conn, correction, tax)
    if rate_id:
        params["metadata"] = {**params["metadata"], "closeout_tax_minor": str(tax), "closeout_total_minor": str(amount)}
    pre = min(amount, int(invoice["amount_remaining"])) if invoice["status"] in ("open", "uncollectible") else 0
    post = amount - pre
    if post > 0:
        policy = correction["policy"]
        if policy == "refund" and invoice.get("paid_out_of_band"):
            policy = "out_of_band"  # nothing was paid through Stripe: nothing to refund to
        params[POLICY_FIELDS[policy]] = post
    preview = hook.preview_credit_note(params)
    if stripe_tax(preview) != tax:
        raise StripeCallError(
            f"credit note preview for {correction['correction_id']} on taxed invoice {correction['invoice_id']}: "
            f"Stripe would credit {stripe_tax(preview)} of tax, closeout expects {tax} ({len(lines)} lines at "
            f"{tax_rates.rate_text(correction['tax_rate_percent'])} %, "
            f"{'inclusive' if correction['tax_inclusive'] else 'exclusive'})",
            status=None, code="tax_mismatch", retryable=False,
        )  # fmt: skip
    if (int(preview["amount"]), int(preview["pre_payment_amount"]), int(preview["post_payment_amount"])) != (
        amount, pre, post
    ):
        raise StripeCallError(
            f"credit note preview for {correction['correction_id']}: {preview['amount']} "
            f"({preview['pre_payment_amount']} before payment, {preview['post_payment_amount']} after), expected "
            f"{amount} ({pre} before payment, {post} after)", status=None, code="amount_mismatch", retryable=False
        )  # fmt: skip
    return params


def _balance_request(conn: psycopg.Connection, correction: dict[str, Any]) -> dict[str, Any]:
    """A customer balance transaction carries no tax, so a credit off a taxed draft credits the tax inside the
    amount: net + an exclusive rate's tax (an inclusive rate's tax is inside the net already), each line's tax
    rounded as the draft's lines are; the tax part is recorded on the correction and booked to tax_payable by
    the ledger (47_customer_balance_credits.sql)."""
    tax = sum(_expected_tax(conn, correction, [amount for amount, _ in _credits(correction)]))
    total = _record_expected(conn, correction, tax)
    metadata = _metadata(correction)
    if correction["tax_rate_percent"] is not None:
        metadata = {**metadata, "closeout_tax_minor": str(tax), "closeout_total_minor": str(total)}
    return {
        "amount": -total,
        "currency": correction["currency"].lower(),
        "description": (f"Credit {correction['correction_id']}: corrections on draft "
                        f"{correction['from_invoice_id']} exceed what it bills"
                        + (f" (tax {tax} included)" if tax else ""))[:350],
        "metadata": metadata,
    }


# -- the call ---------------------------------------------------------------------------------------------
def _execute(conn: psycopg.Connection, hook: StripeHook, op: Operation, correction: dict[str, Any]) -> Outcome:
    key_gone = _key_may_be_gone(op, hook)
    if op.prior_status != "pending" or key_gone:
        found = _find(hook, op, correction)
        if found is not None:
            return Outcome(op, found, "metadata_lookup")
        if key_gone and op.operation == "credit_note.create":
            # the recorded split may be stale (the invoice was paid since): ask Stripe again, record, send
            op.request = _credit_note_request(conn, hook, correction)
            conn.execute(
                "UPDATE closeout_data.stripe_outbox SET request = %s WHERE idempotency_key = %s",
                (Jsonb(op.request), op.key),
            )
            conn.commit()
    if op.operation == "credit_note.create":
        result = hook.create_credit_note(op.request, op.key)
    else:
        result = hook.credit_customer_balance(op.context["stripe_customer_id"], op.request, op.key)
    return Outcome(op, result.obj, "replay" if result.replayed else "response")


def _find(hook: StripeHook, op: Operation, correction: dict[str, Any]) -> dict[str, Any] | None:
    """The object an earlier attempt made, by the correction's metadata."""
    if op.operation == "credit_note.create":
        candidates = hook.list_credit_notes(op.context["stripe_invoice_id"])
    else:
        candidates = hook.list_customer_balance_transactions(op.context["stripe_customer_id"])
    found = [c for c in candidates
             if (c.get("metadata") or {}).get("closeout_correction_id") == correction["correction_id"]]  # fmt: skip
    return min(found, key=lambda c: (c["created"], c["id"])) if found else None


# -- recording the answer ---------------------------------------------------------------------------------
def _apply(cur: psycopg.Cursor, correction: dict[str, Any], outcome: Outcome, summary: IssueSummary) -> None:
    obj, request = outcome.obj or {}, outcome.op.request
    summary.found_by_metadata += outcome.resolved_by == "metadata_lookup"
    expected_total = int(correction.get("credit_total_minor") or correction["amount_minor"])
    expected_tax = int(correction.get("tax_minor") or 0)
    if correction["kind"] == "customer_balance":
        summary.customer_balance_credits += 1
        summary.credited_to_balance_minor += -int(obj.get("amount") or -expected_total)
        cur.execute(
            """UPDATE closeout_data.corrections SET state = 'issued', stripe_object_id = %s, issued_at = %s,
                   credit_amount_minor = %s, pre_payment_amount_minor = 0,
                   post_payment_amount_minor = %s, refund_amount_minor = 0, out_of_band_amount_minor = 0,
                   updated_at = clock_timestamp()
               WHERE correction_id = %s""",
            (obj["id"], _ts(obj.get("created")), -int(obj["amount"]), -int(obj["amount"]),
             correction["correction_id"]),
        )  # fmt: skip
        if -int(obj["amount"]) != expected_total:
            _differs(cur, correction, obj, "total_mismatch", f"{-int(obj['amount'])} credited to the customer's "
                     f"balance, closeout expected {expected_total} (tax {expected_tax} included)", summary)  # fmt: skip
        return
    pre = int(obj.get("pre_payment_amount") or 0)
    post = int(obj.get("post_payment_amount") or 0)
    # what Stripe was asked to do with the post-payment part (the object reports refunds and the balance
    # transaction by id, not as these amounts)
    split = {name: int(request.get(field) or 0) for name, field in POLICY_FIELDS.items()}
    if post and not any(split.values()):
        split["customer_balance"] = post  # Stripe's default for a paid invoice credited without a split
    summary.credit_notes_issued += 1
    stripe_tax_minor = stripe_tax(obj)
    cur.execute("UPDATE closeout_data.corrections SET stripe_tax_minor = %s WHERE correction_id = %s",
                (stripe_tax_minor, correction["correction_id"]))  # fmt: skip
    if stripe_tax_minor != expected_tax:
        # Stripe made it (the books must show what Stripe did), but with a tax closeout did not expect: finance
        # is told, with both figures, and the run fails; the ledger books Stripe's tax
        _differs(cur, correction, obj, "tax_mismatch", f"Stripe credited {stripe_tax_minor} of tax, closeout "
                 f"expected {expected_tax}", summary)  # fmt: skip
    elif int(obj.get("amount") or 0) != expected_total:
        _differs(cur, correction, obj, "total_mismatch", f"Stripe credited {obj.get('amount')}, closeout expected "
                 f"{expected_total}", summary)  # fmt: skip
    summary.pre_payment_minor += pre
    summary.refunded_minor += split["refund"]
    summary.credited_to_balance_minor += split["customer_balance"]
    summary.out_of_band_minor += split["out_of_band"]
    cur.execute(
        """UPDATE closeout_data.corrections SET state = 'issued', stripe_object_id = %s, stripe_number = %s,
               issued_at = %s, pre_payment_amount_minor = %s, post_payment_amount_minor = %s,
               refund_amount_minor = %s, credit_amount_minor = %s, out_of_band_amount_minor = %s,
               updated_at = clock_timestamp()
           WHERE correction_id = %s""",
        (obj["id"], obj.get("number"), _ts(obj.get("created")), pre, post, split["refund"],
         split["customer_balance"], split["out_of_band"], correction["correction_id"]),
    )  # fmt: skip
    # the contract table the cash sync keeps from Stripe's lists and events: both write Stripe's values (as of
    # creation: the sync's later observations move it on, a void included), so whichever comes second only
    # fills in what the other could not know (the closeout invoice)
    created = _ts(obj.get("created")) or datetime.now(UTC)
    cur.execute(
        """INSERT INTO closeout_data.credit_notes (credit_note_id, invoice_id, stripe_invoice_id, customer_id, number,
               currency, amount_minor, pre_payment_amount_minor, post_payment_amount_minor, refund_amount_minor,
               credit_amount_minor, out_of_band_amount_minor, refund_ids, type, status, reason, memo, metadata,
               created_at, observed_at, tax_minor)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (credit_note_id) DO UPDATE
           SET invoice_id = coalesce(credit_notes.invoice_id, excluded.invoice_id),
               tax_minor = coalesce(credit_notes.tax_minor, excluded.tax_minor)""",
        (obj["id"], correction["invoice_id"], correction["stripe_invoice_id"], obj.get("customer"), obj.get("number"),
         correction["currency"], int(obj.get("amount") or correction["amount_minor"]), pre, post, split["refund"],
         split["customer_balance"], split["out_of_band"],
         [r["refund"] for r in obj.get("refunds") or [] if r.get("refund")], obj.get("type"),
         obj.get("status") or "issued", obj.get("reason"), obj.get("memo"), Jsonb(obj.get("metadata") or {}),
         created, created, stripe_tax_minor),
    )  # fmt: skip


def _differs(cur: psycopg.Cursor, correction: dict[str, Any], obj: dict[str, Any], kind: str, what: str,
             summary: IssueSummary) -> None:  # fmt: skip
    """Stripe's answer to a call it carried out differs from what closeout recorded before the call: never accepted
    silently; an exception for finance names both figures and the run fails (the object is recorded as made)."""
    message = f"correction {correction['correction_id']}: {obj['id']}: {what}"
    log.error("correction differs: %s", message)
    exceptions.open_exception(
        cur, kind=kind, message=message, invoice_id=correction["invoice_id"] or correction["from_invoice_id"],
        stripe_object_id=obj["id"], currency=correction["currency"],
        our_total_minor=correction.get("credit_total_minor") or correction["amount_minor"],
        detail={"correction_id": correction["correction_id"]},
    )  # fmt: skip
    summary.stopped += 1
    summary.errors.append(message)


def _stop(cur: psycopg.Cursor, correction: dict[str, Any], message: str, *, kind: str = "correction_refused") -> None:
    log.error("correction stopped: %s", message)
    cur.execute(
        """UPDATE closeout_data.corrections SET state = 'stopped', stop_reason = %s, updated_at = clock_timestamp()
           WHERE correction_id = %s""",
        (message, correction["correction_id"]),
    )
    exceptions.open_exception(
        cur, kind=kind, message=f"correction {correction['correction_id']}: {message}",
        invoice_id=correction["invoice_id"] or correction["from_invoice_id"], currency=correction["currency"],
        our_total_minor=correction["amount_minor"], detail={"correction_id": correction["correction_id"]},
    )  # fmt: skip


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


# -- the tasks --------------------------------------------------------------------------------------------
def take_corrections_off_drafts(airflow_run_id: str | None = None, as_of: date | None = None) -> dict[str, Any]:
    """closeout_stripe_publish's step before publishing: a decrease drafted since the last run leaves the draft
    before the draft can be frozen, so it is credited on its own invoice, never sent as a negative line."""
    day = as_of or datetime.now(UTC).date()
    with connect() as conn:
        recorded = record_corrections(conn, as_of=day, airflow_run_id=airflow_run_id)
        conn.commit()
    log.info("corrections recorded: %s", recorded.as_dict())
    return recorded.as_dict()


def issue_corrections(airflow_run_id: str | None = None, as_of: date | None = None) -> dict[str, Any]:
    """closeout_stripe_publish's step after publishing: record the corrections due (one transaction), then
    issue every pending one to Stripe. Safe to retry: both halves resume where they stopped."""
    day = as_of or datetime.now(UTC).date()
    hook = StripeHook()
    with connect() as conn:
        run_id = start(conn, "corrections", airflow_run_id)
        try:
            recorded = record_corrections(conn, as_of=day, airflow_run_id=airflow_run_id)
            conn.commit()
            issued = issue(conn, hook)
        except Exception as exc:
            finish(conn, run_id, requests=hook.requests, counts={}, error=str(exc)[:2000])
            raise
        counts = {"recorded": recorded.as_dict(), "issued": {k: v for k, v in issued.__dict__.items() if k != "errors"}}
        if issued.transient_errors or issued.stopped:
            error = (f"{issued.transient_errors} corrections failed transiently (pending for the retry), "
                     f"{issued.stopped} stopped: {'; '.join(issued.errors[:3])}")  # fmt: skip
            finish(conn, run_id, requests=hook.requests, counts=counts, error=error)
            raise (CorrectionsIncomplete if issued.transient_errors else CorrectionsStopped)(error)
        finish(conn, run_id, requests=hook.requests, counts=counts)
    log.info("corrections: %s", counts)
    return {**counts, "requests": hook.requests}
