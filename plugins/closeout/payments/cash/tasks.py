"""The cash task of ``closeout_stripe_events`` (and of the month-end close): events first (cheap, already
stored), then the list endpoints, then the links; recorded in ``closeout.payment_runs`` as step ``sync_cash``
with the requests it made. Safe to retry: cursors resume, upserts are idempotent."""

from __future__ import annotations

import logging
from typing import Any

from closeout.paths import load_sql
from closeout.payments.cash import events
from closeout.payments.cash.store import Store
from closeout.payments.cash.sync import CashSync
from closeout.payments.hook import StripeHook
from closeout.payments.runs import finish, start
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)


def sync_cash(airflow_run_id: str | None = None) -> dict[str, Any]:
    hook = StripeHook()
    with connect() as conn:
        run_id = start(conn, "sync_cash", airflow_run_id)
        try:
            applied = events.apply(conn, Store(conn))
            result = CashSync(conn, hook).run()
            ended = conn.execute(load_sql("cash/resolve_dispute_exceptions.sql")).rowcount
            conn.commit()
            counts = {"events": applied, **result.as_dict(), "dispute_exceptions_resolved": ended}
        except Exception as exc:
            finish(conn, run_id, requests=hook.requests, counts={}, error=str(exc)[:2000])
            raise
        finish(conn, run_id, requests=hook.requests, counts=counts)
    counts["requests_total"] = hook.requests
    log.info("sync_cash: %s", counts)
    return counts
