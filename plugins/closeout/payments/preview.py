"""What publishing would send to Stripe, computed from the drafts without a call or a freeze (the close's dry run).

The same rule as the publish stage (``closeout.billing.lifecycle.publishable``: period over, something to bill,
automatic or approved), plus frozen invoices whose publication has not finished (a real run resumes them), plus,
when the close overrides the policy to 'auto', the held drafts of the closed period that it would approve.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout.paths import load_sql


def preview_publish(conn: psycopg.Connection, as_of: date, *, approve_held_from: date | None = None) -> dict[str, Any]:
    """The invoices publish would send on ``as_of``, with totals per currency in minor units."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(load_sql("close/publish_preview.sql"),
                           {"as_of": as_of, "approve_held": approve_held_from is not None,
                            "start": approve_held_from or as_of}).fetchall()  # fmt: skip
    totals: dict[str, int] = {}
    by_action: dict[str, int] = {}
    invoices = []
    for row in rows:
        totals[row["currency"]] = totals.get(row["currency"], 0) + int(row["total_minor"])
        by_action[row["action"]] = by_action.get(row["action"], 0) + 1
        invoices.append({**row, "period_start": row["period_start"].isoformat(), "total_minor": int(row["total_minor"]),
                         "period_end": row["period_end"].isoformat()})  # fmt: skip
    return {"as_of": as_of.isoformat(), "count": len(invoices), "totals_minor": totals, "by_action": by_action,
            "invoices": invoices}  # fmt: skip
