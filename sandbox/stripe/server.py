"""A stateful local Stripe API v1 server that the real ``stripe`` Python SDK works against unchanged.

Point the SDK at it with ``stripe.StripeClient(key, base_addresses={"api": sandbox.url}, max_network_retries=0)``.
Objects, state machines and events live in :mod:`sandbox.stripe.state`, idempotency in
:mod:`sandbox.stripe.idempotency`, webhook delivery in :mod:`sandbox.stripe.webhooks`; this module is the HTTP
layer: auth, injected faults, the idempotency flow, routing, ``/_sandbox/*`` control endpoints and the hosted
invoice page (``/i/<invoice id>/<link token>``, expiring as Stripe's do: ``hosted_links``).

Request flow (the order matters for what a fault leaves behind):

1. ``drop`` fault: the connection closes before anything happens.
2. Auth: ``Authorization: Bearer <secret key>`` (or HTTP Basic with the key as user), else 401.
3. ``rate_limit`` fault: 429 with ``Retry-After``; ``error_500`` fault: 500 ``api_error`` with
   ``Stripe-Should-Retry: true``. Neither executes anything nor saves anything under the idempotency key
   (they model failures in front of the API; a retry with the same key then executes normally).
4. Idempotency (POST only; the SDK sends a random key on every POST unless given one): replay, 400 mismatch,
   409 in progress, or reserve. ``slow`` fault: sleeps ``delay`` after reserving (to provoke 409s).
5. Execute under the state lock; save the response under the key unless validation failed.
6. ``timeout_after_commit`` fault: the object exists and its response is saved, but the client gets no
   answer: the server holds it ``delay`` seconds (longer than the client's timeout) and drops the connection.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from sandbox.serving import BackgroundServer, FaultPlan, Response, Traffic
from sandbox.stripe import wire
from sandbox.stripe.idempotency import MAX_KEY_LENGTH, TTL, IdempotencyStore
from sandbox.stripe.state import API_VERSION, StripeState
from sandbox.stripe.webhooks import WebhookDispatcher
from sandbox.stripe.wire import ApiError

__all__ = ["DEFAULT_SECRET_KEY", "FAULT_KINDS", "StripeSandbox"]

DEFAULT_SECRET_KEY = "sk_test_sandbox"
FAULT_KINDS = ("error_500", "drop", "timeout_after_commit", "rate_limit", "slow")
COUNTERS = ("mutations", "replays", "idempotency_errors", "faults")
LOG_SIZE = 10_000
_INVOICE_ACTIONS = ("finalize", "pay", "void", "mark_uncollectible", "add_lines", "send")


def _json(status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return status, wire.dumps(obj), list(headers)


def _error(exc: ApiError) -> Response:
    return exc.status, wire.dumps(exc.body()), list(exc.headers)


def _form(value: Any) -> Any:
    """Python values as the decoded form parameters the API methods take (lists become index hashes)."""
    if isinstance(value, dict):
        return {k: _form(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return {str(i): _form(v) for i, v in enumerate(value)}
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    return value


class StripeSandbox:
    """One Stripe test-mode account in memory, served over HTTP.

    Python methods (``pay_invoice``, ``dispute``, ``flush_webhooks``, ...) play the customer and the test
    harness; ``/_sandbox/*`` exposes the same controls over HTTP (no auth) for harnesses in other processes.
    """

    def __init__(
        self,
        *,
        secret_key: str = DEFAULT_SECRET_KEY,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        seed: int | None = None,
        clock: Callable[[], float] | None = None,
        search_lag: int = 0,
        idempotency_ttl: int = TTL,
        webhook_retries: int = 3,
        webhook_retry_delay: float = 0.05,
        webhook_timeout: float = 5.0,
    ) -> None:
        self.secret_key = secret_key
        self.state = StripeState(clock=clock, seed=seed)
        self.state.search_lag = int(search_lag)
        self._lock = self.state.lock
        self._idempotency = IdempotencyStore(idempotency_ttl)
        self._webhooks = WebhookDispatcher(
            self.now, retries=webhook_retries, retry_delay=webhook_retry_delay, timeout=webhook_timeout
        )
        self.traffic = Traffic(LOG_SIZE, counters=COUNTERS)
        self.faults = FaultPlan(FAULT_KINDS)
        self._server = BackgroundServer("StripeSandbox", self._serve, self._internal_error, clock=self.now)
        self._request_ids = itertools.count(1)
        self._request_tag = secrets.token_hex(4)
        if webhook_url:
            self.set_webhook(webhook_url, webhook_secret)

    # ------------------------------------------------------------------ lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL (``http://host:port``; the API is under ``/v1``)."""
        url = self._server.start(host, port)
        with self._lock:
            self.state.base_url = url
        self._webhooks.resume()
        return url

    def stop(self) -> None:
        """Stop serving, close keep-alive connections and stop the webhook thread (queued deliveries stay)."""
        self._server.stop()
        self._webhooks.close()

    @property
    def url(self) -> str:
        if not self._server.running or self._server.base_url is None:
            raise RuntimeError("sandbox not started")
        return self._server.base_url

    def __enter__(self) -> StripeSandbox:
        if not self._server.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ clock and idempotency

    def now(self) -> int:
        """Sandbox time (unix seconds): ``created`` stamps, key expiry and webhook signatures use it."""
        with self._lock:
            return self.state.now()

    def advance_clock(self, seconds: float) -> int:
        """Move the sandbox clock forward; returns the new time. Keys older than 24 h then count as new."""
        with self._lock:
            self.state.advance(seconds)
            return self.state.now()

    def expire_idempotency_keys(self) -> int:
        """Forget every saved idempotency key now (as Stripe's pruning would after 24 h); returns how many."""
        return self._idempotency.expire()

    def set_search_lag(self, seconds: int) -> None:
        """Objects younger than ``seconds`` (sandbox time) don't show up in search yet (Stripe: up to ~1 min)."""
        with self._lock:
            self.state.search_lag = max(0, int(seconds))

    def decline_payments(self, decline: bool = True) -> None:
        """Make ``POST /v1/invoices/{id}/pay`` fail with a 402 card_declined (and ``invoice.payment_failed``)."""
        with self._lock:
            self.state.decline = bool(decline)

    def refuse_transfers(self, code: str | None = "balance_insufficient", *, destination: str = "*") -> None:
        """Make ``POST /v1/transfers`` to ``destination`` (default: any) fail as Stripe does when it cannot make the
        transfer: 400 ``invalid_request_error`` with ``code`` (``balance_insufficient``, ``account_closed``,
        ``insufficient_capabilities_for_transfer``, ``transfers_not_allowed``), saved under the idempotency key.
        ``code=None`` lifts the refusal for ``destination``."""
        from sandbox.stripe.state import TRANSFER_REFUSALS

        with self._lock:
            if code is None:
                self.state.transfer_refusals.pop(destination, None)
                return
            if code not in TRANSFER_REFUSALS:
                raise ValueError(f"unknown transfer refusal {code!r}; expected one of {sorted(TRANSFER_REFUSALS)}")
            self.state.transfer_refusals[destination] = code

    # ------------------------------------------------------------------ faults and counters

    def inject(
        self, kind: str, *, times: int = 1, path_prefix: str = "/v1", after: int = 0, delay: float = 0.0
    ) -> None:
        """Make the next ``times`` requests under ``path_prefix`` misbehave, after letting ``after`` pass.

        Kinds: ``error_500``, ``drop``, ``timeout_after_commit`` (``delay`` = how long the response is held
        before the connection drops), ``rate_limit`` (``delay`` = Retry-After seconds, default 1), ``slow``.
        """
        self.faults.add(kind, times=times, path_prefix=path_prefix, after=after, delay=delay)

    inject_fault = inject

    def clear_faults(self) -> None:
        self.faults.clear()

    def stats(self) -> dict[str, Any]:
        """Traffic counters (requests, by_path, status_counts, mutations, replays, idempotency_errors, faults),
        the request log, webhook counters and the number of saved idempotency keys."""
        snapshot = self.traffic.snapshot()
        snapshot["webhooks"] = self._webhooks.stats()
        snapshot["idempotency_keys"] = len(self._idempotency)
        return snapshot

    def reset_stats(self) -> None:
        self.traffic.reset()

    # ------------------------------------------------------------------ inspection

    def count(self, kind: str) -> int:
        """Live objects of ``kind``: customer, invoice, invoiceitem, line_item, charge, payment_intent,
        invoice_payment, dispute, refund, credit_note, customer_balance_transaction, balance_transaction,
        transfer, payout, event (plural forms accepted)."""
        with self._lock:
            return self.state.count(kind)

    def objects(self, kind: str) -> list[dict[str, Any]]:
        """Copies of every live object of ``kind``, oldest first, as the API renders them."""
        with self._lock:
            return self.state.snapshot(kind)

    def get(self, object_id: str) -> dict[str, Any]:
        """A copy of any object by id (``KeyError`` if there is none)."""
        with self._lock:
            obj = self.state.lookup(object_id)
            if obj is None:
                raise KeyError(object_id)
            return json.loads(wire.dumps(obj))

    def events(self, types: str | Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every recorded event, oldest first, optionally only of some types."""
        wanted = {types} if isinstance(types, str) else set(types) if types is not None else None
        with self._lock:
            log = self.state.events
            raws = [raw for raw, t in zip(log.raw, log.types, strict=True) if wanted is None or t in wanted]
        return [json.loads(raw) for raw in raws]

    # ------------------------------------------------------------------ webhooks

    def set_webhook(self, url: str, secret: str | None = None, *, events: Iterable[str] | None = None) -> str:
        """Send every later event (or those matching ``events``, ``*`` wildcards allowed) to ``url``, signed
        with ``secret`` (generated when not given); returns the secret."""
        secret = secret or f"whsec_{secrets.token_hex(16)}"
        self._webhooks.configure(url, secret, events)
        with self._lock:
            if self._webhooks.enqueue not in self.state.listeners:
                self.state.listeners.append(self._webhooks.enqueue)
        return secret

    def clear_webhook(self) -> None:
        with self._lock:
            if self._webhooks.enqueue in self.state.listeners:
                self.state.listeners.remove(self._webhooks.enqueue)
        self._webhooks.clear()

    def webhook_faults(
        self,
        *,
        duplicate: float = 0.0,
        drop: float = 0.0,
        shuffle: bool = False,
        shuffle_window: float = 0.05,
        seed: int = 0,
    ) -> None:
        """Delivery misbehaviour: probability of a second delivery, probability of never delivering, and
        random order within each batch (batches gather for ``shuffle_window`` s). Deterministic per ``seed``."""
        self._webhooks.faults(duplicate=duplicate, drop=drop, shuffle=shuffle, shuffle_window=shuffle_window, seed=seed)

    def hold_webhooks(self) -> None:
        """Queue events without delivering them until :meth:`release_webhooks`."""
        self._webhooks.hold()

    def release_webhooks(self, *, shuffle: bool = False) -> None:
        """Deliver the held events as one batch, in random order if ``shuffle``."""
        self._webhooks.release(shuffle=shuffle)

    def flush_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until no delivery is queued, in flight or due for a retry; False on timeout (or while held)."""
        return self._webhooks.flush(timeout)

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every delivery attempt, oldest first (status 0 = unreachable, None = dropped by the fault knob)."""
        return self._webhooks.deliveries()

    def pending_webhooks(self) -> int:
        return self._webhooks.pending()

    # ------------------------------------------------------------------ customer behaviour

    def _control(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            self.state.request_context = (None, None)
            result = fn()
            return json.loads(wire.dumps(result))

    def _find(self, kind: str, object_id: str) -> dict[str, Any]:
        obj = self.state.collection(kind).get(object_id)
        if obj is None:
            raise KeyError(object_id)
        return obj

    def pay_invoice(self, invoice_id: str, amount: int | None = None, *, out_of_band: bool = False) -> dict:
        """The customer pays ``amount`` (default: all that remains) of an open or uncollectible invoice.
        Emits ``invoice_payment.paid``, then ``invoice.paid`` when nothing remains, else ``invoice.updated``.
        Returns the invoice."""

        def pay() -> dict[str, Any]:
            invoice = self._find("invoice", invoice_id)
            self.state.record_payment(
                invoice, invoice["amount_remaining"] if amount is None else int(amount), out_of_band=out_of_band
            )
            return self.state.render_invoice(invoice)

        return self._control(pay)

    def fail_payment(self, invoice_id: str) -> dict[str, Any]:
        """A payment attempt fails: ``attempt_count`` goes up and ``invoice.payment_failed`` is emitted."""

        def fail() -> dict[str, Any]:
            invoice = self._find("invoice", invoice_id)
            self.state.fail_payment(invoice)
            return self.state.render_invoice(invoice)

        return self._control(fail)

    def dispute(self, invoice_id: str, amount: int | None = None, reason: str = "fraudulent") -> dict[str, Any]:
        """The customer disputes the latest charge of an invoice: the amount and the dispute fee are withdrawn
        (a ``dispute`` balance transaction), ``charge.dispute.created`` and ``charge.dispute.funds_withdrawn``;
        returns the dispute. End it with :meth:`win_dispute` / :meth:`lose_dispute`."""
        return self._control(lambda: self.state.dispute(self._find("invoice", invoice_id), amount, reason))

    def refund(self, invoice_id: str, amount: int | None = None) -> list[dict[str, Any]]:
        """Refund ``amount`` (default: everything refundable) of an invoice's charges, newest charge first;
        one refund (with its balance transaction), ``refund.created`` and ``charge.refunded`` per charge touched.
        The invoice itself does not change. Returns the refunds."""
        return self._control(lambda: self.state.refund(self._find("invoice", invoice_id), amount))

    def tamper_invoice_total(self, invoice_id: str, new_total: int) -> dict[str, Any]:
        """Change an invoice's total (and amount due/remaining) behind the client's back: no event, lines
        untouched. For reconciliation tests."""

        def tamper() -> dict[str, Any]:
            invoice = self._find("invoice", invoice_id)
            self.state.tamper_total(invoice, new_total)
            return self.state.render_invoice(invoice)

        return self._control(tamper)

    def tamper_tax_rate(self, tax_rate_id: str, percentage: Decimal | str) -> dict[str, Any]:
        """Change a Tax Rate's percentage behind the client's back (Stripe never allows it; no event): drafts
        recompute their tax with it, finalized invoices keep theirs. For reconciliation tests."""

        def tamper() -> dict[str, Any]:
            self.state.tamper_tax_rate(tax_rate_id, Decimal(str(percentage)))
            return self.state.api_retrieve(self.state.tax_rates, tax_rate_id)

        return self._control(tamper)

    def reverse_transfer(self, transfer_id: str, amount: int | None = None) -> dict[str, Any]:
        """Reverse a transfer (fully by default) and emit ``transfer.reversed``; returns the reversal."""
        params = {} if amount is None else {"amount": str(int(amount))}

        def reverse() -> dict[str, Any]:
            self._find("transfer", transfer_id)
            return self.state.reverse_transfer(transfer_id, params)

        return self._control(reverse)

    def settle_payout(self, payout_id: str) -> dict[str, Any]:
        """A pending payout arrives: status ``paid``, ``payout.paid``."""
        return self._control(lambda: self._find("payout", payout_id) and self.state.settle_payout(payout_id))

    def fail_payout(self, payout_id: str, code: str = "account_closed", message: str | None = None) -> dict:
        """A pending payout fails: status ``failed`` with ``failure_code``, ``payout.failed``."""
        return self._control(
            lambda: (
                self._find("payout", payout_id)
                and self.state.settle_payout(payout_id, failure_code=code, message=message)
            )
        )

    # ------------------------------------------------------------------ the cash side (balance, fees, FX)

    def set_fee(self, currency: str, percent_bps: Decimal | int | str, fixed: int = 0, *, kind: str = "charge") -> None:
        """Fee rule for ``kind`` (``charge`` | ``refund``) transactions settled in ``currency`` (``*``: every
        other): ``percent_bps`` basis points of the settled amount (rounded half-up) + ``fixed`` minor units.
        Default: charges 290 bps + 30 in every currency, refunds free."""
        with self._lock:
            self.state.set_fee(currency, percent_bps, int(fixed), kind=kind)

    def set_dispute_fee(self, currency: str, amount: int) -> None:
        """The fee withdrawn with every dispute settled in ``currency`` (``*``: every other; default 1500)."""
        with self._lock:
            self.state.dispute_fees[currency] = int(amount)

    def set_settlement(self, presentment: str, settlement: str | None, rate: Decimal | str | int = 1) -> None:
        """From now on, money presented in ``presentment`` settles in ``settlement`` at ``rate`` per major unit
        (``Decimal``/string); ``settlement=None`` settles it in itself again. Later refunds and disputes of
        earlier charges convert at the rate current when they happen."""
        with self._lock:
            self.state.set_settlement(presentment, settlement, rate)

    def set_availability_delay(self, seconds: int) -> None:
        """How long charge funds stay ``pending`` before ``available`` (sandbox time; default 2 days)."""
        with self._lock:
            self.state.availability_delay = max(0, int(seconds))

    def set_payout_delay(self, seconds: int) -> None:
        """How long after creation an automatic payout arrives (``arrival_date``; default 2 days)."""
        with self._lock:
            self.state.payout_delay = max(0, int(seconds))

    def add_stripe_fee(self, amount: int, currency: str, description: str = "Billing - Usage Fee") -> dict:
        """Stripe takes a later fee (billing, Radar, ...): a ``stripe_fee`` txn of ``-amount``; returns it."""
        return self._control(lambda: self.state.add_stripe_fee(int(amount), currency, description))

    def balance(self) -> dict[str, Any]:
        """What ``GET /v1/balance`` answers now."""
        return self._control(self.state.api_balance)

    def refunds_pending(self, pending: bool = True) -> None:
        """New refunds start ``pending`` (until :meth:`settle_refund` or :meth:`fail_refund`), not ``succeeded``."""
        with self._lock:
            self.state.refunds_pending = bool(pending)

    def settle_refund(self, refund_id: str) -> dict[str, Any]:
        """A pending refund succeeds: ``refund.updated``."""
        return self._control(lambda: self.state.settle_refund(refund_id))

    def fail_refund(self, refund_id: str, reason: str = "expired_or_canceled_card") -> dict[str, Any]:
        """A refund fails: ``refund_failure`` txn returning the money, ``refund.updated`` + ``refund.failed``."""
        return self._control(lambda: self.state.fail_refund(refund_id, reason))

    def refund_charge(self, charge_id: str, amount: int | None = None, reason: str | None = None) -> dict:
        """A refund made by hand in the Dashboard: the same refund, txn and events as ``POST /v1/refunds``."""
        params: dict[str, Any] = {"charge": charge_id}
        if amount is not None:
            params["amount"] = str(int(amount))
        if reason:
            params["reason"] = reason
        return self._control(lambda: self.state.api_create_refund(params))

    def win_dispute(self, dispute_id: str) -> dict[str, Any]:
        """The bank rules for the merchant: ``won``, the amount comes back (``dispute_reversal`` txn; the fee
        does not), ``charge.dispute.funds_reinstated`` and ``charge.dispute.closed``."""
        return self._control(lambda: self.state.resolve_dispute(dispute_id, True))

    def lose_dispute(self, dispute_id: str) -> dict[str, Any]:
        """The bank rules for the cardholder: ``lost``, ``charge.dispute.closed`` (the funds stay withdrawn)."""
        return self._control(lambda: self.state.resolve_dispute(dispute_id, False))

    def run_payouts(self, now: int | None = None) -> list[dict[str, Any]]:
        """Run the automatic payout schedule at ``now`` (default: the sandbox clock; a later ``now`` moves the
        clock there): pays automatic payouts whose arrival date has passed, then sweeps each settlement
        currency's available, not yet paid-out transactions into one automatic payout when their net is
        positive. Returns the new payouts."""
        return self._control(lambda: self.state.run_payouts(now))

    def seed_balance_transactions(self, charges: int, **options: Any) -> dict[str, int]:
        """Bulk history for benchmarks (no events): ``charges`` card charges over the last ``days`` (default 60)
        with their PaymentIntents and txns, a refund of every ``refund_every``-th (10), a Stripe fee a day and
        a daily automatic payout carrying what was available; see :mod:`sandbox.stripe.bulk`. About 1.1 txns
        per charge; 900,000 charges take ~25 s and ~3 GB. Seed a fresh sandbox. Returns the counts."""
        from sandbox.stripe.bulk import seed_balance_transactions

        with self._lock:
            return seed_balance_transactions(self.state, int(charges), **options)

    # ------------------------------------------------------------------ as if in the Dashboard

    def dashboard_invoice(
        self,
        lines: Iterable[tuple[str, int]] | Iterable[dict[str, Any]],
        *,
        name: str = "Dashboard customer",
        email: str | None = None,
        currency: str = "usd",
        days_until_due: int = 30,
        finalize: bool = True,
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        """Someone creates a customer (unless ``customer_id``) and an invoice by hand: no closeout metadata, the
        same objects and events as the API calls. ``lines``: ``(description, amount)`` pairs or line hashes.
        Finalized unless ``finalize=False``; returns the invoice."""
        items = [{"description": x[0], "amount": x[1]} if isinstance(x, tuple) else dict(x) for x in lines]

        def make() -> dict[str, Any]:
            s = self.state
            cid = customer_id or s.api_create_customer(_form({"name": name, "email": email or ""}))["id"]
            invoice = s.api_create_invoice(_form({"customer": cid, "currency": currency, "auto_advance": False,
                                                  "collection_method": "send_invoice",
                                                  "days_until_due": days_until_due}))  # fmt: skip
            if items:
                s.api_add_lines(invoice["id"], _form({"lines": items}))
            if finalize:
                s.api_finalize(invoice["id"], {})
            return s.render_invoice(invoice)

        return self._control(make)

    def dashboard_credit_note(self, invoice_id: str, **params: Any) -> dict[str, Any]:
        """A credit note issued by hand: takes ``POST /v1/credit_notes``'s parameters as Python values
        (``amount=500``, ``lines=[{...}]``, ``refund_amount=...``); the same checks, objects and events."""
        return self._control(lambda: self.state.api_create_credit_note(_form({"invoice": invoice_id, **params})))

    def void_credit_note(self, credit_note_id: str) -> dict[str, Any]:
        """Void a credit note by hand (``POST /v1/credit_notes/{id}/void``'s rules and events)."""
        return self._control(lambda: self.state.api_void_credit_note(credit_note_id))

    def pay_invoice_by_card(
        self,
        invoice_id: str,
        amount: int | None = None,
        *,
        settlement_currency: str | None = None,
        rate: Decimal | str | None = None,
    ) -> dict[str, Any]:
        """The customer pays by card, optionally in a currency the account settles in ``settlement_currency``
        at ``rate`` (per major unit; the setting stays for that presentment currency). Returns the invoice."""
        if settlement_currency is not None:
            with self._lock:
                currency = self._find("invoice", invoice_id)["currency"]
                self.state.set_settlement(currency, settlement_currency, rate if rate is not None else "1")
        return self.pay_invoice(invoice_id, amount)

    # ------------------------------------------------------------------ HTTP entry point

    def _internal_error(self, exc: Exception) -> Response:
        error = ApiError(500, f"Sandbox error: {exc!r}", type="api_error")
        return _error(error)

    def _record(self, method: str, target: str, status: int, counter: str | None = None) -> None:
        self.traffic.record(method, target, status, counter=counter)

    def _authorized(self, headers: Any) -> bool:
        value = (headers.get("Authorization") or "").strip()
        scheme, _, credential = value.partition(" ")
        credential = credential.strip()
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential, validate=True).decode().split(":", 1)[0]
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credential.encode(), self.secret_key.encode())

    def _serve(self, method: str, target: str, headers: Any, body: bytes, host: str = "") -> Response | None:
        path, _, query = target.partition("?")
        if path.startswith("/_sandbox/"):
            return self._control_http(method, path, body)
        if path.startswith("/i/"):
            return self._hosted(method, path)
        fault = self.faults.take(path)
        kind = fault.kind if fault is not None else None
        if kind == "drop":
            self._record(method, target, 0, "faults")
            return None
        if not self._authorized(headers):
            given = bool(headers.get("Authorization"))
            message = (
                "Invalid API Key provided."
                if given
                else "You did not provide an API key. Provide it in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
            )
            response = _error(ApiError(401, message))
            self._record(method, target, 401)
            return response
        if kind == "rate_limit":
            retry_after = str(max(1, round(fault.delay))) if fault is not None else "1"
            error = ApiError(429, "Request rate limit exceeded. Learn more about rate limits here "
                             "https://stripe.com/docs/rate-limits.", code="rate_limit",
                             headers=[("Retry-After", retry_after)])  # fmt: skip
            self._record(method, target, 429, "faults")
            return _error(error)
        if kind == "error_500":
            error = ApiError(500, "An unknown error occurred (injected by the sandbox).", type="api_error",
                             headers=[("Stripe-Should-Retry", "true")])  # fmt: skip
            self._record(method, target, 500, "faults")
            return _error(error)
        request_id = f"req_{self._request_tag}{next(self._request_ids):08d}"
        version = headers.get("Stripe-Version") or API_VERSION
        base = [("Request-Id", request_id), ("Stripe-Version", version)]
        response, counter = self._handle(method, path, query, headers, body, host, request_id, base, fault)
        self._record(method, target, response[0], counter)
        if kind == "timeout_after_commit":
            if fault is not None and fault.delay > 0:
                time.sleep(fault.delay)
            return None
        return response

    def _handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Any,
        body: bytes,
        host: str,
        request_id: str,
        base: list[tuple[str, str]],
        fault: Any,
    ) -> tuple[Response, str | None]:
        try:
            text = body.decode("utf-8") if method == "POST" else query
        except UnicodeDecodeError:
            return _error(wire.invalid("The request body is not UTF-8.")), None
        try:
            pairs = wire.parse_pairs(text)
            if method == "POST" and query:
                pairs += wire.parse_pairs(query)
        except ApiError as exc:
            return _error(exc), None
        key = headers.get("Idempotency-Key") if method == "POST" else None
        if key is None:
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            status, payload, extra, _saved, changed = self._execute(method, path, pairs, host, request_id, None)
            return (status, payload, [*base, *extra]), ("mutations" if changed else None)
        base.append(("Idempotency-Key", key))
        if not key or len(key) > MAX_KEY_LENGTH:
            error = wire.invalid(f"Idempotency-Key must be between 1 and {MAX_KEY_LENGTH} characters long "
                                 f"(got {len(key)}).")  # fmt: skip
            return (error.status, wire.dumps(error.body()), base), "idempotency_errors"
        outcome, saved = self._idempotency.begin(key, wire.fingerprint(method, path, pairs), self.now())
        if outcome == "mismatch":
            error = ApiError(400, f"Keys for idempotent requests can only be used with the same parameters they "
                             f"were first used with. Try using a key other than '{key}' if you meant to execute a "
                             "different request.", type="idempotency_error")  # fmt: skip
            return (400, wire.dumps(error.body()), base), "idempotency_errors"
        if outcome == "in_progress":
            error = ApiError(409, "There is currently another in-progress request using this Idempotency-Key "
                             "(that probably means you submitted twice, and the other request is still going "
                             f"through): {key}. Please try again later.", type="idempotency_error",
                             code="idempotency_key_in_use")  # fmt: skip
            return (409, wire.dumps(error.body()), base), "idempotency_errors"
        if outcome == "replay":
            extra = [("Idempotent-Replayed", "true"), ("Original-Request", saved.headers[0][1]), *saved.headers[1:]]
            return (saved.status, saved.body, [*base, *extra]), "replays"
        try:
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.delay)
            status, payload, extra, keep, changed = self._execute(method, path, pairs, host, request_id, key)
        except BaseException:
            self._idempotency.release(key, saved)
            raise
        if keep:
            self._idempotency.finish(key, saved, status, payload, [("Request-Id", request_id), *extra])
        else:
            self._idempotency.release(key, saved)
        return (status, payload, [*base, *extra]), ("mutations" if changed else None)

    def _execute(
        self, method: str, path: str, pairs: list[tuple[str, str]], host: str, request_id: str, key: str | None
    ) -> tuple[int, bytes, list[tuple[str, str]], bool, bool]:
        """Run one API call: ``(status, body, extra headers, save under the key?, state changed?)``."""
        state = self.state
        with self._lock:
            before = state.version
            state.request_context = (request_id, key)
            if host:
                state.base_url = f"http://{host}"
            try:
                params = wire.parse_params(pairs)
                expand = wire.expand_paths(params)
                result = self._route(method, path, params)
                if expand and isinstance(result, dict):
                    result = state.expand(result, expand)
                payload = result if isinstance(result, bytes) else wire.dumps(result)
                status, extra, keep = 200, [], True
            except ApiError as exc:
                status, payload, extra, keep = exc.status, wire.dumps(exc.body()), list(exc.headers), exc.saved
            finally:
                state.request_context = (None, None)
            return status, payload, extra, keep, state.version != before

    def _route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any] | bytes:
        s = self.state
        parts = path.removeprefix("/v1/").strip("/").split("/") if path.startswith("/v1/") else None
        no_params = ()
        match method, parts:
            # customers
            case "POST", ["customers"]:
                return s.api_create_customer(params)
            case "GET", ["customers"]:
                return s.api_list_customers(params)
            case "GET", ["customers", "search"]:
                return s.search(s.customers, params)
            case "GET", ["customers", cid]:
                wire.check_known(params, no_params)
                return s.api_retrieve(s.customers, cid)
            case "POST", ["customers", cid]:
                return s.api_update_customer(cid, params)
            # invoice items
            case "POST", ["invoiceitems"]:
                return s.api_create_invoice_item(params)
            case "GET", ["invoiceitems"]:
                return s.api_list_invoice_items(params)
            case "GET", ["invoiceitems", iid]:
                wire.check_known(params, no_params)
                return s.api_retrieve(s.invoice_items, iid)
            case "POST", ["invoiceitems", iid]:
                return s.api_update_invoice_item(iid, params)
            case "DELETE", ["invoiceitems", iid]:
                wire.check_known(params, no_params)
                return s.api_delete_invoice_item(iid)
            # tax rates
            case "POST", ["tax_rates"]:
                return s.api_create_tax_rate(params)
            case "GET", ["tax_rates"]:
                return s.api_list_tax_rates(params)
            case "GET", ["tax_rates", rid]:
                wire.check_known(params, no_params)
                return s.api_retrieve(s.tax_rates, rid)
            case "POST", ["tax_rates", rid]:
                return s.api_update_tax_rate(rid, params)
            # invoices
            case "POST", ["invoices"]:
                return s.render_invoice(s.api_create_invoice(params))
            case "GET", ["invoices"]:
                return s.api_list_invoices(params)
            case "GET", ["invoices", "search"]:
                return s.search(s.invoices, params)
            case "GET", ["invoices", iid]:
                wire.check_known(params, no_params)
                return s.api_retrieve(s.invoices, iid)
            case "POST", ["invoices", iid]:
                return s.render_invoice(s.api_update_invoice(iid, params))
            case "DELETE", ["invoices", iid]:
                wire.check_known(params, no_params)
                return s.api_delete_invoice(iid)
            case "GET", ["invoices", iid, "lines"]:
                return s.api_list_lines(iid, params)
            case "POST", ["invoices", iid, action] if action in _INVOICE_ACTIONS:
                return s.render_invoice(self._invoice_action(iid, action, params))
            # payments and their aftermath (read-only over the API)
            case "GET", [("charges" | "invoice_payments" | "disputes" | "refunds") as name]:
                return s.api_list_simple(s.collection(name), params)
            case "GET", [("charges" | "invoice_payments" | "disputes" | "refunds" | "payment_intents") as name, oid]:
                wire.check_known(params, no_params)
                return s.api_retrieve(s.collection(name), oid)
            case "GET", ["payment_intents"]:
                return s.api_list_payment_intents(params)
            # the balance and its transactions
            case "GET", ["balance"]:
                wire.check_known(params, no_params)
                return s.api_balance()
            case "GET", ["balance_transactions"]:
                return s.api_list_balance_transactions(params)
            case "GET", ["balance_transactions", tid]:
                wire.check_known(params, no_params)
                return s.api_retrieve(s.balance_transactions, tid)
            # credit notes and customer balance
            case "POST", ["credit_notes"]:
                return s.api_create_credit_note(params)
            case "GET", ["credit_notes"]:
                return s.api_list_credit_notes(params)
            case "GET", ["credit_notes", "preview"]:
                return s.api_preview_credit_note(params)
            case "GET", ["credit_notes", cnid]:
                wire.check_known(params, no_params)
                return s.api_retrieve(s.credit_notes, cnid)
            case "POST", ["credit_notes", cnid]:
                return s.api_update_credit_note(cnid, params)
            case "POST", ["credit_notes", cnid, "void"]:
                wire.check_known(params, no_params)
                return s.api_void_credit_note(cnid)
            case "GET", ["credit_notes", cnid, "lines"]:
                return s.api_list_credit_note_lines(cnid, params)
            case "GET", ["customers", cid, "balance_transactions"]:
                return s.api_list_customer_balance_transactions(cid, params)
            case "POST", ["customers", cid, "balance_transactions"]:
                return s.api_create_customer_balance_transaction(cid, params)
            case "GET", ["customers", cid, "balance_transactions", tid]:
                wire.check_known(params, no_params)
                return s._customer_entry(cid, tid)
            case "POST", ["customers", cid, "balance_transactions", tid]:
                return s.api_update_customer_balance_transaction(cid, tid, params)
            # refunds and disputes
            case "POST", ["refunds"]:
                return s.api_create_refund(params)
            case "POST", ["refunds", rid]:
                return s.api_update_refund(rid, params)
            case "POST", ["disputes", did, "close"]:
                wire.check_known(params, no_params)
                return s.api_close_dispute(did)
            case "POST", ["disputes", did]:
                return s.api_update_dispute(did, params)
            # transfers
            case "POST", ["transfers"]:
                return s.api_create_transfer(params)
            case "GET", ["transfers"]:
                return s.api_list_transfers(params)
            case "GET", ["transfers", tid]:
                wire.check_known(params, no_params)
                return s.api_retrieve(s.transfers, tid)
            case "POST", ["transfers", tid]:
                return s.api_update_transfer(tid, params)
            case "POST", ["transfers", tid, "reversals"]:
                return s.reverse_transfer(tid, params)
            case "GET", ["transfers", tid, "reversals"]:
                return s.api_list_reversals(tid, params)
            # payouts
            case "POST", ["payouts"]:
                return s.api_create_payout(params)
            case "GET", ["payouts"]:
                return s.api_list_payouts(params)
            case "GET", ["payouts", pid]:
                wire.check_known(params, no_params)
                return s.api_retrieve(s.payouts, pid)
            case "POST", ["payouts", pid]:
                return s.api_update_payout(pid, params)
            case "POST", ["payouts", pid, "cancel"]:
                wire.check_known(params, no_params)
                return s.api_cancel_payout(pid)
            # events
            case "GET", ["events"]:
                return s.list_events(params)
            case "GET", ["events", eid]:
                wire.check_known(params, no_params)
                return s.event_bytes(eid)
        raise ApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
            "https://support.stripe.com/.",
            saved=False,
        )

    def _invoice_action(self, iid: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        s = self.state
        if action == "finalize":
            return s.api_finalize(iid, params)
        if action == "pay":
            return s.api_pay(iid, params)
        if action == "add_lines":
            return s.api_add_lines(iid, params)
        wire.check_known(params, ())
        if action == "void":
            return s.api_void(iid)
        if action == "mark_uncollectible":
            return s.api_mark_uncollectible(iid)
        return s.api_send(iid)

    # ------------------------------------------------------------------ hosted invoice page

    def _hosted(self, method: str, path: str) -> Response:
        """``/i/<invoice>/<token>`` (and ``/pdf``) while the link lives; an expired link redirects to
        ``.../expired`` (410), which offers the recovery flow when the invoice was sent (see hosted_links)."""
        parts = [p for p in path.split("/") if p]
        html_type = [("Content-Type", "text/html; charset=utf-8")]
        with self._lock:
            invoice = self.state.invoices.get(parts[1]) if len(parts) in (3, 4) and method == "GET" else None
            link = self.state.links.find(parts[1], parts[2]) if invoice is not None else None
            if link is None or invoice is None or invoice["status"] == "draft" or parts[3:] not in ([], ["pdf"],
                                                                                                   ["expired"]):
                return 404, b"<h1>Invoice not found</h1>", html_type
            expired = self.state.now() >= link.expires_at
            sent, account = bool(self.state.links.sent.get(invoice["id"])), self.state.account_name
            number, status = invoice["number"], invoice["status"]
            due, remaining, cur = invoice["amount_due"], invoice["amount_remaining"], invoice["currency"]
        if parts[3:] == ["expired"] or expired:
            if not expired:
                return 404, b"<h1>Invoice not found</h1>", html_type
            if parts[3:] != ["expired"]:
                return 302, b"", [("Location", f"/i/{parts[1]}/{parts[2]}/expired")]
            offer = ("Enter the e-mail address this invoice was sent to and we will send you a new link."
                     if sent else f"Please contact {html.escape(account)} for a new link.")  # fmt: skip
            page = f"<!doctype html><title>Link expired</title><h1>This invoice link has expired</h1><p>{offer}</p>"
            return 410, page.encode(), html_type
        if len(parts) == 4:
            return 200, f"%PDF-1.4\n% sandbox invoice {number}\n".encode(), [("Content-Type", "application/pdf")]
        page = (
            f"<!doctype html><title>Invoice {html.escape(number)}</title><h1>Invoice {html.escape(number)}</h1>"
            f"<p>Status: {status}</p><p>Amount due: {due} {cur}</p><p>Amount remaining: {remaining} {cur}</p>"
        )
        return 200, page.encode(), [("Content-Type", "text/html; charset=utf-8")]

    # ------------------------------------------------------------------ /_sandbox control endpoints

    def _control_http(self, method: str, path: str, body: bytes) -> Response:
        try:
            args: Any = json.loads(body) if body.strip() else {}
        except ValueError:
            return _json(400, {"error": {"message": "body is not JSON"}})
        if not isinstance(args, dict):
            return _json(400, {"error": {"message": "body must be a JSON object"}})
        parts = [p for p in path.split("/")[2:] if p]
        try:
            result = self._control_route(method, parts, args)
        except KeyError as exc:
            return _json(404, {"error": {"message": f"no such object {exc}"}})
        except (TypeError, ValueError) as exc:
            return _json(400, {"error": {"message": str(exc)}})
        if result is None:
            return _json(404, {"error": {"message": f"unknown control endpoint {method} {path}"}})
        return _json(200, result)

    def _control_route(self, method: str, parts: list[str], args: dict[str, Any]) -> Any:
        match method, parts:
            case "GET", ["health"]:
                return {"ok": True, "now": self.now()}
            case "GET", ["stats"]:
                stats = self.stats()
                stats["status_counts"] = {str(k): v for k, v in stats["status_counts"].items()}
                return stats
            case "POST", ["reset_stats"]:
                self.reset_stats()
                return {"ok": True}
            case "POST", ["faults"]:
                self.inject(**args)
                return {"ok": True}
            case "DELETE", ["faults"]:
                self.clear_faults()
                return {"ok": True}
            case "POST", ["clock", "advance"]:
                return {"now": self.advance_clock(float(args["seconds"]))}
            case "POST", ["idempotency", "expire"]:
                return {"expired": self.expire_idempotency_keys()}
            case "POST", ["transfers", "refuse"]:
                code, destination = args.get("code", "balance_insufficient"), args.get("destination", "*")
                self.refuse_transfers(code, destination=destination)
                return {"ok": True}
            case "POST", ["decline_payments"]:
                self.decline_payments(bool(args.get("decline", True)))
                return {"ok": True}
            case "GET", ["count", kind]:
                return {"kind": kind, "count": self.count(kind)}
            case "GET", ["objects", kind]:
                return self.objects(kind)
            case "GET", ["events"]:
                return self.events(args.get("types"))
            case "POST", ["webhooks"]:
                return {"secret": self.set_webhook(args["url"], args.get("secret"), events=args.get("events"))}
            case "DELETE", ["webhooks"]:
                self.clear_webhook()
                return {"ok": True}
            case "POST", ["webhooks", "faults"]:
                self.webhook_faults(**args)
                return {"ok": True}
            case "POST", ["webhooks", "hold"]:
                self.hold_webhooks()
                return {"ok": True}
            case "POST", ["webhooks", "release"]:
                self.release_webhooks(shuffle=bool(args.get("shuffle", False)))
                return {"ok": True}
            case "POST", ["webhooks", "flush"]:
                return {"flushed": self.flush_webhooks(float(args.get("timeout", 5.0)))}
            case "GET", ["webhooks", "deliveries"]:
                return self.webhook_deliveries()
            case "POST", ["invoices", iid, "pay"]:
                return self.pay_invoice(iid, args.get("amount"), out_of_band=bool(args.get("out_of_band", False)))
            case "POST", ["invoices", iid, "fail_payment"]:
                return self.fail_payment(iid)
            case "POST", ["invoices", iid, "dispute"]:
                return self.dispute(iid, args.get("amount"), args.get("reason", "fraudulent"))
            case "POST", ["invoices", iid, "refund"]:
                return self.refund(iid, args.get("amount"))
            case "POST", ["invoices", iid, "tamper_total"]:
                return self.tamper_invoice_total(iid, int(args["total"]))
            case "POST", ["transfers", tid, "reverse"]:
                return self.reverse_transfer(tid, args.get("amount"))
            case "POST", ["payouts", pid, "paid"]:
                return self.settle_payout(pid)
            case "POST", ["payouts", pid, "failed"]:
                return self.fail_payout(pid, args.get("code", "account_closed"), args.get("message"))
            case "POST", ["payouts", "run"]:
                return self.run_payouts(args.get("now"))
            case "POST", ["fees"]:
                self.set_fee(args["currency"], str(args["percent_bps"]), int(args.get("fixed", 0)),
                             kind=args.get("kind", "charge"))  # fmt: skip
                return {"ok": True}
            case "POST", ["fees", "dispute"]:
                self.set_dispute_fee(args["currency"], int(args["amount"]))
                return {"ok": True}
            case "POST", ["fees", "stripe_fee"]:
                return self.add_stripe_fee(int(args["amount"]), args["currency"],
                                           args.get("description", "Billing - Usage Fee"))  # fmt: skip
            case "POST", ["settlement"]:
                rate = args.get("rate", "1")
                self.set_settlement(args["presentment"], args.get("settlement"), str(rate))
                return {"ok": True}
            case "POST", ["availability_delay"]:
                self.set_availability_delay(int(args["seconds"]))
                return {"ok": True}
            case "POST", ["payout_delay"]:
                self.set_payout_delay(int(args["seconds"]))
                return {"ok": True}
            case "GET", ["balance"]:
                return self.balance()
            case "POST", ["refunds", "pending"]:
                self.refunds_pending(bool(args.get("pending", True)))
                return {"ok": True}
            case "POST", ["refunds", rid, "fail"]:
                return self.fail_refund(rid, args.get("reason", "expired_or_canceled_card"))
            case "POST", ["refunds", rid, "settle"]:
                return self.settle_refund(rid)
            case "POST", ["charges", cid, "refund"]:
                return self.refund_charge(cid, args.get("amount"), args.get("reason"))
            case "POST", ["seed", "balance_transactions"]:
                options = {k: args[k] for k in ("days", "currency", "refund_every", "customers", "payouts", "seed")
                           if k in args}  # fmt: skip
                return self.seed_balance_transactions(int(args["charges"]), **options)
            case "POST", ["dashboard", "invoices"]:
                return self.dashboard_invoice([(x["description"], int(x["amount"])) for x in args.get("lines", [])],
                                              name=args.get("name", "Dashboard customer"), email=args.get("email"),
                                              currency=args.get("currency", "usd"),
                                              days_until_due=int(args.get("days_until_due", 30)),
                                              finalize=bool(args.get("finalize", True)),
                                              customer_id=args.get("customer"))  # fmt: skip
            case "POST", ["dashboard", "credit_notes"]:
                params = dict(args)
                return self.dashboard_credit_note(params.pop("invoice"), **params)
            case "POST", ["credit_notes", cnid, "void"]:
                return self.void_credit_note(cnid)
            case "POST", ["invoices", iid, "pay_by_card"]:
                rate = str(args["rate"]) if args.get("rate") is not None else None
                return self.pay_invoice_by_card(iid, args.get("amount"), rate=rate,
                                                settlement_currency=args.get("settlement_currency"))  # fmt: skip
            case "POST", ["disputes", did, "win"]:
                return self.win_dispute(did)
            case "POST", ["disputes", did, "lose"]:
                return self.lose_dispute(did)
        return None
