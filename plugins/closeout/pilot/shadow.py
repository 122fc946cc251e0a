"""Shadow mode at the publish stage: only the cohort's drafts go to Stripe; the rest are held, visibly.

A held draft stays a draft (drafting keeps refreshing it from the tracker, so the daily comparison sees what
closeout would bill) and is recorded in ``closeout_data.pilot_shadow_drafts`` (public view
``closeout.pilot_shadow_drafts``, state ``shadow``). It is never sent to Stripe, so the reconciliation never
expects a Stripe invoice for it (invoices_to_stripe and stripe_objects judge published invoices only) and the
payout plan never finds paid work on it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg

from closeout.paths import load_sql
from closeout.pilot import config

log = logging.getLogger(__name__)


def admit(conn: psycopg.Connection, candidates: Sequence[str]) -> list[str]:
    """Of the drafts policy lets go out, those the pilot lets go out too, in the callers' order; the others are
    recorded as shadow drafts. Commits (the cohort mirror and the shadow records)."""
    pilot = config.load_and_apply(conn)
    if not candidates:
        conn.commit()
        return []
    with conn.transaction():
        admitted = {i for (i,) in conn.execute(load_sql("pilot/hold_shadow.sql"), {"candidates": list(candidates)})}
    conn.commit()
    held = len(candidates) - len(admitted)
    if held:
        log.info("pilot (%s cohort clients): %s drafts held in shadow, %s published", len(pilot.cohort), held,
                 len(admitted))  # fmt: skip
    return [invoice_id for invoice_id in candidates if invoice_id in admitted]
