"""Releasing approved batches: each pending item becomes one Stripe transfer, exactly once.

Per item, like the publish outbox (``closeout.payments.publish``): record the attempt (commit), call Stripe
with the item's own idempotency key and the request fixed at planning, record the transfer id (commit).
A timeout after Stripe committed or a worker killed before our commit sends the same key again and Stripe
replays its first answer. A key older than Stripe keeps it (``idempotency_key_hours`` less an hour) is not
trusted: the batch's transfers are listed (``transfer_group`` = batch id) and matched by metadata first.
A failed item stays pending with its error; the others go on; the task fails at the end so Airflow retries.
A transfer Stripe refuses for good (a 4xx: trying again cannot help) stops its item with a transfer exception
(``closeout.payouts.exceptions``) instead; the others go on and the release ends with ``TransfersRefused``, a
failure for a person to act on, not for Airflow to retry.

Batches are marked approved by the approval (``closeout.payouts.approval``), not here. The open holds are read
again before EACH transfer (one index lookup): a hold a reconciliation opens while a release runs stops the rest
of it (``ReleaseHeld``); what was not sent stays pending for the release after the hold is released.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout import faults
from closeout.masking import mask_secrets
from closeout.payments.hook import StripeCallError, StripeHook
from closeout.payouts import exceptions

log = logging.getLogger(__name__)

KEY_MARGIN = timedelta(hours=1)


class ReleaseIncomplete(RuntimeError):
    """Some transfers failed; their items stay pending and the next attempt resumes them."""


class ReleaseHeld(RuntimeError):
    """A payout hold was opened while the release ran: the transfers not yet sent stay pending."""


class TransfersRefused(RuntimeError):
    """Stripe refused some transfers for good: their items are stopped with an exception each; the rest went out."""


@dataclass
class ReleaseSummary:
    batches_approved: int = 0
    transferred: int = 0
    replayed: int = 0
    found: int = 0
    failed: int = 0
    stopped: int = 0
    refusals: list[str] = field(default_factory=list)
    held_back: int = 0
    held_by: list[int] = field(default_factory=list)
    amount_minor: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("errors", "refusals")} | {
            "errors": self.errors[:20], "refusals": self.refusals[:20]}  # fmt: skip


def release(conn: psycopg.Connection, hook: StripeHook) -> ReleaseSummary:
    """Transfer every pending item of the approved batches, batch by batch, item by item."""
    summary = ReleaseSummary()
    from closeout import locks

    locks.acquire(conn, locks.lock_key(conn, "closeout_payouts_release"), name="closeout_payouts_release")
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            items = cur.execute(
                """SELECT i.payout_id, i.batch_id, i.currency, i.amount_minor, i.idempotency_key, i.request,
                          i.first_sent_at
                   FROM closeout_data.payout_items i
                   JOIN closeout_data.payout_batches b ON b.batch_id = i.batch_id AND b.approved_at IS NOT NULL
                   WHERE i.status = 'pending'
                   ORDER BY i.batch_id, i.payout_id"""
            ).fetchall()
        conn.commit()
        listed: dict[str, dict[str, dict[str, Any]]] = {}
        for n, item in enumerate(items):
            holds = open_hold_ids(conn)  # before EACH transfer: a hold opened mid-release stops the rest
            if holds:
                summary.held_back, summary.held_by = len(items) - n, holds
                break
            _release_one(conn, hook, item, listed, summary)
    finally:
        conn.rollback()
        conn.execute("SELECT pg_advisory_unlock(hashtextextended('closeout_payouts_release', 8))")
        conn.commit()
    if summary.held_back:
        raise ReleaseHeld(
            f"payout hold {', '.join(map(str, summary.held_by))} opened during the release: {summary.held_back} "
            f"transfers not sent and left pending ({summary.transferred} made before it)"
        )
    if summary.failed:
        raise ReleaseIncomplete(
            f"{summary.failed} transfers failed and stay pending for the retry ({summary.transferred} made); "
            f"first errors: {'; '.join(summary.errors[:3])}"
            + (f"; and {summary.stopped} refused for good (see closeout.payout_exceptions)" if summary.stopped else "")
        )
    if summary.stopped:
        raise TransfersRefused(
            f"{summary.stopped} transfers refused by Stripe and stopped ({summary.transferred} made, the rest of "
            f"the batch went out); closeout.payout_exceptions: {'; '.join(summary.refusals[:5])}"
        )
    return summary


def _release_one(
    conn: psycopg.Connection,
    hook: StripeHook,
    item: dict[str, Any],
    listed: dict[str, dict[str, dict[str, Any]]],
    summary: ReleaseSummary,
) -> None:
    pid = item["payout_id"]
    key_age_limit = timedelta(hours=hook.settings.idempotency_key_hours) - KEY_MARGIN
    stale = item["first_sent_at"] is not None and datetime.now(UTC) - item["first_sent_at"] > key_age_limit
    # 1. record the attempt before anything is sent
    conn.execute(
        """UPDATE closeout_data.payout_items SET attempts = attempts + 1,
               first_sent_at = coalesce(first_sent_at, clock_timestamp()), last_sent_at = clock_timestamp()
           WHERE payout_id = %s AND status = 'pending'""",
        (pid,),
    )
    conn.commit()
    faults.point("stripe.transfer.create.before_call")
    # 2. call (or find, when the key may be gone)
    try:
        found_by = "create"
        obj = None
        if stale:
            if item["batch_id"] not in listed:
                listed[item["batch_id"]] = {
                    (t.get("metadata") or {}).get("closeout_payout_id"): t
                    for t in hook.list_transfers(item["batch_id"])
                }
            obj = listed[item["batch_id"]].get(pid)
            found_by = "lookup" if obj else found_by
        if obj is None:
            try:
                result = hook.create_transfer(item["request"], item["idempotency_key"])
            except StripeCallError as exc:
                if exc.retryable:
                    raise
                refusal = exceptions.stop_item(conn, pid, exc)
                summary.stopped += 1
                summary.refusals.append(refusal.reason)
                log.warning("payout %s stopped: %s", pid, refusal.reason)
                return
            obj, found_by = result.obj, ("replay" if result.replayed else "create")
        _check(obj, item)
    except (StripeCallError, TransferMismatch) as exc:
        conn.execute(
            "UPDATE closeout_data.payout_items SET last_error = %s WHERE payout_id = %s",
            (mask_secrets(str(exc))[:2000], pid),
        )
        conn.commit()
        summary.failed += 1
        summary.errors.append(f"{pid}: {exc}")
        log.warning("payout %s not transferred: %s", pid, exc)
        return
    faults.point("stripe.transfer.create.after_call")
    # 3. record the result
    conn.execute(
        """UPDATE closeout_data.payout_items SET status = 'transferred', external_id = %s, found_by = %s,
               transferred_at = clock_timestamp(), last_error = NULL
           WHERE payout_id = %s AND status = 'pending'""",
        (obj["id"], found_by, pid),
    )
    conn.commit()
    summary.transferred += 1
    summary.replayed += found_by == "replay"
    summary.found += found_by == "lookup"
    sent = int(item["request"]["amount"])  # the item's amount less what netting took from it
    summary.amount_minor[item["currency"]] = summary.amount_minor.get(item["currency"], 0) + sent


def open_hold_ids(conn: psycopg.Connection) -> list[int]:
    """The open payout holds, by an index-only look at the partial unique index's rows; its own transaction."""
    ids = [h for (h,) in conn.execute(
        "SELECT hold_id FROM closeout_data.payout_holds WHERE released_at IS NULL ORDER BY hold_id").fetchall()]
    conn.commit()
    return ids


class TransferMismatch(RuntimeError):
    """Stripe's transfer is not the one planned (amount, currency or payout id differ)."""


def _check(obj: dict[str, Any], item: dict[str, Any]) -> None:
    request = item["request"]
    meta = obj.get("metadata") or {}
    if (obj.get("amount"), str(obj.get("currency", "")).lower(), meta.get("closeout_payout_id")) != (
        request["amount"],
        request["currency"],
        item["payout_id"],
    ):
        raise TransferMismatch(
            f"transfer {obj.get('id')} is {obj.get('amount')} {obj.get('currency')} for "
            f"{meta.get('closeout_payout_id')}, planned {request['amount']} {request['currency']} "
            f"for {item['payout_id']}"
        )
