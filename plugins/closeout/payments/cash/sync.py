"""The cash sync: Stripe's list endpoints into the cash tables, incrementally and resumably.

Per stream (``closeout.stripe_cash_cursors``):

* an **incremental pass** lists ``created`` in ``[last_created - overlap, start of this pass]`` newest first; the
  cursor (``state.incremental``: bounds and the last id stored) is committed with every flush, so a sync killed
  mid-way goes on from the last stored page; ``last_created`` moves only when the pass is complete, and so does
  ``state.listed_through``: one second before Stripe served the pass's first page (its ``Date``). The list is
  complete through the later of the two (``closeout_data.stripe_listed_until``): the newest object seen says
  nothing about an invoice finalized after it and before the pass, Stripe's clock at the pass does;
* a **refresh pass** re-reads objects closeout holds in a state Stripe will still move (a pending balance
  transaction whose ``available_on`` has passed, a payout on its way, a pending refund, an open dispute, an
  unsettled invoice): it lists only the ``created`` range those objects span, so a steady state costs a
  constant, not a re-read of history.

Then every automatic payout whose carried transactions are known (``reconciliation_status`` completed) has
them listed with ``?payout=`` and linked (``payout_id``), the balance is read, and the links to charges,
invoices and presentment amounts are resolved in SQL.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from closeout.connections import get_connection
from closeout.payments.cash import normalize
from closeout.payments.cash.listing import Pacer, Page, pages
from closeout.payments.cash.store import Store
from closeout.payments.hook import StripeCallError, StripeHook

log = logging.getLogger(__name__)

LOCK_KEY = 0x63617368  # "cash": one cash sync at a time per warehouse (the events DAG and the close may overlap)
DAY = 86400


@dataclass(frozen=True)
class Stream:
    """One list endpoint. ``unsettled``: SQL giving (min, max) ``created`` (unix) of rows to re-read."""

    name: str
    path: str
    kind: str
    unsettled: str | None = None
    refresh_every: int = 0  # seconds between refresh passes (0: every run)


STREAMS: tuple[Stream, ...] = (
    Stream("invoices", "/v1/invoices", "invoice",
           """SELECT extract(epoch FROM min(created_at))::bigint, extract(epoch FROM max(created_at))::bigint
              FROM closeout_data.stripe_invoice_snapshots
              WHERE status IN ('draft', 'open', 'uncollectible') AND created_at >= to_timestamp(%(floor)s)""",
           refresh_every=6 * 3600),
    Stream("invoice_payments", "/v1/invoice_payments", "invoice_payment",
           """SELECT extract(epoch FROM min(created_at))::bigint, extract(epoch FROM max(created_at))::bigint
              FROM closeout_data.stripe_invoice_payments
              WHERE status = 'open' AND created_at >= to_timestamp(%(floor)s)"""),
    Stream("charges", "/v1/charges", "charge",
           """SELECT extract(epoch FROM min(created_at))::bigint, extract(epoch FROM max(created_at))::bigint
              FROM closeout_data.stripe_charges WHERE status = 'pending' AND created_at >= to_timestamp(%(floor)s)"""),
    Stream("refunds", "/v1/refunds", "refund",
           """SELECT extract(epoch FROM min(created_at))::bigint, extract(epoch FROM max(created_at))::bigint
              FROM closeout_data.refunds
              WHERE status IN ('pending', 'requires_action') AND created_at >= to_timestamp(%(floor)s)"""),
    Stream("disputes", "/v1/disputes", "dispute",
           """SELECT extract(epoch FROM min(created_at))::bigint, extract(epoch FROM max(created_at))::bigint
              FROM closeout_data.disputes
              WHERE closeout_data.stripe_status_rank('dispute', status) < 4
                AND created_at >= to_timestamp(%(floor)s)"""),
    Stream("credit_notes", "/v1/credit_notes", "credit_note"),  # voids arrive as credit_note.voided events
    Stream("payouts", "/v1/payouts", "payout",
           """SELECT extract(epoch FROM min(created_at))::bigint, extract(epoch FROM max(created_at))::bigint
              FROM closeout_data.stripe_payouts
              WHERE (status IN ('pending', 'in_transit')
                     OR (automatic AND coalesce(reconciliation_status, 'in_progress') = 'in_progress'
                         AND status <> 'canceled'))
                AND created_at >= to_timestamp(%(floor)s)"""),
    Stream("balance_transactions", "/v1/balance_transactions", "balance_transaction",
           """SELECT extract(epoch FROM min(created_at))::bigint, extract(epoch FROM max(created_at))::bigint
              FROM closeout_data.stripe_balance_transactions
              WHERE status = 'pending' AND available_on <= to_timestamp(%(now)s)
                AND created_at >= to_timestamp(%(floor)s)"""),
)  # fmt: skip
STREAM_NAMES = tuple(s.name for s in STREAMS)


@dataclass(frozen=True)
class CashSettings:
    """Connection extras of ``stripe_default`` read by the cash sync (see docs/stripe-cash.md)."""

    reads_per_second: float = 20.0  # under Stripe's test-mode limit (25); live accounts can set ~90
    overlap_seconds: int = 600
    refresh_days: int = 120
    flush_rows: int = 2000
    full_resolve_seconds: int = 3600

    @classmethod
    def from_hook(cls, hook: StripeHook) -> CashSettings:
        extra = get_connection(hook.stripe_conn_id).extra
        values: dict[str, Any] = {}
        for name, key, kind in (("reads_per_second", "cash_reads_per_second", float),
                                ("overlap_seconds", "cash_overlap_seconds", int),
                                ("refresh_days", "cash_refresh_days", int),
                                ("flush_rows", "cash_flush_rows", int),
                                ("full_resolve_seconds", "cash_full_resolve_seconds", int)):  # fmt: skip
            if extra.get(key) is not None:
                values[name] = kind(extra[key])
        settings = cls(**values)
        if settings.reads_per_second < 0 or settings.overlap_seconds < 0 or settings.flush_rows < 1:
            raise ValueError("stripe_default extras cash_*: rates and windows must be >= 0, cash_flush_rows >= 1")
        return settings


@dataclass
class SyncResult:
    """What one sync did: objects listed and rows written per stream, requests, payouts linked."""

    listed: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    payouts_linked: int = 0
    payout_txns: int = 0
    linked: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"listed": self.listed, "written": self.written, "requests": self.requests,
                "payouts_linked": self.payouts_linked, "payout_txns": self.payout_txns, "linked": self.linked,
                "rate_limited": self.rate_limited, "skipped": self.skipped,
                "seconds": round(self.seconds, 2)}  # fmt: skip


PageCallback = Callable[[str, Page], None]


class CashSync:
    """One run of the cash sync over one warehouse connection and one Stripe connection."""

    def __init__(self, conn: psycopg.Connection, hook: StripeHook, settings: CashSettings | None = None,
                 *, on_page: PageCallback | None = None, full_resolve: bool = False) -> None:  # fmt: skip
        self.conn = conn
        self.hook = hook
        self.settings = settings or CashSettings.from_hook(hook)
        self.pacer = Pacer(self.settings.reads_per_second)
        self.store = Store(conn)
        self.on_page = on_page
        self.full_resolve = full_resolve
        self.result = SyncResult()

    # -- the run ------------------------------------------------------------------------------------
    def run(self, streams: tuple[str, ...] = STREAM_NAMES, *, link_payouts: bool = True,
            read_balance: bool = True) -> SyncResult:  # fmt: skip
        started = time.perf_counter()
        from closeout import locks

        locks.acquire(self.conn, LOCK_KEY, name="closeout.cash_sync")  # bounded: names the holder if busy
        self.conn.commit()
        try:
            for stream in STREAMS:
                if stream.name in streams:
                    try:
                        self._stream(stream)
                    except StripeCallError as exc:
                        if not _unknown_endpoint(exc):
                            raise
                        # an API (or a double of it) without this endpoint: say so, sync the rest
                        self.conn.rollback()
                        log.warning("cash sync: %s is not offered here, stream %s skipped: %s", stream.path,
                                    stream.name, exc)
                        self.result.skipped.append(stream.name)
            if link_payouts:
                self.link_payouts()
            if read_balance:
                self.read_balance()
            self.resolve()
        finally:
            self.conn.rollback()
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            self.conn.commit()
        self.result.rate_limited = self.pacer.rate_limited
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _stream(self, stream: Stream) -> None:
        before = self.hook.requests
        last_created, state = self._cursor(stream.name)
        now = int(time.time())
        # resume a pass a killed run left half done; else plan this run's passes
        if state.get("incremental") is None:
            gte = None if last_created is None else max(last_created - self.settings.overlap_seconds, 0)
            # no upper bound: Stripe's clock decides what exists; objects created during the walk land above
            # its cursor and are the next pass's (which starts ``overlap`` before the newest seen here)
            state["incremental"] = {"gte": gte, "lt": None, "starting_after": None, "newest": last_created}
            if stream.unsettled and state.get("refresh") is None and last_created is not None \
                    and now - int(state.get("refreshed_at") or 0) >= stream.refresh_every:
                lo, hi = self.conn.execute(stream.unsettled, {"floor": now - self.settings.refresh_days * DAY,
                                                              "now": self._stripe_now(now)}).fetchone()  # fmt: skip
                if lo is not None and (gte is None or lo < gte):
                    state["refresh"] = {"gte": lo, "lt": min(hi + 1, gte),
                                        "starting_after": None, "newest": None}  # fmt: skip
                state["refreshed_at"] = now
            self._save(stream.name, last_created, state)
        for slot in ("refresh", "incremental"):
            if state.get(slot) is not None:
                newest = self._walk(stream, state, slot, last_created)
                if slot == "incremental":
                    if newest is not None:
                        last_created = max(newest, last_created or newest)
                    served = state[slot].get("served_at")
                    if served is not None:  # complete for all Stripe stamped before the pass's first page
                        state["listed_through"] = max(served - 1, int(state.get("listed_through") or 0))
                state[slot] = None
                self._save(stream.name, last_created, state)
        self.result.requests[stream.name] = self.result.requests.get(stream.name, 0) + self.hook.requests - before

    def _walk(self, stream: Stream, state: dict[str, Any], slot: str, last_created: int | None) -> int | None:
        """One pass of a stream, flushing (upsert + cursor + commit) every ``flush_rows`` objects."""
        listing = state[slot]
        created = {k: listing[k] for k in ("gte", "lt") if listing.get(k) is not None}
        make = normalize.NORMALIZERS[stream.kind]
        newest = listing.get("newest")
        buffer: list[normalize.Row] = []
        extra: list[normalize.Row] = []
        last_id = None
        params = {"created": created} if created else {}
        for page in pages(self.hook, self.pacer, stream.path, params, listing.get("starting_after")):
            observed = datetime.now(UTC)
            if listing.get("served_at") is None and page.served_at is not None:
                listing["served_at"] = page.served_at  # kept across a resume: the pass began listing then
            for obj in page.objects:
                buffer.append(make(obj, observed))
                if stream.kind == "dispute":
                    extra.extend(normalize.balance_transaction(t, observed)
                                 for t in obj.get("balance_transactions") or [] if isinstance(t, dict))  # fmt: skip
            if page.objects:
                top = page.objects[0]["created"]  # newest first: the page's first is its newest
                newest = top if newest is None else max(newest, top)
            last_id = page.last_id
            self.result.listed[stream.name] = self.result.listed.get(stream.name, 0) + len(page.objects)
            if len(buffer) >= self.settings.flush_rows or not page.has_more:
                listing.update(starting_after=last_id, newest=newest)
                self._flush(stream, buffer, extra, last_created, state)
                buffer, extra = [], []
            if self.on_page is not None:
                self.on_page(stream.name, page)
        if buffer or extra:
            listing.update(starting_after=last_id, newest=newest)
            self._flush(stream, buffer, extra, last_created, state)
        return newest

    def _flush(self, stream: Stream, rows: list[normalize.Row], extra: list[normalize.Row],
               last_created: int | None, state: dict[str, Any]) -> None:  # fmt: skip
        written = self.store.upsert(stream.kind, rows)
        if extra:
            self.store.upsert("balance_transaction", extra)
        self.result.written[stream.name] = self.result.written.get(stream.name, 0) + written
        self._save(stream.name, last_created, state)

    # -- automatic payouts: the transactions each carried ----------------------------------------------
    def link_payouts(self) -> None:
        """List ``/v1/balance_transactions?payout=`` for every automatic payout whose set is final and not yet
        linked; resumable per payout (``payout_links`` cursor)."""
        before = self.hook.requests
        _, state = self._cursor("payout_links")
        while True:
            current = state.get("payout")
            if current is None:
                row = self.conn.execute(
                    """SELECT payout_id FROM closeout_data.stripe_payouts
                       WHERE automatic AND txns_linked_at IS NULL AND status <> 'canceled'
                         AND (reconciliation_status = 'completed'
                              OR (reconciliation_status IS NULL AND status IN ('paid', 'failed')))
                       ORDER BY created_at, payout_id LIMIT 1"""
                ).fetchone()
                if row is None:
                    break
                current = state["payout"] = row[0]
                state["starting_after"] = None
                self._save("payout_links", None, state)
            buffer: list[normalize.Row] = []
            for page in pages(self.hook, self.pacer, "/v1/balance_transactions", {"payout": current},
                              state.get("starting_after")):  # fmt: skip
                observed = datetime.now(UTC)
                buffer.extend(normalize.balance_transaction(o, observed, current) for o in page.objects)
                self.result.payout_txns += len(page.objects)
                if len(buffer) >= self.settings.flush_rows or not page.has_more:
                    self.store.upsert("balance_transaction", buffer)
                    buffer = []
                    state["starting_after"] = page.last_id
                    self._save("payout_links", None, state)
                if self.on_page is not None:
                    self.on_page("payout_links", page)
            if buffer:
                self.store.upsert("balance_transaction", buffer)
            self.conn.execute(
                """UPDATE closeout_data.stripe_payouts p SET txns_linked_at = clock_timestamp(),
                       txn_count = (SELECT count(*) FROM closeout_data.stripe_balance_transactions t
                                    WHERE t.payout_id = p.payout_id), updated_at = clock_timestamp()
                   WHERE p.payout_id = %s""",
                (current,),
            )
            state["payout"] = state["starting_after"] = None
            self._save("payout_links", None, state)
            self.result.payouts_linked += 1
        self.result.requests["payout_links"] = self.hook.requests - before

    def resolve(self) -> None:
        """Links for what this run wrote; every ``full_resolve_seconds`` (and when asked) for every row still
        missing one."""
        _, state = self._cursor("resolve")
        now = int(time.time())
        full = self.full_resolve or now - int(state.get("full_at") or 0) >= self.settings.full_resolve_seconds
        self.result.linked += self.store.resolve(full=full)
        if full:
            state["full_at"] = now
        self._save("resolve", None, state)

    def read_balance(self) -> None:
        """``GET /v1/balance``: available and pending per settlement currency (one request)."""
        before = self.hook.requests
        body, _ = self.pacer.call(self.hook, "/v1/balance", {})
        amounts: dict[str, list[int]] = {}
        for slot, index in (("available", 0), ("pending", 1)):
            for entry in body.get(slot) or []:
                amounts.setdefault(entry["currency"], [0, 0])[index] += int(entry["amount"])
        # this reading is newer than any balance.available event already stored, whatever the two clocks say
        (newest_event,) = self.conn.execute(
            "SELECT max(created_at) FROM closeout_data.stripe_events WHERE object_type = 'balance'"
        ).fetchone()
        observed = max(datetime.now(UTC), newest_event or datetime.min.replace(tzinfo=UTC))
        self.store.balances([(c, a, p) for c, (a, p) in amounts.items()], observed)
        self.conn.commit()
        self.result.requests["balance"] = self.hook.requests - before

    # -- cursors ------------------------------------------------------------------------------------
    def _cursor(self, stream: str) -> tuple[int | None, dict[str, Any]]:
        row = self.conn.execute(
            "SELECT last_created, state FROM closeout_data.stripe_cash_cursors WHERE stream = %s", (stream,)
        ).fetchone()
        return (row[0], dict(row[1] or {})) if row else (None, {})

    def _save(self, stream: str, last_created: int | None, state: dict[str, Any]) -> None:
        """Cursor and whatever was upserted before it, committed together."""
        self.conn.execute(
            """INSERT INTO closeout_data.stripe_cash_cursors (stream, last_created, state) VALUES (%s, %s, %s)
               ON CONFLICT (stream) DO UPDATE SET last_created = excluded.last_created, state = excluded.state,
                   updated_at = clock_timestamp()""",
            (stream, last_created, json.dumps(state)),
        )
        self.conn.commit()

    def _stripe_now(self, local_now: int) -> int:
        """Stripe's clock is at least the newest ``created`` it has shown us (a sandbox may run ahead)."""
        (newest,) = self.conn.execute(
            "SELECT max(last_created) FROM closeout_data.stripe_cash_cursors WHERE stream = ANY(%s)",
            (list(STREAM_NAMES),),
        ).fetchone()
        return max(local_now, newest or 0)


def _unknown_endpoint(exc: StripeCallError) -> bool:
    """Stripe's answer to a path it does not route (not an unknown object: that names the object)."""
    return exc.status == 404 and "Unrecognized request URL" in str(exc)


def requests_floor(new_objects: int) -> int:
    """The fewest list requests ``new_objects`` objects can cost: one per page of 100."""
    return math.ceil(new_objects / 100)
