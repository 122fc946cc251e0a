"""Payment exceptions: what stops an invoice on its way to or through Stripe, kept for a person to act on.

Opening is idempotent (one open exception per invoice and kind); resolving is recorded with who, when and
why, never deleted. Resolving a stopped publication lets the next publish run take it up again.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg


def open_exception(
    cur: psycopg.Cursor,
    *,
    kind: str,
    message: str,
    invoice_id: str | None = None,
    stripe_object_id: str | None = None,
    our_total_minor: int | None = None,
    stripe_total_minor: int | None = None,
    currency: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    cur.execute(
        """INSERT INTO closeout_data.payment_exceptions (invoice_id, stripe_object_id, kind, message,
               our_total_minor, stripe_total_minor, currency, detail)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (coalesce(invoice_id, stripe_object_id), kind) WHERE resolved_at IS NULL DO NOTHING""",
        (invoice_id, stripe_object_id, kind, message, our_total_minor, stripe_total_minor, currency,
         json.dumps(detail or {}, default=str)),
    )  # fmt: skip


def resolve(conn: psycopg.Connection, exception_id: int, *, resolved_by: str, resolution: str) -> None:
    """Close an exception. If it stopped a publication, the publication resumes where it stopped: a
    publication stopped before finalizing re-reads Stripe's total before it finalizes."""
    if not resolved_by.strip() or not resolution.strip():
        raise ValueError("resolving a payment exception needs who (resolved_by) and why (resolution)")
    row = conn.execute(
        """UPDATE closeout_data.payment_exceptions SET resolved_at = clock_timestamp(), resolved_by = %s,
               resolution = %s WHERE exception_id = %s AND resolved_at IS NULL RETURNING invoice_id""",
        (resolved_by, resolution, exception_id),
    ).fetchone()
    if row is None:
        raise ValueError(f"payment exception {exception_id}: no such open exception")
    conn.execute(
        """UPDATE closeout_data.stripe_publications p
           SET state = CASE WHEN p.stripe_invoice_id IS NULL THEN 'pending'
                            WHEN p.parts_added < p.parts_total THEN 'created' ELSE 'lines_added' END,
               stripe_total_minor = NULL, stop_reason = NULL, updated_at = clock_timestamp()
           WHERE p.invoice_id = %s AND p.state = 'stopped'
             AND NOT EXISTS (SELECT 1 FROM closeout_data.payment_exceptions e
                             WHERE e.invoice_id = p.invoice_id AND e.resolved_at IS NULL)""",
        (row[0],),
    )
