"""A stateful local server speaking the Xero Accounting API (2.0) and Xero's OAuth 2.0 token endpoint.

What it implements (``/work/shared/reference/accounting-apis.md``):

* ``POST /connect/token`` (client id and secret as HTTP Basic, ``grant_type=refresh_token``): access tokens live
  1800 s on the sandbox clock; every refresh returns a new refresh token and retires the one sent, which Xero
  accepts again only within a grace of ``refresh_grace_seconds`` (default 1800: Xero's documented 30 minutes, in
  case the answer was lost). A grace use continues the chain from there and voids the lost successor.
  ``connect_organisation`` stands in for the consent screen.
* ``GET /connections``: the tenants the access token may use.
* ``/api.xro/2.0/Contacts`` and ``/api.xro/2.0/Invoices`` with ``Authorization: Bearer`` and ``xero-tenant-id``:
  ``PUT`` creates (an array under ``Contacts``/``Invoices``), ``POST`` creates or updates (by ``ContactID`` /
  ``InvoiceID``), ``GET`` lists (``page``, 100 a page; ``where`` equality on one field) or reads one by id.
  Contact ``Name`` is unique among active contacts (a ValidationException). ``summarizeErrors=false`` answers
  200 with every element's ``StatusAttributeString`` (OK/ERROR) and ``ValidationErrors`` instead of failing the lot.
* ``Idempotency-Key`` (at most 128 characters) on POST/PUT/PATCH: the first answer per (tenant, key) is replayed.
* Limits per tenant: ``per_minute`` (60), ``per_day`` (5000), ``max_concurrent`` (5); per app ``app_per_minute``
  (10,000). Every answer carries ``X-MinLimit-Remaining``, ``X-DayLimit-Remaining`` and
  ``X-AppMinLimit-Remaining``; a 429 carries ``Retry-After`` and ``X-Rate-Limit-Problem`` (minute, day,
  concurrent, appminute). ``use_budget`` spends budget as another integration of the organisation would.
* Money: ``Payments`` (``PUT`` an array; each pays an invoice: ``Invoice.InvoiceID``, ``Account.Code``, ``Amount``,
  ``Date``; more than the invoice's ``AmountDue`` is refused; a paid-up invoice becomes PAID), ``CreditNotes``
  (priced like invoices; ``Allocations`` to invoices lower their ``AmountDue``), ``ManualJournals`` (``Narration``,
  ``JournalLines`` whose ``LineAmount`` sum to zero), ``BankTransactions`` (RECEIVE/SPEND on a ``BankAccount``) and
  ``BankTransfers`` (``FromBankAccount`` -> ``ToBankAccount``), ``GET /Currencies`` and ``GET /Organisation``.
  Every document is checked as the organisation is configured: ``period_lock_date`` / ``end_of_year_lock_date``
  (a document dated on or before them is refused), ``base_currency`` plus the enabled ``currencies`` (another one
  is refused), ``CurrencyRate`` on a foreign-currency document (foreign units per base unit, as Xero writes it:
  omitted -> the sandbox's ``daily_rates``, as Xero applies its daily rate; 1 is refused, never a foreign rate),
  and ``tax_types`` (when set, a line's ``TaxType`` must be one of them; a mapping gives each its rate percent:
  ``GET /TaxRates``, tax computed per line by ``LineAmountTypes``, and ``Status: VOIDED``: ``sandbox/xero/tax.py``).
  Arrays of up to ``max_elements`` (50 as Xero recommends; more is refused); ``idempotency_ttl_seconds`` (sandbox
  clock) forgets stored answers.
* Faults (``faults.add``): ``timeout_after_commit``, ``drop``, ``500``, ``slow``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import itertools
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from sandbox.control import control
from sandbox.serving import BackgroundServer, FaultPlan, Response, Traffic
from sandbox.xero import tax

__all__ = ["FAULT_KINDS", "TOKEN_PATH", "XeroSandbox"]

FAULT_KINDS = ("timeout_after_commit", "drop", "500", "slow")
TOKEN_PATH = "/connect/token"
API_PREFIX = "/api.xro/2.0/"
ACCESS_TOKEN_SECONDS = 1800
REFRESH_TOKEN_SECONDS = 60 * 86400
MAX_IDEMPOTENCY_KEY = 128
PAGE_SIZE = 100
_ENTITIES = {"contacts": ("Contacts", "ContactID"), "invoices": ("Invoices", "InvoiceID"),
             "payments": ("Payments", "PaymentID"), "creditnotes": ("CreditNotes", "CreditNoteID"),
             "manualjournals": ("ManualJournals", "ManualJournalID"),
             "banktransactions": ("BankTransactions", "BankTransactionID"),
             "banktransfers": ("BankTransfers", "BankTransferID")}
_KINDS = [kind for kind, _ in _ENTITIES.values()]
_DOCUMENTS = ("Invoices", "CreditNotes", "BankTransactions")  # priced from LineItems, carry TaxType
MAX_ELEMENTS = 50


class XeroFault(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or []


def _validation(message: str, elements: list[dict[str, Any]] | None = None) -> XeroFault:
    return XeroFault(400, {"ErrorNumber": 10, "Type": "ValidationException",
                           "Message": "A validation exception occurred", "Elements": elements or [],
                           "Detail": message})  # fmt: skip


@dataclass
class _RefreshToken:
    client_id: str
    serial: int
    expires_at: float
    retired_at: float | None = None
    revoked: bool = False


class _Tenant:
    def __init__(self, tenant_id: str, name: str) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in _KINDS}
        self.answers: dict[str, Response] = {}
        self.answered_at: dict[str, float] = {}
        self.creates: dict[str, int] = dict.fromkeys(_KINDS, 0)
        self.numbers = itertools.count(1)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, default=lambda v: float(v) if isinstance(v, Decimal) else str(v),
                      separators=(",", ":")).encode()  # fmt: skip


class XeroSandbox:
    """In-memory Xero organisations plus an HTTP server that serves them (see the module docstring)."""

    def __init__(
        self,
        *,
        client_id: str = "XEROSANDBOXCLIENT",
        client_secret: str = "xero-sandbox-client-secret",  # noqa: S107 - a well-known fake credential
        tenant_id: str = "8a7c6b5d-1e2f-4a3b-9c8d-7e6f5a4b3c2d",
        refresh_grace_seconds: float = 1800.0,
        per_minute: int | None = 60,
        per_day: int | None = 5000,
        max_concurrent: int | None = 5,
        app_per_minute: int | None = 10_000,
        minute_seconds: float = 60.0,
        clock: Callable[[], float] | None = None,
        base_currency: str = "USD",
        currencies: tuple[str, ...] | None = None,
        period_lock_date: str | None = None,
        end_of_year_lock_date: str | None = None,
        tax_types: tuple[str, ...] | None = None,
        daily_rates: dict[str, Decimal] | None = None,
        idempotency_ttl_seconds: float | None = None,
        max_elements: int = MAX_ELEMENTS,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenant_id = tenant_id
        self.refresh_grace_seconds = float(refresh_grace_seconds)
        self.per_minute, self.per_day, self.max_concurrent = per_minute, per_day, max_concurrent
        self.app_per_minute = app_per_minute
        self.minute_seconds = float(minute_seconds)
        # the organisation's settings: multi-currency, lock dates, tax rates
        self.base_currency = base_currency.upper()
        # None: every currency is enabled (a harness that does not care); a tuple: only those and the home one
        self.currencies = None if currencies is None else {c.upper() for c in currencies} | {self.base_currency}
        self.period_lock_date = period_lock_date
        self.end_of_year_lock_date = end_of_year_lock_date
        self.tax_types = set(tax_types) if tax_types is not None else None
        self.tax_rates = tax.rates_of(tax_types)  # TaxType -> rate percent (sandbox/xero/tax.py)
        self.daily_rates = {k.upper(): Decimal(str(v)) for k, v in (daily_rates or {}).items()}
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        self.max_elements = max_elements
        self._base_clock = clock or time.time
        self._offset = 0.0
        self._lock = threading.RLock()
        self._tenants = {tenant_id: _Tenant(tenant_id, "Sandbox Organisation")}
        self._refresh: dict[str, _RefreshToken] = {}
        self._access: dict[str, float] = {}
        self._issued: list[str] = []
        self._serials = itertools.count(1)
        self._minute: dict[str, deque[float]] = {}
        self._day: dict[str, deque[float]] = {}
        self._app_minute: deque[float] = deque()
        self._in_flight: dict[str, int] = {}
        self.faults = FaultPlan(FAULT_KINDS)
        self.traffic = Traffic(10_000, counters=("token_refreshes", "token_refusals", "throttled", "replays"))
        self._server = BackgroundServer("XeroSandbox", self._serve, self._internal_error, clock=self.now)
        self.first_refresh_token = self.connect_organisation()

    # ------------------------------------------------------------------ lifecycle, clock, controls
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        return self._server.start(host, port)

    def stop(self) -> None:
        self._server.stop()

    @property
    def base_url(self) -> str:
        if self._server.base_url is None:
            raise RuntimeError("sandbox not started")
        return self._server.base_url

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    def now(self) -> float:
        return self._base_clock() + self._offset

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox clock (token expiry, grace); rate windows keep real time."""
        with self._lock:
            self._offset += float(seconds)
            return self.now()

    def connect_organisation(self) -> str:
        """A person (re)connecting the organisation: a first refresh token; every other one is retired."""
        with self._lock:
            return self._issue_refresh(self.client_id)

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def objects(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(_dumps(list(self._tenants[self.tenant_id].objects[kind].values())))

    def create_counts(self) -> dict[str, int]:
        """Objects created per kind: contacts and invoices always, the money kinds once any was created."""
        with self._lock:
            creates = self._tenants[self.tenant_id].creates
            return {k: v for k, v in creates.items() if v or k in ("Contacts", "Invoices")}

    def use_budget(self, calls: int, *, day_only: bool = False) -> None:
        """Spend the tenant's budget as another integration of the same organisation would."""
        now = time.monotonic()
        with self._lock:
            for _ in range(calls):
                self._day.setdefault(self.tenant_id, deque()).append(now)
                if not day_only:
                    self._minute.setdefault(self.tenant_id, deque()).append(now)

    def stats(self) -> dict[str, Any]:
        return self.traffic.snapshot()

    # ------------------------------------------------------------------ HTTP entry point
    def _internal_error(self, exc: Exception) -> Response:
        return 500, _dumps({"Type": "InternalServerError", "Message": repr(exc)}), []

    def _serve(self, method: str, target: str, headers: Any, body: bytes, host: str) -> Response | None:
        path, _, query = target.partition("?")
        if path.startswith("/_sandbox/"):
            return self._control(method, path, body)
        fault = self.faults.take(path)
        kind = fault.kind if fault is not None else None
        if kind == "drop":
            self.traffic.record(method, target, 0)
            return None
        if kind == "500":
            self.traffic.record(method, target, 500)
            return self._internal_error(RuntimeError("injected by the sandbox"))
        delay = fault.delay if kind == "slow" and fault is not None else 0.0
        if path == TOKEN_PATH:
            time.sleep(delay)
            response = self._token_endpoint(method, headers, body)
            self.traffic.record(method, "TOKEN", response[0],
                                counter="token_refreshes" if response[0] == 200 else "token_refusals")  # fmt: skip
        else:
            response = self._api(method, path, query, headers, body, delay)
            counter = "throttled" if response[0] == 429 else None
            if any(name == "X-Sandbox-Replayed" for name, _ in response[2]):
                counter = "replays"
            self.traffic.record(method, target, response[0], counter=counter)
        if kind == "timeout_after_commit":
            if fault is not None and fault.delay > 0:
                time.sleep(fault.delay)
            return None
        return response

    # ------------------------------------------------------------------ /_sandbox control endpoints (no auth)
    def _control(self, method: str, path: str, body: bytes) -> Response:
        """The shared ``/_sandbox/*`` controls (``sandbox.control``); objects are ``<Contacts|Invoices>``."""
        return control(self, method, path, body, connect=self.connect_organisation, dumps=_dumps)

    # ------------------------------------------------------------------ OAuth 2.0
    def _issue_refresh(self, client_id: str) -> str:
        now = self.now()
        for token in self._refresh.values():
            if token.client_id == client_id and token.retired_at is None:
                token.retired_at = now
        value = secrets.token_hex(32)
        self._refresh[value] = _RefreshToken(client_id, next(self._serials), now + REFRESH_TOKEN_SECONDS)
        self._issued.append(value)
        return value

    def _token_endpoint(self, method: str, headers: Any, body: bytes) -> Response:
        if method != "POST":
            return 405, _dumps({"error": "invalid_request"}), []
        scheme, _, credential = (headers.get("Authorization") or "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(credential.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id, secret = "", ""
        if scheme.lower() != "basic" or client_id != self.client_id or not hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        ):
            return 400, _dumps({"error": "invalid_client"}), []
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "refresh_token":
            return 400, _dumps({"error": "unsupported_grant_type"}), []
        with self._lock:
            now = self.now()
            token = self._refresh.get(form.get("refresh_token") or "")
            in_grace = token is not None and (token.retired_at is None
                                              or now - token.retired_at <= self.refresh_grace_seconds)  # fmt: skip
            usable = in_grace and token is not None and token.client_id == client_id and not token.revoked
            if token is None or not usable or token.expires_at <= now:
                return 400, _dumps({"error": "invalid_grant"}), []
            if token.retired_at is not None:
                for later in self._refresh.values():
                    if later.client_id == client_id and later.serial > token.serial:
                        later.revoked = True
            refresh = self._issue_refresh(client_id)
            token.retired_at = token.retired_at or now
            access = "eyJ" + secrets.token_urlsafe(40)
            self._access[access] = now + ACCESS_TOKEN_SECONDS
            self._issued.append(access)
        return 200, _dumps({"id_token": None, "access_token": access, "expires_in": ACCESS_TOKEN_SECONDS,
                            "token_type": "Bearer", "refresh_token": refresh,
                            "scope": "offline_access accounting.transactions accounting.contacts"}), []  # fmt: skip

    # ------------------------------------------------------------------ limits
    def _admit(self, tenant: str) -> tuple[XeroFault | None, list[tuple[str, str]]]:
        now = time.monotonic()
        with self._lock:
            minute = self._minute.setdefault(tenant, deque())
            day = self._day.setdefault(tenant, deque())
            for window, span in ((minute, self.minute_seconds), (day, 86400.0),
                                 (self._app_minute, self.minute_seconds)):  # fmt: skip
                while window and now - window[0] >= span:
                    window.popleft()
            problem, retry = None, 0.0
            if self.per_day is not None and len(day) >= self.per_day:
                problem, retry = "day", 86400.0 - (now - day[0])
            elif self.app_per_minute is not None and len(self._app_minute) >= self.app_per_minute:
                problem, retry = "appminute", self.minute_seconds - (now - self._app_minute[0])
            elif self.per_minute is not None and len(minute) >= self.per_minute:
                problem, retry = "minute", self.minute_seconds - (now - minute[0])
            elif self.max_concurrent is not None and self._in_flight.get(tenant, 0) >= self.max_concurrent:
                problem, retry = "concurrent", 1.0
            if problem is None:
                minute.append(now)
                day.append(now)
                self._app_minute.append(now)
                self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1
            headers = self._remaining(tenant)
        if problem is not None:
            headers += [("Retry-After", str(max(1, math.ceil(retry)))), ("X-Rate-Limit-Problem", problem)]
            return XeroFault(429, {"Type": "RateLimitExceeded", "Title": "Too Many Requests",
                                   "Detail": f"{problem} rate limit exceeded"}, headers), headers  # fmt: skip
        return None, headers

    def _remaining(self, tenant: str) -> list[tuple[str, str]]:
        def left(limit: int | None, used: int) -> str:
            return str(max(0, limit - used)) if limit is not None else "999999"

        return [("X-MinLimit-Remaining", left(self.per_minute, len(self._minute.get(tenant, ())))),
                ("X-DayLimit-Remaining", left(self.per_day, len(self._day.get(tenant, ())))),
                ("X-AppMinLimit-Remaining", left(self.app_per_minute, len(self._app_minute)))]  # fmt: skip

    # ------------------------------------------------------------------ API
    def _api(self, method: str, path: str, query: str, headers: Any, body: bytes, delay: float) -> Response:
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        with self._lock:
            expires = self._access.get(value.strip()) if scheme.lower() == "bearer" else None
            if expires is None or expires <= self.now():
                return 401, _dumps({"Type": None, "Title": "Unauthorized", "Status": 401,
                                    "Detail": "TokenExpired: token expired" if expires else "TokenInvalid"}), [
                    ("WWW-Authenticate", 'Bearer error="invalid_token"')]  # fmt: skip
        if path == "/connections" and method == "GET":
            return 200, _dumps([{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, t.tenant_id)), "tenantId": t.tenant_id,
                                 "tenantType": "ORGANISATION", "tenantName": t.name}
                                for t in self._tenants.values()]), []  # fmt: skip
        tenant_id = headers.get("xero-tenant-id") or ""
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            return 403, _dumps({"Type": None, "Title": "Forbidden", "Status": 403,
                                "Detail": "AuthenticationUnsuccessful"}), []  # fmt: skip
        if not path.startswith(API_PREFIX):
            return 404, _dumps({"Title": "Not Found", "Status": 404}), []
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        key = headers.get("Idempotency-Key")
        writes = method in ("POST", "PUT", "PATCH")
        if writes and key is not None:
            if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
                return 400, _dumps({"Title": "Bad Request", "Detail": "Idempotency-Key is 1 to 128 characters"}), []
            with self._lock:
                self._forget_expired(tenant)
                stored = tenant.answers.get(key)
                if stored is not None:
                    status, payload, extra = stored
                    return status, payload, [*extra, *self._remaining(tenant_id), ("X-Sandbox-Replayed", "true")]
        throttled, limit_headers = self._admit(tenant_id)
        if throttled is not None:
            return throttled.status, _dumps(throttled.body), throttled.headers
        try:
            time.sleep(delay)
            with self._lock:
                if writes and key is not None and key in tenant.answers:
                    status, payload, extra = tenant.answers[key]
                    return status, payload, [*extra, *limit_headers, ("X-Sandbox-Replayed", "true")]
                try:
                    if method == "GET" and (path[len(API_PREFIX):].lower().startswith("reports/")
                                            or headers.get("If-Modified-Since")):  # fmt: skip
                        from sandbox.xero import reports  # reports, modified-since listings: sandbox/xero/reports.py

                        status, answer = reports.route(self, tenant, path[len(API_PREFIX):], params, headers)
                    else:
                        status, answer = self._route(tenant, method, path[len(API_PREFIX):], params, body)
                    response: Response = (status, _dumps(answer), [])
                except XeroFault as fault:
                    response = (fault.status, _dumps(fault.body), [])
                if writes and key is not None:
                    tenant.answers[key] = response
                    tenant.answered_at[key] = self.now()
                return response[0], response[1], [*response[2], *limit_headers]
        finally:
            with self._lock:
                self._in_flight[tenant_id] -= 1

    def _forget_expired(self, tenant: _Tenant) -> None:
        if self.idempotency_ttl_seconds is None:
            return
        now = self.now()
        for key in [k for k, t in tenant.answered_at.items() if now - t > self.idempotency_ttl_seconds]:
            tenant.answers.pop(key, None)
            tenant.answered_at.pop(key, None)

    def _route(self, tenant: _Tenant, method: str, rest: str, params: dict[str, str],
               body: bytes) -> tuple[int, dict[str, Any]]:  # fmt: skip
        parts = rest.split("/")
        if method == "GET" and parts[0].lower() == "currencies":
            enabled = sorted(self.currencies or {self.base_currency, *self.daily_rates})
            return 200, {"Currencies": [{"Code": c, "Description": c} for c in enabled]}
        if method == "GET" and parts[0].lower() == "taxrates":
            return 200, tax.tax_rates(self)
        if method == "GET" and parts[0].lower() == "organisation":
            return 200, {"Organisations": [{"Name": tenant.name, "BaseCurrency": self.base_currency,
                                            "PeriodLockDate": self.period_lock_date,
                                            "EndOfYearLockDate": self.end_of_year_lock_date}]}  # fmt: skip
        entity = _ENTITIES.get(parts[0].lower())
        if entity is None:
            raise XeroFault(404, {"Title": "Not Found", "Status": 404})
        kind, id_field = entity
        if method == "GET":
            rows = list(tenant.objects[kind].values())
            if len(parts) == 2:
                rows = [r for r in rows if r[id_field] == parts[1]]
                if not rows:
                    raise XeroFault(404, {"Title": "Not Found", "Status": 404})
            for field, value in re.findall(r'(\w+)\s*==\s*"([^"]*)"', params.get("where", "")):
                rows = [r for r in rows if str(r.get(field)) == value]
            page = int(params.get("page", "1") or 1)
            return 200, {kind: rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]}
        if method not in ("PUT", "POST"):
            raise XeroFault(405, {"Title": "Method Not Allowed"})
        try:
            data = json.loads(body or b"{}", parse_float=Decimal)
        except ValueError as exc:
            raise _validation(f"body is not JSON: {exc}") from exc
        items = data.get(kind) if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise _validation(f"expected a non-empty {kind} array")
        if len(items) > self.max_elements:
            raise _validation(f"a request carries at most {self.max_elements} {kind}, this one {len(items)}")
        summarize = params.get("summarizeErrors", "true").lower() != "false"
        before = copy.deepcopy(tenant.objects) if summarize else tenant.objects
        creates_before = dict(tenant.creates)
        answers, failed = [], False
        for item in items:
            try:
                answers.append({**self._save(tenant, kind, id_field, item, create_only=method == "PUT"),
                                "StatusAttributeString": "OK"})  # fmt: skip
            except XeroFault as fault:
                failed = True
                answers.append({**item, "StatusAttributeString": "ERROR",
                                "ValidationErrors": [{"Message": fault.body.get("Detail", "invalid")}]})  # fmt: skip
        if failed and summarize:  # Xero fails the lot; nothing of it is kept
            tenant.objects, tenant.creates = before, creates_before
            raise _validation("one or more elements failed", [
                {k: v for k, v in a.items() if k != "_created"} for a in answers])  # fmt: skip
        return 200, {kind: [{k: v for k, v in a.items() if k != "_created"} for a in answers]}

    def _save(self, tenant: _Tenant, kind: str, id_field: str, item: dict[str, Any], *,
              create_only: bool) -> dict[str, Any]:  # fmt: skip
        existing = tenant.objects[kind].get(str(item.get(id_field, "")))
        if existing is not None and create_only:
            raise _validation(f"{id_field} {item[id_field]} already exists; PUT only creates")
        if kind == "Invoices" and existing is not None and item.get("Status") == "VOIDED":
            return tax.void_invoice(self, tenant, existing)  # sandbox/xero/tax.py
        obj = copy.deepcopy({**(existing or {}), **item})
        if kind == "Contacts":
            name = str(obj.get("Name") or "").strip()
            if not name:
                raise _validation("The contact name must be provided.")
            for other in tenant.objects["Contacts"].values():
                if (other["ContactID"] != obj.get("ContactID") and other["Name"].casefold() == name.casefold()
                        and "ARCHIVED" not in (other.get("ContactStatus"), obj.get("ContactStatus"))):
                    raise _validation(f"The contact name {name} is already assigned to another contact. The contact "
                                      "name must be unique across all active contacts.")  # fmt: skip
            obj.setdefault("ContactStatus", "ACTIVE")
        elif kind in ("Invoices", "CreditNotes"):
            contact = str((obj.get("Contact") or {}).get("ContactID", ""))
            if contact not in tenant.objects["Contacts"]:
                raise _validation("The Contact must contain at least 1 of the following elements to identify the "
                                  "contact: Name, ContactID, ContactNumber")  # fmt: skip
            lines = obj.get("LineItems") or []
            total = sum((Decimal(str(line.get("Quantity", 1))) * Decimal(str(line.get("UnitAmount", 0)))
                         for line in lines), Decimal("0")).quantize(Decimal("0.01"))  # fmt: skip
            paid = Decimal(str(obj.get("AmountPaid", 0))) + Decimal(str(obj.get("AmountCredited", 0)))
            obj.update({"Type": obj.get("Type", "ACCREC" if kind == "Invoices" else "ACCRECCREDIT"),
                        "Status": obj.get("Status", "DRAFT"), "SubTotal": total, "Total": total,
                        "AmountDue" if kind == "Invoices" else "RemainingCredit": total - paid,
                        "CurrencyCode": obj.get("CurrencyCode", self.base_currency)})  # fmt: skip
            tax.price(self, obj, paid, "AmountDue" if kind == "Invoices" else "RemainingCredit")  # Xero's own tax
            self._check_document(kind, obj)
            if existing is None and kind == "Invoices":
                obj.setdefault("InvoiceNumber", f"INV-{next(tenant.numbers):04d}")
            if kind == "CreditNotes" and existing is None:
                obj.setdefault("CreditNoteNumber", f"CN-{next(tenant.numbers):04d}")
                self._allocate(tenant, obj)
        elif kind == "Payments":
            self._pay(tenant, obj)
        elif kind == "ManualJournals":
            if not str(obj.get("Narration") or "").strip():
                raise _validation("Narration must be provided.")
            lines = obj.get("JournalLines") or []
            if len(lines) < 2 or any(not line.get("AccountCode") for line in lines):
                raise _validation("A manual journal needs at least two lines, each with an AccountCode.")
            if sum((Decimal(str(line.get("LineAmount", 0))) for line in lines), Decimal("0")) != 0:
                raise _validation("The total debits must equal the total credits (journal lines sum to zero).")
            obj.setdefault("Status", "DRAFT")
            obj.setdefault("CurrencyCode", self.base_currency)
            self._check_document(kind, obj)
        elif kind == "BankTransactions":
            if obj.get("Type") not in ("RECEIVE", "SPEND") or not (obj.get("BankAccount") or {}).get("Code"):
                raise _validation("A bank transaction needs Type RECEIVE or SPEND and a BankAccount.")
            lines = obj.get("LineItems") or []
            obj["Total"] = sum((Decimal(str(line.get("Quantity", 1))) * Decimal(str(line.get("UnitAmount", 0)))
                                for line in lines), Decimal("0")).quantize(Decimal("0.01"))  # fmt: skip
            obj.setdefault("CurrencyCode", self.base_currency)
            self._check_document(kind, obj)
        elif kind == "BankTransfers":
            if not (obj.get("FromBankAccount") or {}).get("Code") or not (obj.get("ToBankAccount") or {}).get("Code"):
                raise _validation("A bank transfer needs a FromBankAccount and a ToBankAccount.")
            if Decimal(str(obj.get("Amount", 0))) <= 0:
                raise _validation("The Amount of a bank transfer must be positive.")
            obj.setdefault("CurrencyCode", self.base_currency)
            self._check_document(kind, obj)
        created = existing is None
        if created and kind == "Payments":
            self._settle(tenant, obj)
        if created:
            obj[id_field] = str(uuid.uuid4())
            tenant.creates[kind] += 1
        obj["UpdatedDateUTC"] = f"/Date({int(self.now() * 1000)}+0000)/"
        tenant.objects[kind][obj[id_field]] = obj
        return {**copy.deepcopy(obj), "_created": created}

    # ------------------------------------------------------------------ the organisation's rules on documents
    def _check_document(self, kind: str, obj: dict[str, Any]) -> None:
        """Lock dates, enabled currency, CurrencyRate, tax types: what Xero checks before it keeps a document."""
        date = str(obj.get("Date") or time.strftime("%Y-%m-%d", time.gmtime(self.now())))[:10]
        obj["Date"] = date
        for name, lock in (("period lock date", self.period_lock_date),
                           ("end of year lock date", self.end_of_year_lock_date)):  # fmt: skip
            if lock is not None and date <= lock:
                raise _validation(f"The document date cannot be on or before the {name} ({lock}); this one is "
                                  f"dated {date}.")  # fmt: skip
        currency = str(obj.get("CurrencyCode") or self.base_currency).upper()
        if self.currencies is not None and currency not in self.currencies:
            raise _validation(f"The organisation is not subscribed to currency {currency} (enable it under "
                              "Currencies first).")  # fmt: skip
        if currency != self.base_currency:
            rate = obj.get("CurrencyRate")
            if rate is None:  # Xero applies its daily rate (the sandbox's, when it has one)
                if currency in self.daily_rates:
                    obj["CurrencyRate"] = self.daily_rates[currency]
            elif Decimal(str(rate)) <= 0 or Decimal(str(rate)) == 1:
                raise _validation(f"CurrencyRate {rate} is not a rate for {currency} against {self.base_currency}.")
        else:
            obj["CurrencyRate"] = Decimal("1")
        if kind in _DOCUMENTS and self.tax_types is not None:
            for line in obj.get("LineItems") or []:
                if line.get("TaxType") not in self.tax_types:
                    raise _validation(f"The TaxType code '{line.get('TaxType') or ''}' does not exist or cannot be "
                                      "used for this type of transaction.")  # fmt: skip

    def _pay(self, tenant: _Tenant, obj: dict[str, Any]) -> None:
        invoice = tenant.objects["Invoices"].get(str((obj.get("Invoice") or {}).get("InvoiceID", "")))
        if invoice is None:
            raise _validation("Invoice could not be found (a payment needs Invoice.InvoiceID).")
        if not (obj.get("Account") or {}).get("Code") and not (obj.get("Account") or {}).get("AccountID"):
            raise _validation("Account could not be found (a payment needs Account.Code).")
        amount = Decimal(str(obj.get("Amount", 0)))
        if amount <= 0 or amount > Decimal(str(invoice["AmountDue"])):
            raise _validation(f"Payment amount {amount} exceeds the amount outstanding on this document "
                              f"({invoice['AmountDue']}).")  # fmt: skip
        obj["CurrencyCode"] = invoice.get("CurrencyCode", self.base_currency)
        self._check_document("Payments", obj)
        obj.setdefault("Status", "AUTHORISED")

    def _settle(self, tenant: _Tenant, payment: dict[str, Any]) -> None:
        invoice = tenant.objects["Invoices"][str(payment["Invoice"]["InvoiceID"])]
        amount = Decimal(str(payment["Amount"]))
        invoice["AmountPaid"] = Decimal(str(invoice.get("AmountPaid", 0))) + amount
        invoice["AmountDue"] = Decimal(str(invoice["AmountDue"])) - amount
        if invoice["AmountDue"] == 0:
            invoice["Status"] = "PAID"

    def _allocate(self, tenant: _Tenant, note: dict[str, Any]) -> None:
        for allocation in note.get("Allocations") or []:
            invoice = tenant.objects["Invoices"].get(str((allocation.get("Invoice") or {}).get("InvoiceID", "")))
            amount = Decimal(str(allocation.get("Amount", 0)))
            if invoice is None or amount <= 0 or amount > Decimal(str(invoice["AmountDue"])):
                raise _validation("An allocation needs an invoice with at least its Amount outstanding.")
            if amount > Decimal(str(note["RemainingCredit"])):
                raise _validation("The allocations exceed the credit note's remaining credit.")
            invoice["AmountCredited"] = Decimal(str(invoice.get("AmountCredited", 0))) + amount
            invoice["AmountDue"] = Decimal(str(invoice["AmountDue"])) - amount
            if invoice["AmountDue"] == 0:
                invoice["Status"] = "PAID"
            note["RemainingCredit"] = Decimal(str(note["RemainingCredit"])) - amount
