"""A stateful local server speaking the QuickBooks Online Accounting API v3 and Intuit's OAuth 2.0 token endpoint.

What it implements (shapes from Intuit's docs, ``/work/shared/reference/accounting-apis.md``):

* ``POST /oauth2/v1/tokens/bearer`` (client id and secret as HTTP Basic, ``grant_type=refresh_token``): access
  tokens live 3600 s on the sandbox clock; every refresh returns a NEW refresh token and retires the one sent.
  A retired token is refused with ``invalid_grant`` unless it is used again within ``refresh_grace_seconds`` of
  its retirement (default 0: Intuit documents no grace, "a lost rotated token means a person must reconnect";
  a harness can set one, e.g. Xero's documented 30 minutes). A refresh through a token in its grace continues
  the chain from there: whatever that token's lost successor was is retired too, so there is always exactly
  one current refresh token per company and client. ``connect_company`` stands in for the consent screen: it
  issues a fresh first refresh token, as a person reconnecting the company would get.
* ``/v3/company/{realmId}/...`` with ``Authorization: Bearer``: ``customer`` and ``invoice`` create, read and
  update (``SyncToken`` optimistic concurrency: stale -> 400 code 5010; ``sparse: true`` merges), ``query``
  (``select * from <Entity> [where F = 'v' [and ...]] [STARTPOSITION n] [MAXRESULTS m]``, at most
  1000; ``=``, ``<``, ``>``, ``<=``, ``>=``, ``like``, ``in``; only on the attributes Intuit marks filterable,
  else 400 code 4001 QueryValidationError, see ``FILTERABLE``), and ``batch`` (at most 30 ``BatchItemRequest``
  items, each create/update/query, answered one by one).
  Customer ``DisplayName`` is unique, case-insensitively (400 code 6240 "Duplicate Name Exists Error").
* ``minorversion`` is required and must be >= 75 (Intuit ignores lower ones since August 2025; the sandbox is
  stricter and refuses them, so a client that forgets it is caught here).
* ``requestid`` on writes: the first answer for (company, requestid) is stored, and the same requestid again
  returns that answer byte for byte and changes nothing (a retried create is replayed, not repeated).
* Limits per company: ``requests_per_minute`` (500), ``max_concurrent`` (10) and ``batch_per_minute`` (40) over
  a sliding window of ``window_seconds`` (60; shorter for tests), answered with 429 ThrottleExceeded. Only
  requests that were let through count.
* Money (``payment``, ``creditmemo``, ``journalentry``, ``deposit``): a ``Payment`` applies to invoices of its
  customer through ``Line[].LinkedTxn`` (the invoice's ``Balance`` goes down; more than the balance is refused), a
  ``CreditMemo`` is priced like an invoice, a ``JournalEntry`` must balance (debits = credits), a ``Deposit`` moves
  money to ``DepositToAccountRef``. Every transaction is checked as the books are configured:
  ``book_close_date`` (a ``TxnDate`` on or before it: 400 code 6210 "Account Period Closed"), the company's
  ``home_currency`` and enabled ``currencies`` (multicurrency; another one: 400 code 6000, element CurrencyRef), a
  foreign-currency transaction's ``ExchangeRate`` (home units per foreign unit: 1 is refused, a missing one takes
  the sandbox's ``daily_rates`` as QuickBooks applies its own), and ``tax_codes`` (when set, as for UK/CA/AU
  companies, every sales line needs a ``TaxCodeRef`` from that list; a mapping gives each code its rate percent,
  and an invoice's tax is computed from them unless ``TxnTaxDetail.TotalTax`` is given, ``sandbox/quickbooks/tax.py``,
  which also voids invoices: ``invoice?operation=void``). ``request_id_ttl_seconds`` (sandbox clock)
  forgets stored requestid answers after that long, as a vendor's key window ends.
* Faults (``faults.add(kind, ...)``): ``timeout_after_commit`` (the request is processed and stored, then the
  connection is dropped after ``delay`` seconds: the client never sees the answer), ``drop`` (dropped before
  processing), ``500``, ``slow`` (an admitted request takes ``delay`` seconds, holding its concurrency slot).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from sandbox.control import control
from sandbox.quickbooks import tax
from sandbox.serving import BackgroundServer, FaultPlan, Response, Traffic

__all__ = ["FAULT_KINDS", "MIN_MINOR_VERSION", "TOKEN_PATH", "QuickBooksSandbox"]

FAULT_KINDS = ("timeout_after_commit", "drop", "500", "slow")
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
MIN_MINOR_VERSION = 75
ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 8_726_400  # Intuit's x_refresh_token_expires_in (about 101 days)
MAX_BATCH_ITEMS = 30
MAX_QUERY_RESULTS = 1000
MAX_REQUEST_ID = 50
_ENTITIES = {"customer": "Customer", "invoice": "Invoice", "payment": "Payment", "creditmemo": "CreditMemo",
             "journalentry": "JournalEntry", "deposit": "Deposit"}
_SALES = ("Invoice", "CreditMemo")  # priced from their lines, need a customer, carry sales tax codes
_CUSTOMER_TXNS = ("Invoice", "CreditMemo", "Payment")
_API_PATH = re.compile(r"^/v3/company/(?P<realm>[^/]+)/(?P<rest>.+)$")


class Fault(Exception):
    """An API error in Intuit's ``{"Fault": {"Error": [...], "type": ...}}`` shape."""

    def __init__(self, status: int, code: str, message: str, detail: str = "", *, kind: str = "ValidationFault",
                 element: str = "") -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.body = {"Error": [{"Message": message, "Detail": detail or message, "code": code, "element": element}],
                     "type": kind}  # fmt: skip


@dataclass
class _RefreshToken:
    realm: str
    client_id: str
    issued_at: float
    expires_at: float
    serial: int = 0
    retired_at: float | None = None
    revoked: bool = False  # superseded by a grace use of an older token: no grace of its own


@dataclass
class _AccessToken:
    realm: str
    expires_at: float


class _Company:
    """One QuickBooks company (realm): its objects, id counter and requestid answers."""

    def __init__(self, realm: str) -> None:
        self.realm = realm
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in _ENTITIES.values()}
        self.ids = itertools.count(1)
        self.answers: dict[str, Response] = {}
        self.answered_at: dict[str, float] = {}
        self.creates: dict[str, int] = dict.fromkeys(_ENTITIES.values(), 0)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, default=_json_default, separators=(",", ":")).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # two-decimal amounts: float's shortest repr writes them exactly
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _money(value: Any, field: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (ArithmeticError, ValueError) as exc:
        raise Fault(400, "2090", "Invalid Number", f"{field} is not a number", element=field) from exc
    if not amount.is_finite():
        raise Fault(400, "2090", "Invalid Number", f"{field} is not a number", element=field)
    return amount


class QuickBooksSandbox:
    """In-memory QuickBooks Online companies plus an HTTP server that serves them (see the module docstring)."""

    def __init__(
        self,
        *,
        client_id: str = "sandbox-client-id",
        client_secret: str = "sandbox-client-secret",  # noqa: S107 - a well-known fake credential
        realm_id: str = "9130350000000001",
        refresh_grace_seconds: float = 0.0,
        requests_per_minute: int | None = 500,
        batch_per_minute: int | None = 40,
        max_concurrent: int | None = 10,
        window_seconds: float = 60.0,
        clock: Callable[[], float] | None = None,
        home_currency: str = "USD",
        currencies: tuple[str, ...] | None = None,
        book_close_date: str | None = None,
        tax_codes: tuple[str, ...] | None = None,
        daily_rates: dict[str, Decimal] | None = None,
        request_id_ttl_seconds: float | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.realm_id = realm_id
        self.refresh_grace_seconds = float(refresh_grace_seconds)
        self.requests_per_minute = requests_per_minute
        self.batch_per_minute = batch_per_minute
        self.max_concurrent = max_concurrent
        self.window_seconds = float(window_seconds)
        # the books' configuration (Company settings: multicurrency, closing date, sales tax)
        self.home_currency = home_currency.upper()
        # None: every currency is enabled (a harness that does not care); a tuple: only those and the home one
        self.currencies = None if currencies is None else {c.upper() for c in currencies} | {self.home_currency}
        self.book_close_date = book_close_date
        self.tax_codes = set(tax_codes) if tax_codes is not None else None
        self.tax_rates = tax.rates_of(tax_codes)  # code -> rate percent (sandbox/quickbooks/tax.py)
        self.daily_rates = {k.upper(): Decimal(str(v)) for k, v in (daily_rates or {}).items()}
        self.request_id_ttl_seconds = request_id_ttl_seconds
        self._base_clock = clock or time.time
        self._offset = 0.0
        self._lock = threading.RLock()
        self._companies: dict[str, _Company] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._access: dict[str, _AccessToken] = {}
        self._serials = itertools.count(1)
        self._issued: list[str] = []  # every token ever handed out (tests look for leaks of any of them)
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._in_flight: dict[str, int] = {}
        self.faults = FaultPlan(FAULT_KINDS)
        self.traffic = Traffic(10_000, counters=("token_refreshes", "token_refusals", "throttled", "replays"))
        self._server = BackgroundServer("QuickBooksSandbox", self._serve, self._internal_error, clock=self.now)
        self.company(realm_id)
        self.first_refresh_token = self.connect_company(realm_id)

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
        """Move the sandbox clock forward (token expiry, grace); rate windows keep real time."""
        with self._lock:
            self._offset += float(seconds)
            return self.now()

    def company(self, realm: str) -> _Company:
        with self._lock:
            if realm not in self._companies:
                self._companies[realm] = _Company(realm)
            return self._companies[realm]

    def connect_company(self, realm: str | None = None) -> str:
        """What the consent screen gives a person connecting (or reconnecting) the company: a first refresh
        token. Every other token of this company and client is retired at once."""
        realm = realm or self.realm_id
        self.company(realm)
        with self._lock:
            return self._issue_refresh(realm, self.client_id)[0]

    def issued_tokens(self) -> list[str]:
        """Every access and refresh token the sandbox ever handed out (to prove none leaked anywhere)."""
        with self._lock:
            return list(self._issued)

    def objects(self, entity: str, realm: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(_dumps(o)) for o in self.company(realm or self.realm_id).objects[entity].values()]

    def create_counts(self, realm: str | None = None) -> dict[str, int]:
        """Objects created per entity: customers and invoices always, the money entities once any was created."""
        with self._lock:
            creates = self.company(realm or self.realm_id).creates
            return {k: v for k, v in creates.items() if v or k in ("Customer", "Invoice")}

    def edit(self, entity: str, object_id: str, changes: dict[str, Any], realm: str | None = None) -> dict[str, Any]:
        """An accountant's edit in the QuickBooks UI: fields change and the SyncToken moves on."""
        with self._lock:
            obj = self.company(realm or self.realm_id).objects[entity][object_id]
            obj.update(changes)
            obj["SyncToken"] = str(int(obj["SyncToken"]) + 1)
            obj["MetaData"]["LastUpdatedTime"] = self._stamp()
            if entity == "Invoice":
                self._price_invoice(obj)
            return json.loads(_dumps(obj))

    def stats(self) -> dict[str, Any]:
        return self.traffic.snapshot()

    # ------------------------------------------------------------------ HTTP entry point
    def _internal_error(self, exc: Exception) -> Response:
        return 500, _dumps({"Fault": Fault(500, "10000", "An application error has occurred",
                                           repr(exc), kind="SystemFault").body}), []  # fmt: skip

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
            counter = "token_refreshes" if response[0] == 200 else "token_refusals"
            self.traffic.record(method, "TOKEN", response[0], counter=counter)  # never log the form (tokens)
        else:
            response = self._api(method, path, query, headers, body, delay)
            counter = {429: "throttled"}.get(response[0])
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
        """The shared ``/_sandbox/*`` controls (``sandbox.control``); objects are ``<Customer|Invoice>``."""
        return control(self, method, path, body, connect=self.connect_company, dumps=_dumps)

    # ------------------------------------------------------------------ OAuth 2.0
    def _issue_refresh(self, realm: str, client_id: str) -> tuple[str, int]:
        now = self.now()
        for token in self._refresh.values():
            if token.realm == realm and token.client_id == client_id and token.retired_at is None:
                token.retired_at = now
        value = "RT1-" + secrets.token_urlsafe(24)
        self._refresh[value] = _RefreshToken(realm, client_id, now, now + REFRESH_TOKEN_SECONDS, next(self._serials))
        self._issued.append(value)
        return value, REFRESH_TOKEN_SECONDS

    def _token_endpoint(self, method: str, headers: Any, body: bytes) -> Response:
        if method != "POST":
            return 405, _dumps({"error": "invalid_request"}), []
        client_id = self._basic_client(headers.get("Authorization") or "")
        if client_id is None:
            return 401, _dumps({"error": "invalid_client"}), [("WWW-Authenticate", 'Basic realm="intuit"')]
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if form.get("grant_type") != "refresh_token":
            return 400, _dumps({"error": "unsupported_grant_type"}), []
        sent = form.get("refresh_token") or ""
        with self._lock:
            now = self.now()
            token = self._refresh.get(sent)
            usable = (
                token is not None
                and token.client_id == client_id
                and token.expires_at > now
                and not token.revoked
                and (token.retired_at is None or now - token.retired_at <= self.refresh_grace_seconds)
            )
            if not usable or token is None:
                return 400, _dumps({"error": "invalid_grant"}), []
            if token.retired_at is not None:  # a grace use: whatever came after this token is void
                for later in self._refresh.values():
                    if (later.realm, later.client_id) == (token.realm, client_id) and later.serial > token.serial:
                        later.revoked = True
            refresh, refresh_expires = self._issue_refresh(token.realm, client_id)
            if token.retired_at is None:
                token.retired_at = now
            access = "AT1-" + secrets.token_urlsafe(32)
            self._access[access] = _AccessToken(token.realm, now + ACCESS_TOKEN_SECONDS)
            self._issued.append(access)
        answer = {"token_type": "bearer", "access_token": access, "expires_in": ACCESS_TOKEN_SECONDS,
                  "refresh_token": refresh, "x_refresh_token_expires_in": refresh_expires}  # fmt: skip
        return 200, _dumps(answer), [("Cache-Control", "no-store")]

    def _basic_client(self, authorization: str) -> str | None:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            client_id, _, secret = base64.b64decode(credential.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if client_id == self.client_id and hmac.compare_digest(secret.encode(), self.client_secret.encode()):
            return client_id
        return None

    def _authorized(self, realm: str, headers: Any) -> Fault | None:
        scheme, _, value = (headers.get("Authorization") or "").partition(" ")
        with self._lock:
            token = self._access.get(value.strip()) if scheme.lower() == "bearer" else None
            if token is None or token.realm != realm:
                return Fault(401, "3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                             "Token invalid", kind="AUTHENTICATION")  # fmt: skip
            if token.expires_at <= self.now():
                return Fault(401, "3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                             "Token expired", kind="AUTHENTICATION")  # fmt: skip
        return None

    # ------------------------------------------------------------------ rate limits
    def _admit(self, realm: str, is_batch: bool) -> Fault | None:
        """Count the request against the company's windows, or refuse it with 429 (then it counts nowhere)."""
        now = time.monotonic()
        with self._lock:
            checks: list[tuple[str, int | None]] = [("all", self.requests_per_minute)]
            if is_batch:
                checks.append(("batch", self.batch_per_minute))
            for name, limit in checks:
                window = self._windows.setdefault((realm, name), deque())
                while window and now - window[0] >= self.window_seconds:
                    window.popleft()
                if limit is not None and len(window) >= limit:
                    return _throttled()
            if self.max_concurrent is not None and self._in_flight.get(realm, 0) >= self.max_concurrent:
                return _throttled()
            for name, _ in checks:
                self._windows[(realm, name)].append(now)
            self._in_flight[realm] = self._in_flight.get(realm, 0) + 1
        return None

    def _leave(self, realm: str) -> None:
        with self._lock:
            self._in_flight[realm] -= 1

    # ------------------------------------------------------------------ API
    def _api(self, method: str, path: str, query: str, headers: Any, body: bytes, delay: float = 0.0) -> Response:
        match = _API_PATH.match(path)
        if match is None:
            return _fault(Fault(404, "610", "Object Not Found", f"no such resource {path}"))
        realm, rest = match.group("realm"), match.group("rest").lower()
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        denied = self._authorized(realm, headers)
        if denied is not None:
            return _fault(denied)
        with self._lock:
            if realm not in self._companies:
                return _fault(Fault(403, "3100", "ApplicationAuthorizationFailed", f"no company {realm}",
                                    kind="AUTHORIZATION"))  # fmt: skip
        minor = params.get("minorversion", "")
        if not minor.isdigit() or int(minor) < MIN_MINOR_VERSION:
            return _fault(Fault(400, "2010", "Request has invalid or unsupported property",
                                f"minorversion {minor or '(missing)'} is not supported; use {MIN_MINOR_VERSION} "
                                "or later", element="minorversion"))  # fmt: skip
        request_id = params.get("requestid")
        if request_id is not None and not 0 < len(request_id) <= MAX_REQUEST_ID:
            return _fault(Fault(400, "2010", "Request has invalid or unsupported property",
                                f"requestid must be 1 to {MAX_REQUEST_ID} characters", element="requestid"))
        writes = method == "POST"
        company = self._companies[realm]
        if writes and request_id is not None:
            with self._lock:
                self._forget_expired(company)
                stored = company.answers.get(request_id)
            if stored is not None:
                status, payload, extra = stored
                return status, payload, [*extra, ("X-Sandbox-Replayed", "true")]
        throttled = self._admit(realm, rest == "batch")
        if throttled is not None:
            return _fault(throttled)
        try:
            time.sleep(delay)  # a slow answer holds its concurrency slot, as a slow server's would
            with self._lock:
                if writes and request_id is not None and request_id in company.answers:  # raced a twin request
                    status, payload, extra = company.answers[request_id]
                    return status, payload, [*extra, ("X-Sandbox-Replayed", "true")]
                try:
                    response = self._route(company, method, rest, params, body)
                except Fault as fault:
                    response = _fault(fault)
                if writes and request_id is not None:
                    company.answers[request_id] = response
                    company.answered_at[request_id] = self.now()
                return response
        finally:
            self._leave(realm)

    def _forget_expired(self, company: _Company) -> None:
        """Answers older than ``request_id_ttl_seconds`` are gone: the same requestid then creates again."""
        if self.request_id_ttl_seconds is None:
            return
        now = self.now()
        for key in [k for k, t in company.answered_at.items() if now - t > self.request_id_ttl_seconds]:
            company.answers.pop(key, None)
            company.answered_at.pop(key, None)

    def _route(self, company: _Company, method: str, rest: str, params: dict[str, str], body: bytes) -> Response:
        parts = rest.split("/")
        if (method == "GET" and parts[0] in ("cdc", "reports")) or params.get("operation") == "delete":
            from sandbox.quickbooks import cdc  # change data capture, reports, deletes: sandbox/quickbooks/cdc.py

            return cdc.route(self, company, method, parts, params, body)
        if method == "POST" and parts == ["invoice"] and params.get("operation") == "void":
            return _ok({"Invoice": tax.void_invoice(self, company, _body(body)), "time": self._stamp()})
        if method == "GET" and parts == ["query"]:
            return _ok(self._query(company, params.get("query", "")))
        if method == "POST" and parts == ["batch"]:
            return _ok(self._batch(company, _body(body)))
        if parts[0] in _ENTITIES:
            entity = _ENTITIES[parts[0]]
            if method == "GET" and len(parts) == 2:
                obj = company.objects[entity].get(parts[1])
                if obj is None:
                    raise Fault(400, "610", "Object Not Found",
                                f"Something you're trying to use has been made inactive. Check the fields with "
                                f"accounts, customers, items, vendors or employees. ({entity} {parts[1]})")
                return _ok({entity: obj, "time": self._stamp()})
            if method == "POST" and len(parts) == 1:
                payload = _body(body)
                return _ok({entity: self._write(company, entity, payload), "time": self._stamp()})
        raise Fault(404, "610", "Object Not Found", f"unsupported {method} {rest}")

    def _write(self, company: _Company, entity: str, payload: dict[str, Any]) -> dict[str, Any]:
        if "Id" in payload:
            return self._update(company, entity, payload)
        return self._create(company, entity, payload)

    def _create(self, company: _Company, entity: str, data: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(data)
        obj.pop("SyncToken", None)
        if entity == "Customer":
            self._check_customer(company, obj, None)
            obj.setdefault("Active", True)
            obj.setdefault("Balance", Decimal("0"))
            obj.setdefault("CurrencyRef", {"value": self.home_currency})
        elif entity == "Invoice":
            self._check_invoice(company, obj)
            self._check_txn(company, entity, obj)
        else:
            self._check_money(company, entity, obj)
        now = self._stamp()
        obj.update({"Id": str(next(company.ids)), "SyncToken": "0", "domain": "QBO", "sparse": False,
                    "MetaData": {"CreateTime": now, "LastUpdatedTime": now}})  # fmt: skip
        if entity == "Invoice":
            obj.setdefault("DocNumber", obj["Id"])
            self._price_invoice(obj)
        elif entity == "CreditMemo":
            self._price_invoice(obj)
        elif entity == "Payment":
            self._apply_payment(company, obj)
        elif entity == "Deposit":
            obj["TotalAmt"] = sum((_money(line.get("Amount", 0), "Line.Amount") for line in obj["Line"]), Decimal("0"))
        company.objects[entity][obj["Id"]] = obj
        company.creates[entity] += 1
        return obj

    def _update(self, company: _Company, entity: str, data: dict[str, Any]) -> dict[str, Any]:
        current = company.objects[entity].get(str(data["Id"]))
        if current is None:
            raise Fault(400, "610", "Object Not Found", f"{entity} {data['Id']} does not exist")
        if str(data.get("SyncToken")) != current["SyncToken"]:
            raise Fault(400, "5010", "Stale Object Error",
                        f"You and {current.get('MetaData', {}).get('LastModifiedByRef', 'another user')} were "
                        f"working on this at the same time. SyncToken {data.get('SyncToken')} is stale; the "
                        f"current one is {current['SyncToken']}.", element="SyncToken")  # fmt: skip
        changes = copy.deepcopy(data)
        merged = {**current, **changes} if changes.get("sparse") else {
            **{k: current[k] for k in ("Id", "MetaData", "domain")}, **changes}  # fmt: skip
        merged.pop("sparse", None)
        if entity == "Customer":
            self._check_customer(company, merged, current["Id"])
        elif entity == "Invoice":
            self._check_invoice(company, merged)
            self._check_txn(company, entity, merged)
            self._price_invoice(merged)
        else:
            raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                        f"Business Validation Error: the sandbox does not update {entity} objects")
        merged.update({"Id": current["Id"], "SyncToken": str(int(current["SyncToken"]) + 1), "sparse": False,
                       "MetaData": {**current["MetaData"], "LastUpdatedTime": self._stamp()}})  # fmt: skip
        company.objects[entity][current["Id"]] = merged
        return merged

    def _check_customer(self, company: _Company, obj: dict[str, Any], own_id: str | None) -> None:
        name = str(obj.get("DisplayName") or "").strip()
        if not name:
            raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                        "Business Validation Error: DisplayName is required.", element="DisplayName")
        folded = name.casefold()
        for other in company.objects["Customer"].values():
            if other["Id"] != own_id and str(other.get("DisplayName", "")).strip().casefold() == folded:
                raise Fault(400, "6240", "Duplicate Name Exists Error",
                            f"The name supplied already exists. : Another customer, vendor or employee is already "
                            f"using this name. Please use a different name. Id={other['Id']}")  # fmt: skip
        # sub-customers (projects, jobs): Intuit's Customer reference says ParentRef is "required for the create
        # operation if this object is a sub-customer or Job", and names the parent's place: FullyQualifiedName is
        # the parents' names and its own, colon-separated, Level its depth
        parent = (obj.get("ParentRef") or {}).get("value")
        if obj.get("Job") is True and parent is None:
            raise Fault(400, "2020", "Required param missing, need to supply the required value for the API",
                        "Required parameter ParentRef is missing for a sub-customer (Job)", element="ParentRef")
        if parent is not None:
            found = company.objects["Customer"].get(str(parent))
            if found is None or str(parent) == own_id:
                raise Fault(400, "2500", "Invalid Reference Id", f"ParentRef {parent} does not exist",
                            element="ParentRef")  # fmt: skip
            if found.get("CurrencyRef"):
                obj.setdefault("CurrencyRef", found["CurrencyRef"])  # a sub-customer takes its parent's currency
            if found.get("CurrencyRef") and found["CurrencyRef"] != obj["CurrencyRef"]:
                raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                            "Business Validation Error: a sub-customer bills in its parent's currency "
                            f"({found['CurrencyRef'].get('value')})", element="CurrencyRef")  # fmt: skip
            obj["FullyQualifiedName"] = f"{found.get('FullyQualifiedName') or found['DisplayName']}:{name}"
            obj["Level"] = int(found.get("Level") or 0) + 1
            obj.setdefault("Job", True)
        else:
            obj["FullyQualifiedName"] = name
            obj["Level"] = 0

    def _check_invoice(self, company: _Company, obj: dict[str, Any]) -> None:
        customer = (obj.get("CustomerRef") or {}).get("value")
        if customer is None or str(customer) not in company.objects["Customer"]:
            raise Fault(400, "2500", "Invalid Reference Id", f"CustomerRef {customer} does not exist",
                        element="CustomerRef")  # fmt: skip
        lines = obj.get("Line")
        if not isinstance(lines, list) or not lines:
            raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                        "Business Validation Error: an invoice needs at least one line.", element="Line")
        currency = company.objects["Customer"][str(customer)].get("CurrencyRef", {}).get("value", "USD")
        given = (obj.get("CurrencyRef") or {}).get("value")
        if given is not None and given != currency:
            raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                        f"Business Validation Error: the customer's currency is {currency}, not {given}.")
        obj["CurrencyRef"] = {"value": currency}

    def _check_txn(self, company: _Company, entity: str, obj: dict[str, Any]) -> None:
        """The books' rules every transaction meets: closing date, enabled currency, exchange rate, tax codes."""
        stamp = datetime.fromtimestamp(self.now(), UTC).strftime("%Y-%m-%d")
        txn_date = str(obj.get("TxnDate") or stamp)
        obj["TxnDate"] = txn_date
        if self.book_close_date is not None and txn_date <= self.book_close_date:
            raise Fault(400, "6210", "Account Period Closed, Cannot Update Through Services API",
                        f"The account period has closed and the books are locked: {entity} dated {txn_date} is on "
                        f"or before the closing date {self.book_close_date}.", element="TxnDate")  # fmt: skip
        if entity in _CUSTOMER_TXNS:
            customer = company.objects["Customer"][str(obj["CustomerRef"]["value"])]
            currency = customer.get("CurrencyRef", {}).get("value", self.home_currency)
        else:
            currency = (obj.get("CurrencyRef") or {}).get("value") or self.home_currency
        obj["CurrencyRef"] = {"value": currency}
        if self.currencies is not None and currency not in self.currencies:
            raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                        f"Business Validation Error: the currency {currency} is not in this company's currency list "
                        "(turn on multicurrency and add it first).", element="CurrencyRef")  # fmt: skip
        if currency != self.home_currency:
            rate = obj.get("ExchangeRate")
            if rate is None:  # QuickBooks applies its own rate (the sandbox's, when it has one)
                if currency in self.daily_rates:
                    obj["ExchangeRate"] = self.daily_rates[currency]
            elif _money(rate, "ExchangeRate") <= 0 or _money(rate, "ExchangeRate") == 1:
                raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                            f"Business Validation Error: ExchangeRate {rate} is not a rate for {currency} against "
                            f"{self.home_currency}.", element="ExchangeRate")  # fmt: skip
        else:
            obj["ExchangeRate"] = Decimal("1")
        if entity in _SALES and self.tax_codes is not None:
            for line in obj.get("Line") or []:
                if line.get("DetailType") != "SalesItemLineDetail":
                    continue
                code = ((line.get("SalesItemLineDetail") or {}).get("TaxCodeRef") or {}).get("value")
                if code not in self.tax_codes:
                    raise Fault(400, "6000", "A business validation error has occurred while processing your "
                                "request", "Business Validation Error: Make sure all your transactions have a tax "
                                f"code; line {line.get('LineNum') or ''} has {code or 'none'} (known: "
                                f"{', '.join(sorted(self.tax_codes))}).", element="TaxCodeRef")  # fmt: skip

    def _check_money(self, company: _Company, entity: str, obj: dict[str, Any]) -> None:
        """Payments, credit memos, journal entries and deposits: their references and shape, then the books' rules."""
        if entity in _CUSTOMER_TXNS:
            customer = (obj.get("CustomerRef") or {}).get("value")
            if customer is None or str(customer) not in company.objects["Customer"]:
                raise Fault(400, "2500", "Invalid Reference Id", f"CustomerRef {customer} does not exist",
                            element="CustomerRef")  # fmt: skip
        lines = obj.get("Line")
        if entity != "Payment" and (not isinstance(lines, list) or not lines):
            raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                        f"Business Validation Error: a {entity} needs at least one line.", element="Line")
        if entity == "JournalEntry":
            sums = {"Debit": Decimal("0"), "Credit": Decimal("0")}
            for line in lines or []:
                detail = line.get("JournalEntryLineDetail") or {}
                if detail.get("PostingType") not in sums or not (detail.get("AccountRef") or {}).get("value"):
                    raise Fault(400, "2020", "Required param missing, need to supply the required value for the API",
                                "Required parameter Line.JournalEntryLineDetail.PostingType/AccountRef is missing")
                sums[detail["PostingType"]] += _money(line.get("Amount", 0), "Line.Amount")
            if sums["Debit"] != sums["Credit"]:
                raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                            "Business Validation Error: Your Journal Entry is not balanced "
                            f"(debits {sums['Debit']}, credits {sums['Credit']}).")  # fmt: skip
        if entity == "Deposit" and not (obj.get("DepositToAccountRef") or {}).get("value"):
            raise Fault(400, "2020", "Required param missing, need to supply the required value for the API",
                        "Required parameter DepositToAccountRef is missing", element="DepositToAccountRef")
        if entity == "Payment":
            if obj.get("TotalAmt") is None:
                raise Fault(400, "2020", "Required param missing, need to supply the required value for the API",
                            "Required parameter TotalAmt is missing", element="TotalAmt")
            applied = {"Invoice": Decimal("0"), "CreditMemo": Decimal("0")}
            for line in lines or []:
                for linked in line.get("LinkedTxn") or []:
                    # a line applies to an invoice, or applies a credit memo's credit (Intuit's ReceivePayment:
                    # TotalAmt = invoice lines - credit memo lines; a zero payment applies a credit to an invoice)
                    kind = str(linked.get("TxnType"))
                    invoice = company.objects[kind].get(str(linked.get("TxnId"))) if kind in applied else None
                    if invoice is None:
                        raise Fault(400, "2500", "Invalid Reference Id",
                                    f"LinkedTxn {linked.get('TxnType')} {linked.get('TxnId')} does not exist")
                    if str(invoice["CustomerRef"]["value"]) != str(obj["CustomerRef"]["value"]):
                        raise Fault(400, "6000", "A business validation error has occurred while processing your "
                                    "request", f"Business Validation Error: {kind} {invoice['Id']} belongs to "
                                    "another customer.")  # fmt: skip
                    if _money(line.get("Amount", 0), "Line.Amount") > _money(invoice["Balance"], "Balance"):
                        raise Fault(400, "6000", "A business validation error has occurred while processing your "
                                    "request", f"Business Validation Error: the payment of {line.get('Amount')} is "
                                    f"more than {kind} {invoice['Id']}'s balance {invoice['Balance']}.")  # fmt: skip
                    applied[kind] += _money(line.get("Amount", 0), "Line.Amount")
            if applied["CreditMemo"] and applied["Invoice"] - applied["CreditMemo"] > _money(obj["TotalAmt"],
                                                                                               "TotalAmt"):
                raise Fault(400, "6000", "A business validation error has occurred while processing your request",
                            f"Business Validation Error: the invoice lines ({applied['Invoice']}) less the credits "
                            f"applied ({applied['CreditMemo']}) are more than the payment's TotalAmt.")  # fmt: skip
        self._check_txn(company, entity, obj)

    def _apply_payment(self, company: _Company, obj: dict[str, Any]) -> None:
        obj["UnappliedAmt"] = _money(obj["TotalAmt"], "TotalAmt")
        for line in obj.get("Line") or []:
            amount = _money(line.get("Amount", 0), "Line.Amount")
            credit = False
            for linked in line.get("LinkedTxn") or []:  # an invoice paid, or a credit memo's credit used
                credit = linked.get("TxnType") == "CreditMemo"
                invoice = company.objects["CreditMemo" if credit else "Invoice"][str(linked["TxnId"])]
                invoice["_paid"] = _money(invoice.get("_paid", 0), "paid") + amount
                self._price_invoice(invoice)
            obj["UnappliedAmt"] += amount if credit else -amount

    def _price_invoice(self, obj: dict[str, Any]) -> None:
        total = Decimal("0")
        for number, line in enumerate(obj.get("Line") or [], start=1):
            if line.get("DetailType") == "SubTotalLineDetail":
                continue
            line.setdefault("LineNum", number)
            total += _money(line.get("Amount", 0), "Line.Amount")
        total += tax.compute_tax(self, obj)  # given TotalTax stands, else per line from the codes' rates
        obj["TotalAmt"] = total
        obj["Balance"] = total - _money(obj.get("_paid", 0), "paid")

    def _batch(self, company: _Company, payload: dict[str, Any]) -> dict[str, Any]:
        items = payload.get("BatchItemRequest")
        if not isinstance(items, list) or not items:
            raise Fault(400, "2010", "Request has invalid or unsupported property", "BatchItemRequest is empty")
        if len(items) > MAX_BATCH_ITEMS:
            raise Fault(400, "2010", "Request has invalid or unsupported property",
                        f"a batch request carries at most {MAX_BATCH_ITEMS} BatchItemRequest items, "
                        f"this one {len(items)}", element="BatchItemRequest")  # fmt: skip
        answers = []
        for item in items:
            bid = str(item.get("bId", ""))
            try:
                if "Query" in item:
                    found = self._query(company, str(item["Query"]))
                    answers.append({"bId": bid, "QueryResponse": found["QueryResponse"]})
                    continue
                entity = next((e for e in _ENTITIES.values() if e in item), None)
                operation = item.get("operation", "create")
                if entity is None or operation not in ("create", "update"):
                    raise Fault(400, "2010", "Request has invalid or unsupported property",
                                f"batch item {bid}: unsupported operation {operation}")
                data = dict(item[entity])
                if operation == "create":
                    data.pop("Id", None)
                answers.append({"bId": bid, entity: self._write(company, entity, data)})
            except Fault as fault:
                answers.append({"bId": bid, "Fault": fault.body})
        return {"BatchItemResponse": answers, "time": self._stamp()}

    def _query(self, company: _Company, text: str) -> dict[str, Any]:
        parsed = _parse_query(text)
        entity, where, start, limit = parsed
        rows = [o for o in company.objects[entity].values() if all(test(o) for test in where)]
        rows.sort(key=lambda o: int(o["Id"]))
        page = rows[start - 1 : start - 1 + limit]
        answer: dict[str, Any] = {}
        if page:
            answer = {entity: page, "startPosition": start, "maxResults": len(page)}
        return {"QueryResponse": answer, "time": self._stamp()}

    def _stamp(self) -> str:
        return datetime.fromtimestamp(self.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")


_QUERY = re.compile(
    r"^\s*select\s+\*\s+from\s+(?P<entity>\w+)(?:\s+where\s+(?P<where>.+?))?"
    r"(?:\s+startposition\s+(?P<start>\d+))?(?:\s+maxresults\s+(?P<max>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(
    r"^\s*(?P<field>[\w.]+)\s*(?:(?P<op><=|>=|<|>|=|like)\s*'(?P<value>(?:[^'\\]|\\.)*)'"
    r"|in\s*\((?P<list>[^)]*)\))\s*$",
    re.IGNORECASE,
)
# What the query language may filter on, per entity: only the attributes Intuit's API reference marks "filterable"
# (developer.intuit.com, Accounting API entities; the same lists in CData's / GravityData's QuickBooks Online table
# references). Anything else in a WHERE is refused as QuickBooks refuses it: 400, code 4001 "Invalid query",
# "QueryValidationError: property 'X' is not queryable" (ruckus/quickbooks-ruby#403; intuit/QuickBooks-V3-DotNET-SDK
# #163: "the properties which are mentioned as filterable are only queryable"). PrivateNote is filterable on no
# transaction: a client must find its objects by DocNumber, TxnDate, CustomerRef ... and read the note itself.
_META = ("Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime")
FILTERABLE: dict[str, frozenset[str]] = {
    entity: frozenset(name.lower() for name in (*_META, *names))
    for entity, names in {
        "Customer": ("DisplayName", "CompanyName", "GivenName", "MiddleName", "FamilyName", "Suffix",
                     "FullyQualifiedName", "PrintOnCheckName", "PrimaryEmailAddr", "Active", "Balance"),
        "Invoice": ("DocNumber", "TxnDate", "DueDate", "CustomerRef", "Balance", "TotalAmt"),
        "CreditMemo": ("DocNumber", "TxnDate", "CustomerRef", "Balance", "TotalAmt"),
        "Payment": ("TxnDate", "CustomerRef", "TotalAmt"),
        "JournalEntry": ("DocNumber", "TxnDate"),
        "Deposit": ("TxnDate", "TotalAmt"),
    }.items()
}  # fmt: skip


def _parse_query(text: str) -> tuple[str, list[Callable[[dict[str, Any]], bool]], int, int]:
    """The subset of Intuit's query language the sandbox answers; anything else is a 400 QueryParserError."""
    match = _QUERY.match(text)
    entity = match and next((e for e in _ENTITIES.values() if e.lower() == match.group("entity").lower()), None)
    if match is None or entity is None:
        raise Fault(400, "4000", "Error parsing query", f"QueryParserError: unsupported query {text[:200]!r}")
    start = int(match.group("start") or 1)
    limit = int(match.group("max") or 100)
    if start < 1 or not 1 <= limit <= MAX_QUERY_RESULTS:
        raise Fault(400, "4000", "Error parsing query", f"MAXRESULTS must be 1..{MAX_QUERY_RESULTS}")
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for condition in re.split(r"\s+and\s+", match.group("where") or "", flags=re.IGNORECASE):
        if not condition.strip():
            continue
        found = _CONDITION.match(condition)
        if found is None:
            raise Fault(400, "4000", "Error parsing query", f"QueryParserError: cannot read {condition[:100]!r}")
        if found.group("field").lower() not in FILTERABLE[entity]:
            raise Fault(400, "4001", "Invalid query",
                        f"QueryValidationError: property '{found.group('field')}' is not queryable")  # fmt: skip
        tests.append(_condition(found))
    return entity, tests, start, limit


def _field(obj: dict[str, Any], path: str) -> str | None:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = next((v for k, v in value.items() if k.lower() == part.lower()), None)
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return None if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _condition(found: re.Match[str]) -> Callable[[dict[str, Any]], bool]:
    field = found.group("field")
    if found.group("list") is not None:
        values = {v.strip().strip("'").replace("\\'", "'") for v in found.group("list").split(",")}
        return lambda o: _field(o, field) in values
    value = found.group("value").replace("\\'", "'")
    op = found.group("op").lower()
    if op in ("<", ">", "<=", ">="):  # dates, times and amounts: ISO dates compare as text, amounts as numbers
        compare = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
                   ">=": lambda a, b: a >= b}[op]  # fmt: skip
        return lambda o: (v := _field(o, field)) is not None and compare(*_comparable(v, value))
    if op == "like":
        pattern = re.compile("^" + ".*".join(re.escape(p) for p in value.split("%")) + "$", re.IGNORECASE | re.DOTALL)
        return lambda o: (v := _field(o, field)) is not None and bool(pattern.match(v))
    return lambda o: _field(o, field) == value


def _comparable(left: str, right: str) -> tuple[Any, Any]:
    """Both as numbers when both are, else as text (ISO dates and times order correctly as text)."""
    try:
        return Decimal(left), Decimal(right)
    except ArithmeticError:
        return left, right


def _throttled() -> Fault:
    return Fault(429, "3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                 "The request limit was exceeded.", kind="SERVICE")  # fmt: skip


def _body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Fault(400, "2010", "Request has invalid or unsupported property", f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise Fault(400, "2010", "Request has invalid or unsupported property", "body must be a JSON object")
    return data


def _ok(obj: dict[str, Any]) -> Response:
    return 200, _dumps(obj), []


def _fault(fault: Fault) -> Response:
    return fault.status, _dumps({"Fault": fault.body, "time": datetime.now(UTC).isoformat()}), []
