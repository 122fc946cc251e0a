"""The month-end close's evidence step: one call, the period's pack and one pack per invoice of the period."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def write_period_evidence(
    period: str, *, per_invoice: bool = True, conn_id: str = "closeout_warehouse"
) -> dict[str, Any]:
    """Write ``evidence/<period>/`` and (``per_invoice``) ``evidence/invoices/<id>/`` for every invoice of the
    period; return where they are, for the close report. Safe to retry: a rebuilt pack replaces the files whole."""
    from closeout.evidence.packs import invoice_pack, period_bounds, period_pack
    from closeout.paths import load_sql
    from closeout.warehouse.db import connect

    start, end = period_bounds(period)
    with connect(conn_id) as conn:
        period_written = period_pack(conn, period)
        invoice_indexes: dict[str, str] = {}
        if per_invoice:
            ids = [r[0] for r in conn.execute(load_sql("evidence/period_invoices.sql"), {"start": start, "end": end})]
            conn.commit()
            for invoice_id in ids:
                invoice_indexes[invoice_id] = invoice_pack(conn, invoice_id).index
    log.info("evidence for %s: %s and %d invoice pack(s)", period, period_written.index, len(invoice_indexes))
    return {"period": period, "index": period_written.index, "rows": period_written.summary()["rows"],
            "invoices": invoice_indexes}  # fmt: skip
