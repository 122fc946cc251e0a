"""What the ``closeout_tracker_writeback`` DAG's tasks call, one per tracker (kept out of the DAG file so it
parses fast). A tracker with nothing billed and nothing recorded makes no call (its connection may not exist)."""

from __future__ import annotations

import logging
import os
from typing import Any

from closeout.paths import load_sql
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)


def _has_work(source: str) -> bool:
    with connect() as conn:
        return bool(conn.execute(load_sql("writeback/has_work.sql"), {"source": source}).fetchone()[0])


def writeback_harvest(limit: int = 1000) -> dict[str, Any]:
    """Mirror issued invoices, their state, payments and credit notes in Harvest; fails (for Airflow's retry) when
    a write got no answer, after every other invoice was handled."""
    if not _has_work("harvest"):
        return {"skipped": "no invoice bills Harvest time or expenses"}
    from closeout.writeback.harvest_api import HarvestWriter
    from closeout.writeback.harvest_mirror import WritebackPending, mirror

    writer = HarvestWriter()
    try:
        with connect() as conn:
            summary = mirror(conn, writer, limit=limit)
    finally:
        writer.hook.close()
    log.info("Harvest write-back: %s", summary.as_dict())
    if summary.pending:
        raise WritebackPending(f"{summary.pending} Harvest writes got no answer; the retry looks them up first "
                               f"({summary.as_dict()})")  # fmt: skip
    return summary.as_dict()


def writeback_clockify(batch: int | None = None) -> dict[str, Any]:
    """Mark the billed Clockify entries of issued invoices invoiced, ``batch`` ids per request (default: env
    ``CLOSEOUT_CLOCKIFY_INVOICED_BATCH``, else 500)."""
    batch = batch or int(os.environ.get("CLOSEOUT_CLOCKIFY_INVOICED_BATCH", "500"))
    if not _has_work("clockify"):
        return {"skipped": "no invoice bills Clockify time"}
    from closeout.trackers.clockify.hook import ClockifyHook
    from closeout.writeback.clockify_flags import flag_invoiced

    hook = ClockifyHook()
    try:
        with connect() as conn:
            summary = flag_invoiced(conn, hook, batch=batch)
    finally:
        hook.close()
    log.info("Clockify write-back: %s", summary.as_dict())
    return summary.as_dict()
