"""QuickBooksHook: everything about talking to the QuickBooks Online Accounting API v3, and nothing else.

* **Tokens**: OAuth 2.0 with rotating refresh tokens through ``TokenStore`` (warehouse row, locked refresh,
  stored before use). A 401 refreshes once - only if nobody else already did - and the call is sent again.
* **Writes**: every create/update/batch carries ``requestid`` derived from business identity and is recorded in
  the outbox before it is sent; a timeout, dropped connection or 5xx is retried with the same requestid, so what
  QuickBooks already did is replayed, never repeated.
* **Pacing**: 500 requests and 40 batch requests a minute and 10 at once per company (connection extras can lower
  them), shared by every hook of the process; a 429 that still comes is waited out with backoff.
* ``minorversion`` 75 or later on every call.

Errors come back as ``QuickBooksError`` with QuickBooks' own code (6240 duplicate name, 5010 stale SyncToken...)
and whether trying again later can help. Messages are masked: no token or secret ever reaches a log or a table
other than the token store.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from airflow.sdk import BaseHook

from closeout.accounting.api.oauth import OAuthClient
from closeout.accounting.api.outbox import Outbox, OutboxEntry, request_id
from closeout.accounting.api.pacing import Limits, Pacer, shared_pacer
from closeout.accounting.api.token_store import TokenStore
from closeout.accounting.api.wire import backoff, json_body, jsonable, retry_after
from closeout.connections import get_connection
from closeout.masking import mask_secrets

log = logging.getLogger(__name__)

SYSTEM = "quickbooks"
INTUIT_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"  # noqa: S105 - a URL
MIN_MINOR_VERSION = 75
MAX_BATCH_ITEMS = 30
QUERY_PAGE = 1000


class QuickBooksError(RuntimeError):
    """A QuickBooks call that failed. ``code`` is Intuit's error code ('6240', '5010', ...) when it sent one;
    ``retryable``: the same call (same requestid) may succeed later."""

    def __init__(self, message: str, *, status: int | None, code: str | None, retryable: bool,
                 errors: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.code = code
        self.retryable = retryable
        self.errors = errors or []


@dataclass(frozen=True)
class QuickBooksSettings:
    """Connection extras beyond the credentials (DESIGN.md: ``realm_id``, ``refresh_token``, ``token_url``,
    ``minorversion``); the limits default to Intuit's documented ones."""

    realm_id: str
    token_url: str = INTUIT_TOKEN_URL
    minorversion: int = MIN_MINOR_VERSION
    requests_per_minute: int = 500
    batch_requests_per_minute: int = 40
    max_concurrent: int = 10
    rate_window_seconds: float = 60.0
    timeout: float = 30.0
    max_attempts: int = 5
    max_rate_limit_wait: float = 900.0
    request_id_prefix: str = "closeout"

    @classmethod
    def from_extra(cls, conn_id: str, extra: Mapping[str, Any]) -> QuickBooksSettings:
        realm = str(extra.get("realm_id") or "").strip()
        if not realm:
            raise ValueError(f"connection {conn_id!r} has no extra 'realm_id' (the QuickBooks company id)")
        values: dict[str, Any] = {"realm_id": realm}
        for name, kind in (("token_url", str), ("minorversion", int), ("requests_per_minute", int),
                           ("batch_requests_per_minute", int), ("max_concurrent", int),
                           ("rate_window_seconds", float), ("timeout", float), ("max_attempts", int),
                           ("max_rate_limit_wait", float), ("request_id_prefix", str)):  # fmt: skip
            if extra.get(name) not in (None, ""):
                values[name] = kind(extra[name])
        settings = cls(**values)
        if settings.minorversion < MIN_MINOR_VERSION:
            raise ValueError(f"connection {conn_id!r}: minorversion {settings.minorversion} is below "
                             f"{MIN_MINOR_VERSION}; QuickBooks ignores versions below it since August 2025")
        if settings.max_attempts < 1 or settings.timeout <= 0:
            raise ValueError(f"connection {conn_id!r}: max_attempts must be >= 1 and timeout > 0")
        return settings

    @property
    def limits(self) -> Limits:
        return Limits(self.requests_per_minute, self.batch_requests_per_minute, self.max_concurrent,
                      self.rate_window_seconds)  # fmt: skip


@dataclass(frozen=True)
class WriteResult:
    """A write's answer: the entity (or batch answers), the requestid sent, and whether QuickBooks replayed it."""

    body: dict[str, Any]
    request_id: str
    replayed: bool
    attempts: int


class QuickBooksHook(BaseHook):
    """Owns the QuickBooks Online protocol for one ``quickbooks_default``-style connection.

    Connection: host = API base URL (``https://quickbooks.api.intuit.com``), login = OAuth client id (or extra
    ``client_id``), password = client secret, extra ``realm_id``, ``refresh_token`` (the first one; closeout keeps
    the rotated ones), ``token_url``, ``minorversion`` and the ``QuickBooksSettings`` limits.
    """

    conn_name_attr = "quickbooks_conn_id"
    default_conn_name = "quickbooks_default"
    conn_type = "http"
    hook_name = "QuickBooks Online"

    def __init__(self, quickbooks_conn_id: str = default_conn_name, *,
                 warehouse_conn_id: str = "closeout_warehouse") -> None:  # fmt: skip
        super().__init__()
        self.quickbooks_conn_id = quickbooks_conn_id
        conn = get_connection(quickbooks_conn_id)
        client_id = conn.login or conn.extra.get("client_id")
        if not client_id or not conn.password:
            raise ValueError(f"connection {quickbooks_conn_id!r} needs the OAuth client id (login) and client "
                             "secret (password)")  # fmt: skip
        first_refresh = str(conn.extra.get("refresh_token") or "")
        if not first_refresh:
            raise ValueError(f"connection {quickbooks_conn_id!r} has no extra 'refresh_token' (the first one, from "
                             "connecting the company)")  # fmt: skip
        self.settings = QuickBooksSettings.from_extra(quickbooks_conn_id, conn.extra)
        self.base_url = conn.base_url()
        self.realm_id = self.settings.realm_id
        self._session = requests.Session()
        self._secret_values = [conn.password, first_refresh]
        self.tokens = TokenStore(
            OAuthClient(SYSTEM, quickbooks_conn_id, self.realm_id, self.settings.token_url, str(client_id),
                        conn.password, first_refresh, self.settings.timeout),
            session=self._session,
            warehouse_conn_id=warehouse_conn_id,
        )
        self.outbox = Outbox(SYSTEM, self.realm_id, warehouse_conn_id=warehouse_conn_id)
        self.pacer: Pacer = shared_pacer(self.base_url, self.realm_id, self.settings.limits)
        self.requests_sent = 0
        self.rate_limited = 0

    def get_conn(self) -> requests.Session:
        return self._session

    # -- customers ------------------------------------------------------------------------------
    def create_customer(self, customer: dict[str, Any], business_ref: str) -> WriteResult:
        """Create a customer once per ``business_ref`` (e.g. ``client:<client_key>``); 6240 if the name is taken."""
        return self.write("customer.create", business_ref, "customer", customer, entity="Customer")

    def update_customer(self, customer: dict[str, Any], business_ref: str) -> WriteResult:
        """Update (``Id`` and current ``SyncToken`` in ``customer``; ``sparse`` as the caller wants)."""
        return self.write("customer.update", business_ref, "customer", customer, entity="Customer")

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        return self.get(f"customer/{quote(str(customer_id), safe='')}")["Customer"]

    def query_customers(self, where: str | None = None) -> list[dict[str, Any]]:
        """Every customer matching ``where`` (QuickBooks query syntax; quote values with ``quote_value``)."""
        return self.query("Customer", where)

    # -- invoices -------------------------------------------------------------------------------
    def create_invoice(self, invoice: dict[str, Any], business_ref: str) -> WriteResult:
        """Create an invoice once per ``business_ref`` (e.g. ``invoice:<invoice_id>:v<version>``)."""
        return self.write("invoice.create", business_ref, "invoice", invoice, entity="Invoice")

    def update_invoice(self, invoice: dict[str, Any], business_ref: str) -> WriteResult:
        """Update with the invoice's current ``SyncToken``; a stale one is refused (code 5010): read it again."""
        return self.write("invoice.update", business_ref, "invoice", invoice, entity="Invoice")

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self.get(f"invoice/{quote(str(invoice_id), safe='')}")["Invoice"]

    # -- batch ----------------------------------------------------------------------------------
    def batch(self, items: list[dict[str, Any]], business_ref: str) -> WriteResult:
        """One ``POST /batch`` of at most 30 ``BatchItemRequest`` items (each with its ``bId``), under one
        requestid. Items fail one by one (their ``Fault`` in the answer); the call fails only as a whole."""
        if not 1 <= len(items) <= MAX_BATCH_ITEMS:
            raise ValueError(f"a QuickBooks batch carries 1 to {MAX_BATCH_ITEMS} items, not {len(items)}")
        bids = [str(item.get("bId", "")) for item in items]
        if "" in bids or len(set(bids)) != len(bids):
            raise ValueError("every batch item needs its own non-empty bId")
        return self.write("batch", business_ref, "batch", {"BatchItemRequest": items}, entity=None)

    # -- reads ----------------------------------------------------------------------------------
    def query(self, entity: str, where: str | None = None) -> list[dict[str, Any]]:
        """All rows of ``select * from <entity> [where ...]``, paged by STARTPOSITION/MAXRESULTS."""
        found: list[dict[str, Any]] = []
        start = 1
        while True:
            text = f"select * from {entity}" + (f" where {where}" if where else "")
            text += f" STARTPOSITION {start} MAXRESULTS {QUERY_PAGE}"
            page = self.get("query", {"query": text}).get("QueryResponse", {}).get(entity, [])
            found.extend(page)
            if len(page) < QUERY_PAGE:
                return found
            start += QUERY_PAGE

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        status, body, _ = self._send("GET", path, params or {}, None)
        if status != 200:
            raise self._error(status, body, f"GET {path}")
        return body

    # -- writes through the outbox ---------------------------------------------------------------
    def write(self, operation: str, business_ref: str, path: str, payload: dict[str, Any],
              *, entity: str | None) -> WriteResult:  # fmt: skip
        """Record, send with the derived requestid, complete. Retries inside ``_send`` reuse the requestid."""
        key = request_id(self.settings.request_id_prefix, SYSTEM, self.realm_id, operation, business_ref)
        entry = self.outbox.record(key, operation, business_ref, payload)
        try:
            status, body, replayed = self._send("POST", path, {"requestid": key}, payload)
        except QuickBooksError as exc:
            self._complete(entry, "pending" if exc.retryable else "failed", exc.status, error=str(exc))
            raise
        if status != 200:
            error = self._error(status, body, f"{operation} {business_ref}")
            self._complete(entry, "pending" if error.retryable else "failed", status, error=str(error))
            raise error
        obj = body.get(entity) if entity else None
        self._complete(entry, "succeeded", status, external_id=obj.get("Id") if obj else None,
                       sync_token=obj.get("SyncToken") if obj else None, replayed=replayed)  # fmt: skip
        return WriteResult(body, key, replayed, entry.attempts)

    def _complete(self, entry: OutboxEntry, status: str, http_status: int | None, **fields: Any) -> None:
        self.outbox.complete(entry, status=status, http_status=http_status, **fields)

    # -- transport -------------------------------------------------------------------------------
    def _send(self, method: str, path: str, params: dict[str, Any],
              payload: dict[str, Any] | None) -> tuple[int, dict[str, Any], bool]:  # fmt: skip
        """One logical call: paced, authorised, retried on 401 (once), 429, 5xx and transport failures."""
        url = f"{self.base_url}/v3/company/{quote(self.realm_id, safe='')}/{path}"
        query = {**params, "minorversion": self.settings.minorversion}
        is_batch = path == "batch"
        data = json.dumps(jsonable(payload), separators=(",", ":")).encode() if payload is not None else None
        attempt, renewed, limited_for = 0, False, 0.0
        rejected: str | None = None
        while True:
            attempt += 1
            token = self.tokens.renew(rejected) if rejected else self.tokens.access_token()
            rejected = None
            try:
                with self.pacer.turn(batch=is_batch):
                    self.requests_sent += 1
                    response = self._session.request(
                        method, url, params=query, data=data,
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                 "Content-Type": "application/json"},
                        timeout=self.settings.timeout)  # fmt: skip
            except requests.RequestException as exc:
                if attempt >= self.settings.max_attempts:
                    raise QuickBooksError(self._mask(f"QuickBooks {method} {path}: no answer after {attempt} "
                                                     f"attempts ({type(exc).__name__}: {exc})", token),
                                          status=None, code=None, retryable=True) from None  # fmt: skip
                log.warning("QuickBooks %s %s: %s; retrying (attempt %s)", method, path, type(exc).__name__, attempt)
                time.sleep(backoff(attempt))
                continue
            status = response.status_code
            log.debug("QuickBooks %s %s -> %s", method, path, status)
            body = json_body(response)
            body = body if isinstance(body, dict) else {}
            if status == 401 and not renewed:
                renewed, rejected, attempt = True, token, attempt - 1
                continue
            if status == 429:
                self.rate_limited += 1
                wait = retry_after(response.headers.get("Retry-After")) or backoff(min(attempt, 6), base=1.0)
                if limited_for + wait > self.settings.max_rate_limit_wait:
                    raise self._error(status, body, f"{method} {path} (rate limited for {limited_for:.0f} s)")
                limited_for += wait
                attempt -= 1  # a 429 was not processed: it does not use up an attempt
                log.info("QuickBooks rate limit (429) on %s %s: waiting %.1f s", method, path, wait)
                self.pacer.hold_off(wait, batch=is_batch)
                continue
            if status >= 500 and attempt < self.settings.max_attempts:
                log.warning("QuickBooks %s %s answered %s; retrying (attempt %s)", method, path, status, attempt)
                time.sleep(backoff(attempt))
                continue
            replayed = response.headers.get("X-Sandbox-Replayed") == "true"
            return status, body, replayed

    def _error(self, status: int, body: dict[str, Any], what: str) -> QuickBooksError:
        fault = body.get("Fault") or {}
        errors = [e for e in fault.get("Error") or [] if isinstance(e, dict)]
        first = errors[0] if errors else {}
        code = str(first["code"]) if first.get("code") is not None else None
        text = "; ".join(f"{e.get('code')} {e.get('Message')}: {e.get('Detail')}" for e in errors) or f"HTTP {status}"
        retryable = status in (429,) or status >= 500
        return QuickBooksError(self._mask(f"QuickBooks {what}: {status} {text}"), status=status, code=code,
                               retryable=retryable, errors=errors)  # fmt: skip

    def _mask(self, text: str, *tokens: str) -> str:
        return mask_secrets(mask_secrets(text, [*self._secret_values, *tokens]))


class QuickBooksConnectionHook(QuickBooksHook):
    """The dedicated ``quickbooks`` connection type of the provider (a plain ``http`` connection works too)."""

    conn_type = "quickbooks"
    hook_name = "QuickBooks Online (closeout)"


def quote_value(value: str) -> str:
    """A string literal for QuickBooks' query language (single quotes, backslash-escaped)."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
