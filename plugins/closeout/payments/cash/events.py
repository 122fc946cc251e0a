"""The cash objects from Stripe's events: the same rows, through the same upserts, as the list reads.

Reads the event rows the collect step stored (``closeout_data.stripe_events``: webhook inbox and ``/v1/events``
backfill, one row per event id, so duplicates are gone before we start) for charges, refunds, credit notes,
disputes, payouts, invoice payments and the balance. The invoice apply step reads the same rows for its own
purpose; this step keeps its own mark (``cash_applied_at``, ``cash_outcome``), so neither disturbs the other.

Each event's object is a snapshot of Stripe's state at the event's ``created``; the upsert keeps a row's newest
state by status rank and snapshot time, so an event whose object has since moved on is recorded ``stale`` and
changes nothing, whatever order events arrive or are applied in.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from closeout.payments.cash import normalize
from closeout.payments.cash.store import Store

BATCH = 5000
CASH_OBJECTS = ("charge", "refund", "credit_note", "dispute", "payout", "invoice_payment", "balance")
# spelled out as in the partial index stripe_events_cash_to_apply (0016), so the planner can use it
OBJECT_LIST = ", ".join(f"'{kind}'" for kind in CASH_OBJECTS)


def apply(conn: psycopg.Connection, store: Store | None = None) -> dict[str, int]:
    """Apply every cash event not applied yet, in batches of ``BATCH``; returns outcome counts."""
    store = store or Store(conn)
    counts: Counter[str] = Counter()
    while True:
        with conn.cursor(row_factory=dict_row) as cur:
            events = cur.execute(
                f"""SELECT event_id, event_type, created_at, object_type, body -> 'data' -> 'object' AS obj
                   FROM closeout_data.stripe_events
                   WHERE cash_applied_at IS NULL AND object_type IN ({OBJECT_LIST})
                   ORDER BY created_at, event_id LIMIT %s""",
                (BATCH,),
            ).fetchall()
        if not events:
            break
        counts.update(_apply_batch(conn, store, events))
        conn.commit()
    if counts:
        counts["linked"] = store.resolve()
        conn.commit()
    return dict(counts)


def _apply_batch(conn: psycopg.Connection, store: Store, events: list[dict[str, Any]]) -> Counter[str]:
    rows: dict[str, list[normalize.Row]] = defaultdict(list)
    ids: dict[str, list[str]] = defaultdict(list)
    embedded: list[normalize.Row] = []
    balances: dict[str, tuple[int, int, datetime]] = {}
    poisoned: dict[str, str] = {}  # event id -> why its object cannot be read (quarantined by itself)
    for event in events:
        marks = ({k: len(v) for k, v in rows.items()}, {k: len(v) for k, v in ids.items()}, len(embedded))
        try:
            kind, obj, at, eid = event["object_type"], event["obj"], event["created_at"], event["event_id"]
            if kind == "balance":
                for currency, available, pending in _balance(obj):
                    if currency not in balances or balances[currency][2] <= at:
                        balances[currency] = (available, pending, at)
                continue
            if kind not in normalize.NORMALIZERS:
                continue  # recorded 'ignored' below
            if kind == "dispute":
                closed = int(at.timestamp()) if event["event_type"] == "charge.dispute.closed" else None
                row = normalize.dispute(obj, at, closed)
                embedded.extend(normalize.balance_transaction(t, at)
                                for t in obj.get("balance_transactions") or [] if isinstance(t, dict))  # fmt: skip
            else:
                row = normalize.NORMALIZERS[kind](obj, at)
            if kind == "charge":
                listed = obj.get("refunds")
                for refund in (listed.get("data") if isinstance(listed, dict) else None) or []:
                    rows["refund"].append(normalize.refund(refund, at))
                    ids["refund"].append(None)  # type: ignore[arg-type]  # the charge's event, recorded by the charge
            rows[kind].append(row)
            ids[kind].append(eid)
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            for name, kind_rows in rows.items():
                del kind_rows[marks[0].get(name, 0):]
            for name, kind_ids in ids.items():
                del kind_ids[marks[1].get(name, 0):]
            del embedded[marks[2]:]
            poisoned[event["event_id"]] = f"cannot be read: {type(exc).__name__}: {exc}"[:500]
    for kind, kind_rows in rows.items():
        store.upsert(kind, kind_rows, ids[kind])
    if embedded:
        store.upsert("balance_transaction", embedded)
    counts: Counter[str] = Counter()
    with conn.cursor() as cur:
        if balances:
            # per currency, the newest reading wins (the store compares against what is stored)
            for currency, (available, pending, at) in sorted(balances.items()):
                store.balances([(currency, available, pending)], at)
            cur.execute(
                """UPDATE closeout_data.stripe_events SET cash_applied_at = clock_timestamp(), cash_outcome = 'applied'
                   WHERE event_id = ANY(%s) AND cash_applied_at IS NULL""",
                ([e["event_id"] for e in events if e["object_type"] == "balance"],),
            )
        if poisoned:
            cur.execute(
                """UPDATE closeout_data.stripe_events e SET cash_applied_at = clock_timestamp(),
                       cash_outcome = 'quarantined', cash_reason = p.reason
                   FROM unnest(%s::text[], %s::text[]) AS p(event_id, reason) WHERE e.event_id = p.event_id""",
                (list(poisoned), list(poisoned.values())),
            )
        cur.execute(
            """UPDATE closeout_data.stripe_events SET cash_applied_at = clock_timestamp(), cash_outcome = 'ignored'
               WHERE event_id = ANY(%s) AND cash_applied_at IS NULL""",
            ([e["event_id"] for e in events],),
        )
        for outcome, n in cur.execute(
            "SELECT cash_outcome, count(*) FROM closeout_data.stripe_events WHERE event_id = ANY(%s) GROUP BY 1",
            ([e["event_id"] for e in events],),
        ).fetchall():
            counts[outcome] += n
    return counts


def _balance(obj: dict[str, Any]) -> list[tuple[str, int, int]]:
    amounts: dict[str, list[int]] = {}
    for slot, index in (("available", 0), ("pending", 1)):
        for entry in obj.get(slot) or []:
            amounts.setdefault(entry["currency"], [0, 0])[index] += int(entry["amount"])
    return [(c, a, p) for c, (a, p) in amounts.items()]
