"""XeroHook: everything about talking to the Xero Accounting API, and nothing else.

* **Tokens**: OAuth 2.0 with rotating refresh tokens through the same ``TokenStore`` as QuickBooks (one row per
  connection in ``closeout_data.accounting_oauth``; Xero keeps a retired token alive for 30 minutes, so a worker
  killed mid-refresh leaves a token the next run can still use). Every call carries ``xero-tenant-id``.
* **Writes**: ``Idempotency-Key`` derived from business identity on every PUT/POST, recorded in the outbox first;
  retries after timeouts reuse it, so Xero replays instead of creating again. Writes are arrays (``PUT /Contacts``,
  ``PUT /Invoices``, at most ``batch_size`` elements, 50 by default as Xero recommends) with
  ``summarizeErrors=false``, so one bad element does not fail the rest.
* **Pacing**: 60 calls a minute, 5,000 a day and 5 at once per tenant, 10,000 a minute per app. After every answer
  the ``X-MinLimit-Remaining``, ``X-DayLimit-Remaining`` and ``X-AppMinLimit-Remaining`` headers correct our count
  (other tasks, workers and integrations spend the same budget); a 429 waits ``Retry-After``; a day budget that
  will not come back within ``max_rate_limit_wait`` stops the task with a retryable error instead of sleeping.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from airflow.sdk import BaseHook

from closeout.accounting.api.oauth import OAuthClient
from closeout.accounting.api.outbox import Outbox, request_id
from closeout.accounting.api.pacing import WindowBucket
from closeout.accounting.api.token_store import TokenStore
from closeout.accounting.api.wire import backoff, json_body, jsonable, retry_after
from closeout.connections import get_connection
from closeout.masking import mask_secrets

log = logging.getLogger(__name__)

SYSTEM = "xero"
XERO_TOKEN_URL = "https://identity.xero.com/connect/token"  # noqa: S105 - a URL
PAGE_SIZE = 100
MAX_IDEMPOTENCY_KEY = 128


class XeroError(RuntimeError):
    """A Xero call that failed; ``retryable``: the same call (same Idempotency-Key) may succeed later.
    ``problem`` is Xero's X-Rate-Limit-Problem on a 429 (minute, day, concurrent, appminute)."""

    def __init__(self, message: str, *, status: int | None, retryable: bool, problem: str | None = None,
                 body: Any = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.problem = problem
        self.body = body


@dataclass(frozen=True)
class XeroSettings:
    tenant_id: str
    token_url: str = XERO_TOKEN_URL
    calls_per_minute: int = 60
    calls_per_day: int = 5000
    max_concurrent: int = 5
    app_calls_per_minute: int = 10_000
    minute_seconds: float = 60.0
    batch_size: int = 50
    timeout: float = 30.0
    max_attempts: int = 5
    max_rate_limit_wait: float = 900.0
    request_id_prefix: str = "closeout"

    @classmethod
    def from_extra(cls, conn_id: str, extra: Mapping[str, Any]) -> XeroSettings:
        tenant = str(extra.get("tenant_id") or "").strip()
        if not tenant:
            raise ValueError(f"connection {conn_id!r} has no extra 'tenant_id' (the Xero organisation)")
        values: dict[str, Any] = {"tenant_id": tenant}
        for name, kind in (("token_url", str), ("calls_per_minute", int), ("calls_per_day", int),
                           ("max_concurrent", int), ("app_calls_per_minute", int), ("minute_seconds", float),
                           ("batch_size", int), ("timeout", float), ("max_attempts", int),
                           ("max_rate_limit_wait", float), ("request_id_prefix", str)):  # fmt: skip
            if extra.get(name) not in (None, ""):
                values[name] = kind(extra[name])
        settings = cls(**values)
        if not 1 <= settings.batch_size <= 100 or settings.max_attempts < 1:
            raise ValueError(f"connection {conn_id!r}: batch_size must be 1..100 and max_attempts >= 1")
        return settings


class XeroPacer:
    """Xero's budgets for one tenant: minute, day and app-minute windows and a concurrency semaphore."""

    def __init__(self, settings: XeroSettings) -> None:
        self.minute = WindowBucket(settings.calls_per_minute, settings.minute_seconds)
        self.day = WindowBucket(settings.calls_per_day, 86400.0, slack=60.0)
        self.app_minute = WindowBucket(settings.app_calls_per_minute, settings.minute_seconds)
        self._slots = threading.BoundedSemaphore(settings.max_concurrent) if settings.max_concurrent > 0 else None
        self.max_wait = settings.max_rate_limit_wait
        self.waited = 0.0

    @contextmanager
    def turn(self) -> Iterator[None]:
        day_wait = self.day.next_wait()
        if day_wait > self.max_wait:
            raise XeroError(f"Xero's daily budget for this organisation is spent; it frees in {day_wait / 3600:.1f} h "
                            "(this task fails and a later run continues)", status=None, retryable=True,
                            problem="day")  # fmt: skip
        if self._slots is not None:
            self._slots.acquire()
        try:
            wait = max(self.minute.reserve(), self.day.reserve(), self.app_minute.reserve())
            if wait > 0:
                self.waited += wait
                time.sleep(wait)
            yield
        finally:
            if self._slots is not None:
                self._slots.release()

    def read_headers(self, headers: Mapping[str, str]) -> None:
        for name, bucket in (("X-MinLimit-Remaining", self.minute), ("X-DayLimit-Remaining", self.day),
                             ("X-AppMinLimit-Remaining", self.app_minute)):  # fmt: skip
            value = headers.get(name)
            if value is not None and value.strip().isdigit():
                bucket.align(int(value))


_pacers: dict[tuple[str, str, XeroSettings], XeroPacer] = {}
_pacers_lock = threading.Lock()


def shared_xero_pacer(base_url: str, settings: XeroSettings) -> XeroPacer:
    key = (base_url, settings.tenant_id, settings)
    with _pacers_lock:
        if key not in _pacers:
            _pacers[key] = XeroPacer(settings)
        return _pacers[key]


@dataclass(frozen=True)
class XeroWriteResult:
    """A write's answer: the elements as Xero returned them (each with ``StatusAttributeString`` OK or ERROR)."""

    elements: list[dict[str, Any]]
    idempotency_key: str
    replayed: bool

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [e for e in self.elements if e.get("StatusAttributeString") == "ERROR"]


class XeroHook(BaseHook):
    """Owns the Xero protocol for one ``xero_default``-style connection.

    Connection: host = API base URL (``https://api.xero.com``), login = OAuth client id (or extra ``client_id``),
    password = client secret, extra ``tenant_id``, ``refresh_token`` (the first one), ``token_url`` and the
    ``XeroSettings`` limits.
    """

    conn_name_attr = "xero_conn_id"
    default_conn_name = "xero_default"
    conn_type = "http"
    hook_name = "Xero"

    def __init__(self, xero_conn_id: str = default_conn_name, *, warehouse_conn_id: str = "closeout_warehouse") -> None:
        super().__init__()
        self.xero_conn_id = xero_conn_id
        conn = get_connection(xero_conn_id)
        client_id = conn.login or conn.extra.get("client_id")
        first_refresh = str(conn.extra.get("refresh_token") or "")
        if not client_id or not conn.password or not first_refresh:
            raise ValueError(f"connection {xero_conn_id!r} needs the OAuth client id (login), client secret "
                             "(password) and the first refresh token (extra 'refresh_token')")  # fmt: skip
        self.settings = XeroSettings.from_extra(xero_conn_id, conn.extra)
        self.base_url = conn.base_url()
        self.tenant_id = self.settings.tenant_id
        self._session = requests.Session()
        self._secret_values = [conn.password, first_refresh]
        self.tokens = TokenStore(
            OAuthClient(SYSTEM, xero_conn_id, self.tenant_id, self.settings.token_url, str(client_id),
                        conn.password, first_refresh, self.settings.timeout),
            session=self._session,
            warehouse_conn_id=warehouse_conn_id,
        )
        self.outbox = Outbox(SYSTEM, self.tenant_id, warehouse_conn_id=warehouse_conn_id)
        self.pacer = shared_xero_pacer(self.base_url, self.settings)
        self.requests_sent = 0
        self.rate_limited = 0

    def get_conn(self) -> requests.Session:
        return self._session

    # -- writes -------------------------------------------------------------------------------------
    def create_contacts(self, contacts: list[dict[str, Any]], business_ref: str) -> XeroWriteResult:
        """``PUT /Contacts`` of up to ``batch_size`` contacts, once per ``business_ref``."""
        return self.write("contacts.create", business_ref, "PUT", "Contacts", contacts)

    def create_invoices(self, invoices: list[dict[str, Any]], business_ref: str) -> XeroWriteResult:
        """``PUT /Invoices`` of up to ``batch_size`` invoices, once per ``business_ref``."""
        return self.write("invoices.create", business_ref, "PUT", "Invoices", invoices)

    def save_invoices(self, invoices: list[dict[str, Any]], business_ref: str) -> XeroWriteResult:
        """``POST /Invoices``: create or update (by ``InvoiceID``)."""
        return self.write("invoices.save", business_ref, "POST", "Invoices", invoices)

    def write(self, operation: str, business_ref: str, method: str, kind: str,
              elements: list[dict[str, Any]]) -> XeroWriteResult:  # fmt: skip
        if not 1 <= len(elements) <= self.settings.batch_size:
            limit = self.settings.batch_size
            raise ValueError(f"a Xero {kind} write carries 1 to {limit} elements, not {len(elements)}")
        key = request_id(self.settings.request_id_prefix, SYSTEM, self.tenant_id, operation, business_ref)
        payload = {kind: elements}
        entry = self.outbox.record(key, operation, business_ref, payload)
        try:
            status, body, replayed = self._send(method, kind, {"summarizeErrors": "false"}, payload, key)
        except XeroError as exc:
            self.outbox.complete(entry, status="pending" if exc.retryable else "failed", http_status=exc.status,
                                 error=str(exc))  # fmt: skip
            raise
        if status != 200:
            error = self._error(status, body, f"{operation} {business_ref}")
            self.outbox.complete(entry, status="pending" if error.retryable else "failed", http_status=status,
                                 error=str(error))  # fmt: skip
            raise error
        answers = body.get(kind) or [] if isinstance(body, dict) else []
        failed = sum(a.get("StatusAttributeString") == "ERROR" for a in answers)
        self.outbox.complete(entry, status="succeeded", http_status=status, replayed=replayed,
                             error=f"{failed} of {len(answers)} elements refused" if failed else None)  # fmt: skip
        return XeroWriteResult(answers, key, replayed)

    # -- reads --------------------------------------------------------------------------------------
    def get_contacts(self, where: str | None = None) -> list[dict[str, Any]]:
        return self._list("Contacts", where)

    def get_invoices(self, where: str | None = None) -> list[dict[str, Any]]:
        return self._list("Invoices", where)

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        return self.get(f"Invoices/{quote(invoice_id, safe='')}")["Invoices"][0]

    def connections(self) -> list[dict[str, Any]]:
        """``GET /connections``: the organisations the tokens open (to find a tenant id)."""
        status, body, _ = self._send("GET", "/connections", {}, None, None)
        if status != 200:
            raise self._error(status, body, "GET /connections")
        return body

    def get(self, path: str, params: dict[str, Any] | None = None, *,
            modified_since: str | None = None) -> dict[str, Any]:  # fmt: skip
        """``GET``; ``modified_since`` (``YYYY-MM-DDTHH:MM:SS``, UTC) is sent as ``If-Modified-Since``."""
        extra = {"If-Modified-Since": modified_since} if modified_since else None
        status, body, _ = self._send("GET", path, params or {}, None, None, extra)
        if status != 200:
            raise self._error(status, body, f"GET {path}")
        return body

    def _list(self, kind: str, where: str | None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"page": page, **({"where": where} if where else {})}
            rows = self.get(kind, params).get(kind) or []
            found.extend(rows)
            if len(rows) < PAGE_SIZE:
                return found
            page += 1

    # -- transport ----------------------------------------------------------------------------------
    def _send(self, method: str, path: str, params: dict[str, Any], payload: Any,
              key: str | None, extra_headers: Mapping[str, str] | None = None) -> tuple[int, Any, bool]:  # fmt: skip
        url = f"{self.base_url}{path}" if path.startswith("/") else f"{self.base_url}/api.xro/2.0/{path}"
        data = json.dumps(jsonable(payload), separators=(",", ":")).encode() if payload is not None else None
        attempt, renewed, limited_for = 0, False, 0.0
        rejected: str | None = None
        while True:
            attempt += 1
            token = self.tokens.renew(rejected) if rejected else self.tokens.access_token()
            rejected = None
            headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": self.tenant_id,
                       "Accept": "application/json", "Content-Type": "application/json"}  # fmt: skip
            if key is not None:
                headers["Idempotency-Key"] = key
            headers.update(extra_headers or {})
            try:
                with self.pacer.turn():
                    self.requests_sent += 1
                    response = self._session.request(method, url, params=params, data=data, headers=headers,
                                                     timeout=self.settings.timeout)  # fmt: skip
            except requests.RequestException as exc:
                if attempt >= self.settings.max_attempts:
                    raise XeroError(self._mask(f"Xero {method} {path}: no answer after {attempt} attempts "
                                               f"({type(exc).__name__}: {exc})", token),
                                    status=None, retryable=True) from None  # fmt: skip
                log.warning("Xero %s %s: %s; retrying (attempt %s)", method, path, type(exc).__name__, attempt)
                time.sleep(backoff(attempt))
                continue
            self.pacer.read_headers(response.headers)
            status = response.status_code
            log.debug("Xero %s %s -> %s", method, path, status)
            body = json_body(response)
            if status == 401 and not renewed:
                renewed, rejected, attempt = True, token, attempt - 1
                continue
            if status == 429:
                self.rate_limited += 1
                problem = response.headers.get("X-Rate-Limit-Problem")
                wait = retry_after(response.headers.get("Retry-After")) or backoff(min(attempt, 6), base=1.0)
                if limited_for + wait > self.settings.max_rate_limit_wait:
                    raise XeroError(f"Xero {method} {path}: {problem or 'rate'} limit reached; Retry-After "
                                    f"{wait:.0f} s is beyond this task's wait (a later run continues)", status=429,
                                    retryable=True, problem=problem)  # fmt: skip
                limited_for += wait
                attempt -= 1
                log.info("Xero rate limit (%s) on %s %s: waiting %.1f s", problem, method, path, wait)
                if problem in ("minute", "appminute"):
                    (self.pacer.minute if problem == "minute" else self.pacer.app_minute).hold_off(wait)
                time.sleep(wait)
                continue
            if status >= 500 and attempt < self.settings.max_attempts:
                log.warning("Xero %s %s answered %s; retrying (attempt %s)", method, path, status, attempt)
                time.sleep(backoff(attempt))
                continue
            return status, body, response.headers.get("X-Sandbox-Replayed") == "true"

    def _error(self, status: int, body: Any, what: str) -> XeroError:
        detail = ""
        if isinstance(body, dict):
            messages = [e.get("Message") for el in body.get("Elements") or [] for e in el.get("ValidationErrors") or []]
            detail = "; ".join(str(m) for m in messages if m) or str(body.get("Detail") or body.get("Message") or "")
        return XeroError(self._mask(f"Xero {what}: {status} {detail}".strip()), status=status,
                         retryable=status == 429 or status >= 500, body=body)  # fmt: skip

    def _mask(self, text: str, *tokens: str) -> str:
        return mask_secrets(mask_secrets(text, [*self._secret_values, *tokens]))


class XeroConnectionHook(XeroHook):
    """The dedicated ``xero`` connection type of the provider (a plain ``http`` connection works too)."""

    conn_type = "xero"
    hook_name = "Xero (closeout)"
