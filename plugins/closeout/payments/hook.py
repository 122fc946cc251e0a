"""StripeHook: everything about talking to Stripe's API v1, and nothing else.

Calls go through the real ``stripe`` SDK (``StripeClient``), pointed at the connection's host so the same
code runs against Stripe or the sandbox. Every mutating call takes the caller's idempotency key: the SDK
would otherwise invent a random one, which an Airflow task retry does not reuse. The SDK's own network
retries (5xx, 409, dropped connections, timeouts) reuse that key, so they replay rather than repeat.

Errors come back as one type, ``StripeCallError``, that says whether trying again later can help: that is
all the publish and events code needs to decide between "leave it pending" and "stop this invoice".
"""

from __future__ import annotations

import email.utils
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import stripe
from airflow.sdk import BaseHook

from closeout.connections import get_connection

# The SDK logs every response at INFO: a publish run would bury its own summary under thousands of lines.
logging.getLogger("stripe").setLevel(logging.WARNING)

SEARCH_PAGE = 100
LIST_PAGE = 100


class StripeCallError(RuntimeError):
    """A Stripe call that failed. ``retryable``: the same call (same key) may succeed later."""

    def __init__(self, message: str, *, status: int | None, code: str | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True)
class StripeResult:
    """A Stripe object as a plain dict, and whether Stripe replayed a saved response for our key."""

    obj: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class EventPage:
    """One page of /v1/events: the events, and the response body exactly as Stripe sent it."""

    events: list[dict[str, Any]]
    body: str


@dataclass(frozen=True)
class StripeSettings:
    """Connection extras. ``key_prefix`` keeps two deployments sharing one Stripe account apart;
    ``idempotency_key_hours`` is how long Stripe is trusted to keep a key (it promises about 24 h)."""

    webhook_secrets: tuple[str, ...] = ()
    max_network_retries: int = 2
    timeout: float = 30.0
    concurrency: int = 4
    key_prefix: str = "closeout"
    idempotency_key_hours: float = 24.0
    lines_per_request: int = 100
    url_refresh_days: int = 7
    backfill_overlap_seconds: int = 600

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> StripeSettings:
        secret = extra.get("webhook_secret")
        secrets = tuple(s for s in (secret if isinstance(secret, list) else [secret]) if isinstance(s, str) and s)
        values: dict[str, Any] = {"webhook_secrets": secrets}
        for name, kind in (("max_network_retries", int), ("timeout", float), ("concurrency", int),
                           ("key_prefix", str), ("idempotency_key_hours", float), ("lines_per_request", int),
                           ("url_refresh_days", int), ("backfill_overlap_seconds", int)):  # fmt: skip
            if extra.get(name) is not None:
                values[name] = kind(extra[name])
        settings = cls(**values)
        if not 1 <= settings.lines_per_request <= 250:
            raise ValueError("stripe_default extra lines_per_request must be between 1 and 250")
        if settings.concurrency < 1 or settings.max_network_retries < 0:
            raise ValueError("stripe_default extra concurrency must be >= 1 and max_network_retries >= 0")
        return settings


class _CountingHTTPClient(stripe.RequestsClient):
    """Counts every HTTP request the SDK sends, its own retries included: the true API usage."""

    def __init__(self, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._lock = threading.Lock()
        self.request_count = 0

    def request(self, method: str, url: str, headers: Any, post_data: Any = None) -> Any:
        with self._lock:
            self.request_count += 1
        return super().request(method, url, headers, post_data)


class StripeHook(BaseHook):
    """Owns the Stripe protocol for one ``stripe_default``-style connection.

    Connection: host = API base URL (``https://api.stripe.com``), password = secret key, extra
    ``webhook_secret`` (a string or a list, for rotation) and the ``StripeSettings`` fields.
    """

    conn_name_attr = "stripe_conn_id"
    default_conn_name = "stripe_default"
    conn_type = "http"
    hook_name = "Stripe"

    def __init__(self, stripe_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.stripe_conn_id = stripe_conn_id
        conn = get_connection(stripe_conn_id)
        if not conn.password:
            raise ValueError(f"connection {stripe_conn_id!r} has no password (the Stripe secret key)")
        self.settings = StripeSettings.from_extra(conn.extra)
        self.base_url = conn.base_url()
        self._http = _CountingHTTPClient(timeout=self.settings.timeout)
        self._client = stripe.StripeClient(
            conn.password,
            base_addresses={"api": self.base_url},
            max_network_retries=self.settings.max_network_retries,
            http_client=self._http,
        )

    def get_conn(self) -> stripe.StripeClient:
        return self._client

    @property
    def requests(self) -> int:
        return self._http.request_count

    # -- customers ------------------------------------------------------------------------------
    def create_customer(self, params: dict[str, Any], idempotency_key: str) -> StripeResult:
        return self._mutate(lambda opts: self._client.v1.customers.create(params=params, options=opts), idempotency_key)

    def find_customers(self, metadata_key: str, value: str) -> list[dict[str, Any]]:
        query = f"metadata['{metadata_key}']:'{_quote(value)}'"
        return self._call(lambda: _all(self._client.v1.customers.search(params={"query": query, "limit": SEARCH_PAGE})))

    # -- invoices -------------------------------------------------------------------------------
    def create_invoice(self, params: dict[str, Any], idempotency_key: str) -> StripeResult:
        return self._mutate(lambda opts: self._client.v1.invoices.create(params=params, options=opts), idempotency_key)

    def find_invoices(self, metadata_key: str, value: str) -> list[dict[str, Any]]:
        query = f"metadata['{metadata_key}']:'{_quote(value)}'"
        return self._call(lambda: _all(self._client.v1.invoices.search(params={"query": query, "limit": SEARCH_PAGE})))

    def add_lines(self, invoice_id: str, params: dict[str, Any], idempotency_key: str) -> StripeResult:
        return self._mutate(
            lambda opts: self._client.v1.invoices.add_lines(invoice_id, params=params, options=opts), idempotency_key
        )

    def invoice_lines(self, invoice_id: str) -> list[dict[str, Any]]:
        return self._call(
            lambda: _all(self._client.v1.invoices.line_items.list(invoice_id, params={"limit": LIST_PAGE}))
        )

    def finalize_invoice(self, invoice_id: str, idempotency_key: str) -> StripeResult:
        return self._mutate(
            lambda opts: self._client.v1.invoices.finalize_invoice(
                invoice_id, params={"auto_advance": False}, options=opts
            ),
            idempotency_key,
        )

    def send_invoice(self, invoice_id: str, idempotency_key: str) -> StripeResult:
        """E-mail the invoice to the customer again, with a live hosted page link (collections)."""
        return self._mutate(
            lambda opts: self._client.v1.invoices.send_invoice(invoice_id, options=opts), idempotency_key
        )

    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self._call(lambda: self._client.v1.invoices.retrieve(invoice_id).to_dict())

    # -- tax rates (closeout.payments.tax_rates) --------------------------------------------------------
    def create_tax_rate(self, params: dict[str, Any], idempotency_key: str) -> StripeResult:
        return self._mutate(lambda opts: self._client.v1.tax_rates.create(params=params, options=opts), idempotency_key)

    def list_tax_rates(self) -> list[dict[str, Any]]:
        """Every Tax Rate of the account (they have no search; an account holds few)."""
        return self._call(lambda: _all(self._client.v1.tax_rates.list(params={"limit": LIST_PAGE})))

    # -- credit notes and customer balance (closeout.payments.credit_notes) ------------------------
    def preview_credit_note(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._call(lambda: self._client.v1.credit_notes.preview(params=params).to_dict())

    def create_credit_note(self, params: dict[str, Any], idempotency_key: str) -> StripeResult:
        return self._mutate(
            lambda opts: self._client.v1.credit_notes.create(params=params, options=opts), idempotency_key
        )

    def list_credit_notes(self, stripe_invoice_id: str) -> list[dict[str, Any]]:
        """Every credit note of one Stripe invoice (credit notes have no search: the invoice narrows the list)."""
        return self._call(
            lambda: _all(self._client.v1.credit_notes.list(params={"invoice": stripe_invoice_id, "limit": LIST_PAGE}))
        )

    def credit_customer_balance(self, customer_id: str, params: dict[str, Any], idempotency_key: str) -> StripeResult:
        return self._mutate(
            lambda opts: self._client.v1.customers.balance_transactions.create(
                customer_id, params=params, options=opts
            ),
            idempotency_key,
        )

    def list_customer_balance_transactions(self, customer_id: str) -> list[dict[str, Any]]:
        return self._call(
            lambda: _all(self._client.v1.customers.balance_transactions.list(customer_id, params={"limit": LIST_PAGE}))
        )

    # -- transfers (payouts) ------------------------------------------------------------------------
    def create_transfer(self, params: dict[str, Any], idempotency_key: str) -> StripeResult:
        return self._mutate(lambda opts: self._client.v1.transfers.create(params=params, options=opts), idempotency_key)

    def list_transfers(self, transfer_group: str) -> list[dict[str, Any]]:
        """Every transfer of a transfer group (transfers have no search: the group narrows the list)."""
        return self._call(
            lambda: _all(self._client.v1.transfers.list(params={"transfer_group": transfer_group, "limit": LIST_PAGE}))
        )

    # -- events ---------------------------------------------------------------------------------
    def iter_events(self, created_gte: int) -> Iterator[EventPage]:
        """Pages of events created at or after ``created_gte``, newest first, as Stripe lists them. Read raw
        (no SDK objects): the page body goes to the warehouse as it came, which is most of a backfill's cost."""
        params: dict[str, Any] = {"limit": LIST_PAGE, "created": {"gte": created_gte}}
        while True:
            response = self._call(lambda p=dict(params): self._client.raw_request("get", "/v1/events", **p))
            events = response.data.get("data") or []
            if events:
                yield EventPage(events, response.body)
            if not response.data.get("has_more") or not events:
                return
            params["starting_after"] = events[-1]["id"]

    # -- list endpoints (cash) ----------------------------------------------------------------------
    def list_page(self, path: str, params: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """One page of a ``GET`` list endpoint (``/v1/balance_transactions``, ``/v1/refunds``, ...) as plain
        JSON, read raw like ``iter_events``: a million balance transactions as SDK objects cost more than
        the API calls. Paging, pacing and 429 waits are the caller's (``closeout.payments.cash.listing``).

        With it, Stripe's own time when it served the page (its ``Date`` header, unix seconds; ``None`` if
        absent): a list is complete for everything Stripe stamped before that second, whatever our clock says."""
        response = self._call(lambda: self._client.raw_request("get", path, **params))
        return response.data, _served_at(getattr(response, "headers", None))

    # -- plumbing -------------------------------------------------------------------------------
    def _mutate(self, call: Any, idempotency_key: str) -> StripeResult:
        obj = self._call(lambda: call({"idempotency_key": idempotency_key}))
        response = getattr(obj, "last_response", None)
        replayed = bool(response and (response.headers or {}).get("Idempotent-Replayed") == "true")
        return StripeResult(obj.to_dict(), replayed)

    @staticmethod
    def _call(call: Any) -> Any:
        try:
            return call()
        except stripe.StripeError as exc:
            raise _translate(exc) from exc


def _served_at(headers: Any) -> int | None:
    value = (headers or {}).get("Date") or (headers or {}).get("date")
    if not value:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return None


def _all(page: Any) -> list[dict[str, Any]]:
    return [item.to_dict() for item in page.auto_paging_iter()]


def _quote(value: str) -> str:
    """Escape a value for Stripe's search query language (single-quoted string)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _translate(exc: stripe.StripeError) -> StripeCallError:
    status = exc.http_status
    code = exc.code
    message = (exc.user_message or str(exc) or type(exc).__name__).strip()
    retryable = isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError) or (
        isinstance(exc, stripe.APIError) and (status is None or status >= 500 or status == 409)
    )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        retryable = True  # a configuration problem: nothing about the invoice is wrong; fix and retry
    return StripeCallError(f"Stripe {status or 'connection'} {code or type(exc).__name__}: {message}",
                           status=status, code=code, retryable=retryable)  # fmt: skip
