"""Stripe Tax Rates for taxed invoices: one per distinct (rate, inclusive, display name, jurisdiction), made once.

A taxed invoice's Stripe invoice items carry ``tax_rates`` (docs/invoice-tax.md), so Stripe shows the tax on
every line and in ``total_taxes`` and charges the total with tax. Each distinct tax configuration among the
publications waiting for their lines is registered in ``closeout_data.stripe_tax_rates`` under a deterministic
key, then created through the publish outbox (operation ``tax_rate.create``): the outbox row, with its
idempotency key, is committed before the call, so a retry replays instead of making a second rate. A rate
whose key may be gone (or whose record was lost) is first looked for by its metadata among the account's
rates (Tax Rates have no search; an account holds few). A rate Stripe refuses stops the invoices that need it.

Stripe computes each line's tax itself, per line, rounded half-up in the minor unit, exactly as the drafting
does (``closeout_data.line_tax_minor``); the publication checks Stripe's total and tax against ours before
finalizing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg

from closeout.payments import keys

if TYPE_CHECKING:
    from closeout.payments.hook import StripeHook
    from closeout.payments.publish import PublishSummary

OPERATION = "tax_rate.create"
# publications whose lines are still to go to Stripe: the ones a tax rate is needed for
WAITING_STATES = ("pending", "created")


def rate_text(rate: Decimal) -> str:
    """A percentage as Stripe takes it and as finance reads it: ``20``, ``17.5`` (never ``2E+1``)."""
    return format(Decimal(rate).normalize(), "f")


def tax_rate_key(rate: Decimal, inclusive: bool, name: str, jurisdiction: str | None) -> str:
    """The business identity of one Stripe Tax Rate."""
    return f"{rate_text(rate)}%/{'inclusive' if inclusive else 'exclusive'}/{name}/{jurisdiction or '-'}"


def stage_tax_rates(conn: psycopg.Connection, hook: StripeHook, summary: PublishSummary) -> None:
    """Make sure every tax rate a waiting publication needs exists in Stripe, once."""
    from closeout.payments import publish  # the outbox machinery (publish imports this module lazily too)

    needed = conn.execute(
        """SELECT DISTINCT i.tax_rate_percent, i.tax_inclusive, coalesce(i.tax_name, 'Tax'), i.tax_jurisdiction
           FROM closeout_data.stripe_publications p JOIN closeout_data.invoices i USING (invoice_id)
           WHERE p.state = ANY(%s) AND i.tax_rate_percent IS NOT NULL""",
        (list(WAITING_STATES),),
    ).fetchall()
    prefix = hook.settings.key_prefix
    rows = [(tax_rate_key(rate, inclusive, name, jurisdiction), rate, inclusive, name, jurisdiction)
            for rate, inclusive, name, jurisdiction in needed]  # fmt: skip
    if rows:
        conn.cursor().executemany(
            """INSERT INTO closeout_data.stripe_tax_rates (tax_rate_key, rate_percent, inclusive, display_name,
                   jurisdiction, idempotency_key) VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (tax_rate_key) DO NOTHING""",
            [(*row, _idempotency_key(prefix, row[0])) for row in rows],
        )
    conn.commit()
    missing = conn.execute(
        """SELECT tax_rate_key, rate_percent, inclusive, display_name, jurisdiction, idempotency_key
           FROM closeout_data.stripe_tax_rates WHERE stripe_tax_rate_id IS NULL ORDER BY tax_rate_key"""
    ).fetchall()
    ops = [publish.Operation(idempotency_key, OPERATION, f"tax_rate:{key}"[:500], _request(key, rate, inclusive, name,
                                                                                          jurisdiction),
                             context={"tax_rate_key": key})
           for key, rate, inclusive, name, jurisdiction, idempotency_key in missing]  # fmt: skip

    def execute(op: publish.Operation) -> publish.Outcome:
        if not op.inserted and (op.prior_status != "pending" or publish._key_may_be_gone(op, hook)):
            found = [r for r in hook.list_tax_rates()
                     if (r.get("metadata") or {}).get("closeout_tax_rate") == op.context["tax_rate_key"]]  # fmt: skip
            if found:
                return publish.Outcome(op, min(found, key=lambda r: (r["created"], r["id"])), "metadata_lookup")
        result = hook.create_tax_rate(op.request, op.key)
        return publish.Outcome(op, result.obj, "replay" if result.replayed else "response")

    def apply(cur: psycopg.Cursor, outcomes: list[publish.Outcome]) -> None:
        cur.executemany(
            """UPDATE closeout_data.stripe_tax_rates SET stripe_tax_rate_id = %s, created_at = clock_timestamp()
               WHERE tax_rate_key = %s AND stripe_tax_rate_id IS NULL""",
            [(o.obj["id"], o.op.context["tax_rate_key"]) for o in outcomes if o.obj],
        )

    publish._run_stage(conn, hook, ops, execute, apply, summary)
    _stop_refused(conn, summary)


def tax_rate_ids(conn: psycopg.Connection, invoice_ids: list[str]) -> dict[str, str | None]:
    """The Stripe Tax Rate each invoice's lines carry (None: untaxed or exempt, no rate attached); an invoice
    whose rate is not made yet is absent."""
    rows = conn.execute(
        """SELECT i.invoice_id, i.tax_rate_percent IS NULL AS untaxed, t.stripe_tax_rate_id
           FROM closeout_data.invoices i
           LEFT JOIN closeout_data.stripe_tax_rates t
                  ON t.rate_percent = i.tax_rate_percent AND t.inclusive = i.tax_inclusive
                 AND t.display_name = coalesce(i.tax_name, 'Tax')
                 AND t.jurisdiction IS NOT DISTINCT FROM i.tax_jurisdiction
           WHERE i.invoice_id = ANY(%s)""",
        (invoice_ids,),
    ).fetchall()
    return {invoice_id: rid for invoice_id, untaxed, rid in rows if untaxed or rid is not None}


def _request(key: str, rate: Decimal, inclusive: bool, name: str, jurisdiction: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {"display_name": name[:50], "percentage": rate_text(rate), "inclusive": inclusive,
                               "metadata": {"closeout_tax_rate": key[:500]}}  # fmt: skip
    if jurisdiction:
        request["jurisdiction"] = jurisdiction[:50]
        if len(jurisdiction) == 2 and jurisdiction.isalpha():
            request["country"] = jurisdiction.upper()
    return request


def _idempotency_key(prefix: str, key: str) -> str:
    return keys.tax_rate_key(prefix, key)


def _stop_refused(conn: psycopg.Connection, summary: PublishSummary) -> None:
    """Invoices needing a rate Stripe refused wait for a person, with the refusal as the reason."""
    from closeout.payments import publish

    rows = conn.execute(
        """SELECT p.invoice_id, i.currency, i.total_minor, t.tax_rate_key, o.last_error
           FROM closeout_data.stripe_publications p JOIN closeout_data.invoices i USING (invoice_id)
           JOIN closeout_data.stripe_tax_rates t
             ON t.rate_percent = i.tax_rate_percent AND t.inclusive = i.tax_inclusive
            AND t.display_name = coalesce(i.tax_name, 'Tax') AND t.jurisdiction IS NOT DISTINCT FROM i.tax_jurisdiction
           JOIN closeout_data.stripe_outbox o ON o.idempotency_key = t.idempotency_key
           WHERE p.state = ANY(%s) AND t.stripe_tax_rate_id IS NULL AND o.status = 'failed'""",
        (list(WAITING_STATES),),
    ).fetchall()
    with conn.cursor() as cur:
        for invoice_id, currency, total, key, error in rows:
            publish._stop(cur, invoice_id, "tax_rate_refused",
                          f"invoice {invoice_id}: Stripe refused its tax rate {key}: {error}", our_total=total,
                          currency=currency)  # fmt: skip
            summary.stopped += 1
    conn.commit()
