"""Publishing frozen drafts to Stripe exactly once.

A publication walks each invoice through four Stripe operations: the client's customer (once per
client), the draft invoice, its lines (``add_lines``, in parts), and finalization. Every operation is an
outbox row, keyed by a deterministic idempotency key and committed *before* the call; the row keeps the
request as first recorded, so a retry sends the same request under the same key and Stripe replays it.
That covers a timeout after Stripe committed, a task killed between Stripe's answer and our commit, and
any Airflow retry. Stripe keeps keys about 24 h: an operation whose key is older is first looked up
(metadata search, or the invoice and its lines) so nothing is created twice after the key is gone.

Stages run set-wise: record a batch of outbox rows, make the batch's calls on a few threads, record all
the answers in one transaction. One invoice's trouble never stops the others: a refusal or a total that
differs stops that invoice with a payment exception; a transient failure leaves its row pending and the
run fails at the end so Airflow retries it.

Only events make an invoice paid (see ``events``): finalizing makes it ``open``, whatever Stripe says.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout import faults
from closeout.billing import lifecycle
from closeout.masking import mask_secrets
from closeout.payments import exceptions, keys
from closeout.payments.hook import StripeCallError, StripeHook

log = logging.getLogger(__name__)

BATCH = 500
# Stripe's own minor units where they differ from ISO 4217's two (reference/stripe.md).
STRIPE_ZERO_DECIMAL = frozenset(
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"]
)
STRIPE_THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])
HOSTED_URL_DAYS_AFTER_DUE = 30
HOSTED_URL_MAX_DAYS = 120


class PublishIncomplete(RuntimeError):
    """Some operations failed transiently; they stay pending and the next attempt resumes them."""


class PublicationsStopped(RuntimeError):
    """This run stopped invoices for a person to look at (payment exceptions); retrying changes nothing."""


@dataclass
class Operation:
    """One outbox row: what to ask Stripe, under which key, for which invoice (or client)."""

    key: str
    operation: str
    client_key: str
    request: dict[str, Any]
    invoice_id: str | None = None
    version: int | None = None
    part: int = 0
    context: dict[str, Any] = field(default_factory=dict)
    # from the outbox, once recorded
    inserted: bool = False
    created_at: datetime | None = None
    prior_status: str = "pending"


@dataclass
class Outcome:
    op: Operation
    obj: dict[str, Any] | None = None
    resolved_by: str | None = None
    error: StripeCallError | None = None
    stop: tuple[str, str] | None = None  # (kind, message): stop this invoice


@dataclass
class PublishSummary:
    frozen: int = 0
    opened: int = 0
    customers_created: int = 0
    customers_found: int = 0
    invoices_created: int = 0
    invoices_found: int = 0
    line_parts_added: int = 0
    finalized: int = 0
    replays: int = 0
    stopped: int = 0
    transient_errors: int = 0
    requests: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {"errors": self.errors[:20]}


# -- entry point ------------------------------------------------------------------------------------
def publish(conn: psycopg.Connection, hook: StripeHook, *, as_of: date) -> PublishSummary:
    """Freeze what policy lets go out on ``as_of``, then take every unfinished publication as far as it
    goes. Commits as it goes (the outbox must be committed before each call)."""
    summary = PublishSummary()
    # Drafts that waited on Stripe since an earlier run may have been edited there: re-read their totals.
    conn.execute("UPDATE closeout_data.stripe_publications SET stripe_total_minor = NULL WHERE state = 'lines_added'")
    summary.frozen = freeze_publishable(conn, as_of)
    summary.opened = open_publications(conn, hook.settings.lines_per_request)
    summary.stopped += stop_unrepresentable(conn)
    _stage_customers(conn, hook, summary)
    # taxed invoices' lines carry a Stripe Tax Rate: made once, before any lines go (docs/invoice-tax.md)
    from closeout.payments import tax_rates  # it uses this module's outbox machinery

    tax_rates.stage_tax_rates(conn, hook, summary)
    _stage_create(conn, hook, summary)
    _stage_lines(conn, hook, summary)
    _stage_finalize(conn, hook, summary)
    summary.requests = hook.requests
    if summary.transient_errors:
        raise PublishIncomplete(
            f"{summary.transient_errors} Stripe operations failed transiently and stay pending for the retry; "
            f"first errors: {'; '.join(summary.errors[:3])}"
        )
    if summary.stopped:
        stops = conn.execute(
            """SELECT message FROM closeout_data.payment_exceptions
               WHERE resolved_at IS NULL ORDER BY opened_at DESC LIMIT %s""",
            (min(summary.stopped, 5),),
        ).fetchall()
        raise PublicationsStopped(
            f"{summary.stopped} invoices stopped, the rest published ({summary.finalized} finalized); "
            f"see closeout.payment_exceptions: {'; '.join(m for (m,) in stops)}"
        )
    return summary


def freeze_publishable(conn: psycopg.Connection, as_of: date) -> int:
    """Freeze, in one transaction, every draft policy lets go out: from here its content is final."""
    frozen = 0
    from closeout.pilot import shadow  # pilot mode: only the cohort's drafts go out (docs/pilot.md)

    for invoice_id in shadow.admit(conn, lifecycle.publishable(conn, as_of)):
        lifecycle.freeze(conn, invoice_id)
        frozen += 1
    conn.commit()
    return frozen


def open_publications(conn: psycopg.Connection, lines_per_part: int) -> int:
    """A publication for every frozen invoice that has none yet (its parts fixed now, once)."""
    cur = conn.execute(
        """INSERT INTO closeout_data.stripe_publications (invoice_id, version, client_key, currency, total_minor,
               line_count, lines_per_part, parts_total, stripe_customer_id)
           SELECT i.invoice_id, i.frozen_version, i.client_key, i.currency, i.total_minor, i.line_count, %(n)s,
                  greatest(ceil(i.line_count::numeric / %(n)s)::integer, 1), c.stripe_customer_id
           FROM closeout_data.invoices i
           LEFT JOIN closeout_data.stripe_customers c ON c.client_key = i.client_key
           WHERE i.status = 'publishing'
           ON CONFLICT (invoice_id) DO NOTHING""",
        {"n": lines_per_part},
    )
    conn.commit()
    return cur.rowcount


def stop_unrepresentable(conn: psycopg.Connection) -> int:
    """Stop, before any call, invoices whose amounts Stripe cannot take as they are: a currency whose
    minor unit differs in Stripe, or a three-decimal currency amount not ending in 0. Re-rounding would
    bill a different amount than the draft shows; a person decides instead."""
    rows = conn.execute(
        """SELECT p.invoice_id, p.currency, c.exponent, p.total_minor,
                  array_agg(l.line_no ORDER BY l.line_no)
                      FILTER (WHERE l.amount_minor % 10 <> 0
                                 OR closeout_data.line_tax_minor(l.amount_minor, i.tax_rate_percent, i.tax_inclusive)
                                    % 10 <> 0) AS odd_lines
           FROM closeout_data.stripe_publications p
           JOIN closeout_data.invoices i ON i.invoice_id = p.invoice_id
           JOIN closeout_data.currencies c ON c.code = p.currency
           JOIN closeout.invoice_line_versions l ON l.invoice_id = p.invoice_id AND l.version = p.version
           WHERE p.state = 'pending'
           GROUP BY p.invoice_id, p.currency, c.exponent, p.total_minor"""
    ).fetchall()
    stopped = 0
    with conn.cursor() as cur:
        for invoice_id, currency, exponent, total, odd_lines in rows:
            expected = 0 if currency in STRIPE_ZERO_DECIMAL else 3 if currency in STRIPE_THREE_DECIMAL else 2
            if exponent != expected:
                message = (f"invoice {invoice_id}: {currency} has {exponent} decimals in closeout's currency table "
                           f"but {expected} in Stripe; amounts would be misread, so it is not published")  # fmt: skip
                _stop(cur, invoice_id, "currency_minor_unit", message, our_total=total, currency=currency)
                stopped += 1
            elif currency in STRIPE_THREE_DECIMAL and odd_lines:
                message = (f"invoice {invoice_id}: Stripe takes {currency} amounts only in multiples of 10 "
                           f"(the last decimal 0); lines {odd_lines[:10]} are not (their amount, or their tax), "
                           "so it is not published")  # fmt: skip
                _stop(cur, invoice_id, "amount_precision", message, our_total=total, currency=currency,
                      detail={"lines": odd_lines})  # fmt: skip
                stopped += 1
    conn.commit()
    return stopped


# -- stage 1: customers -----------------------------------------------------------------------------
def _stage_customers(conn: psycopg.Connection, hook: StripeHook, summary: PublishSummary) -> None:
    rows = _dicts(
        conn,
        """SELECT DISTINCT p.client_key, c.name, c.email
           FROM closeout_data.stripe_publications p
           LEFT JOIN closeout_data.billing_clients c ON c.client_key = p.client_key
           WHERE p.state = 'pending' AND p.stripe_customer_id IS NULL
             AND NOT EXISTS (SELECT 1 FROM closeout_data.stripe_customers s WHERE s.client_key = p.client_key)
           ORDER BY p.client_key""",
    )
    prefix = hook.settings.key_prefix
    ops = []
    for row in rows:
        request: dict[str, Any] = {"name": row["name"] or row["client_key"],
                                   "metadata": {"closeout_client": row["client_key"][:500]}}  # fmt: skip
        if row["email"]:
            request["email"] = row["email"]
        ops.append(Operation(keys.customer_key(prefix, row["client_key"]), "customer.create", row["client_key"],
                             request))  # fmt: skip

    def execute(op: Operation) -> Outcome:
        # A new client, or one whose key may be gone, is first looked for: our record may have been lost.
        if op.inserted or op.prior_status != "pending" or _key_may_be_gone(op, hook):
            found = hook.find_customers("closeout_client", op.client_key)
            if found:
                return Outcome(op, min(found, key=lambda c: (c["created"], c["id"])), "metadata_lookup")
        result = hook.create_customer(op.request, op.key)
        return Outcome(op, result.obj, "replay" if result.replayed else "response")

    def apply(cur: psycopg.Cursor, outcomes: list[Outcome]) -> None:
        done = [(o.op.client_key, o.obj["id"], "metadata_lookup" if o.resolved_by == "metadata_lookup" else "created")
                for o in outcomes if o.obj]  # fmt: skip
        summary.customers_created += sum(1 for _, _, how in done if how == "created")
        summary.customers_found += sum(1 for _, _, how in done if how != "created")
        cur.executemany(
            """INSERT INTO closeout_data.stripe_customers (client_key, stripe_customer_id, found_by)
               VALUES (%s, %s, %s) ON CONFLICT (client_key) DO NOTHING""",
            done,
        )

    _run_stage(conn, hook, ops, execute, apply, summary)
    conn.execute(
        """UPDATE closeout_data.stripe_publications p SET stripe_customer_id = c.stripe_customer_id
           FROM closeout_data.stripe_customers c
           WHERE c.client_key = p.client_key AND p.state = 'pending' AND p.stripe_customer_id IS NULL"""
    )
    conn.commit()


# -- stage 2: draft invoices ------------------------------------------------------------------------
def _stage_create(conn: psycopg.Connection, hook: StripeHook, summary: PublishSummary) -> None:
    rows = _dicts(
        conn,
        """SELECT p.invoice_id, p.version, p.client_key, p.currency, p.total_minor, p.stripe_customer_id,
                  i.period_start, i.period_end, i.payment_terms_days
           FROM closeout_data.stripe_publications p JOIN closeout_data.invoices i USING (invoice_id)
           WHERE p.state = 'pending' AND p.stripe_customer_id IS NOT NULL
           ORDER BY p.invoice_id""",
    )
    prefix = hook.settings.key_prefix
    ops = []
    for row in rows:
        request = {
            "customer": row["stripe_customer_id"],
            "currency": row["currency"].lower(),
            "collection_method": "send_invoice",
            "days_until_due": row["payment_terms_days"],
            "auto_advance": False,
            "pending_invoice_items_behavior": "exclude",
            "description": f"Services {row['period_start']:%Y-%m-%d} to {row['period_end']:%Y-%m-%d}",
            "metadata": _invoice_metadata(row),
        }
        ops.append(Operation(keys.invoice_key(prefix, row["invoice_id"], row["version"], "create"), "invoice.create",
                             row["client_key"], request, row["invoice_id"], row["version"]))  # fmt: skip

    def execute(op: Operation) -> Outcome:
        if op.prior_status != "pending" or _key_may_be_gone(op, hook):
            found = [inv for inv in hook.find_invoices("closeout_invoice_id", op.invoice_id or "")
                     if inv["metadata"].get("closeout_version") == str(op.version)]  # fmt: skip
            if len(found) > 1:
                ids = sorted(inv["id"] for inv in found)
                message = f"invoice {op.invoice_id}: Stripe holds {len(found)} invoices for it: {ids}"
                return Outcome(op, stop=("duplicate_stripe_invoices", message))
            if found:
                return Outcome(op, found[0], "metadata_lookup")
        result = hook.create_invoice(op.request, op.key)
        return Outcome(op, result.obj, "replay" if result.replayed else "response")

    def apply(cur: psycopg.Cursor, outcomes: list[Outcome]) -> None:
        done = []
        for o in outcomes:
            if not o.obj:
                continue
            if o.obj["currency"].upper() != o.op.request["currency"].upper():
                _stop(cur, o.op.invoice_id or "", "currency_mismatch",
                      f"invoice {o.op.invoice_id}: Stripe invoice {o.obj['id']} is in {o.obj['currency'].upper()}, "
                      f"ours in {o.op.request['currency'].upper()}")  # fmt: skip
                continue
            done.append((o.obj["id"], o.op.invoice_id))
            summary.invoices_found += o.resolved_by == "metadata_lookup"
            summary.invoices_created += o.resolved_by != "metadata_lookup"
        cur.executemany(
            """UPDATE closeout_data.stripe_publications SET stripe_invoice_id = %s, state = 'created',
                   updated_at = clock_timestamp() WHERE invoice_id = %s AND state = 'pending'""",
            done,
        )
        cur.executemany(
            "UPDATE closeout_data.invoices SET stripe_invoice_id = %s, updated_at = clock_timestamp() "
            "WHERE invoice_id = %s",
            done,
        )

    _run_stage(conn, hook, ops, execute, apply, summary)


# -- stage 3: lines ---------------------------------------------------------------------------------
def _stage_lines(conn: psycopg.Connection, hook: StripeHook, summary: PublishSummary) -> None:
    """One part per invoice per round, in order, so the total after the last part is the invoice's."""
    from closeout.payments import tax_rates  # it uses this module's outbox machinery

    prefix = hook.settings.key_prefix
    while True:
        pubs = _dicts(
            conn,
            """SELECT invoice_id, version, client_key, currency, stripe_invoice_id, lines_per_part, parts_added,
                      parts_total
               FROM closeout_data.stripe_publications WHERE state = 'created' AND parts_added < parts_total
               ORDER BY invoice_id""",
        )
        if not pubs:
            return
        rates = tax_rates.tax_rate_ids(conn, [p["invoice_id"] for p in pubs])
        # a taxed invoice waits for its Stripe Tax Rate (made by the tax rate stage, or stopped there)
        pubs = [p for p in pubs if p["invoice_id"] in rates]
        if not pubs:
            return
        lines = _lines_of_parts(conn, pubs)
        ops = []
        for p in pubs:
            part_lines = lines.get(p["invoice_id"], [])
            request = {
                "lines": [_line_request(line, p["currency"], rates[p["invoice_id"]]) for line in part_lines],
                "invoice_metadata": {"closeout_parts_added": str(p["parts_added"] + 1)},
            }
            ops.append(Operation(keys.invoice_key(prefix, p["invoice_id"], p["version"], "add_lines", p["parts_added"]),
                                 "invoice.add_lines", p["client_key"], request, p["invoice_id"], p["version"],
                                 p["parts_added"], {"stripe_invoice_id": p["stripe_invoice_id"],
                                                    "line_keys": [ln["line_key"] for ln in part_lines]}))  # fmt: skip

        def execute(op: Operation) -> Outcome:
            sid = op.context["stripe_invoice_id"]
            if op.prior_status != "pending" or _key_may_be_gone(op, hook):
                present = {ln["metadata"].get("closeout_line_key") for ln in hook.invoice_lines(sid)}
                wanted = set(op.context["line_keys"])
                if wanted <= present:
                    return Outcome(op, hook.retrieve_invoice(sid), "metadata_lookup")
                if wanted & present:
                    message = (f"invoice {op.invoice_id}: part {op.part} is only partly on Stripe invoice {sid}; "
                               "a person must check its lines")  # fmt: skip
                    return Outcome(op, stop=("partial_lines", message))
            result = hook.add_lines(sid, op.request, op.key)
            return Outcome(op, result.obj, "replay" if result.replayed else "response")

        def apply(cur: psycopg.Cursor, outcomes: list[Outcome]) -> None:
            done = [(o.obj["total"], stripe_tax(o.obj), o.op.invoice_id, o.op.part) for o in outcomes if o.obj]
            summary.line_parts_added += len(done)
            cur.executemany(
                """UPDATE closeout_data.stripe_publications
                   SET parts_added = %s + 1, stripe_total_minor = %s, stripe_tax_minor = %s,
                       state = CASE WHEN %s + 1 >= parts_total THEN 'lines_added' ELSE state END,
                       updated_at = clock_timestamp()
                   WHERE invoice_id = %s AND parts_added = %s""",
                [(part, total, tax, part, invoice_id, part) for total, tax, invoice_id, part in done],
            )

        progressed = _run_stage(conn, hook, ops, execute, apply, summary)
        if not progressed:
            return


def _lines_of_parts(conn: psycopg.Connection, pubs: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The lines of each publication's next part, straight from the frozen version's line set."""
    rows = _dicts(
        conn,
        """SELECT l.invoice_id, l.line_no, l.kind, l.description, l.quantity, l.unit_rate, l.amount_minor, l.line_key
           FROM unnest(%s::text[], %s::integer[], %s::integer[], %s::integer[]) AS p(invoice_id, version, lo, hi)
           JOIN closeout.invoice_line_versions l
             ON l.invoice_id = p.invoice_id AND l.version = p.version AND l.line_no > p.lo AND l.line_no <= p.hi
           ORDER BY l.invoice_id, l.line_no""",
        (
            [p["invoice_id"] for p in pubs],
            [p["version"] for p in pubs],
            [p["parts_added"] * p["lines_per_part"] for p in pubs],
            [(p["parts_added"] + 1) * p["lines_per_part"] for p in pubs],
        ),
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["invoice_id"], []).append(row)
    return out


def stripe_tax(invoice: dict[str, Any]) -> int:
    """The tax Stripe put on an invoice: the sum of its ``total_taxes`` (0 without tax rates)."""
    return sum(int(t.get("amount") or 0) for t in invoice.get("total_taxes") or [])


def _line_request(line: dict[str, Any], currency: str, tax_rate_id: str | None = None) -> dict[str, Any]:
    """Our amount as is (rounded once, by us); quantity and rate shown in the description only, so Stripe
    never multiplies and rounds again. A taxed invoice's line carries its Stripe Tax Rate: Stripe computes the
    line's tax per line, rounded as the drafting rounds it (docs/invoice-tax.md)."""
    quantity = _plain(line["quantity"])
    rate = _plain(line["unit_rate"])
    detail = f"{quantity} h x {rate} {currency}"
    if line["line_key"].startswith("x"):  # expense lines: the cost in major units x (1 + markup)
        detail = f"{quantity} {currency}" if Decimal(line["unit_rate"]) == 1 else f"{quantity} {currency} x {rate}"
    request = {
        "amount": int(line["amount_minor"]),
        "description": f"{line['description']} ({detail})"[:500],
        "metadata": {"closeout_line_key": line["line_key"][:500], "closeout_line_no": str(line["line_no"]),
                     "closeout_kind": line["kind"]},
    }  # fmt: skip
    if tax_rate_id:
        request["tax_rates"] = [tax_rate_id]
    return request


def _plain(value: Decimal) -> str:
    text = format(Decimal(value).normalize(), "f")
    return text


# -- stage 4: check the total, finalize -------------------------------------------------------------
def _stage_finalize(conn: psycopg.Connection, hook: StripeHook, summary: PublishSummary) -> None:
    _reread_totals(conn, hook)
    with conn.cursor() as cur:
        mismatched = cur.execute(
            """SELECT invoice_id, currency, total_minor, stripe_total_minor, stripe_invoice_id
               FROM closeout_data.stripe_publications
               WHERE state = 'lines_added' AND stripe_total_minor IS DISTINCT FROM total_minor"""
        ).fetchall()
        for invoice_id, currency, ours, theirs, sid in mismatched:
            _stop(cur, invoice_id, "total_mismatch",
                  f"invoice {invoice_id}: Stripe draft {sid} totals {theirs} {currency} minor units, ours {ours}; "
                  "not finalized", our_total=ours, stripe_total=theirs, currency=currency, stripe_id=sid)  # fmt: skip
            summary.stopped += 1
        # same total, other tax (an inclusive rate whose percentage differs in Stripe): the customer would be
        # shown another tax than the one booked, so it is not finalized either
        tax_mismatched = cur.execute(
            """SELECT p.invoice_id, p.currency, i.tax_minor, p.stripe_tax_minor, p.stripe_invoice_id
               FROM closeout_data.stripe_publications p JOIN closeout_data.invoices i USING (invoice_id)
               WHERE p.state = 'lines_added' AND p.stripe_tax_minor IS DISTINCT FROM i.tax_minor"""
        ).fetchall()
        for invoice_id, currency, ours, theirs, sid in tax_mismatched:
            _stop(cur, invoice_id, "tax_mismatch",
                  f"invoice {invoice_id}: Stripe draft {sid} carries {theirs} {currency} minor units of tax, ours "
                  f"{ours}; not finalized", our_total=ours, stripe_total=theirs, currency=currency,
                  stripe_id=sid, detail={"measure": "tax"})  # fmt: skip
            summary.stopped += 1
    conn.commit()
    rows = _dicts(
        conn,
        """SELECT invoice_id, version, client_key, stripe_invoice_id FROM closeout_data.stripe_publications
           WHERE state = 'lines_added' ORDER BY invoice_id""",
    )
    prefix = hook.settings.key_prefix
    ops = [Operation(keys.invoice_key(prefix, r["invoice_id"], r["version"], "finalize"), "invoice.finalize",
                     r["client_key"], {"auto_advance": False}, r["invoice_id"], r["version"],
                     context={"stripe_invoice_id": r["stripe_invoice_id"]}) for r in rows]  # fmt: skip

    def execute(op: Operation) -> Outcome:
        sid = op.context["stripe_invoice_id"]
        if op.prior_status != "pending" or _key_may_be_gone(op, hook):
            current = hook.retrieve_invoice(sid)
            if current["status"] != "draft":
                return Outcome(op, current, "metadata_lookup")
        result = hook.finalize_invoice(sid, op.key)
        return Outcome(op, result.obj, "replay" if result.replayed else "response")

    def apply(cur: psycopg.Cursor, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            if o.obj:
                _record_finalized(cur, o.op.invoice_id or "", o.obj)
                summary.finalized += 1

    _run_stage(conn, hook, ops, execute, apply, summary)


def _reread_totals(conn: psycopg.Connection, hook: StripeHook) -> None:
    """Publications whose lines went onto Stripe in an earlier run (or resumed after a person resolved
    their exception) re-read Stripe's total first: the draft may have been edited there meanwhile."""
    rows = conn.execute(
        """SELECT invoice_id, stripe_invoice_id FROM closeout_data.stripe_publications
           WHERE state = 'lines_added' AND stripe_total_minor IS NULL"""
    ).fetchall()
    for invoice_id, sid in rows:
        invoice = hook.retrieve_invoice(sid)
        conn.execute(
            """UPDATE closeout_data.stripe_publications SET stripe_total_minor = %s, stripe_tax_minor = %s
               WHERE invoice_id = %s""",
            (invoice["total"], stripe_tax(invoice), invoice_id),
        )
    conn.commit()


def _record_finalized(cur: psycopg.Cursor, invoice_id: str, obj: dict[str, Any]) -> None:
    finalized = _ts(obj["status_transitions"].get("finalized_at")) or datetime.now(UTC)
    due = _ts(obj.get("due_date"))
    expires = hosted_url_expiry(finalized, due)
    cur.execute(
        """UPDATE closeout_data.stripe_publications SET state = 'finalized', stripe_total_minor = %s,
               stripe_tax_minor = %s, finalized_at = %s, due_date = %s, updated_at = clock_timestamp()
           WHERE invoice_id = %s RETURNING total_minor, currency""",
        (obj["total"], stripe_tax(obj), finalized, due.date() if due else None, invoice_id),
    )
    total, currency = cur.fetchone() or (None, None)
    cur.execute(
        """UPDATE closeout_data.invoices SET status = 'open', stripe_invoice_id = %s, stripe_number = %s,
               hosted_invoice_url = %s, hosted_invoice_url_expires_at = %s, updated_at = clock_timestamp()
           WHERE invoice_id = %s AND status = 'publishing'
           RETURNING amount_paid_minor""",
        (obj["id"], obj.get("number"), obj.get("hosted_invoice_url"), expires, invoice_id),
    )
    row = cur.fetchone()
    if row is not None:
        cur.execute(
            """INSERT INTO closeout_data.invoice_status_history (invoice_id, from_status, to_status,
                   amount_paid_before, amount_paid_after, via) VALUES (%s, 'publishing', 'open', %s, %s, 'publish')""",
            (invoice_id, row[0], row[0]),
        )
    if total is not None and obj["total"] != total:
        exceptions.open_exception(
            cur, kind="total_mismatch", invoice_id=invoice_id, stripe_object_id=obj["id"],
            message=f"invoice {invoice_id}: Stripe finalized {obj['id']} at {obj['total']} {currency} minor units, "
                    f"ours is {total}", our_total_minor=total, stripe_total_minor=obj["total"], currency=currency,
        )  # fmt: skip


def hosted_url_expiry(finalized: datetime, due: datetime | None) -> datetime:
    """Stripe's hosted invoice page lives until 30 days after the due date, never more than 120 days."""
    limit = finalized + timedelta(days=HOSTED_URL_MAX_DAYS)
    if due is None:
        return limit
    return min(due + timedelta(days=HOSTED_URL_DAYS_AFTER_DUE), limit)


# -- the outbox machinery -----------------------------------------------------------------------------
def _run_stage(
    conn: psycopg.Connection,
    hook: StripeHook,
    ops: list[Operation],
    execute: Callable[[Operation], Outcome],
    apply: Callable[[psycopg.Cursor, list[Outcome]], None],
    summary: PublishSummary,
) -> bool:
    """Record each batch in the outbox (commit), call Stripe, record the answers (commit). True if any
    operation completed."""
    progressed = False
    for start in range(0, len(ops), BATCH):
        batch = _record(conn, ops[start : start + BATCH])
        faults.point(f"stripe.{batch[0].operation}.before_call")
        with ThreadPoolExecutor(max_workers=hook.settings.concurrency) as pool:
            outcomes = list(pool.map(lambda op: _guarded(execute, op), batch))
        faults.point(f"stripe.{batch[0].operation}.after_call")
        with conn.cursor() as cur:
            _complete(cur, outcomes, summary)
            apply(cur, outcomes)
            for o in outcomes:
                if o.stop and o.op.invoice_id:
                    _stop(cur, o.op.invoice_id, *o.stop, stripe_id=o.op.context.get("stripe_invoice_id"))
                    summary.stopped += 1
                elif o.stop:
                    summary.stopped += _stop_client(cur, o.op.client_key, *o.stop)
        conn.commit()
        progressed |= any(o.obj for o in outcomes)
    return progressed


def _guarded(execute: Callable[[Operation], Outcome], op: Operation) -> Outcome:
    try:
        return execute(op)
    except StripeCallError as exc:
        if exc.retryable:
            return Outcome(op, error=exc)
        what = f"invoice {op.invoice_id}" if op.invoice_id else f"client {op.client_key}"
        return Outcome(op, error=exc, stop=("stripe_refused", f"{what}: {op.operation} refused by Stripe: {exc}"))


def _record(conn: psycopg.Connection, ops: list[Operation]) -> list[Operation]:
    """Write the batch's outbox rows (or count another attempt on existing ones) and commit: from here
    on, a call with these keys may have happened."""
    if not ops:
        return []
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO closeout_data.stripe_outbox AS o (idempotency_key, operation, client_key, invoice_id,
                   invoice_version, part, request, attempts, last_attempt_at)
               SELECT * , 1, clock_timestamp() FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],
                   %s::integer[], %s::integer[], %s::jsonb[])
               ON CONFLICT (idempotency_key) DO UPDATE SET attempts = o.attempts + 1,
                   last_attempt_at = clock_timestamp()
               RETURNING idempotency_key, (xmax = 0) AS inserted, created_at, request, status""",
            (
                [o.key for o in ops], [o.operation for o in ops], [o.client_key for o in ops],
                [o.invoice_id for o in ops], [o.version for o in ops], [o.part for o in ops],
                [json.dumps(o.request, default=str) for o in ops],
            ),
        )  # fmt: skip
        recorded = {key: (inserted, created, request, status) for key, inserted, created, request, status in cur}
    conn.commit()
    for op in ops:
        op.inserted, op.created_at, op.request, op.prior_status = recorded[op.key]
    return ops


def _complete(cur: psycopg.Cursor, outcomes: Iterable[Outcome], summary: PublishSummary) -> None:
    rows = []
    for o in outcomes:
        if o.obj:
            status, error = "done", None
            summary.replays += o.resolved_by == "replay"
        elif o.error and o.error.retryable:
            status, error = "pending", str(o.error)
            summary.transient_errors += 1
            summary.errors.append(f"{o.op.key}: {o.error}")
        else:
            status, error = "failed", str(o.error) if o.error else (o.stop[1] if o.stop else None)
        rows.append({"status": status, "resolved_by": o.resolved_by, "object_id": o.obj["id"] if o.obj else None,
                     "http": o.error.status if o.error else 200, "error": mask_secrets(error),
                     "key": o.op.key})  # fmt: skip
        if o.error:
            log.warning("%s: %s", o.op.key, o.error)
    cur.executemany(
        """UPDATE closeout_data.stripe_outbox SET status = %(status)s,
               completed_at = CASE WHEN %(status)s = 'pending' THEN NULL ELSE clock_timestamp() END,
               resolved_by = %(resolved_by)s, stripe_object_id = %(object_id)s, http_status = %(http)s,
               last_error = %(error)s
           WHERE idempotency_key = %(key)s""",
        rows,
    )


def _key_may_be_gone(op: Operation, hook: StripeHook) -> bool:
    """Stripe promises a key for about 24 h; an hour of margin, and the key is treated as gone."""
    if op.inserted or op.created_at is None:
        return False
    age = datetime.now(UTC) - op.created_at
    return age > timedelta(hours=hook.settings.idempotency_key_hours) - timedelta(hours=1)


def _stop(
    cur: psycopg.Cursor,
    invoice_id: str,
    kind: str,
    message: str,
    *,
    our_total: int | None = None,
    stripe_total: int | None = None,
    currency: str | None = None,
    stripe_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    log.error("publication stopped: %s", message)
    cur.execute(
        """UPDATE closeout_data.stripe_publications SET state = 'stopped', stop_reason = %s,
               updated_at = clock_timestamp() WHERE invoice_id = %s AND state <> 'finalized'""",
        (message, invoice_id),
    )
    exceptions.open_exception(cur, kind=kind, message=message, invoice_id=invoice_id, stripe_object_id=stripe_id,
                              our_total_minor=our_total, stripe_total_minor=stripe_total, currency=currency,
                              detail=detail)  # fmt: skip


def _stop_client(cur: psycopg.Cursor, client_key: str, kind: str, message: str) -> int:
    """A client Stripe will not take stops every publication of that client waiting for it."""
    invoice_ids = [r[0] for r in cur.execute(
        "SELECT invoice_id FROM closeout_data.stripe_publications WHERE client_key = %s AND state = 'pending'",
        (client_key,)).fetchall()]  # fmt: skip
    for invoice_id in invoice_ids:
        _stop(cur, invoice_id, kind, message)
    return len(invoice_ids)


# -- small helpers ----------------------------------------------------------------------------------
def _invoice_metadata(row: dict[str, Any]) -> dict[str, str]:
    return {
        "closeout_invoice_id": row["invoice_id"],
        "closeout_version": str(row["version"]),
        "closeout_client": row["client_key"][:500],
        "closeout_total_minor": str(row["total_minor"]),
        "closeout_period": f"{row['period_start']:%Y-%m-%d}/{row['period_end']:%Y-%m-%d}",
    }


def _dicts(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None
