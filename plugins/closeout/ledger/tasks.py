"""The ledger's Airflow task as a plain function: load and mirror the chart, post, record the run.

Runs at the end of ``closeout_stripe_events`` (after the events of the run are applied), so the ledger
follows Stripe at the events' cadence, and after the release of ``closeout_payouts``, so a payout's transfer is
booked when it is made. Safe to retry: posting is idempotent and all-or-nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg

from closeout.ledger import accounts, posting
from closeout.masking import mask_secrets
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)


def post_journals(airflow_run_id: str | None = None) -> dict[str, Any]:
    """Post what is due; returns journals per kind and lines posted (all zero when nothing was due)."""
    chart = accounts.read()
    with connect() as conn:
        run_id = _start(conn, airflow_run_id, chart.content_hash)
        try:
            accounts.mirror(conn, chart)
            posted = posting.post(conn, chart, run_id)
            counts: dict[str, Any] = {"journals": posted.total, "lines": posted.lines, "by_kind": posted.journals}
            _finish(conn, run_id, counts)
            conn.commit()
        except Exception as exc:
            conn.rollback()
            _finish(conn, run_id, {}, error=mask_secrets(str(exc))[:2000])
            conn.commit()
            raise
    log.info("post_journals: %s", counts)
    return counts


def _start(conn: psycopg.Connection, airflow_run_id: str | None, chart_hash: str) -> int:
    """Recorded and committed at once, so a run that dies still leaves its trace."""
    (run_id,) = conn.execute(
        """INSERT INTO closeout_data.ledger_runs (airflow_run_id, chart_hash) VALUES (%s, %s)
           RETURNING ledger_run_id""",
        (airflow_run_id, chart_hash),
    ).fetchone()
    conn.commit()
    return run_id


def _finish(conn: psycopg.Connection, run_id: int, counts: dict[str, Any], error: str | None = None) -> None:
    conn.execute(
        """UPDATE closeout_data.ledger_runs SET finished_at = clock_timestamp(), status = %s, counts = %s, error = %s
           WHERE ledger_run_id = %s""",
        ("failed" if error else "success", json.dumps(counts), error, run_id),
    )
