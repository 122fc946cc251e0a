"""What may happen to a draft after it is built: approval, freezing for publication, voiding.

Corrections are never edits. Freezing fixes an invoice's content for good; from then on a change to
one of its entries is billed as a linked adjustment or credit on the client's next draft. Voiding
releases the entries of a frozen invoice: the next drafting run bills them again, linked to it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout.billing.drafting import lock_billing

FROZEN_STATUSES = ("publishing", "open", "paid", "uncollectible", "void")


class DraftStateError(RuntimeError):
    """The invoice is not in a state that allows the requested step."""


def _invoice(conn: psycopg.Connection, invoice_id: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM closeout_data.invoices WHERE invoice_id = %s FOR UPDATE", (invoice_id,)
        ).fetchone()
    if row is None:
        raise DraftStateError(f"invoice {invoice_id}: no such invoice")
    return row


def approve(
    conn: psycopg.Connection, invoice_id: str, *, version: int, approved_by: str, note: str | None = None
) -> None:
    """Approve one version of a held draft. A later rebuild is a new version and needs a new approval."""
    lock_billing(conn)
    invoice = _invoice(conn, invoice_id)
    if invoice["status"] != "draft":
        raise DraftStateError(f"invoice {invoice_id}: is {invoice['status']}, only a draft can be approved")
    if invoice["version"] != version:
        raise DraftStateError(
            f"invoice {invoice_id}: version {version} was approved but the draft is now version {invoice['version']}"
        )
    if not approved_by.strip():
        raise DraftStateError(f"invoice {invoice_id}: approved_by is required")
    conn.execute(
        """UPDATE closeout_data.invoices SET approved_version = %s, approved_by = %s, approved_at = clock_timestamp(),
               approval_note = %s WHERE invoice_id = %s""",
        (version, approved_by, note, invoice_id),
    )


def publishable(conn: psycopg.Connection, as_of: date) -> list[str]:
    """Drafts that policy lets go out on ``as_of``: the period is over, there is something to bill,
    and the draft is either automatic or its current version is approved."""
    rows = conn.execute(
        """SELECT invoice_id FROM closeout_data.invoices
           WHERE status = 'draft' AND line_count > 0 AND total_minor > 0 AND period_end < %s
             AND (publish_policy = 'auto' OR approved_version = version)
           ORDER BY period_start, client_key, currency""",
        (as_of,),
    ).fetchall()
    return [invoice_id for (invoice_id,) in rows]


def freeze(conn: psycopg.Connection, invoice_id: str, *, expected_version: int | None = None) -> int:
    """Fix a draft's content for publication; returns the frozen version. Idempotent for an invoice
    already frozen at ``expected_version``."""
    lock_billing(conn)
    invoice = _invoice(conn, invoice_id)
    if invoice["status"] != "draft":
        if expected_version is not None and invoice["frozen_version"] == expected_version:
            return expected_version
        raise DraftStateError(f"invoice {invoice_id}: is already {invoice['status']}")
    if expected_version is not None and invoice["version"] != expected_version:
        raise DraftStateError(
            f"invoice {invoice_id}: expected version {expected_version}, the draft is version {invoice['version']}"
        )
    if invoice["line_count"] == 0:
        raise DraftStateError(f"invoice {invoice_id}: has no lines")
    conn.execute(
        """UPDATE closeout_data.invoices SET status = 'publishing', frozen_version = version,
               frozen_at = clock_timestamp(), updated_at = clock_timestamp() WHERE invoice_id = %s""",
        (invoice_id,),
    )
    return invoice["version"]


def void(conn: psycopg.Connection, invoice_id: str) -> int:
    """Void a frozen invoice and release its entries to be billed again; returns how many."""
    lock_billing(conn)
    invoice = _invoice(conn, invoice_id)
    if invoice["status"] in ("draft", "paid", "void"):
        raise DraftStateError(f"invoice {invoice_id}: is {invoice['status']} and cannot be voided")
    conn.execute(
        "UPDATE closeout_data.invoices SET status = 'void', updated_at = clock_timestamp() WHERE invoice_id = %s",
        (invoice_id,),
    )
    released = conn.execute(
        """UPDATE closeout_data.billing_entries b SET entry_version = -1
           FROM (SELECT DISTINCT source, source_id FROM closeout_data.invoice_line_entries
                 WHERE invoice_id = %s AND valid_to IS NULL) e
           WHERE b.source = e.source AND b.source_id = e.source_id""",
        (invoice_id,),
    )
    return released.rowcount
