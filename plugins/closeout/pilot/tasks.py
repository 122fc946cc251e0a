"""The closeout_pilot_compare task: one daily comparison run and its rollback verdict."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import Any

log = logging.getLogger(__name__)


def compare(run_id: str, compared_on: date | None = None, period: str | None = None) -> dict[str, Any]:
    """Compare the months of ``compared_on`` (default today, UTC) or the one ``period``; evaluate the rollback
    criteria; alert on breaches. Returns the run's summary (counts, breaches, alert deliveries)."""
    from closeout.pilot import compare as comparison
    from closeout.warehouse.db import connect

    day = compared_on or datetime.now(UTC).date()
    with connect() as conn:
        summary = comparison.run(conn, run_id=run_id, compared_on=day, period=period)
    log.info("pilot comparison %s on %s over %s: %s rows, %s mismatching, differences %s, breaches %s, alerts %s",
             run_id, day, summary.periods, summary.rows, summary.mismatches, summary.differences,
             len(summary.breaches), summary.alerts)  # fmt: skip
    return summary.as_dict()
