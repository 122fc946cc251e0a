"""Invoices closeout voided after they were pushed: voided in the accounting system once, recorded on their link.

Why: a Stripe invoice voided after it was booked is reversed in closeout's ledger (its void journal); the
accounting system must say the same, or its receivables keep an invoice nobody owes. The void journal itself is not
pushed (``plan.DOCUMENT_KINDS``): the void of the document there books the reversal.

Exactly once:

* QuickBooks: ``POST /invoice?operation=void`` with ``{"Id", "SyncToken"}`` under the requestid of
  ``void:<invoice>:<SyncToken>:<attempt>``; the hook records it in its outbox before the call, so a retry after a
  timeout (in this run or the next) sends the same body under the same key and QuickBooks replays its answer. A
  stale SyncToken (5010: an accountant touched the invoice) is read again, kept on the link first, and the void goes
  with it once.
* Xero: ``POST /Invoices`` ``[{"InvoiceID", "Status": "VOIDED"}]`` under the Idempotency-Key of
  ``void:<invoice>:<attempt>``.
* The answer is recorded on the link (``remote_state`` 'void', the new version): the next run plans nothing for it,
  and the accounting_links check expects it voided there, not vanished.

An invoice with payments applied in the accounting system cannot be voided there (both refuse it): it is held as
``has_payments`` with what finance must do, and tried again (under a new key) every run until it goes.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg.rows import dict_row

from closeout.accounting.push.books import Answer, quickbooks_reason, xero_reason
from closeout.paths import load_sql

log = logging.getLogger(__name__)

_PAYMENT_WORDS = ("payment", "allocated")


def push_voids(conn: Any, books: Any, scope: dict[str, str], run: Any) -> None:
    """Void there every pushed invoice closeout voided since; record each answer (void or hold) at once."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(load_sql("accounting_push/plan_voids.sql"), scope).fetchall()
    for row in rows:
        answer = quickbooks_void(conn, books, scope, row) if books.system == "quickbooks" else xero_void(books, row)
        if answer.external_id:
            conn.execute(load_sql("accounting_push/links_void.sql"),
                         {**scope, "ref": answer.ref, "remote_version": answer.version})  # fmt: skip
            run.pushed["void"] = run.pushed.get("void", 0) + 1
            continue
        hold = {"object_kind": "invoice", "closeout_ref": answer.ref, "reason": answer.reason or "refused",
                "detail": (answer.detail or "refused")[:2000], "currency": row["currency"],
                "total_minor": row["total_minor"]}  # fmt: skip
        conn.execute(load_sql("accounting_push/exceptions_hold.sql"), {**scope, "holds": _json([hold])})
        run.held.setdefault("void", []).append(answer.ref)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def _held_for_payments(ref: str, system: str, text: str) -> Answer:
    return Answer(ref, reason="has_payments",
                  detail=f"invoice {ref} was voided in closeout, but {system} has a payment applied to it, so it "
                         f"cannot be voided there: remove or unapply that payment in {system} (and refund it if "
                         f"money moved), then the next push voids it. {system} said: {text}")  # fmt: skip


def quickbooks_void(conn: Any, books: Any, scope: dict[str, str], row: dict[str, Any]) -> Answer:
    """``invoice?operation=void`` with the link's SyncToken; once more with a fresh one if that one was stale."""
    from closeout.accounting.api.quickbooks import QuickBooksError

    ref, external_id = str(row["ref"]), str(row["external_id"])
    token = str(row["remote_version"] or "0")
    for fresh in (False, True):
        business_ref = f"void:{ref}:{token}:{row['attempts']}"
        try:
            result = books.hook.write("invoice.void", business_ref, "invoice?operation=void",
                                      {"Id": external_id, "SyncToken": token}, entity="Invoice")  # fmt: skip
        except QuickBooksError as exc:
            if exc.retryable:
                raise  # the outbox keeps it pending: the next try sends the same body under the same key
            if exc.code == "5010" and not fresh:
                current = books.hook.get_invoice(external_id)
                token = str(current.get("SyncToken"))
                conn.execute(load_sql("accounting_push/links_void_version.sql"),
                             {**scope, "ref": ref, "remote_version": token})  # fmt: skip
                log.info("QuickBooks invoice %s (%s): SyncToken was stale, voiding with %s", external_id, ref, token)
                continue
            text = str(exc)
            if any(word in text.lower() for word in _PAYMENT_WORDS):
                return _held_for_payments(ref, "QuickBooks", text)
            return Answer(ref, reason=quickbooks_reason(exc.errors), detail=text)
        obj = result.body.get("Invoice") or {}
        return Answer(ref, external_id, str(obj.get("SyncToken") or token))
    raise AssertionError("unreachable")  # pragma: no cover


def xero_void(books: Any, row: dict[str, Any]) -> Answer:
    """``POST /Invoices`` with Status VOIDED; a refusal for payments is held for finance."""
    from closeout.accounting.api.xero import XeroError

    ref, external_id = str(row["ref"]), str(row["external_id"])
    try:
        result = books.hook.write("invoices.void", f"void:{ref}:{row['attempts']}", "POST", "Invoices",
                                  [{"InvoiceID": external_id, "Status": "VOIDED"}])  # fmt: skip
    except XeroError as exc:
        if exc.retryable:
            raise
        return Answer(ref, reason=xero_reason([str(exc)]), detail=str(exc))
    element = result.elements[0] if result.elements else {}
    if element.get("StatusAttributeString") != "ERROR" and element.get("Status") == "VOIDED":
        return Answer(ref, external_id, str(element.get("UpdatedDateUTC") or "") or None)
    messages = [str(e.get("Message")) for e in element.get("ValidationErrors") or []] or ["no answer"]
    text = "; ".join(messages)
    if any(word in text.lower() for word in _PAYMENT_WORDS):
        return _held_for_payments(ref, "Xero", text)
    return Answer(ref, reason=xero_reason(messages), detail=text)
