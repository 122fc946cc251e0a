"""Transfer refusals: payout items Stripe refused for good, stopped and kept for a person to act on.

A transfer Stripe refuses with a 4xx that trying again cannot fix (``balance_insufficient``, a destination
account that is closed or cannot receive transfers, an invalid request) would be refused again on every retry:
worse, Stripe saved the refusal under the item's idempotency key and replays it for 24 hours. So the item is
stopped (status ``stopped``) with an exception whose reason names the item, the payee, the amount and Stripe's
error code, and the rest of the batch goes out. Like payment exceptions (``closeout.payments.exceptions``):
one open exception per item, resolved with who, when and why, never deleted. A resolution either sends the
item again (``retry``: back to pending under a new key of its own, derived from the first, since a refused
call made no transfer) or gives it up (``abandon``: the item stays stopped, its accrual stays payable).

    python -m closeout.payouts.exceptions list
    python -m closeout.payouts.exceptions resolve --id 3 --action retry --by ana@finance --why "balance topped up"
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass

import psycopg

from closeout.masking import mask_secrets
from closeout.payments.hook import StripeCallError
from closeout.payments.keys import _bounded

ACTIONS = ("retry", "abandon")
_RETRY_SUFFIX = re.compile(r"/retry-\d+$")


@dataclass(frozen=True)
class Refusal:
    exception_id: int
    payout_id: str
    reason: str


def stop_item(conn: psycopg.Connection, payout_id: str, error: StripeCallError) -> Refusal:
    """Stop a pending item Stripe refused and open its exception, in one transaction (committed). The amount is the
    transfer's (the item's less what netting took from it)."""
    try:
        conn.execute(
            """UPDATE closeout_data.payout_items SET status = 'stopped', last_error = %s
               WHERE payout_id = %s AND status = 'pending'""",
            (mask_secrets(str(error))[:2000], payout_id),
        )
        row = conn.execute(
            """INSERT INTO closeout_data.payout_transfer_exceptions AS x (payout_id, batch_id, invoice_id, payee_key,
                   destination, currency, amount_minor, idempotency_key, stripe_status, stripe_code, message, reason)
               SELECT i.payout_id, i.batch_id, i.invoice_id, i.payee_key, i.destination, i.currency,
                      (i.request->>'amount')::bigint,
                      i.idempotency_key, %(status)s, %(code)s, %(message)s,
                      'payout ' || i.payout_id || ' to ' || i.payee_key || ' (' || i.destination || ') of '
                          || round((i.request->>'amount')::numeric / (10::numeric ^ c.exponent), c.exponent)::text
                          || ' '
                          || i.currency || ' for invoice ' || i.invoice_id || ' refused by Stripe: '
                          || coalesce(%(status)s::text, '-') || ' ' || coalesce(%(code)s, 'no code')
                          || ' (' || %(message)s || ')'
               FROM closeout_data.payout_items i
               JOIN closeout_data.currencies c ON c.code = i.currency
               WHERE i.payout_id = %(pid)s
               ON CONFLICT (payout_id) WHERE resolved_at IS NULL DO UPDATE SET message = EXCLUDED.message
               RETURNING x.exception_id, x.reason""",
            {"pid": payout_id, "status": error.status, "code": error.code, "message": mask_secrets(str(error))[:1000]},
        ).fetchone()
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return Refusal(row[0], payout_id, row[1])


def retry_key(current_key: str, retries: int) -> str:
    """The key of the ``retries``-th sending after refusals: the first key with ``/retry-n`` appended."""
    return _bounded(f"{_RETRY_SUFFIX.sub('', current_key)}/retry-{retries}")


def resolve(conn: psycopg.Connection, exception_id: int, *, resolved_by: str, resolution: str, action: str) -> str:
    """Close an open refusal (committed). ``retry`` puts the item back to pending under its next key, for the
    next release; ``abandon`` leaves it stopped. Returns the item's status afterwards."""
    if not resolved_by.strip() or not resolution.strip():
        raise ValueError("resolving a transfer exception needs who (resolved_by) and why (resolution)")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    try:
        row = conn.execute(
            """UPDATE closeout_data.payout_transfer_exceptions
               SET resolved_at = clock_timestamp(), resolved_by = %s, resolution = %s, action = %s
               WHERE exception_id = %s AND resolved_at IS NULL RETURNING payout_id""",
            (resolved_by, resolution, action, exception_id),
        ).fetchone()
        if row is None:
            raise ValueError(f"transfer exception {exception_id}: no such open exception")
        if action == "retry":
            _send_again(conn, row[0])
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return "pending" if action == "retry" else "stopped"


def _send_again(conn: psycopg.Connection, payout_id: str) -> None:
    key, retries = conn.execute(
        "SELECT idempotency_key, retries FROM closeout_data.payout_items WHERE payout_id = %s FOR UPDATE", (payout_id,)
    ).fetchone()
    conn.execute(
        """UPDATE closeout_data.payout_items SET status = 'pending', retries = retries + 1, idempotency_key = %s,
               first_sent_at = NULL
           WHERE payout_id = %s AND status = 'stopped'""",
        (retry_key(key, retries + 1), payout_id),
    )


def open_refusals(conn: psycopg.Connection) -> list[tuple[int, str, str]]:
    """(exception_id, opened_at, reason) of every open refusal, oldest first."""
    return conn.execute(
        """SELECT exception_id, to_char(opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS"Z"'), reason
           FROM closeout_data.payout_transfer_exceptions WHERE resolved_at IS NULL ORDER BY exception_id"""
    ).fetchall()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m closeout.payouts.exceptions",
                                     description="Review and resolve payout transfers Stripe refused.")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show the open transfer refusals")
    resolve_cmd = commands.add_parser("resolve", help="resolve one, recording who and why")
    resolve_cmd.add_argument("--id", type=int, required=True, dest="exception_id")
    resolve_cmd.add_argument("--action", choices=ACTIONS, required=True,
                             help="retry: send again at the next release; abandon: never send it")  # fmt: skip
    resolve_cmd.add_argument("--by", required=True, help="who resolves it (an e-mail or name)")
    resolve_cmd.add_argument("--why", required=True, help="what was done about it")
    args = parser.parse_args(argv)

    from closeout.warehouse.db import connect

    with connect() as conn:
        if args.command == "list":
            rows = open_refusals(conn)
            for exception_id, opened_at, reason in rows:
                print(f"{exception_id}\t{opened_at}\t{reason}")
            print(f"{len(rows)} open transfer exception(s)")
            return 0
        try:
            status = resolve(conn, args.exception_id, resolved_by=args.by, resolution=args.why, action=args.action)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"resolved transfer exception {args.exception_id} ({args.action}); the item is {status}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
