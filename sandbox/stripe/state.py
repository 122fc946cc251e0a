"""The Stripe sandbox's objects and their state machines, with no HTTP in sight.

Every public ``api_*`` method takes decoded request parameters (see :mod:`sandbox.stripe.wire`) and returns
the JSON-ready object; errors are :class:`~sandbox.stripe.wire.ApiError`. Callers hold :attr:`StripeState.lock`
around a call *and* the serialisation of its result (objects are returned without copying).

Storage: a :class:`Collection` per resource keeps objects by id plus their creation order (positions), the
creation times (for ``created`` filters by bisection), static-field indexes (``invoice.customer``) and a
metadata index for search. Lists walk positions from a cursor, so a page costs O(limit) plus whatever a filter
skips. Events are immutable: each is rendered to JSON bytes once, and those bytes are both the ``/v1/events``
fragment and the webhook payload.

Invoice rules (Stripe API 2025-03-31+ "basil" semantics, simplified):

* ``draft`` -> ``open`` (finalize) -> ``paid`` | ``void`` | ``uncollectible``; ``uncollectible`` -> ``paid`` |
  ``void``. Only drafts can be deleted, get lines, or change anything but ``metadata``/``description``/
  ``footer``/``auto_advance`` (paid and void invoices: ``metadata`` only). Finalizing a draft whose amount due
  is 0 marks it paid at once, as Stripe does.
* ``total`` = ``subtotal`` = sum of the lines (negative lines are credits); ``amount_due`` = max(total, 0);
  ``amount_remaining`` = amount_due - amount_paid. Partial payments raise ``amount_paid``.
* Refunds and disputes act on the charges a payment created; they do not change the invoice (as in Stripe,
  where corrections go through credit notes).
"""

from __future__ import annotations

import base64
import bisect
import fnmatch
import heapq
import json
import random
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sandbox.stripe import wire
from sandbox.stripe.credit_notes import CreditNoteMixin
from sandbox.stripe.hosted_links import HostedLinks
from sandbox.stripe.ledger import LedgerMixin
from sandbox.stripe.tax_rates import TaxRateMixin
from sandbox.stripe.wire import ApiError, invalid, not_found

__all__ = ["API_VERSION", "EVENT_TYPES", "Collection", "EventLog", "StripeState"]

API_VERSION = "2026-10-28.endive"  # what stripe-python 16.x pins
EVENT_RETENTION = 30 * 86400  # /v1/events lists the last 30 days
DAY = 86400
EMBEDDED_LINES = 10  # an invoice object carries its first lines inline, like Stripe
EVENT_TYPES = (
    "customer.created", "customer.updated",
    "invoiceitem.created", "invoiceitem.updated", "invoiceitem.deleted",
    "invoice.created", "invoice.updated", "invoice.finalized", "invoice.paid", "invoice.payment_failed",
    "invoice.voided", "invoice.marked_uncollectible", "invoice.deleted",
    "invoice_payment.paid", "charge.refunded", "charge.dispute.created",
    "transfer.created", "transfer.updated", "transfer.reversed",
    "payout.created", "payout.updated", "payout.paid", "payout.failed", "payout.canceled",
    "payout.reconciliation_completed", "refund.created", "refund.updated", "refund.failed",
    "charge.dispute.updated", "charge.dispute.closed", "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated", "credit_note.created", "credit_note.updated", "credit_note.voided",
    "tax_rate.created", "tax_rate.updated",
)  # fmt: skip
_ID_ALPHABET = string.ascii_letters + string.digits

# Search: which fields each resource can be searched on (Stripe's search query language, a subset).
SEARCH_FIELDS = {
    "customer": {"created", "email", "metadata", "name", "phone"},
    "invoice": {"created", "currency", "customer", "metadata", "number", "status", "total"},
}
_CLAUSE = re.compile(
    r"""\s*(?P<neg>-)?(?P<field>metadata\[(?P<q>['"])(?P<key>.*?)(?P=q)\]|[a-z_]+)\s*
        (?P<op>:|~|>=|<=|>|<)\s*
        (?:'(?P<sq>(?:[^'\\]|\\.)*)'|"(?P<dq>(?:[^"\\]|\\.)*)"|(?P<num>-?\d+)|(?P<null>null))\s*""",
    re.VERBOSE,
)
_JOIN = re.compile(r"\s+(AND|OR)\s+")

INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
INVOICE_EDITABLE_WHEN_OPEN = frozenset(("metadata", "description", "footer", "auto_advance"))


def _positions(lists: Sequence[Sequence[int]], lo: int, hi: int, descending: bool) -> Iterator[int]:
    """Positions in [lo, hi) from ascending position lists, merged, newest (highest) first or oldest first."""
    iters: list[Iterator[int]] = []
    for positions in lists:
        a = bisect.bisect_left(positions, lo)
        b = bisect.bisect_left(positions, hi)
        if a >= b:
            continue
        span = range(b - 1, a - 1, -1) if descending else range(a, b)
        if isinstance(positions, range) and positions.start == 0 and positions.step == 1:
            iters.append(iter(span))  # every position: the indexes are the positions
        else:
            iters.append(map(positions.__getitem__, span))
    if not iters:
        return iter(())
    if len(iters) == 1:
        return iters[0]
    return heapq.merge(*iters, reverse=descending)


def _created_bounds(created: Sequence[int], spec: Any, lo: int, hi: int) -> tuple[int, int]:
    """Narrow [lo, hi) with a ``created`` filter (an exact time or ``gt``/``gte``/``lt``/``lte``)."""
    if spec is None or spec == "":
        return lo, hi
    if isinstance(spec, str):
        exact = wire.to_int(spec, "created")
        return max(lo, bisect.bisect_left(created, exact)), min(hi, bisect.bisect_right(created, exact))
    if not isinstance(spec, dict):
        raise invalid("Invalid created: expected an integer or a hash of gt/gte/lt/lte", param="created")
    for op, raw in spec.items():
        value = wire.to_int(raw, f"created[{op}]")
        if op == "gte":
            lo = max(lo, bisect.bisect_left(created, value))
        elif op == "gt":
            lo = max(lo, bisect.bisect_right(created, value))
        elif op == "lte":
            hi = min(hi, bisect.bisect_right(created, value))
        elif op == "lt":
            hi = min(hi, bisect.bisect_left(created, value))
        else:
            raise invalid(
                f"Received unknown parameter: created[{op}]", param=f"created[{op}]", code="parameter_unknown"
            )
    return lo, hi


class _Page:
    """Cursor/limit arguments of a list call, validated."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.limit = wire.param_int(params, "limit", 10, minimum=1, maximum=100) or 10
        self.starting_after = wire.param_str(params, "starting_after")
        self.ending_before = wire.param_str(params, "ending_before")
        if self.starting_after and self.ending_before:
            raise invalid("You may only specify one of these parameters: starting_after, ending_before.")


class Collection:
    """Objects of one resource by id, in creation order, with indexes."""

    def __init__(self, name: str, url: str, indexed: Iterable[str] = ()) -> None:
        self.name = name
        self.url = url
        self.objects: dict[str, dict[str, Any]] = {}
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self.created: list[int] = []
        self.index: dict[str, dict[Any, list[int]]] = {field: {} for field in indexed}
        self.meta: dict[tuple[str, str], set[str]] = {}

    def __len__(self) -> int:
        return len(self.objects)

    def add(self, obj: dict[str, Any]) -> None:
        oid = obj["id"]
        position = len(self.ids)
        self.ids.append(oid)
        self.pos[oid] = position
        self.created.append(obj["created"] if "created" in obj else obj["date"])
        self.objects[oid] = obj
        for field, index in self.index.items():
            index.setdefault(obj.get(field), []).append(position)
        self._index_meta(oid, obj.get("metadata") or {}, add=True)

    def get(self, oid: str) -> dict[str, Any] | None:
        return self.objects.get(oid)

    def remove(self, oid: str) -> None:
        obj = self.objects.pop(oid)
        self._index_meta(oid, obj.get("metadata") or {}, add=False)

    def set_metadata(self, obj: dict[str, Any], new: dict[str, str]) -> None:
        self._index_meta(obj["id"], obj.get("metadata") or {}, add=False)
        obj["metadata"] = new
        self._index_meta(obj["id"], new, add=True)

    def _index_meta(self, oid: str, meta: dict[str, str], *, add: bool) -> None:
        for pair in meta.items():
            if add:
                self.meta.setdefault(pair, set()).add(oid)
            else:
                ids = self.meta.get(pair)
                if ids is not None:
                    ids.discard(oid)
                    if not ids:
                        del self.meta[pair]

    def page(
        self,
        params: dict[str, Any],
        *,
        index: tuple[str, Any] | None = None,
        pred: Callable[[dict[str, Any]], bool] | None = None,
        render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        url: str | None = None,
        positions: Sequence[int] | None = None,
    ) -> dict[str, Any]:
        """One page of a list, newest first; ``index`` picks candidates by a static field (or ``positions``
        gives them, ascending), ``pred`` filters."""
        page = _Page(params)
        lo, hi = _created_bounds(self.created, params.get("created"), 0, len(self.ids))
        lists: list[Sequence[int]] = [range(len(self.ids))]
        if positions is not None:
            lists = [positions]
        elif index is not None:
            lists = [self.index[index[0]].get(index[1], [])]
        descending = True
        if page.starting_after:
            hi = min(hi, self._cursor(page.starting_after, "starting_after"))
        elif page.ending_before:
            lo = max(lo, self._cursor(page.ending_before, "ending_before") + 1)
            descending = False
        found: list[dict[str, Any]] = []
        for position in _positions(lists, lo, hi, descending):
            obj = self.objects.get(self.ids[position])
            if obj is None or (pred is not None and not pred(obj)):
                continue
            found.append(obj)
            if len(found) > page.limit:
                break
        has_more = len(found) > page.limit
        found = found[: page.limit]
        if not descending:
            found.reverse()
        data = [render(o) for o in found] if render else found
        return {"object": "list", "data": data, "has_more": has_more, "url": url or self.url}

    def _cursor(self, oid: str, param: str) -> int:
        position = self.pos.get(oid)
        if position is None:
            raise not_found(self.name, oid, param, status=404)
        return position


class EventLog:
    """Immutable events: JSON bytes per position, indexes by type and by creation time."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self.created: list[int] = []
        self.types: list[str] = []
        self.raw: list[bytes] = []
        self.by_type: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, event_id: str, event_type: str, created: int, raw: bytes) -> None:
        position = len(self.ids)
        self.ids.append(event_id)
        self.pos[event_id] = position
        self.created.append(created)
        self.types.append(event_type)
        self.raw.append(raw)
        self.by_type.setdefault(event_type, []).append(position)

    def type_lists(self, patterns: Iterable[str]) -> list[list[int]]:
        lists: list[list[int]] = []
        seen: set[str] = set()
        for pattern in patterns:
            names = fnmatch.filter(self.by_type, pattern) if "*" in pattern else [pattern]
            for name in names:
                if name not in seen and name in self.by_type:
                    seen.add(name)
                    lists.append(self.by_type[name])
        return lists


# Stripe's documented error codes (https://docs.stripe.com/error-codes) for transfers it refuses once the request
# has started executing: a 400 invalid_request_error, saved under the idempotency key like any executed result.
TRANSFER_REFUSALS: dict[str, tuple[str, str | None]] = {
    "balance_insufficient": (
        "You have insufficient available funds in your Stripe account. Try adding funds directly to your available "
        "balance by creating Charges using the 4000000000000077 test card. See: "
        "https://stripe.com/docs/testing#available-balance", None),
    "account_closed": ("The destination account has been closed and cannot receive transfers.", "destination"),
    "insufficient_capabilities_for_transfer": (
        "Your destination account needs to have at least one of the following capabilities enabled: transfers, "
        "crypto_transfers, legacy_payments", "destination"),
    "transfers_not_allowed": (
        "The requested transfer cannot be created. Contact us if you are receiving this error.", None),
}


class StripeState(LedgerMixin, CreditNoteMixin, TaxRateMixin):
    """Every object of one sandbox account, with Stripe's state machines and an event log."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        seed: int | None = None,
        api_version: str = API_VERSION,
        account_name: str = "Closeout Sandbox",
        number_prefix: str = "SBX",
    ) -> None:
        self.lock = threading.RLock()
        self._clock = clock or time.time
        self._offset = 0.0
        self._last_now = 0
        self.version = 0
        self.api_version = api_version
        self.account_name = account_name
        self.number_prefix = number_prefix
        rng = random.Random(seed)
        self._run = "".join(rng.choice(_ID_ALPHABET) for _ in range(6))
        self._next_id = 0
        self._next_number = 0
        self.base_url = "http://stripe-sandbox.invalid"
        self.search_lag = 0
        self.decline = False
        # destination account (or "*" for every one) -> the error code its transfers are refused with
        self.transfer_refusals: dict[str, str] = {}
        self.request_context: tuple[str | None, str | None] = (None, None)
        self.listeners: list[Callable[[str, str, int, bytes], None]] = []
        self.customers = Collection("customer", "/v1/customers")
        self.invoices = Collection("invoice", "/v1/invoices", indexed=("customer",))
        self.invoice_items = Collection("invoiceitem", "/v1/invoiceitems", indexed=("customer",))
        self.transfers = Collection("transfer", "/v1/transfers")
        self.payouts = Collection("payout", "/v1/payouts")
        self.charges = Collection("charge", "/v1/charges", indexed=("customer",))
        self.invoice_payments = Collection("invoice_payment", "/v1/invoice_payments", indexed=("invoice",))
        self.disputes = Collection("dispute", "/v1/disputes")
        self.refunds = Collection("refund", "/v1/refunds")
        self.events = EventLog()
        self.lines: dict[str, dict[str, Any]] = {}  # il_ -> line object
        self.invoice_lines: dict[str, list[str]] = {}  # in_ -> [il_, ...] in display order
        self.item_line: dict[str, str] = {}  # ii_ -> il_
        self.invoice_charges: dict[str, list[str]] = {}  # in_ -> [ch_, ...] oldest first
        self.pending_items: dict[str, dict[str, None]] = {}  # cus_ -> ordered set of unattached ii_
        self.reversals: dict[str, list[dict[str, Any]]] = {}  # tr_ -> reversals, oldest first
        self.reversal_by_id: dict[str, dict[str, Any]] = {}  # trr_ -> reversal
        self.requested_numbers: dict[str, str] = {}  # in_ -> a number asked for before finalization
        self.links = HostedLinks()  # hosted invoice page links and their expiry (hosted_links)
        self.by_kind: dict[str, Collection] = {
            c.name: c
            for c in (
                self.customers, self.invoices, self.invoice_items, self.transfers, self.payouts, self.charges,
                self.invoice_payments, self.disputes, self.refunds,
            )
        }  # fmt: skip
        self.by_prefix: dict[str, Collection] = {
            "cus": self.customers, "in": self.invoices, "ii": self.invoice_items, "tr": self.transfers,
            "po": self.payouts, "ch": self.charges, "inpay": self.invoice_payments, "dp": self.disputes,
            "re": self.refunds,
        }  # fmt: skip
        # how an object is rendered by the API (objects whose stored form is not their API form)
        self.renderers: dict[Collection, Callable[[dict[str, Any]], dict[str, Any]]] = {
            self.invoices: self.render_invoice, self.transfers: self._render_transfer,
        }  # fmt: skip
        self._init_ledger()
        self._init_credit_notes()
        self._init_tax_rates()

    # ------------------------------------------------------------------ clock and ids

    def now(self) -> int:
        """Sandbox time in unix seconds, never going backwards."""
        now = int(self._clock() + self._offset)
        if now < self._last_now:
            return self._last_now
        self._last_now = now
        return now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset += float(seconds)

    def new_id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}_{self._run}{self._next_id:010d}"

    # ------------------------------------------------------------------ events

    def emit(self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
        event_id = self.new_id("evt")
        created = self.now()
        data: dict[str, Any] = {"object": obj}
        if previous:
            data["previous_attributes"] = previous
        request_id, key = self.request_context
        event = {
            "id": event_id,
            "object": "event",
            "api_version": self.api_version,
            "created": created,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self.listeners else 0,
            "request": {"id": request_id, "idempotency_key": key},
            "type": event_type,
        }
        raw = wire.dumps(event)
        self.events.add(event_id, event_type, created, raw)
        self.version += 1
        for listener in self.listeners:
            listener(event_id, event_type, created, raw)
        return event_id

    def list_events(self, params: dict[str, Any]) -> bytes:
        """``GET /v1/events`` rendered straight from the stored bytes."""
        wire.check_known(params, ("created", "type", "types", "limit", "starting_after", "ending_before",
                                  "delivery_success"))  # fmt: skip
        page = _Page(params)
        log = self.events
        total = len(log.ids)
        lo = bisect.bisect_left(log.created, self.now() - EVENT_RETENTION)
        lo, hi = _created_bounds(log.created, params.get("created"), lo, total)
        single = wire.param_str(params, "type")
        several = wire.param_list(params, "types")
        if single and several:
            raise invalid("You may only specify one of these parameters: type, types.", param="types")
        if several is not None and len(several) > 20:
            raise invalid("types can contain at most 20 event types", param="types")
        patterns = [single] if single else several
        lists: list[Sequence[int]] = [range(total)] if patterns is None else log.type_lists(patterns)
        descending = True
        if page.starting_after:
            hi = min(hi, self._event_cursor(page.starting_after, "starting_after"))
        elif page.ending_before:
            lo = max(lo, self._event_cursor(page.ending_before, "ending_before") + 1)
            descending = False
        found: list[int] = []
        for position in _positions(lists, lo, hi, descending):
            found.append(position)
            if len(found) > page.limit:
                break
        has_more = len(found) > page.limit
        found = found[: page.limit]
        if not descending:
            found.reverse()
        raw = log.raw
        return b"".join(
            (
                b'{"object":"list","data":[',
                b",".join(raw[p] for p in found),
                b'],"has_more":',
                b"true" if has_more else b"false",
                b',"url":"/v1/events"}',
            )
        )

    def _event_cursor(self, event_id: str, param: str) -> int:
        position = self.events.pos.get(event_id)
        if position is None:
            raise not_found("event", event_id, param)
        return position

    def event_bytes(self, event_id: str) -> bytes:
        position = self.events.pos.get(event_id)
        if position is None or self.events.created[position] < self.now() - EVENT_RETENTION:
            raise not_found("event", event_id)
        return self.events.raw[position]

    # ------------------------------------------------------------------ lookup, rendering, expansion

    def lookup(self, oid: str) -> dict[str, Any] | None:
        """Any object by id, rendered."""
        if oid.startswith("il_"):
            return self.lines.get(oid)
        if oid.startswith("trr_"):  # a transfer reversal (a balance transaction's source)
            return self.reversal_by_id.get(oid)
        collection = self.by_prefix.get(oid.split("_", 1)[0])
        obj = collection.get(oid) if collection is not None else None
        if obj is None:
            return None
        return self.render(collection, obj)

    def render(self, collection: Collection, obj: dict[str, Any]) -> dict[str, Any]:
        """``obj`` as the API shows it."""
        renderer = self.renderers.get(collection)
        return renderer(obj) if renderer is not None else obj

    def render_invoice(self, invoice: dict[str, Any]) -> dict[str, Any]:
        self.links.keep_live(invoice, self.base_url, self.now())  # what the API shows lives 10 days more
        line_ids = self.invoice_lines.get(invoice["id"], [])
        lines = self.lines
        return {
            **invoice,
            "lines": {
                "object": "list",
                "data": [lines[i] for i in line_ids[:EMBEDDED_LINES]],
                "has_more": len(line_ids) > EMBEDDED_LINES,
                "total_count": len(line_ids),
                "url": f"/v1/invoices/{invoice['id']}/lines",
            },
        }

    def expand(self, obj: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
        """Apply ``expand[]`` paths (``customer``, ``data.customer``, ``invoice.customer``); the store is untouched."""
        for path in paths:
            obj = self._expand_one(obj, path.split("."), path)
        return obj

    def _expand_one(self, obj: Any, parts: list[str], path: str) -> Any:
        if not parts:
            return obj
        head, rest = parts[0], parts[1:]
        if head == "data" and isinstance(obj, dict) and obj.get("object") in ("list", "search_result"):
            return {**obj, "data": [self._expand_one(item, rest, path) for item in obj["data"]]}
        if not isinstance(obj, dict) or head not in obj:
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        value = obj[head]
        if isinstance(value, str):
            target = self.lookup(value)
            if target is None:
                raise invalid(f"This property cannot be expanded ({path}).", param="expand")
            value = target
        elif value is not None and not isinstance(value, dict):
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        return {**obj, head: self._expand_one(value, rest, path) if value is not None else None}

    def _get(self, collection: Collection, oid: str, param: str = "id", status: int = 404) -> dict[str, Any]:
        obj = collection.get(oid)
        if obj is None:
            raise not_found(collection.name, oid, param, status=status)
        return obj

    @staticmethod
    def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        """``previous_attributes`` of an update: the old values of the top-level fields that changed."""
        return {k: v for k, v in before.items() if after.get(k) != v}

    # ------------------------------------------------------------------ customers

    _CUSTOMER_FIELDS = ("address", "description", "email", "metadata", "name", "phone", "preferred_locales",
                        "invoice_prefix", "tax_exempt", "balance")  # fmt: skip

    def _customer_fields(self, params: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name in ("description", "email", "name", "phone", "invoice_prefix"):
            if name in params:
                value = wire.param_str(params, name)
                changes[name] = value or None
        if "address" in params:
            changes["address"] = wire.param_dict(params, "address")
        if "preferred_locales" in params:
            changes["preferred_locales"] = wire.param_list(params, "preferred_locales") or []
        if "tax_exempt" in params:
            changes["tax_exempt"] = wire.param_enum(params, "tax_exempt", ("none", "exempt", "reverse"), "none")
        if "balance" in params:
            changes["balance"] = wire.param_int(params, "balance", 0)
        return changes

    def api_create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, self._CUSTOMER_FIELDS)
        meta = wire.metadata(params.get("metadata"))
        cid = self.new_id("cus")
        customer: dict[str, Any] = {
            "id": cid, "object": "customer", "address": None, "balance": 0, "created": self.now(),
            "currency": None, "default_source": None, "delinquent": False, "description": None, "discount": None,
            "email": None, "invoice_prefix": cid[-8:].upper(), "invoice_settings": {
                "custom_fields": None, "default_payment_method": None, "footer": None, "rendering_options": None,
            }, "livemode": False, "metadata": {}, "name": None, "next_invoice_sequence": 1, "phone": None,
            "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
        }  # fmt: skip
        customer.update(self._customer_fields(params, customer))
        customer["metadata"] = meta
        self.customers.add(customer)
        self.emit("customer.created", customer)
        return customer

    def api_update_customer(self, cid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, self._CUSTOMER_FIELDS)
        customer = self._get(self.customers, cid)
        changes = self._customer_fields(params, customer)
        meta = wire.metadata(params.get("metadata"), customer["metadata"])
        before = dict(customer)
        customer.update(changes)
        if meta != customer["metadata"]:
            self.customers.set_metadata(customer, meta)
        previous = self._changes(before, customer)
        if previous:
            self.emit("customer.updated", customer, previous)
        return customer

    def api_list_customers(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("created", "email", "limit", "starting_after", "ending_before", "test_clock"))
        email = wire.param_str(params, "email")
        pred = (lambda c: c.get("email") == email) if email else None
        return self.customers.page(params, pred=pred)

    # ------------------------------------------------------------------ invoice items and lines

    def _line_for_item(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.new_id("il"),
            "object": "line_item",
            "amount": item["amount"],
            "currency": item["currency"],
            "description": item["description"],
            "discount_amounts": [],
            "discountable": item["discountable"],
            "discounts": [],
            "invoice": item["invoice"],
            "livemode": False,
            "metadata": item["metadata"],
            "parent": {
                "type": "invoice_item_details",
                "invoice_item_details": {
                    "invoice_item": item["id"],
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": None,
                },
                "subscription_item_details": None,
            },
            "period": item["period"],
            "pretax_credit_amounts": [],
            "pricing": None,
            "quantity": item["quantity"],
            "subscription": None,
            "taxes": [],
        }

    def _attach(self, item: dict[str, Any], invoice: dict[str, Any]) -> None:
        item["invoice"] = invoice["id"]
        self.pending_items.get(item["customer"], {}).pop(item["id"], None)
        line = self._line_for_item(item)
        self.lines[line["id"]] = line
        self.item_line[item["id"]] = line["id"]
        self.invoice_lines.setdefault(invoice["id"], []).append(line["id"])

    def _sync_line(self, item: dict[str, Any]) -> None:
        line_id = self.item_line.get(item["id"])
        if line_id is not None:
            line = self.lines[line_id]
            for name in ("amount", "description", "metadata", "period", "discountable", "quantity"):
                line[name] = item[name]

    def _detach(self, item: dict[str, Any]) -> None:
        line_id = self.item_line.pop(item["id"], None)
        if line_id is not None:
            self.lines.pop(line_id, None)
            self.invoice_lines[item["invoice"]].remove(line_id)

    def _draft(self, iid: str, param: str = "id", *, status: int = 404) -> dict[str, Any]:
        invoice = self._get(self.invoices, iid, param, status)
        if invoice["status"] != "draft":
            raise ApiError(
                400,
                f"This invoice is no longer editable: it is {invoice['status']}, and only draft invoices can be "
                "changed this way.",
                code="invoice_not_editable",
                param=param if param != "id" else None,
            )
        return invoice

    def _new_item(self, customer: dict[str, Any], fields: dict[str, Any], invoice: dict[str, Any] | None) -> dict:
        now = self.now()
        item = {
            "id": self.new_id("ii"),
            "object": "invoiceitem",
            "amount": fields["amount"],
            "currency": fields["currency"],
            "customer": customer["id"],
            "date": now,
            "description": fields.get("description"),
            "discountable": fields.get("discountable", fields["amount"] >= 0),
            "discounts": [],
            "invoice": None,
            "livemode": False,
            "metadata": fields.get("metadata", {}),
            "net_amount": fields["amount"],
            "parent": None,
            "period": fields.get("period") or {"start": now, "end": now},
            "pricing": None,
            "proration": False,
            "quantity": fields.get("quantity", 1),
            "tax_rates": fields.get("tax_rates", []),
            "test_clock": None,
        }
        if customer["currency"] is None:
            customer["currency"] = item["currency"]
        self.invoice_items.add(item)
        if invoice is not None:
            self._attach(item, invoice)
        else:
            self.pending_items.setdefault(customer["id"], {})[item["id"]] = None
        return item

    def _item_fields(self, params: dict[str, Any], default_currency: str | None, prefix: str = "") -> dict[str, Any]:
        cur = params.get("currency")
        if cur is None or cur == "":
            if default_currency is None:
                raise invalid(f"Missing required param: {prefix}currency.", f"{prefix}currency", "parameter_missing")
            cur = default_currency
        cur = wire.currency(cur, f"{prefix}currency")
        fields: dict[str, Any] = {"currency": cur, "amount": wire.amount(params.get("amount"), cur, f"{prefix}amount")}
        description = wire.param_str(params, "description")
        if description is not None:
            fields["description"] = description or None
        if "metadata" in params:
            fields["metadata"] = wire.metadata(params["metadata"], name=f"{prefix}metadata")
        if "discountable" in params:
            fields["discountable"] = wire.param_bool(params, "discountable")
        if "quantity" in params:
            fields["quantity"] = wire.param_int(params, "quantity", 1, minimum=0)
        if "tax_rates" in params:
            fields["tax_rates"] = self.tax_rate_objects(params["tax_rates"], f"{prefix}tax_rates")
        period = wire.param_dict(params, "period")
        if period is not None:
            start, end = (wire.to_int(period.get(k), f"{prefix}period[{k}]") for k in ("start", "end"))
            if end < start:
                raise invalid("period[end] must not be before period[start]", param=f"{prefix}period")
            fields["period"] = {"start": start, "end": end}
        return fields

    _ITEM_FIELDS = ("customer", "amount", "currency", "description", "metadata", "invoice", "period",
                    "discountable", "quantity", "tax_rates")  # fmt: skip

    def api_create_invoice_item(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, self._ITEM_FIELDS)
        wire.required(params, "customer")
        cid = wire.param_str(params, "customer") or ""
        customer = self._get(self.customers, cid, "customer", 400)
        iid = wire.param_str(params, "invoice")
        invoice = self._get(self.invoices, iid, "invoice", 400) if iid else None
        if invoice is not None and invoice["customer"] != cid:
            raise invalid(f"The invoice {iid} belongs to another customer", param="invoice")
        if "amount" not in params:
            raise invalid("Missing required param: amount.", param="amount", code="parameter_missing")
        fields = self._item_fields(params, invoice["currency"] if invoice else customer["currency"])
        if invoice is not None and fields["currency"] != invoice["currency"]:
            raise invalid(
                f"The currency {fields['currency']} does not match the invoice's currency {invoice['currency']}",
                param="currency",
            )
        if invoice is not None:
            self._draft(iid or "", "invoice")
            before = self._totals(invoice)
        item = self._new_item(customer, fields, invoice)
        self.emit("invoiceitem.created", item)
        if invoice is not None:
            self._recompute(invoice)
            self.emit("invoice.updated", self.render_invoice(invoice), self._changes(before, invoice))
        return item

    def api_update_invoice_item(self, iid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("amount", "description", "metadata", "period", "discountable", "quantity",
                                  "tax_rates"))  # fmt: skip
        item = self._get(self.invoice_items, iid)
        invoice = self.invoices.get(item["invoice"]) if item["invoice"] else None
        if invoice is not None:
            self._draft(invoice["id"], "invoice")
        parsed = self._item_fields({"amount": item["amount"], **params}, item["currency"])
        fields = {k: v for k, v in parsed.items() if k in params and k != "metadata"}
        meta = wire.metadata(params.get("metadata"), item["metadata"])
        before = dict(item)
        item.update(fields)
        item["net_amount"] = item["amount"]
        if meta != item["metadata"]:
            self.invoice_items.set_metadata(item, meta)
        previous = self._changes(before, item)
        if previous:
            self._sync_line(item)
            self.emit("invoiceitem.updated", item, previous)
            if invoice is not None:
                totals = self._totals(invoice)
                self._recompute(invoice)
                self.emit("invoice.updated", self.render_invoice(invoice), self._changes(totals, invoice))
        return item

    def api_delete_invoice_item(self, iid: str) -> dict[str, Any]:
        item = self._get(self.invoice_items, iid)
        invoice = self.invoices.get(item["invoice"]) if item["invoice"] else None
        if invoice is not None:
            self._draft(invoice["id"], "invoice")
            totals = self._totals(invoice)
            self._detach(item)
            self._recompute(invoice)
        else:
            self.pending_items.get(item["customer"], {}).pop(iid, None)
        self.invoice_items.remove(iid)
        self.emit("invoiceitem.deleted", item)
        if invoice is not None:
            self.emit("invoice.updated", self.render_invoice(invoice), self._changes(totals, invoice))
        return {"id": iid, "object": "invoiceitem", "deleted": True}

    def api_list_invoice_items(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("created", "customer", "invoice", "pending", "limit", "starting_after",
                                  "ending_before"))  # fmt: skip
        customer = wire.param_str(params, "customer")
        invoice = wire.param_str(params, "invoice")
        pending = wire.param_bool(params, "pending")
        preds: list[Callable[[dict[str, Any]], bool]] = []
        if invoice:
            preds.append(lambda i: i["invoice"] == invoice)
        if pending is not None:
            preds.append(lambda i: (i["invoice"] is None) == pending)
        return self.invoice_items.page(
            params,
            index=("customer", customer) if customer else None,
            pred=(lambda i: all(p(i) for p in preds)) if preds else None,
        )

    def api_list_lines(self, iid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("limit", "starting_after", "ending_before"))
        self._get(self.invoices, iid)
        page = _Page(params)
        ids = self.invoice_lines.get(iid, [])
        start, stop = 0, len(ids)
        for cursor, param in ((page.starting_after, "starting_after"), (page.ending_before, "ending_before")):
            if cursor and cursor not in ids:
                raise not_found("invoice line item", cursor, param)
        if page.starting_after:
            start = ids.index(page.starting_after) + 1
            chosen = ids[start : start + page.limit]
            has_more = start + page.limit < stop
        elif page.ending_before:
            stop = ids.index(page.ending_before)
            chosen = ids[max(0, stop - page.limit) : stop]
            has_more = stop - page.limit > 0
        else:
            chosen = ids[: page.limit]
            has_more = page.limit < stop
        return {
            "object": "list",
            "data": [self.lines[i] for i in chosen],
            "has_more": has_more,
            "url": f"/v1/invoices/{iid}/lines",
        }

    # ------------------------------------------------------------------ invoices

    @staticmethod
    def _totals(invoice: dict[str, Any]) -> dict[str, Any]:
        return {k: invoice[k] for k in ("total", "subtotal", "amount_due", "amount_remaining", "amount_paid",
                                        "total_excluding_tax", "subtotal_excluding_tax", "status")}  # fmt: skip

    def _recompute(self, invoice: dict[str, Any]) -> None:
        """The invoice's amounts from its lines: their taxes (tax_rates), subtotal, total, amount due."""
        lines = [self.lines[i] for i in self.invoice_lines.get(invoice["id"], [])]
        total = self.apply_line_taxes(invoice, lines)
        subtotals = (invoice["subtotal"], invoice["subtotal_excluding_tax"], invoice["total_excluding_tax"])
        self._set_total(invoice, total)
        invoice["subtotal"], invoice["subtotal_excluding_tax"], invoice["total_excluding_tax"] = subtotals

    @staticmethod
    def _set_total(invoice: dict[str, Any], total: int) -> None:
        invoice["total"] = invoice["subtotal"] = total
        invoice["total_excluding_tax"] = invoice["subtotal_excluding_tax"] = total
        invoice["amount_due"] = max(total, 0)
        invoice["amount_remaining"] = max(
            invoice["amount_due"] - invoice["amount_paid"] - invoice["pre_payment_credit_notes_amount"], 0
        )

    _INVOICE_FIELDS = ("customer", "auto_advance", "collection_method", "days_until_due", "due_date", "currency",
                       "description", "footer", "metadata", "pending_invoice_items_behavior",
                       "statement_descriptor", "number")  # fmt: skip

    def api_create_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, self._INVOICE_FIELDS)
        cid = wire.param_str(params, "customer") or ""
        wire.required(params, "customer")
        customer = self._get(self.customers, cid, "customer", 400)
        method = wire.param_enum(params, "collection_method", ("charge_automatically", "send_invoice"),
                                 "charge_automatically")  # fmt: skip
        days = wire.param_int(params, "days_until_due", minimum=0, maximum=3650)
        due_date = wire.param_int(params, "due_date", minimum=0)
        if method == "send_invoice" and days is None and due_date is None:
            raise invalid("Missing required param: days_until_due.", "days_until_due", "parameter_missing")
        if method == "charge_automatically" and (days is not None or due_date is not None):
            raise invalid("days_until_due and due_date can only be set when collection_method is send_invoice.",
                          param="days_until_due")  # fmt: skip
        if days is not None and due_date is not None:
            raise invalid("You may only specify one of these parameters: days_until_due, due_date.")
        cur = wire.currency(params["currency"]) if params.get("currency") else (customer["currency"] or "usd")
        behavior = wire.param_enum(params, "pending_invoice_items_behavior", ("exclude", "include"), "exclude")
        meta = wire.metadata(params.get("metadata"))
        auto_advance = wire.param_bool(params, "auto_advance", False)
        description = wire.param_str(params, "description")
        footer = wire.param_str(params, "footer")
        descriptor = wire.param_str(params, "statement_descriptor", max_len=22)
        number = wire.param_str(params, "number", max_len=26)
        now = self.now()
        invoice: dict[str, Any] = {
            "id": self.new_id("in"), "object": "invoice", "account_country": "US",
            "account_name": self.account_name, "amount_due": 0, "amount_overpaid": 0, "amount_paid": 0,
            "amount_remaining": 0, "amount_shipping": 0, "attempt_count": 0, "attempted": False,
            "auto_advance": auto_advance, "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "billing_reason": "manual", "collection_method": method, "created": now, "currency": cur,
            "custom_fields": None, "customer": cid, "customer_address": customer["address"],
            "customer_email": customer["email"], "customer_name": customer["name"],
            "customer_phone": customer["phone"], "customer_tax_exempt": customer["tax_exempt"],
            "days_until_due": days, "default_payment_method": None, "description": description or None,
            "discounts": [], "due_date": due_date, "effective_at": None, "ending_balance": None,
            "footer": footer or None, "hosted_invoice_url": None, "invoice_pdf": None,
            "issuer": {"type": "self"}, "last_finalization_error": None, "livemode": False, "metadata": meta,
            "next_payment_attempt": None, "number": None, "parent": None, "period_end": now,
            "period_start": now, "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
            "receipt_number": None, "starting_balance": 0, "statement_descriptor": descriptor or None,
            "status": "draft", "status_transitions": {
                "finalized_at": None, "marked_uncollectible_at": None, "paid_at": None, "voided_at": None,
            }, "subtotal": 0, "subtotal_excluding_tax": 0, "test_clock": None, "total": 0,
            "total_discount_amounts": [], "total_excluding_tax": 0, "total_pretax_credit_amounts": [],
            "total_taxes": [], "webhooks_delivered_at": None,
        }  # fmt: skip
        if number:
            self.requested_numbers[invoice["id"]] = number
        if customer["currency"] is None:
            customer["currency"] = cur
        self.invoices.add(invoice)
        self.invoice_lines[invoice["id"]] = []
        if behavior == "include":
            for item_id in list(self.pending_items.get(cid, {})):
                item = self.invoice_items.objects[item_id]
                if item["currency"] == cur:
                    self._attach(item, invoice)
            self._recompute(invoice)
        self.emit("invoice.created", self.render_invoice(invoice))
        return invoice

    def api_update_invoice(self, iid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("auto_advance", "collection_method", "days_until_due", "due_date", "description",
                                  "footer", "metadata", "statement_descriptor", "number"))  # fmt: skip
        invoice = self._get(self.invoices, iid)
        status = invoice["status"]
        allowed = (
            None if status == "draft" else INVOICE_EDITABLE_WHEN_OPEN if status in ("open", "uncollectible")
            else frozenset(("metadata",))
        )  # fmt: skip
        if allowed is not None:
            refused = sorted(set(params) - allowed - {"expand"})
            if refused:
                raise ApiError(
                    400,
                    f"This invoice is {status}; {', '.join(refused)} can no longer be changed "
                    f"(only {', '.join(sorted(allowed))}).",
                    code="invoice_not_editable",
                    param=refused[0],
                )
        changes: dict[str, Any] = {}
        for name in ("description", "footer"):
            if name in params:
                changes[name] = wire.param_str(params, name) or None
        if "statement_descriptor" in params:
            changes["statement_descriptor"] = wire.param_str(params, "statement_descriptor", max_len=22) or None
        if "auto_advance" in params:
            changes["auto_advance"] = wire.param_bool(params, "auto_advance")
        if "collection_method" in params:
            changes["collection_method"] = wire.param_enum(
                params, "collection_method", ("charge_automatically", "send_invoice")
            )
        if "days_until_due" in params:
            changes["days_until_due"] = wire.param_int(params, "days_until_due", minimum=0, maximum=3650)
        if "due_date" in params:
            changes["due_date"] = wire.param_int(params, "due_date", minimum=0)
        if "number" in params:
            number = wire.param_str(params, "number", max_len=26)
            if number:
                self.requested_numbers[iid] = number
        meta = wire.metadata(params.get("metadata"), invoice["metadata"])
        before = dict(invoice)
        invoice.update(changes)
        if status == "draft" and invoice["collection_method"] == "charge_automatically":
            invoice["days_until_due"] = invoice["due_date"] = None
        if meta != invoice["metadata"]:
            self.invoices.set_metadata(invoice, meta)
        previous = self._changes(before, invoice)
        if previous:
            self.emit("invoice.updated", self.render_invoice(invoice), previous)
        return invoice

    def api_delete_invoice(self, iid: str) -> dict[str, Any]:
        invoice = self._get(self.invoices, iid)
        if invoice["status"] != "draft":
            raise ApiError(400, "You can only delete draft invoices.", code="invoice_not_editable")
        snapshot = self.render_invoice(invoice)
        for line_id in self.invoice_lines.pop(iid, []):
            line = self.lines.pop(line_id)
            item_id = line["parent"]["invoice_item_details"]["invoice_item"]
            self.item_line.pop(item_id, None)
            if item_id in self.invoice_items.objects:
                self.invoice_items.remove(item_id)
        self.invoices.remove(iid)
        self.emit("invoice.deleted", snapshot)
        return {"id": iid, "object": "invoice", "deleted": True}

    def api_add_lines(self, iid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("lines", "invoice_metadata"))
        invoice = self._get(self.invoices, iid)
        lines = wire.param_list(params, "lines")
        if not lines:
            raise invalid("Missing required param: lines.", param="lines", code="parameter_missing")
        customer = self.customers.objects[invoice["customer"]]
        prepared: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
        for n, line in enumerate(lines):
            prefix = f"lines[{n}]."
            if not isinstance(line, dict):
                raise invalid(f"Invalid hash: lines[{n}]", param=f"lines[{n}]")
            wire.check_known(line, ("amount", "description", "metadata", "period", "discountable", "invoice_item",
                                    "quantity", "tax_rates"))  # fmt: skip
            item_id = wire.param_str(line, "invoice_item")
            if item_id:
                item = self._get(self.invoice_items, item_id, f"{prefix}invoice_item", 400)
                if item["invoice"] is not None or item["customer"] != invoice["customer"]:
                    raise invalid(f"Invoice item {item_id} is not a pending item of this customer",
                                  param=f"{prefix}invoice_item")  # fmt: skip
                prepared.append((item, None))
                continue
            if "amount" not in line:
                raise invalid(f"Missing required param: {prefix}amount.", f"{prefix}amount", "parameter_missing")
            fields = self._item_fields({**line, "currency": invoice["currency"]}, invoice["currency"], prefix)
            prepared.append((None, fields))
        meta = wire.metadata(params.get("invoice_metadata"), invoice["metadata"], "invoice_metadata")
        self._draft(iid)
        before = self._totals(invoice)
        before["metadata"] = invoice["metadata"]
        for item, fields in prepared:
            if item is not None:
                self._attach(item, invoice)
                self.emit("invoiceitem.updated", item, {"invoice": None})
            else:
                created = self._new_item(customer, fields or {}, invoice)
                self.emit("invoiceitem.created", created)
        if meta != invoice["metadata"]:
            self.invoices.set_metadata(invoice, meta)
        self._recompute(invoice)
        self.emit("invoice.updated", self.render_invoice(invoice), self._changes(before, invoice))
        return invoice

    def api_finalize(self, iid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("auto_advance",))
        auto_advance = wire.param_bool(params, "auto_advance")
        invoice = self._get(self.invoices, iid)
        if invoice["status"] != "draft":
            raise ApiError(400, "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                           code="invoice_not_editable")  # fmt: skip
        now = self.now()
        self._next_number += 1
        invoice["number"] = self.requested_numbers.pop(iid, None) or f"{self.number_prefix}-{self._next_number:04d}"
        invoice["status"] = "open"
        invoice["status_transitions"]["finalized_at"] = now
        invoice["effective_at"] = now
        invoice["ending_balance"] = 0
        if invoice["collection_method"] == "send_invoice" and invoice["due_date"] is None:
            invoice["due_date"] = now + (invoice["days_until_due"] or 0) * DAY
        self.links.issue(invoice, self.base_url, now, "finalize")
        if auto_advance is not None:
            invoice["auto_advance"] = auto_advance
        self._recompute(invoice)
        self.apply_customer_balance(invoice)
        self.emit("invoice.finalized", self.render_invoice(invoice))
        if invoice["amount_due"] == 0:
            invoice["status"] = "paid"
            invoice["status_transitions"]["paid_at"] = now
            self.emit("invoice.paid", self.render_invoice(invoice))
        return invoice

    def _payable(self, invoice: dict[str, Any]) -> None:
        status = invoice["status"]
        if status == "paid":
            raise ApiError(400, "Invoice is already paid.", code="invoice_not_editable")
        if status not in ("open", "uncollectible"):
            raise ApiError(400, f"You can only pay an open or uncollectible invoice; this one is {status}.",
                           code="invoice_not_editable")  # fmt: skip

    def api_pay(self, iid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("paid_out_of_band", "payment_method", "source", "forgive", "off_session",
                                  "mandate"))  # fmt: skip
        out_of_band = wire.param_bool(params, "paid_out_of_band", False)
        invoice = self._get(self.invoices, iid)
        self._payable(invoice)
        if self.decline and not out_of_band:
            self._record_failure(invoice)
            raise ApiError(402, "Your card was declined.", type="card_error", code="card_declined",
                           extra={"decline_code": "generic_decline"})  # fmt: skip
        if invoice["amount_remaining"] == 0:  # only after a tampered total: nothing left to collect
            before = self._totals(invoice)
            invoice["status"] = "paid"
            invoice["status_transitions"]["paid_at"] = self.now()
            self.emit("invoice.paid", self.render_invoice(invoice), self._changes(before, invoice))
        else:
            self.record_payment(invoice, invoice["amount_remaining"], out_of_band=bool(out_of_band))
        return invoice

    def api_void(self, iid: str) -> dict[str, Any]:
        invoice = self._get(self.invoices, iid)
        if invoice["status"] not in ("open", "uncollectible"):
            raise ApiError(400, f"You can only void an open or uncollectible invoice; this one is "
                           f"{invoice['status']}.", code="invoice_not_editable")  # fmt: skip
        invoice["status"] = "void"
        invoice["status_transitions"]["voided_at"] = self.now()
        self.emit("invoice.voided", self.render_invoice(invoice))
        return invoice

    def api_mark_uncollectible(self, iid: str) -> dict[str, Any]:
        invoice = self._get(self.invoices, iid)
        if invoice["status"] != "open":
            raise ApiError(400, f"You can only mark an open invoice uncollectible; this one is "
                           f"{invoice['status']}.", code="invoice_not_editable")  # fmt: skip
        invoice["status"] = "uncollectible"
        invoice["status_transitions"]["marked_uncollectible_at"] = self.now()
        self.emit("invoice.marked_uncollectible", self.render_invoice(invoice))
        return invoice

    def api_send(self, iid: str) -> dict[str, Any]:
        """E-mail the invoice (test mode: no e-mail, only ``invoice.sent``) with a fresh hosted page link."""
        invoice = self._get(self.invoices, iid)
        if invoice["status"] not in ("open", "uncollectible", "paid"):
            raise ApiError(400, f"You can only send a finalized invoice that is not void; this one is "
                           f"{invoice['status']}.", code="invoice_not_editable")  # fmt: skip
        self.links.send(invoice, self.base_url, self.now())
        self.emit("invoice.sent", self.render_invoice(invoice))
        return invoice

    def api_list_invoices(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("created", "customer", "status", "collection_method", "due_date", "limit",
                                  "starting_after", "ending_before", "subscription"))  # fmt: skip
        customer = wire.param_str(params, "customer")
        status = wire.param_enum(params, "status", INVOICE_STATUSES)
        method = wire.param_enum(params, "collection_method", ("charge_automatically", "send_invoice"))
        preds: list[Callable[[dict[str, Any]], bool]] = []
        if status:
            preds.append(lambda i: i["status"] == status)
        if method:
            preds.append(lambda i: i["collection_method"] == method)
        return self.invoices.page(
            params,
            index=("customer", customer) if customer else None,
            pred=(lambda i: all(p(i) for p in preds)) if preds else None,
            render=self.render_invoice,
        )

    # ------------------------------------------------------------------ payments (customer behaviour)

    def record_payment(self, invoice: dict[str, Any], amount: int, *, out_of_band: bool = False) -> dict[str, Any]:
        """The customer pays ``amount`` of an open/uncollectible invoice: an invoice payment (and a charge)."""
        self._payable(invoice)
        if amount <= 0 or amount > invoice["amount_remaining"]:
            raise ValueError(f"amount must be between 1 and the amount remaining ({invoice['amount_remaining']})")
        now = self.now()
        before = self._totals(invoice)
        charge_id = intent_id = None
        if not out_of_band:
            charge = self._new_charge(invoice, amount, now)
            self.invoice_charges.setdefault(invoice["id"], []).append(charge["id"])
            charge_id, intent_id = charge["id"], charge["payment_intent"]
        payment = {
            "id": self.new_id("inpay"),
            "object": "invoice_payment",
            "amount_paid": amount,
            "amount_requested": amount,
            "created": now,
            "currency": invoice["currency"],
            "invoice": invoice["id"],
            "is_default": True,
            "livemode": False,
            "payment": (
                {"type": "charge", "charge": charge_id, "payment_intent": intent_id}
                if charge_id
                else {"type": "out_of_band_payment"}
            ),
            "status": "paid",
            "status_transitions": {"canceled_at": None, "paid_at": now},
        }
        self.invoice_payments.add(payment)
        invoice["amount_paid"] += amount
        invoice["amount_remaining"] = max(
            invoice["amount_due"] - invoice["amount_paid"] - invoice["pre_payment_credit_notes_amount"], 0
        )
        invoice["attempted"] = True
        invoice["attempt_count"] += 1
        self.emit("invoice_payment.paid", payment)
        if invoice["amount_remaining"] == 0:
            invoice["status"] = "paid"
            invoice["status_transitions"]["paid_at"] = now
            self.emit("invoice.paid", self.render_invoice(invoice), self._changes(before, invoice))
        else:
            self.emit("invoice.updated", self.render_invoice(invoice), self._changes(before, invoice))
        return payment

    def _record_failure(self, invoice: dict[str, Any]) -> None:
        invoice["attempted"] = True
        invoice["attempt_count"] += 1
        self.emit("invoice.payment_failed", self.render_invoice(invoice))

    def fail_payment(self, invoice: dict[str, Any]) -> None:
        self._payable(invoice)
        self._record_failure(invoice)

    def dispute(self, invoice: dict[str, Any], amount: int | None, reason: str) -> dict[str, Any]:
        charge_ids = self.invoice_charges.get(invoice["id"])
        if not charge_ids:
            raise ValueError(f"invoice {invoice['id']} has no charge to dispute")
        charge = self.charges.objects[charge_ids[-1]]
        value = charge["amount"] if amount is None else int(amount)
        if not 0 < value <= charge["amount"]:
            raise ValueError(f"a dispute amount must be between 1 and {charge['amount']}")
        now = self.now()
        dispute = {
            "id": self.new_id("dp"), "object": "dispute", "amount": value, "balance_transactions": [],
            "charge": charge["id"], "created": now, "currency": charge["currency"],
            "enhanced_eligibility_types": [], "evidence": {"customer_name": None, "uncategorized_text": None},
            "evidence_details": {"due_by": now + 7 * DAY, "has_evidence": False, "past_due": False,
                                 "submission_count": 0},
            "is_charge_refundable": False, "livemode": False, "metadata": {}, "network_reason_code": None,
            "payment_intent": charge["payment_intent"], "payment_method_details": {"type": "card"},
            "reason": reason, "status": "needs_response",
        }  # fmt: skip
        self.disputes.add(dispute)
        self._withdraw_for_dispute(dispute)
        charge["disputed"] = True
        self.emit("charge.dispute.created", self.render_dispute(dispute))
        self.emit("charge.dispute.funds_withdrawn", self.render_dispute(dispute))
        return self.render_dispute(dispute)

    def refund(self, invoice: dict[str, Any], amount: int | None) -> list[dict[str, Any]]:
        charges = [self.charges.objects[c] for c in reversed(self.invoice_charges.get(invoice["id"], []))]
        refundable = sum(c["amount"] - c["amount_refunded"] for c in charges)
        wanted = refundable if amount is None else int(amount)
        if refundable == 0 or not 0 < wanted <= refundable:
            raise ValueError(f"refund amount must be between 1 and the refundable amount ({refundable})")
        refunds: list[dict[str, Any]] = []
        for charge in charges:
            take = min(wanted, charge["amount"] - charge["amount_refunded"])
            if take <= 0:
                continue
            wanted -= take
            refunds.append(self._make_refund(charge, take, reason="requested_by_customer"))
            if wanted == 0:
                break
        return refunds

    def tamper_total(self, invoice: dict[str, Any], new_total: int) -> None:
        """Change an invoice's total behind everyone's back (no event; lines untouched)."""
        self._set_total(invoice, int(new_total))
        self.version += 1

    # ------------------------------------------------------------------ transfers

    def _render_transfer(self, transfer: dict[str, Any]) -> dict[str, Any]:
        reversals = self.reversals.get(transfer["id"], [])
        return {
            **transfer,
            "reversals": {
                "object": "list",
                "data": list(reversed(reversals[-10:])),
                "has_more": len(reversals) > 10,
                "total_count": len(reversals),
                "url": f"/v1/transfers/{transfer['id']}/reversals",
            },
        }

    def api_create_transfer(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("amount", "currency", "destination", "transfer_group", "metadata", "description",
                                  "source_transaction", "source_type"))  # fmt: skip
        cur = wire.currency(wire.required(params, "currency"))
        value = wire.amount(wire.required(params, "amount"), cur, minimum=1)
        destination = wire.param_str(params, "destination") or ""
        wire.required(params, "destination")
        if not destination.startswith("acct_") or len(destination) < 6:
            raise not_found("destination", destination, "destination", status=400)
        meta = wire.metadata(params.get("metadata"))
        source_type = wire.param_enum(params, "source_type", ("bank_account", "card", "fpx"), "card")
        refusal = self.transfer_refusals.get(destination) or self.transfer_refusals.get("*")
        if refusal is not None:
            message, param = TRANSFER_REFUSALS[refusal]
            raise ApiError(400, message, code=refusal, param=param)  # executed: saved under the key, replayed
        transfer = {
            "id": self.new_id("tr"), "object": "transfer", "amount": value, "amount_reversed": 0,
            "balance_transaction": None, "created": self.now(), "currency": cur,
            "description": wire.param_str(params, "description"), "destination": destination,
            "destination_payment": self.new_id("py"), "livemode": False, "metadata": meta, "reversed": False,
            "source_transaction": wire.param_str(params, "source_transaction"), "source_type": source_type,
            "transfer_group": wire.param_str(params, "transfer_group"),
        }  # fmt: skip
        self.transfers.add(transfer)
        transfer["balance_transaction"] = self._new_txn(
            type="transfer", category="transfer", amount=-value, currency=cur, source=transfer["id"]
        )["id"]
        self.emit("transfer.created", self._render_transfer(transfer))
        return self._render_transfer(transfer)

    def api_update_transfer(self, tid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("description", "metadata"))
        transfer = self._get(self.transfers, tid)
        before = dict(transfer)
        if "description" in params:
            transfer["description"] = wire.param_str(params, "description") or None
        meta = wire.metadata(params.get("metadata"), transfer["metadata"])
        if meta != transfer["metadata"]:
            self.transfers.set_metadata(transfer, meta)
        previous = self._changes(before, transfer)
        if previous:
            self.emit("transfer.updated", self._render_transfer(transfer), previous)
        return self._render_transfer(transfer)

    def reverse_transfer(self, tid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("amount", "description", "metadata", "refund_application_fee"))
        transfer = self._get(self.transfers, tid)
        left = transfer["amount"] - transfer["amount_reversed"]
        value = left if params.get("amount") in (None, "") else wire.amount(params["amount"], transfer["currency"])
        if left == 0:
            raise ApiError(400, f"Transfer {tid} is already fully reversed.")
        if not 0 < value <= left:
            raise invalid(f"Reversal amount must be between 1 and {left}", param="amount")
        meta = wire.metadata(params.get("metadata"))
        reversal_id = self.new_id("trr")
        txn = self._new_txn(type="transfer_refund", category="transfer_reversal", amount=value,
                            currency=transfer["currency"], source=reversal_id)  # fmt: skip
        reversal = {
            "id": reversal_id, "object": "transfer_reversal", "amount": value,
            "balance_transaction": txn["id"], "created": self.now(), "currency": transfer["currency"],
            "destination_payment_refund": self.new_id("pyr"), "metadata": meta, "source_refund": None,
            "transfer": tid,
        }  # fmt: skip
        previous = {"amount_reversed": transfer["amount_reversed"], "reversed": transfer["reversed"]}
        self.reversals.setdefault(tid, []).append(reversal)
        self.reversal_by_id[reversal["id"]] = reversal
        transfer["amount_reversed"] += value
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        self.version += 1
        self.emit("transfer.reversed", self._render_transfer(transfer), previous)
        return reversal

    def api_list_reversals(self, tid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("limit", "starting_after", "ending_before"))
        self._get(self.transfers, tid)
        page = _Page(params)
        items = list(reversed(self.reversals.get(tid, [])))
        ids = [r["id"] for r in items]
        start = 0
        if page.starting_after:
            if page.starting_after not in ids:
                raise not_found("transfer reversal", page.starting_after, "starting_after")
            start = ids.index(page.starting_after) + 1
        chosen = items[start : start + page.limit]
        return {"object": "list", "data": chosen, "has_more": start + page.limit < len(items),
                "url": f"/v1/transfers/{tid}/reversals"}  # fmt: skip

    def api_list_transfers(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("created", "destination", "transfer_group", "limit", "starting_after",
                                  "ending_before"))  # fmt: skip
        destination = wire.param_str(params, "destination")
        group = wire.param_str(params, "transfer_group")
        preds: list[Callable[[dict[str, Any]], bool]] = []
        if destination:
            preds.append(lambda t: t["destination"] == destination)
        if group:
            preds.append(lambda t: t["transfer_group"] == group)
        return self.transfers.page(
            params, pred=(lambda t: all(p(t) for p in preds)) if preds else None, render=self._render_transfer
        )

    # ------------------------------------------------------------------ payouts

    def api_create_payout(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("amount", "currency", "description", "destination", "metadata", "method",
                                  "source_type", "statement_descriptor"))  # fmt: skip
        cur = wire.currency(wire.required(params, "currency"))
        value = wire.amount(wire.required(params, "amount"), cur, minimum=1)
        method = wire.param_enum(params, "method", ("standard", "instant"), "standard") or "standard"
        wire.metadata(params.get("metadata"))
        wire.param_enum(params, "source_type", ("bank_account", "card", "fpx"), "card")
        wire.param_str(params, "statement_descriptor", max_len=22)
        payout = self._new_payout(cur, value, automatic=False, method=method, params=params)
        self.emit("payout.created", payout)
        return payout

    def api_update_payout(self, pid: str, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("metadata",))
        payout = self._get(self.payouts, pid)
        meta = wire.metadata(params.get("metadata"), payout["metadata"])
        if meta != payout["metadata"]:
            previous = {"metadata": payout["metadata"]}
            self.payouts.set_metadata(payout, meta)
            self.emit("payout.updated", payout, previous)
        return payout

    def api_cancel_payout(self, pid: str) -> dict[str, Any]:
        payout = self._get(self.payouts, pid)
        if payout["status"] != "pending":
            raise ApiError(400, f"Payouts can only be canceled while pending; this one is {payout['status']}.")
        payout["status"] = "canceled"
        payout["failure_balance_transaction"] = self._payout_return_txn(payout, "payout_cancel")["id"]
        self.emit("payout.canceled", payout, {"status": "pending", "failure_balance_transaction": None})
        return payout

    def settle_payout(self, pid: str, *, failure_code: str | None = None, message: str | None = None) -> dict:
        payout = self._get(self.payouts, pid)
        if payout["status"] not in ("pending", "in_transit"):
            raise ValueError(f"payout {pid} is {payout['status']}, not pending")
        previous = {"status": payout["status"]}
        if failure_code is None:
            payout["status"] = "paid"
            payout["trace_id"] = {"status": "supported", "value": f"SBXTRACE{pid[-8:]}"}
            self.emit("payout.paid", payout, previous)
            if payout["automatic"]:
                payout["reconciliation_status"] = "completed"
                self.emit("payout.reconciliation_completed", payout, {"reconciliation_status": "in_progress"})
        else:
            payout["status"] = "failed"
            payout["failure_code"] = failure_code
            payout["failure_message"] = message or f"The payout failed: {failure_code}."
            payout["failure_balance_transaction"] = self._payout_return_txn(payout, "payout_failure")["id"]
            self.emit("payout.failed", payout, previous)
        return payout

    def api_list_payouts(self, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("created", "arrival_date", "destination", "status", "limit", "starting_after",
                                  "ending_before"))  # fmt: skip
        status = wire.param_enum(params, "status", ("pending", "paid", "failed", "canceled", "in_transit"))
        destination = wire.param_str(params, "destination")
        preds: list[Callable[[dict[str, Any]], bool]] = []
        if status:
            preds.append(lambda p: p["status"] == status)
        if destination:
            preds.append(lambda p: p["destination"] == destination)
        arrival = params.get("arrival_date")
        if arrival not in (None, ""):
            _created_bounds([], arrival, 0, 0)  # validates the filter once
            preds.append(lambda p: _created_bounds([p["arrival_date"]], arrival, 0, 1) == (0, 1))
        return self.payouts.page(params, pred=(lambda p: all(f(p) for f in preds)) if preds else None)

    # ------------------------------------------------------------------ generic reads

    def api_retrieve(self, collection: Collection, oid: str) -> dict[str, Any]:
        return self.render(collection, self._get(collection, oid))

    def api_list_simple(self, collection: Collection, params: dict[str, Any]) -> dict[str, Any]:
        """Lists of charges, invoice payments, disputes and refunds (filters: customer / invoice / status)."""
        wire.check_known(params, ("created", "customer", "invoice", "status", "limit", "starting_after",
                                  "ending_before", "payment_intent", "charge"))  # fmt: skip
        index = None
        preds: list[Callable[[dict[str, Any]], bool]] = []
        for name in ("customer", "invoice", "status", "payment_intent", "charge"):
            value = wire.param_str(params, name)
            if not value:
                continue
            if name in collection.index:
                index = (name, value)
            else:
                preds.append(lambda o, n=name, v=value: o.get(n) == v)
        return collection.page(params, index=index, pred=(lambda o: all(p(o) for p in preds)) if preds else None,
                               render=self.renderers.get(collection))  # fmt: skip

    # ------------------------------------------------------------------ search

    def search(self, collection: Collection, params: dict[str, Any]) -> dict[str, Any]:
        wire.check_known(params, ("query", "limit", "page"))
        query = wire.param_str(params, "query") or ""
        wire.required(params, "query")
        limit = wire.param_int(params, "limit", 10, minimum=1, maximum=100) or 10
        token = wire.param_str(params, "page")
        before = len(collection.ids)
        if token:
            try:
                before = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("pos:"))
            except (ValueError, UnicodeDecodeError):
                raise invalid(f"Invalid page: {token!r}", param="page") from None
        clauses, joiner = self._parse_query(query, SEARCH_FIELDS[collection.name])
        candidates = self._candidates(collection, clauses, joiner)
        cutoff = self.now() - self.search_lag if self.search_lag else None

        def matches(obj: dict[str, Any]) -> bool:
            if cutoff is not None and obj["created"] > cutoff:
                return False
            results = (self._clause_matches(obj, c) for c in clauses)
            return all(results) if joiner == "AND" else any(results)

        if candidates is None:
            ordered: Iterable[int] = range(min(before, len(collection.ids)) - 1, -1, -1)
        else:
            ordered = sorted((p for p in (collection.pos[i] for i in candidates) if p < before), reverse=True)
        found: list[tuple[int, dict[str, Any]]] = []
        for position in ordered:
            obj = collection.objects.get(collection.ids[position])
            if obj is not None and matches(obj):
                found.append((position, obj))
                if len(found) > limit:
                    break
        has_more = len(found) > limit
        found = found[:limit]
        next_page = base64.urlsafe_b64encode(f"pos:{found[-1][0]}".encode()).decode() if has_more and found else None
        render = self.render_invoice if collection is self.invoices else None
        return {
            "object": "search_result",
            "data": [render(o) if render else o for _, o in found],
            "has_more": has_more,
            "next_page": next_page,
            "url": f"{collection.url}/search",
        }

    @staticmethod
    def _parse_query(query: str, fields: set[str]) -> tuple[list[dict[str, Any]], str]:
        parts = _JOIN.split(query.strip())
        clauses_text = parts[0::2]
        joiners = set(parts[1::2])
        if len(joiners) > 1:
            raise invalid("A search query cannot combine AND and OR.", param="query")
        clauses: list[dict[str, Any]] = []
        for text in clauses_text:
            match = _CLAUSE.fullmatch(text)
            if match is None:
                raise invalid(f"Invalid search query clause: {text!r}", param="query")
            field = "metadata" if match["key"] is not None else match["field"]
            if field not in fields:
                raise invalid(f"Field {field!r} is not supported in search queries here.", param="query")
            raw = match["sq"] if match["sq"] is not None else match["dq"]
            value: Any
            if raw is not None:
                value = re.sub(r"\\(.)", r"\1", raw)
            elif match["num"] is not None:
                value = int(match["num"])
            else:
                value = None
            op = match["op"]
            if op == "~" and (not isinstance(value, str) or len(value) < 3):
                raise invalid("The ~ operator needs a quoted value of at least 3 characters.", param="query")
            clauses.append({"neg": bool(match["neg"]), "field": field, "key": match["key"], "op": op, "value": value})
        return clauses, (joiners.pop() if joiners else "AND")

    @staticmethod
    def _candidates(collection: Collection, clauses: list[dict[str, Any]], joiner: str) -> set[str] | None:
        """Ids from the metadata index when the query allows it; ``None`` = scan everything."""

        def indexed(c: dict[str, Any]) -> bool:
            return c["field"] == "metadata" and c["op"] == ":" and not c["neg"] and isinstance(c["value"], str)

        sets = [collection.meta.get((c["key"], c["value"]), set()) for c in clauses if indexed(c)]
        if joiner == "AND" and sets:
            return min(sets, key=len)
        if joiner == "OR" and sets and len(sets) == len(clauses):
            return set().union(*sets)
        return None

    @staticmethod
    def _clause_matches(obj: dict[str, Any], clause: dict[str, Any]) -> bool:
        field, op, wanted = clause["field"], clause["op"], clause["value"]
        actual = obj.get("metadata", {}).get(clause["key"]) if field == "metadata" else obj.get(field)
        if op == ":":
            if wanted is None:
                result = actual is None
            elif isinstance(actual, str) and isinstance(wanted, str):
                result = (
                    actual == wanted
                    if field in ("metadata", "customer", "number")
                    else (actual.lower() == wanted.lower())
                )
            else:
                result = actual == wanted or (isinstance(actual, int) and str(actual) == str(wanted))
        elif op == "~":
            result = isinstance(actual, str) and str(wanted).lower() in actual.lower()
        else:
            try:
                left, right = int(actual), int(wanted)
            except (TypeError, ValueError):
                result = False
            else:
                result = {">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right}[op]
        return result != clause["neg"]

    # ------------------------------------------------------------------ inspection

    def count(self, kind: str) -> int:
        if kind in ("event", "events"):
            return len(self.events)
        if kind in ("line_item", "line"):
            return len(self.lines)
        return len(self.collection(kind))

    def collection(self, kind: str) -> Collection:
        name = kind.removesuffix("s") if kind not in self.by_kind else kind
        name = {"invoice_item": "invoiceitem", "invoice_items": "invoiceitem"}.get(kind, name)
        try:
            return self.by_kind[name]
        except KeyError:
            known = ", ".join(sorted([*self.by_kind, "event", "line_item"]))
            raise ValueError(f"unknown kind {kind!r}; expected one of {known}") from None

    def snapshot(self, kind: str) -> list[dict[str, Any]]:
        """Every live object of ``kind``, oldest first, as JSON-safe copies."""
        if kind in ("event", "events"):
            return [json.loads(raw) for raw in self.events.raw]
        if kind in ("line_item", "line"):
            return json.loads(wire.dumps(list(self.lines.values())))
        collection = self.collection(kind)
        objects = [self.render(collection, collection.objects[i]) for i in collection.ids if i in collection.objects]
        return json.loads(wire.dumps(objects))
