"""The Stripe DAGs' tasks as plain functions: each opens its own warehouse connection, records its run in
``closeout.payment_runs`` (with the requests it made) and is safe to retry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from closeout.payments import collections, events, publish
from closeout.payments.hook import StripeHook
from closeout.payments.runs import finish, start
from closeout.warehouse.db import connect

log = logging.getLogger(__name__)


def _recorded(step: str, airflow_run_id: str | None, body: Callable[[psycopg.Connection, StripeHook], dict]) -> dict:
    hook = StripeHook()
    with connect() as conn:
        run_id = start(conn, step, airflow_run_id)
        try:
            counts = body(conn, hook)
        except Exception as exc:
            finish(conn, run_id, requests=hook.requests, counts=getattr(exc, "counts", {}), error=str(exc)[:2000])
            raise
        finish(conn, run_id, requests=hook.requests, counts=counts)
    counts = {**counts, "requests": hook.requests}
    log.info("%s: %s", step, counts)
    return counts


def publish_drafts(airflow_run_id: str | None = None, as_of: date | None = None) -> dict[str, Any]:
    """Freeze what policy lets go out and publish every unfinished publication."""
    day = as_of or datetime.now(UTC).date()

    def body(conn: psycopg.Connection, hook: StripeHook) -> dict:
        try:
            return publish.publish(conn, hook, as_of=day).as_dict()
        except publish.PublishIncomplete as exc:
            exc.counts = {"incomplete": str(exc)}  # type: ignore[attr-defined]
            raise

    return _recorded("publish", airflow_run_id, body)


def collect_events(airflow_run_id: str | None = None) -> dict[str, Any]:
    """Webhook inbox first (cheap), then the /v1/events backfill for whatever was never delivered."""

    def body(conn: psycopg.Connection, hook: StripeHook) -> dict:
        inbox = events.ingest_webhooks(conn)
        listed = events.backfill(conn, hook)
        return {"webhook_inbox": inbox, "backfill": listed}

    return _recorded("collect_events", airflow_run_id, body)


def apply_events(airflow_run_id: str | None = None) -> dict[str, Any]:
    return _recorded("apply_events", airflow_run_id, lambda conn, hook: events.apply(conn, hook))


def refresh_hosted_urls(airflow_run_id: str | None = None) -> dict[str, Any]:
    """The link each new invoice's customer holds is recorded first (collections), then closeout's copies
    close to expiry are re-read."""

    def body(conn: psycopg.Connection, hook: StripeHook) -> dict:
        customer_links = collections.record_customer_links(conn)
        return {"refreshed": events.refresh_hosted_urls(conn, hook), "customer_links_recorded": customer_links}

    return _recorded("refresh_hosted_urls", airflow_run_id, body)


def collect_dead_links(airflow_run_id: str | None = None) -> dict[str, Any]:
    """Every invoice whose customer holds an expired payment link: resent or finance told, per client policy."""

    def body(conn: psycopg.Connection, hook: StripeHook) -> dict:
        try:
            return collections.collect(conn, hook, run_id=airflow_run_id).as_dict()
        except collections.CollectionsIncomplete as exc:
            exc.counts = {"incomplete": str(exc)}  # type: ignore[attr-defined]
            raise

    return _recorded("collect_dead_links", airflow_run_id, body)
