"""The drafting DAG's tasks as plain functions: each opens its own warehouse transaction, commits
once, and is safe to retry (a failed attempt leaves nothing behind but a 'failed' draft run row)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from closeout.billing import config as billing_config
from closeout.billing import drafting
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)


def load_config(path: str | None = None) -> dict[str, Any]:
    """Read the billing config file and mirror it into the warehouse."""
    parsed = billing_config.read(Path(path) if path else None)
    with connect() as conn:
        result = billing_config.apply(conn, parsed)
        conn.commit()
    log.info("billing config %s: %d clients, %d rate cards; settings changed for %s (%d entries to re-judge)",
             result["origin"], result["clients"], result["rate_cards"], result["changed_clients"] or "no client",
             result["entries_to_rejudge"])  # fmt: skip
    return result


def refresh(airflow_run_id: str | None = None) -> dict[str, Any]:
    """One drafting run; returns (and logs) its summary, exceptions counted by reason."""
    with connect() as conn:
        try:
            summary = drafting.refresh_drafts(conn, airflow_run_id=airflow_run_id)
            conn.commit()
        except Exception as exc:
            conn.rollback()
            drafting.record_failure(conn, airflow_run_id=airflow_run_id, error=exc)
            conn.commit()
            raise
    log.info("drafting run %d: %d entries judged, %d drafts changed (%d rows closed, %d added), "
             "%d adjustment and %d credit lines; kept out: %d exceptions %s, %d already invoiced in the tracker, "
             "%d quarantined time entries (closeout.billing_exceptions); %.2f s",
             summary.draft_run_id, summary.entries_judged, summary.invoices_changed, summary.rows_closed,
             summary.rows_added, summary.adjustment_lines, summary.credit_lines, summary.exceptions,
             summary.exceptions_by_reason or "", summary.excluded, summary.quarantined, summary.seconds)  # fmt: skip
    result = summary.as_dict()
    result.pop("step_seconds", None)
    return result
